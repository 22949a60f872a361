/**
 * cdk-nag (AwsSolutions) for the app, and this stack's acknowledgements. Each acknowledgement names one finding on
 * one construct (a role and its policies, a queue) and says why it is acceptable there; anything not acknowledged
 * fails `cdk synth`. With `writeSuppressionsToCloudFormation`, each reason is also written into the template next to
 * the resource, so a reviewer of the template reads it where the permission is.
 */
import { Stack, Validations } from 'aws-cdk-lib';
import type { CfnElement } from 'aws-cdk-lib';
import { Policy } from 'aws-cdk-lib/aws-iam';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import type { BatchInferenceResources, PipelineGrant } from './batch-inference-stack.js';
import { DATA_PREFIXES } from './config.js';
import { jobDefinitionRevisionsArn } from './constructs/inference-workflow.js';

/** Registers the AwsSolutions checks on an app (or stage): violations fail synthesis. */
export function addNagChecks(scope: IConstruct): void {
  Validations.of(scope).addPlugins(
    new AwsSolutionsChecks(scope, { writeSuppressionsToCloudFormation: true }),
  );
}

/**
 * A CloudFormation value as cdk-nag prints it in a finding id: literals as they are, `Ref` as `<Id>`, `Fn::GetAtt`
 * as `<Id.Attr>`, joins concatenated.
 */
export function flattenForNag(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value !== 'object' || value === null) return String(value);
  const record = value as Record<string, unknown>;
  if (typeof record.Ref === 'string') return `<${record.Ref}>`;
  const getAtt = record['Fn::GetAtt'];
  if (Array.isArray(getAtt)) return `<${getAtt.map(String).join('.')}>`;
  const join = record['Fn::Join'];
  if (Array.isArray(join) && typeof join[0] === 'string' && Array.isArray(join[1])) {
    return (join[1] as unknown[]).map(flattenForNag).join(join[0]);
  }
  return JSON.stringify(value);
}

/** The IAM5 finding id of a wildcard resource (an ARN with tokens, resolved in `scope`'s stack). */
export function wildcardResourceFinding(scope: IConstruct, arn: string): string {
  return `AwsSolutions-IAM5[Resource::${flattenForNag(Stack.of(scope).resolve(arn))}]`;
}

const ack = (scope: IConstruct, id: string, reason: string): void =>
  Validations.of(scope).acknowledge({ id, reason });

/** Reasons shared by several acknowledgements. */
const REASONS = {
  xray:
    'xray:PutTraceSegments and xray:PutTelemetryRecords (active tracing) support no resource-level permissions, so ' +
    'their resource is "*"; the actions are listed one by one.',
  runFiles:
    'a run writes files under keys only known at run time (the run id: <output>/_runs/<runId>/..., ' +
    'run_date=/run_id= partitions); each role is granted the part of the run layout it writes (docs/operations.md, ' +
    '"Who may touch what in S3"). Explicit actions only, no s3:*.',
  lambdaVersions:
    'CDK grants lambda:InvokeFunction on the function and on its versions and aliases (<arn>:*), the form the ' +
    'invoking service may use; the function itself is fixed.',
} as const;

/** Acknowledges this stack's accepted findings. */
export function acknowledgeFindings(deployed: BatchInferenceResources, scope: IConstruct): void {
  // Stack-wide singletons (CDK's bucket-emptying provider, Scheduler target roles) live at the stack's root.
  const stack = Stack.of(scope);
  const dataBucket = deployed.dataLake.bucket;
  const objectsOf = (bucket: s3.IBucket, keyPrefix: string): string => bucket.arnForObjects(`${keyPrefix}*`);

  // --- Functions' roles -------------------------------------------------------------------------------------------
  const taskRoles: [iam.IRole, string][] = [
    [deployed.planFunction.role, 'Plan'],
    [deployed.reconcileFunction.role, 'Reconcile'],
    [deployed.finalizeFunction.role, 'Finalize'],
  ];
  for (const [role, name] of taskRoles) {
    ack(
      role,
      'AwsSolutions-IAM5[Resource::*]',
      name === 'Plan'
        ? `${REASONS.xray} sagemaker:ListModelPackages supports no resource-level permissions either (it takes a ` +
            'group name, returns version summaries); DescribeModelPackage, which reveals artifacts, is scoped to the configured groups.'
        : name === 'Reconcile'
          ? `${REASONS.xray} batch:ListJobs and batch:DescribeJobs support no resource-level permissions either; ` +
            'Reconcile only reads why the children of a failed round failed (exit code, reason, log stream).'
          : REASONS.xray,
    );
  }
  ack(
    deployed.finalizeFunction.role,
    wildcardResourceFinding(
      stack,
      objectsOf(deployed.auditRunsLocation.bucket, deployed.auditRunsLocation.keyPrefix),
    ),
    'The audit records of runs (<prefix><job>/<runId>.json, the runs tables): Finalize writes one per run it ' +
      'finalizes, including runs submitted ad hoc; no other role may write here.',
  );
  for (const [fn, extra] of [
    [deployed.triggers.triggerFunction, ''],
    [deployed.triggers.volumeFunction, ''],
    [
      deployed.monitoring.queueDepthFunction,
      ' batch:ListJobs supports no resource-level permissions either; the function only counts jobs.',
    ],
  ] as const) {
    if (fn) ack(fn.role, 'AwsSolutions-IAM5[Resource::*]', `${REASONS.xray}${extra}`);
  }
  acknowledgeWindowTriggers(deployed, stack);
  const volume = deployed.triggers.volumeFunction;
  if (volume) {
    ack(
      volume.role,
      wildcardResourceFinding(stack, objectsOf(dataBucket, DATA_PREFIXES.volumeState)),
      'The volume counters: one object per pipeline under this prefix (<prefix><pipeline>.json), read and written ' +
        'with conditional PUTs, and the records of the objects counted since the last run (<prefix><pipeline>/open/). ' +
        'Nothing else of the bucket.',
    );
    if (deployed.triggerManifestsLocation) {
      ack(
        volume.role,
        wildcardResourceFinding(stack, objectsOf(dataBucket, DATA_PREFIXES.triggerManifests)),
        'The list manifests of triggered runs (<prefix><pipeline>/<run id>.jsonl): the volume function writes one ' +
          'per run it starts, Plan reads the one its run names. Nothing else of the bucket.',
      );
    }
  }

  // --- Workers ----------------------------------------------------------------------------------------------------
  const { gpuCompute } = deployed;
  for (const child of gpuCompute.node.findAll()) {
    // The execution roles CDK creates for the containers (image pull, log writes).
    if (child.node.id === 'ExecutionRole') {
      ack(
        child,
        'AwsSolutions-IAM5[Resource::*]',
        'ecr:GetAuthorizationToken supports no resource-level permissions (the ECS agent needs it to log in to ECR); ' +
          'the image pull actions are scoped to the CDK assets repository and log writes to the worker log group.',
      );
    }
    // The instance roles of the compute environments.
    if (child.node.id === 'InstanceProfileRole') {
      ack(
        child,
        'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role]',
        'The AWS-maintained policy for the ECS agent on Batch container instances (register the instance, report ' +
          'task state, pull images, write logs), kept current by AWS as the agent changes. Job code never gets it: ' +
          'jobs run as the job role, and IMDSv2 with a hop limit of 1 keeps containers away from instance credentials.',
      );
    }
  }

  // --- Model registry ---------------------------------------------------------------------------------------------
  for (const arn of deployed.modelRegistryAccess.modelPackageArns) {
    ack(
      deployed.planFunction.role,
      wildcardResourceFinding(stack, arn),
      'Versions of a configured model package group (model-package/<group>/<version>): versions are registered ' +
        'after deployment, so the version is a wildcard; the group is fixed. Read-only (DescribeModelPackage).',
    );
  }
  const artifactReason =
    'A configured model artifact prefix (modelArtifactUris): artifacts of new model versions appear under it after ' +
    'deployment. Read-only (GetObject).';
  for (const location of deployed.modelArtifactLocations) {
    const finding = wildcardResourceFinding(stack, objectsOf(location.bucket, location.keyPrefix));
    ack(deployed.planFunction.role, finding, artifactReason);
    ack(gpuCompute.jobRole, finding, artifactReason);
  }

  // --- Pipelines' prefixes (lib/run-data-access.ts) -----------------------------------------------------------------
  const grantReasons: Record<PipelineGrant['what'], string> = {
    input:
      'its input objects are the ones found under it when a run is planned (and those its triggers name).',
    output: `${REASONS.runFiles}`,
    'manifest objects':
      "its manifest input names objects under it (the pipeline's manifestObjects), known only when a run reads " +
      'the manifest.',
  };
  for (const grant of deployed.pipelineGrants) {
    ack(
      grant.role,
      wildcardResourceFinding(stack, objectsOf(grant.location.bucket, grant.location.keyPrefix)),
      `The ${grant.what} of pipeline ${grant.pipeline}, ${grant.access === 'read' ? 'read-only (GetObject)' : 'read-write (GetObject, PutObject, AbortMultipartUpload, DeleteObject)'} ` +
        `for the ${grant.roleName} role: ${grantReasons[grant.what]}`,
    );
  }

  // --- Glue --------------------------------------------------------------------------------------------------------
  ack(
    deployed.finalizeFunction.role,
    wildcardResourceFinding(stack, deployed.dataLake.glueArns.tables),
    "The tables of this stack's Glue database only: Finalize creates or updates the table of each job it " +
      'publishes, including jobs submitted ad hoc whose table is not declared by the stack.',
  );

  // --- State machines ----------------------------------------------------------------------------------------------
  // Each task grants exactly what it calls (see lib/constructs/inference-workflow.ts): the functions, the job
  // definitions (by revision) and queues, the Batch events rule. Only the log delivery and X-Ray actions remain.
  for (const workflow of deployed.workflows.values()) {
    ack(
      workflow.stateMachine.role,
      'AwsSolutions-IAM5[Resource::*]',
      'CloudWatch Logs delivery (logs:CreateLogDelivery and its siblings, needed for logging level ALL), X-Ray ' +
        'tracing and batch:DescribeJobs (which the .sync integration polls when it misses a job completion event, as ' +
        "Step Functions' documented policy for submitJob.sync has it) support no resource-level permissions; the " +
        'actions are listed one by one.',
    );
    ack(
      workflow.stateMachine.role,
      wildcardResourceFinding(
        stack,
        stack.formatArn({ service: 'batch', resource: 'job', resourceName: '*' }),
      ),
      'batch:TerminateJob only: Step Functions stops the Batch jobs of an execution that is stopped or times out. Job ' +
        'ids exist only at run time; the grant is limited to jobs of this account and region.',
    );
  }
  // Job definitions are granted by name, every revision (see jobDefinitionRevisionsArn): a deploy registers a new
  // revision while executions started before it still submit the old one.
  for (const workflow of deployed.workflows.values()) {
    for (const jobDefinition of [deployed.gpuCompute.jobDefinition, deployed.gpuCompute.cpuJobDefinition]) {
      if (!jobDefinition) continue;
      ack(
        workflow.stateMachine.role,
        wildcardResourceFinding(stack, jobDefinitionRevisionsArn(stack, jobDefinition)),
        'batch:SubmitJob on every revision of one worker job definition (job-definition/<name>:*): a deploy ' +
          'registers a new revision, and executions started before it (runs last up to a day) submit the revision ' +
          'they started with in their next round. Old revisions stay registered for them (SkipDeregisterOnUpdate).',
      );
    }
  }

  // --- Schedules' roles ---------------------------------------------------------------------------------------------
  // EventBridge Scheduler targets get one role per target function (SchedulerRoleForTarget-<hash>); each is
  // acknowledged for the function its policy names.
  for (const fn of [deployed.triggers.triggerFunction, deployed.monitoring.queueDepthFunction]) {
    if (!fn) continue;
    const functionId = Stack.of(fn).getLogicalId(fn.function.node.defaultChild as CfnElement);
    for (const child of stack.node.findAll()) {
      if (!(child instanceof Policy) || !child.node.scope?.node.id.startsWith('SchedulerRoleForTarget'))
        continue;
      if (!JSON.stringify(stack.resolve(child.document)).includes(`"${functionId}"`)) continue;
      ack(child, wildcardResourceFinding(stack, `${fn.function.functionArn}:*`), REASONS.lambdaVersions);
    }
  }

  // --- Dead letters -------------------------------------------------------------------------------------------------
  const dlq = deployed.triggers.deadLetterQueue;
  if (dlq) {
    ack(
      dlq,
      'AwsSolutions-SQS3',
      'This queue is the dead-letter queue of the trigger rules, schedules and functions; a dead-letter queue of ' +
        'its own would only move the problem. An alarm fires on its first message.',
    );
  }

  // --- RemovalPolicy.DESTROY ----------------------------------------------------------------------------------------
  for (const child of stack.node.children) {
    // autoDeleteObjects (removalPolicy: destroy) adds CDK's bucket-emptying custom resource provider.
    if (child.node.id.startsWith('Custom::S3AutoDeleteObjectsCustomResourceProvider')) {
      ack(
        child,
        'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        "CDK's provider that empties the buckets on stack deletion (removalPolicy: destroy, for disposable stages); it only runs at deletion.",
      );
      ack(
        child,
        'AwsSolutions-L1',
        "CDK's provider that empties the buckets on stack deletion: its runtime is chosen by aws-cdk-lib, not by this project.",
      );
    }
  }
}

/** The batching S3 triggers' findings: their state prefixes, the timer's logging and its function versions. */
function acknowledgeWindowTriggers(deployed: BatchInferenceResources, stack: Stack): void {
  const { windowFunction, windowTimer, triggerFunction } = deployed.triggers;
  if (!windowFunction || !windowTimer || !triggerFunction) return;
  const dataBucket = deployed.dataLake.bucket;
  const windows = wildcardResourceFinding(stack, dataBucket.arnForObjects(`${DATA_PREFIXES.windowState}*`));
  const manifests = wildcardResourceFinding(
    stack,
    dataBucket.arnForObjects(`${DATA_PREFIXES.triggerManifests}*`),
  );
  const windowReason =
    'The upload windows of batching S3 triggers (<prefix><pipeline>/<trigger>/windows/<start>/..., claims/...): ' +
    'one small object per uploaded object, per claim and per window timer, keyed by what it describes; written ' +
    'only by the trigger function (records) and the window function (claims). Nothing else of the bucket.';
  ack(triggerFunction.role, windows, windowReason);
  ack(windowFunction.role, windows, windowReason);
  const manifestReason =
    'The list manifests of triggered runs (<prefix><pipeline>/<run id>.jsonl): the window function writes one per ' +
    'run it starts, Plan reads the one its run names. Nothing else of the bucket.';
  ack(windowFunction.role, manifests, manifestReason);
  if (deployed.triggerManifestsLocation) ack(deployed.planFunction.role, manifests, manifestReason);
  ack(windowFunction.role, 'AwsSolutions-IAM5[Resource::*]', REASONS.xray);
  ack(
    windowTimer.role,
    'AwsSolutions-IAM5[Resource::*]',
    'CloudWatch Logs delivery (logs:CreateLogDelivery and its siblings, needed for logging level ALL) and X-Ray ' +
      'tracing support no resource-level permissions; the actions are listed one by one.',
  );
  ack(
    windowTimer.role,
    wildcardResourceFinding(stack, `${windowFunction.function.functionArn}:*`),
    REASONS.lambdaVersions,
  );
}
