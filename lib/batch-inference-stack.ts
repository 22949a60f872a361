/**
 * The deployed product: data lake, network, GPU compute, the three task functions and the state machine.
 */
import { CfnOutput, Duration, Stack } from 'aws-cdk-lib';
import type { StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import type { DeployConfig } from './config.js';
import { glueDatabaseName } from './config.js';
import { DataLake } from './constructs/data-lake.js';
import { GpuCompute } from './constructs/gpu-compute.js';
import { InferenceWorkflow } from './constructs/inference-workflow.js';
import { NodeFunction } from './constructs/node-function.js';
import { FUNCTION_ENV } from './workflow-contract.js';

export interface BatchInferenceStackProps extends StackProps {
  /** Validated deploy configuration (see lib/config.ts). */
  readonly config: DeployConfig;
}

/**
 * Glue actions Finalize needs to publish a run, as src/catalog/glue.ts calls them: read, create or update the job's
 * table, add the run's partition. Listed one by one: no `glue:*`.
 */
const GLUE_PUBLISH_ACTIONS = [
  'glue:GetTable',
  'glue:CreateTable',
  'glue:UpdateTable',
  'glue:BatchCreatePartition',
];

export class BatchInferenceStack extends Stack {
  readonly dataLake: DataLake;
  readonly vpc: ec2.Vpc;
  readonly gpuCompute: GpuCompute;
  readonly workflow: InferenceWorkflow;
  readonly planFunction: NodeFunction;
  readonly reconcileFunction: NodeFunction;
  readonly finalizeFunction: NodeFunction;

  constructor(scope: Construct, id: string, props: BatchInferenceStackProps) {
    super(scope, id, props);
    const { config } = props;

    this.dataLake = new DataLake(this, 'DataLake', { databaseName: glueDatabaseName(config) });
    const { bucket } = this.dataLake;

    // Workers run in private subnets. S3 traffic (nearly all of it) goes through the free gateway endpoint instead
    // of the NAT gateway; the NAT is only for ECR, CloudWatch Logs and SageMaker/Glue APIs.
    this.vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 1,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: 'private', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
      ],
      gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
    });

    this.gpuCompute = new GpuCompute(this, 'GpuCompute', {
      vpc: this.vpc,
      instanceTypes: config.gpuInstanceTypes,
      maxvCpus: config.maxvCpus,
      spot: config.spot,
      workerCpu: config.workerCpu,
      workerMemoryMiB: config.workerMemoryMiB,
    });
    bucket.grantReadWrite(this.gpuCompute.jobRole);

    this.planFunction = new NodeFunction(this, 'PlanFunction', {
      entry: 'lambdas/plan/handler.ts',
      description: 'Plans a batch inference run: resolves the model, lists the input, writes the shards',
      memorySize: 1024,
      timeout: Duration.minutes(5),
    });
    this.reconcileFunction = new NodeFunction(this, 'ReconcileFunction', {
      entry: 'lambdas/reconcile/handler.ts',
      description: 'Finds the shards a Batch round did not complete and decides whether to run another round',
      memorySize: 512,
      timeout: Duration.minutes(2),
    });
    this.finalizeFunction = new NodeFunction(this, 'FinalizeFunction', {
      entry: 'lambdas/finalize/handler.ts',
      description: 'Validates a run, writes its audit manifest and publishes it to the Glue catalog',
      memorySize: 2048,
      timeout: Duration.minutes(10),
      environment: { [FUNCTION_ENV.glueDatabase]: this.dataLake.databaseName },
    });

    // Every task reads and writes run files in the data bucket.
    for (const fn of [this.planFunction, this.reconcileFunction, this.finalizeFunction]) {
      bucket.grantReadWrite(fn.function);
    }

    // Plan resolves model versions in the SageMaker Model Registry. ListModelPackages supports no resource-level
    // permissions, so it needs "*"; DescribeModelPackage is scoped to model packages of this account and region.
    this.planFunction.function.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['sagemaker:ListModelPackages'], resources: ['*'] }),
    );
    this.planFunction.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['sagemaker:DescribeModelPackage'],
        resources: [this.formatArn({ service: 'sagemaker', resource: 'model-package', resourceName: '*' })],
      }),
    );

    // Finalize publishes to the run's database only: the catalog, the database and its tables.
    const { glueArns } = this.dataLake;
    this.finalizeFunction.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: GLUE_PUBLISH_ACTIONS,
        resources: [glueArns.catalog, glueArns.database, glueArns.tables],
      }),
    );

    this.workflow = new InferenceWorkflow(this, 'Workflow', {
      planFunction: this.planFunction.function,
      reconcileFunction: this.reconcileFunction.function,
      finalizeFunction: this.finalizeFunction.function,
      gpuJobQueue: this.gpuCompute.jobQueue,
      jobDefinition: this.gpuCompute.jobDefinition,
    });

    new CfnOutput(this, 'StateMachineArn', { value: this.workflow.stateMachine.stateMachineArn });
    new CfnOutput(this, 'DataBucketName', { value: bucket.bucketName });
    new CfnOutput(this, 'GlueDatabaseName', { value: this.dataLake.databaseName });
  }
}
