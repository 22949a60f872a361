/**
 * The run's state machine: Plan -> (Batch round -> Reconcile)* -> Finalize. Built from typed tasks only, in
 * JSONPath, because the same definition is executed locally by `aws-local-stepfunctions` (which ignores JSONata).
 *
 *   Plan ──catch──> PlanFailed
 *    │
 *   Canary? ── $.canary ──> Infer canary ─> Check canary ─> Canary passed? ── no ──> Finalize (the run stops)
 *    │                                                          │ yes
 *   Route shards <──────────────────────────────────────────────┘ ── pending == 0 ──────────────────────────────> Finalize ─> Passed? ─> Succeeded | Failed
 *    │  pending == 1 -> Infer shard      (single job)              ^
 *    │  otherwise    -> Infer shards     (array job, size pending) │
 *    v                                                             │
 *   Reconcile (a failed job is caught into $.inferError) ─> Retry round? ── next == 'infer' ─> Route shards
 *
 * With On-Demand queues, `Retry round?` goes to `Route retry shards` instead: the same choice over `... on demand`
 * states, so only the first round runs on Spot (see `addOnDemandRetryRounds`).
 */
import { ArnFormat, Duration, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import * as batch from 'aws-cdk-lib/aws-batch';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { WORKER_ENV } from '../../src/runs/tasks.js';
import { PLAN_EVENT_KEYS, WORKFLOW_STATES } from '../workflow-contract.js';

export {
  WORKFLOW_STATES,
  INFER_STATES,
  ON_DEMAND_INFER_STATES,
  NON_RETRYABLE_ERRORS,
} from '../workflow-contract.js';

/** Step Functions' limit for a STANDARD execution. */
const MAX_EXECUTION_TIME = Duration.days(365);

export interface InferenceWorkflowProps {
  /** Plans the run: `{ request, runId }` (see `planEventSchema`) -> RunState. */
  readonly planFunction: lambda.IFunction;

  /** Finds missing shards after a round: RunState (+ `inferError`) -> RunState with `next`. */
  readonly reconcileFunction: lambda.IFunction;

  /** Validates, writes the manifest and catalogues: RunState -> RunResult. */
  readonly finalizeFunction: lambda.IFunction;

  /** Queue of runs whose `compute` is `gpu` (and of every run when no CPU queue is given). */
  readonly gpuJobQueue: batch.IJobQueue;

  /**
   * Queue of runs whose `compute` is `cpu`.
   *
   * @default - the GPU queue; no separate CPU states are generated.
   */
  readonly cpuJobQueue?: batch.IJobQueue;

  /**
   * The GPU queue of retry rounds (round 1 onwards): On-Demand capacity, so a round that Spot could not place, or
   * whose hosts Spot reclaimed, is not sent back to Spot.
   *
   * @default - retry rounds use `gpuJobQueue`; no On-Demand states are generated.
   */
  readonly gpuOnDemandJobQueue?: batch.IJobQueue;

  /**
   * The CPU queue of retry rounds. Only with `cpuJobQueue` and `gpuOnDemandJobQueue`.
   *
   * @default - retry rounds of CPU runs use `cpuJobQueue`
   */
  readonly cpuOnDemandJobQueue?: batch.IJobQueue;

  /** The worker's job definition; its retry strategy handles spot reclaims and image pull failures. */
  readonly jobDefinition: batch.IJobDefinition;

  /**
   * The job definition of CPU runs (no GPU requested, CPU execution provider).
   *
   * @default - `jobDefinition`
   */
  readonly cpuJobDefinition?: batch.IJobDefinition;

  /**
   * Maximum duration of a run, every round included.
   *
   * @default Duration.hours(24)
   */
  readonly timeout?: Duration;

  /**
   * Where execution history is logged (level ALL, with execution data).
   *
   * @default - a new log group, kept `logRetention`
   */
  readonly logs?: logs.ILogGroup;

  /**
   * How long the new execution log group keeps logs (when `logs` is not given).
   *
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;

  /**
   * What happens to the new execution log group when the stack is deleted.
   *
   * @default RemovalPolicy.DESTROY
   */
  readonly logRemovalPolicy?: RemovalPolicy;
}

/** The longest a Lambda function can run. */
const LAMBDA_TASK_TIMEOUT = Duration.minutes(15);

/** Retry shape for Lambda throttling: exponential backoff with full jitter so throttled runs do not retry in step. */
const THROTTLE_RETRY: sfn.RetryProps = {
  errors: ['Lambda.TooManyRequestsException'],
  interval: Duration.seconds(1),
  backoffRate: 2,
  maxAttempts: 8,
  maxDelay: Duration.seconds(30),
  jitterStrategy: sfn.JitterType.FULL,
};

/**
 * Transient Lambda service errors (the ones CDK's `retryOnServiceExceptions` lists), retried the same way: with
 * backoff and full jitter, so runs that hit the same service hiccup spread out instead of retrying together.
 */
const SERVICE_RETRY: sfn.RetryProps = {
  errors: [
    'Lambda.ClientExecutionTimeoutException',
    'Lambda.ServiceException',
    'Lambda.AWSLambdaException',
    'Lambda.SdkClientException',
  ],
  interval: Duration.seconds(2),
  backoffRate: 2,
  maxAttempts: 6,
  maxDelay: Duration.seconds(60),
  jitterStrategy: sfn.JitterType.FULL,
};

/**
 * The Lambda task, granting the state machine `lambda:InvokeFunction` on exactly the function it invokes. CDK's
 * LambdaInvoke also grants the function's versions and aliases (`<arn>:*`), which this state machine never names:
 * its tasks invoke the unqualified function.
 */
class InvokeFunctionTask extends tasks.LambdaInvoke {
  protected override readonly taskPolicies: iam.PolicyStatement[];

  constructor(scope: Construct, id: string, props: tasks.LambdaInvokeJsonPathProps) {
    super(scope, id, props);
    this.taskPolicies = [
      new iam.PolicyStatement({
        actions: ['lambda:InvokeFunction'],
        resources: [props.lambdaFunction.functionArn],
      }),
    ];
  }
}

/**
 * The Batch task (`.sync`), granting `batch:SubmitJob` on the job definition it submits (every revision of it, see
 * `jobDefinitionRevisionsArn`) and the queue it submits to. CDK's BatchSubmitJob grants every job definition of the
 * account (`job-definition/*`). The rest follows Step Functions' documented policy for `submitJob.sync` ("IAM policies
 * for AWS Batch"): `batch:DescribeJobs`, which the integration polls when it misses the job's completion event (CDK
 * omits it; without it such an execution waits until its timeout), and supports no resource-level permissions, so
 * `*`; the three actions on the EventBridge rule Step Functions manages to learn that a job finished; and
 * `batch:TerminateJob`, to stop the jobs of an execution that is stopped or times out (CDK omits it too: the GPU
 * jobs of an aborted run would keep running, and billing, until their attempt timeout). Job ids exist only at run
 * time, so that grant is on this account's and region's jobs (`job/*`).
 */
class SubmitJobTask extends tasks.BatchSubmitJob {
  protected override readonly taskPolicies: iam.PolicyStatement[];

  constructor(
    scope: Construct,
    id: string,
    props: tasks.BatchSubmitJobJsonPathProps & {
      /** The job definition `jobDefinitionArn` names (one revision of it). */
      readonly jobDefinition: batch.IJobDefinition;
    },
  ) {
    super(scope, id, props);
    const { jobDefinition } = props;
    this.taskPolicies = [
      new iam.PolicyStatement({
        actions: ['batch:SubmitJob'],
        resources: [jobDefinitionRevisionsArn(this, jobDefinition), props.jobQueueArn],
      }),
      new iam.PolicyStatement({ actions: ['batch:DescribeJobs'], resources: ['*'] }),
      new iam.PolicyStatement({
        actions: ['events:PutTargets', 'events:PutRule', 'events:DescribeRule'],
        resources: [
          Stack.of(this).formatArn({
            service: 'events',
            resource: 'rule/StepFunctionsGetEventsForBatchJobsRule',
          }),
        ],
      }),
      new iam.PolicyStatement({
        actions: ['batch:TerminateJob'],
        resources: [Stack.of(this).formatArn({ service: 'batch', resource: 'job', resourceName: '*' })],
      }),
    ];
  }
}

/**
 * Every revision of a job definition (`job-definition/<name>:*`). A deploy that changes the worker's job definition
 * registers a new revision and the state machine's definition names it; an execution started before the deploy keeps
 * the definition it started with and submits the old revision in its next round. Granting by name keeps that
 * submission allowed (the stack also keeps old revisions registered: see GpuCompute). The name is the definition's
 * own, followed by `:`: a grant on `<name>*` would also match `<name>-other`.
 */
export function jobDefinitionRevisionsArn(scope: Construct, jobDefinition: batch.IJobDefinition): string {
  const stack = Stack.of(scope);
  const cfn = jobDefinition.node.defaultChild;
  // A job definition of this app with a fixed name: the literal name, so the grant reads as what it is.
  if (
    cfn instanceof batch.CfnJobDefinition &&
    typeof cfn.jobDefinitionName === 'string' &&
    !Token.isUnresolved(cfn.jobDefinitionName)
  ) {
    return stack.formatArn({
      service: 'batch',
      resource: 'job-definition',
      resourceName: `${cfn.jobDefinitionName}:*`,
      region: Stack.of(cfn).region,
      account: Stack.of(cfn).account,
    });
  }
  const arn = jobDefinition.jobDefinitionArn;
  if (!Token.isUnresolved(arn)) {
    // An imported ARN: `...:job-definition/<name>:<revision>` or, for the latest revision, without `:<revision>`.
    const [prefix, revisionPart] = [arn.slice(0, arn.indexOf('/') + 1), arn.slice(arn.indexOf('/') + 1)];
    return `${prefix}${revisionPart.split(':')[0]}:*`;
  }
  // A generated name: CloudFormation's reference splits into `job-definition/<name>` and the revision.
  const parts = stack.splitArn(arn, ArnFormat.SLASH_RESOURCE_NAME);
  return stack.formatArn({
    service: 'batch',
    resource: 'job-definition',
    resourceName: `${parts.resourceName}:*`,
  });
}

export class InferenceWorkflow extends Construct {
  /** The state machine (STANDARD). */
  readonly stateMachine: sfn.StateMachine;
  /** Where execution history is logged. */
  readonly logGroup: logs.ILogGroup;

  constructor(scope: Construct, id: string, props: InferenceWorkflowProps) {
    super(scope, id);

    const timeout = props.timeout ?? Duration.hours(24);
    if (!Token.isUnresolved(timeout.toSeconds())) {
      const seconds = timeout.toSeconds();
      if (seconds < 1 || seconds > MAX_EXECUTION_TIME.toSeconds()) {
        throw new Error(
          `InferenceWorkflow timeout must be between 1 second and 365 days, got ${seconds} seconds. ` +
            'Pass a Duration in that range (the default is 24 hours).',
        );
      }
    }

    if (props.cpuOnDemandJobQueue && !(props.cpuJobQueue && props.gpuOnDemandJobQueue)) {
      throw new Error(
        'InferenceWorkflow cpuOnDemandJobQueue is only used with a cpuJobQueue and a gpuOnDemandJobQueue: pass them ' +
          'too, or leave it out.',
      );
    }
    if (props.cpuJobDefinition && !props.cpuJobQueue) {
      throw new Error(
        'InferenceWorkflow cpuJobDefinition is only used with a cpuJobQueue: pass the CPU queue too, or leave both out.',
      );
    }

    // --- Plan ---------------------------------------------------------------------------------------------------
    const plan = this.invoke('Plan', WORKFLOW_STATES.plan, props.planFunction, {
      // The whole execution input, because its fields are optional (see planEventSchema).
      [PLAN_EVENT_KEYS.request]: sfn.JsonPath.entirePayload,
      [PLAN_EVENT_KEYS.runId]: sfn.JsonPath.executionName,
    });
    const planFailed = new sfn.Fail(this, 'PlanFailed', {
      stateName: WORKFLOW_STATES.planFailed,
      error: 'PlanFailed',
      // The caught error's cause: for a Lambda error, JSON with the typed error's errorType and errorMessage.
      causePath: sfn.JsonPath.stringAt('$.Cause'),
    });
    plan.addCatch(planFailed, { errors: [sfn.Errors.ALL] });

    // --- Batch round ----------------------------------------------------------------------------------------------
    const reconcile = this.invoke('Reconcile', WORKFLOW_STATES.reconcile, props.reconcileFunction);
    const finalize = this.invoke('Finalize', WORKFLOW_STATES.finalize, props.finalizeFunction);

    const gpuQueue = props.gpuJobQueue;
    const cpuQueue = props.cpuJobQueue && props.cpuJobQueue !== gpuQueue ? props.cpuJobQueue : undefined;

    const submit = (
      id: string,
      stateName: string,
      queue: batch.IJobQueue,
      jobDefinition: batch.IJobDefinition,
      array: boolean,
    ) => this.submitJob(id, stateName, queue, jobDefinition, { array });
    const inferShard = submit('InferShard', WORKFLOW_STATES.inferShard, gpuQueue, props.jobDefinition, false);
    const inferShards = submit(
      'InferShards',
      WORKFLOW_STATES.inferShards,
      gpuQueue,
      props.jobDefinition,
      true,
    );
    const cpuJobDefinition = props.cpuJobDefinition ?? props.jobDefinition;
    const roundJobs = [inferShard, inferShards];

    const pendingIsNone = sfn.Condition.numberEquals('$.pending', 0);
    const pendingIsOne = sfn.Condition.numberEquals('$.pending', 1);
    const routeShards = new sfn.Choice(this, 'RouteShards', { stateName: WORKFLOW_STATES.routeShards }).when(
      pendingIsNone,
      finalize,
    );
    if (cpuQueue) {
      // A second pair of tasks rather than a dynamic `JobQueue.$`: the queue stays a literal ARN, so the state
      // machine role's batch:SubmitJob is scoped to the two queues instead of `*`.
      const onCpu = sfn.Condition.stringEquals('$.compute', 'cpu');
      const inferShardOnCpu = submit(
        'InferShardOnCpu',
        WORKFLOW_STATES.inferShardOnCpu,
        cpuQueue,
        cpuJobDefinition,
        false,
      );
      const inferShardsOnCpu = submit(
        'InferShardsOnCpu',
        WORKFLOW_STATES.inferShardsOnCpu,
        cpuQueue,
        cpuJobDefinition,
        true,
      );
      roundJobs.push(inferShardOnCpu, inferShardsOnCpu);
      routeShards
        .when(sfn.Condition.and(pendingIsOne, onCpu), inferShardOnCpu)
        .when(pendingIsOne, inferShard)
        .when(onCpu, inferShardsOnCpu)
        .otherwise(inferShards);
    } else {
      routeShards.when(pendingIsOne, inferShard).otherwise(inferShards);
    }

    for (const job of roundJobs) {
      // A failed job (for an array job: any failed child) fails the state; Reconcile decides what happens next
      // from the markers in storage, so the error is kept beside the state rather than replacing it.
      job.addCatch(reconcile, { errors: [sfn.Errors.ALL], resultPath: '$.inferError' });
      job.next(reconcile);
    }

    const retryTarget = props.gpuOnDemandJobQueue
      ? this.addOnDemandRetryRounds(props, { finalize, reconcile, submit, cpuJobDefinition })
      : routeShards;
    const retryRound = new sfn.Choice(this, 'RetryRound', { stateName: WORKFLOW_STATES.retryRound })
      .when(sfn.Condition.stringEquals('$.next', 'infer'), retryTarget)
      .otherwise(finalize);
    reconcile.next(retryRound);

    const canary = this.addCanary(props, { routeShards, finalize, cpuQueue, cpuJobDefinition });

    // --- Finalize -------------------------------------------------------------------------------------------------
    const succeeded = new sfn.Succeed(this, 'Succeeded', { stateName: WORKFLOW_STATES.succeeded });
    const failed = new sfn.Fail(this, 'Failed', {
      stateName: WORKFLOW_STATES.failed,
      // RunResult.reason is the error name (ValidationFailed | ShardsFailed), RunResult.message the cause.
      errorPath: sfn.JsonPath.stringAt('$.reason'),
      causePath: sfn.JsonPath.stringAt('$.message'),
    });
    const passed = new sfn.Choice(this, 'Passed', { stateName: WORKFLOW_STATES.passed })
      .when(sfn.Condition.stringEquals('$.status', 'SUCCEEDED'), succeeded)
      .otherwise(failed);
    finalize.next(passed);

    // --- State machine --------------------------------------------------------------------------------------------
    this.logGroup =
      props.logs ??
      new logs.LogGroup(this, 'Logs', {
        retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
        removalPolicy: props.logRemovalPolicy ?? RemovalPolicy.DESTROY,
      });

    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      definitionBody: sfn.DefinitionBody.fromChainable(plan.next(canary)),
      stateMachineType: sfn.StateMachineType.STANDARD,
      queryLanguage: sfn.QueryLanguage.JSON_PATH,
      timeout,
      tracingEnabled: true,
      logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: true },
    });
  }

  /**
   * `run.canary` (issue 10): `Canary?` after Plan. A plan with `canary` (the spec asked for one) first runs shard 0's
   * first `canary` records as a single job (the worker's canary mode, src/worker/canary.ts), on the run's queue;
   * `Check canary` (the Reconcile function, which sees `canary` in the state) passes the run on to `Route shards`, or
   * stops it with the canary's reason (a stop record, then Finalize). A plan without it goes to `Route shards` at
   * once. A Choice on the plan rather than states per spec: the definition is the same for every job, and runs
   * locally unchanged.
   */
  private addCanary(
    props: InferenceWorkflowProps,
    states: {
      readonly routeShards: sfn.IChainable;
      readonly finalize: sfn.IChainable;
      readonly cpuQueue: batch.IJobQueue | undefined;
      readonly cpuJobDefinition: batch.IJobDefinition;
    },
  ): sfn.Choice {
    const environment = {
      [WORKER_ENV.canaryRecords]: sfn.JsonPath.format('{}', sfn.JsonPath.stringAt('$.canary')),
    };
    const check = this.invoke('CheckCanary', WORKFLOW_STATES.checkCanary, props.reconcileFunction);
    const jobs = [
      this.submitJob('InferCanary', WORKFLOW_STATES.inferCanary, props.gpuJobQueue, props.jobDefinition, {
        array: false,
        environment,
      }),
    ];
    const wanted = sfn.Condition.isPresent('$.canary');
    const choice = new sfn.Choice(this, 'Canary', { stateName: WORKFLOW_STATES.canary });
    if (states.cpuQueue) {
      const onCpu = this.submitJob(
        'InferCanaryOnCpu',
        WORKFLOW_STATES.inferCanaryOnCpu,
        states.cpuQueue,
        states.cpuJobDefinition,
        { array: false, environment },
      );
      jobs.push(onCpu);
      choice.when(sfn.Condition.and(wanted, sfn.Condition.stringEquals('$.compute', 'cpu')), onCpu);
    }
    choice.when(wanted, jobs[0]!).otherwise(states.routeShards);
    for (const job of jobs) {
      // A failed canary job is caught like a failed round: the check reads why from storage.
      job.addCatch(check, { errors: [sfn.Errors.ALL], resultPath: '$.inferError' });
      job.next(check);
    }
    check.next(
      new sfn.Choice(this, 'CanaryPassed', { stateName: WORKFLOW_STATES.canaryPassed })
        .when(sfn.Condition.stringEquals('$.next', 'infer'), states.routeShards)
        .otherwise(states.finalize),
    );
    return choice;
  }

  /**
   * The retry rounds' routing: `Route retry shards`, the same choice as `Route shards` (pending 0 / 1 / N, GPU or CPU)
   * over tasks on the On-Demand queues, each caught into and followed by Reconcile. Returns the choice.
   */
  private addOnDemandRetryRounds(
    props: InferenceWorkflowProps,
    states: {
      readonly finalize: sfn.IChainable;
      readonly reconcile: sfn.IChainable;
      readonly submit: (
        id: string,
        stateName: string,
        queue: batch.IJobQueue,
        jobDefinition: batch.IJobDefinition,
        array: boolean,
      ) => tasks.BatchSubmitJob;
      readonly cpuJobDefinition: batch.IJobDefinition;
    },
  ): sfn.Choice {
    const { submit } = states;
    const gpuQueue = props.gpuOnDemandJobQueue!;
    const pendingIsOne = sfn.Condition.numberEquals('$.pending', 1);
    const one = submit(
      'InferShardOnDemand',
      WORKFLOW_STATES.inferShardOnDemand,
      gpuQueue,
      props.jobDefinition,
      false,
    );
    const many = submit(
      'InferShardsOnDemand',
      WORKFLOW_STATES.inferShardsOnDemand,
      gpuQueue,
      props.jobDefinition,
      true,
    );
    const jobs = [one, many];
    const route = new sfn.Choice(this, 'RouteRetryShards', {
      stateName: WORKFLOW_STATES.routeRetryShards,
    }).when(sfn.Condition.numberEquals('$.pending', 0), states.finalize);
    const cpuQueue =
      props.cpuJobQueue && props.cpuJobQueue !== props.gpuJobQueue
        ? (props.cpuOnDemandJobQueue ?? props.cpuJobQueue)
        : undefined;
    if (cpuQueue) {
      const onCpu = sfn.Condition.stringEquals('$.compute', 'cpu');
      const oneOnCpu = submit(
        'InferShardOnCpuOnDemand',
        WORKFLOW_STATES.inferShardOnCpuOnDemand,
        cpuQueue,
        states.cpuJobDefinition,
        false,
      );
      const manyOnCpu = submit(
        'InferShardsOnCpuOnDemand',
        WORKFLOW_STATES.inferShardsOnCpuOnDemand,
        cpuQueue,
        states.cpuJobDefinition,
        true,
      );
      jobs.push(oneOnCpu, manyOnCpu);
      route
        .when(sfn.Condition.and(pendingIsOne, onCpu), oneOnCpu)
        .when(pendingIsOne, one)
        .when(onCpu, manyOnCpu)
        .otherwise(many);
    } else {
      route.when(pendingIsOne, one).otherwise(many);
    }
    for (const job of jobs) {
      job.addCatch(states.reconcile, { errors: [sfn.Errors.ALL], resultPath: '$.inferError' });
      job.next(states.reconcile);
    }
    return route;
  }

  /**
   * A Lambda task whose output is the function's response (`$.Payload`). The state input is the payload unless
   * `payload` is given. Lambda service errors and throttling are retried with backoff and jitter. No Retry matches
   * the typed errors of src/spec/errors.ts (NON_RETRYABLE_ERRORS): only `Lambda.*` names are listed.
   */
  private invoke(
    id: string,
    stateName: string,
    fn: lambda.IFunction,
    payload?: Readonly<Record<string, unknown>>,
  ): tasks.LambdaInvoke {
    const task = new InvokeFunctionTask(this, id, {
      stateName,
      lambdaFunction: fn,
      payload: payload ? sfn.TaskInput.fromObject({ ...payload }) : sfn.TaskInput.fromJsonPathAt('$'),
      payloadResponseOnly: false,
      // Replaced by SERVICE_RETRY: the same errors, with jitter.
      retryOnServiceExceptions: false,
      outputPath: '$.Payload',
      // Explicit, because a Task without TimeoutSeconds defaults to 60 s in the States Language (and in the local
      // interpreter) but to a year in AWS; neither is what a Lambda task means.
      taskTimeout: sfn.Timeout.duration(LAMBDA_TASK_TIMEOUT),
    });
    task.addRetry(SERVICE_RETRY);
    task.addRetry(THROTTLE_RETRY);
    return task;
  }

  /**
   * One Batch round: a job on `queue` that runs the worker for every pending shard. The task waits for the job
   * (`.sync`) and keeps RunState as its output (the job description is discarded). No state-level Retry: Batch's
   * retry strategy on the job definition already retries spot reclaims and image pulls per child.
   */
  private submitJob(
    id: string,
    stateName: string,
    queue: batch.IJobQueue,
    jobDefinition: batch.IJobDefinition,
    options: { readonly array: boolean; readonly environment?: Readonly<Record<string, string>> },
  ): tasks.BatchSubmitJob {
    return new SubmitJobTask(this, id, {
      stateName,
      // No taskTimeout: BatchSubmitJob turns it into the job's attempt timeout (overriding the job definition's)
      // and never renders the state's TimeoutSeconds. A round is bounded by the state machine's timeout instead.
      integrationPattern: sfn.IntegrationPattern.RUN_JOB,
      jobQueueArn: queue.jobQueueArn,
      jobDefinitionArn: jobDefinition.jobDefinitionArn,
      jobDefinition,
      // Batch job names allow letters, digits, '-' and '_': run ids are execution names, which are already limited
      // to those characters, and the round is a number.
      jobName: sfn.JsonPath.format(
        '{}-r{}',
        sfn.JsonPath.stringAt('$.runId'),
        sfn.JsonPath.stringAt('$.round'),
      ),
      // Batch array jobs need 2..10,000 children, hence the single-job state for one pending shard.
      arraySize: options.array ? sfn.JsonPath.numberAt('$.pending') : undefined,
      containerOverrides: {
        environment: {
          [WORKER_ENV.runUri]: sfn.JsonPath.stringAt('$.runUri'),
          // Environment values must be strings; the round is a number in RunState.
          [WORKER_ENV.round]: sfn.JsonPath.format('{}', sfn.JsonPath.stringAt('$.round')),
          ...options.environment,
        },
      },
      resultPath: sfn.JsonPath.DISCARD,
    });
  }
}
