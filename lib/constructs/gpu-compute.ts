/**
 * GPU capacity for the worker: a managed EC2 compute environment that scales to zero, a job queue, and the
 * worker's job definition (one GPU per job, the image built from this repository at deploy time).
 */
import { Duration, IgnoreMode, RemovalPolicy, Size, Token } from 'aws-cdk-lib';
import * as batch from 'aws-cdk-lib/aws-batch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import { Construct } from 'constructs';
import { REPO_ROOT } from '../paths.js';

/** The worker's Dockerfile, relative to the repository root (the image's build context). */
export const WORKER_DOCKERFILE = 'containers/worker/Dockerfile';

/**
 * What the worker image's build context leaves out: everything except what the Dockerfile copies. An allowlist, so
 * that a new folder (tests, benchmarks, local data, credentials) neither bloats the context nor changes the asset
 * hash and forces a rebuild. `.npmrc` stays out on purpose: it skips onnxruntime-node's CUDA download, which the
 * image wants. Mirrored by the repository's `.dockerignore` for plain `docker build`; a test keeps them equal.
 */
export const WORKER_IMAGE_EXCLUDE: readonly string[] = [
  '*',
  '!package.json',
  '!package-lock.json',
  '!tsconfig.json',
  '!src',
  '!containers/worker',
];

export interface GpuComputeProps {
  /** Where instances run; they are placed in the private subnets. */
  readonly vpc: ec2.IVpc;

  /**
   * Instance types or families Batch may launch. Each job takes one GPU, so single-GPU sizes pack best.
   *
   * @default ['g5.xlarge', 'g5.2xlarge', 'g6.xlarge', 'g6.2xlarge']
   */
  readonly instanceTypes?: readonly string[];

  /**
   * Upper bound of the compute environment's vCPUs (all running jobs together). The lower bound is 0: no cost
   * when no run is in flight.
   *
   * @default 64
   */
  readonly maxvCpus?: number;

  /**
   * Use Spot instances. Reclaimed instances fail their jobs with a `Host EC2*` status reason, which the job
   * definition's retry strategy retries.
   *
   * @default true
   */
  readonly spot?: boolean;

  /**
   * vCPUs reserved per worker job.
   *
   * @default 4
   */
  readonly workerCpu?: number;

  /**
   * Memory reserved per worker job, in MiB. Must fit what the ECS agent leaves of the instance's memory (a
   * g5.xlarge has 16 GiB, of which about 15.3 GiB are schedulable).
   *
   * @default 14336
   */
  readonly workerMemoryMiB?: number;

  /**
   * Time limit of one attempt of a job (of each child of an array job); an attempt past it is stopped and
   * counts as failed.
   *
   * @default Duration.hours(2)
   */
  readonly attemptTimeout?: Duration;

  /**
   * The worker image.
   *
   * @default - built from `containers/worker/Dockerfile` with the repository root as context, at deploy time
   */
  readonly image?: ecs.ContainerImage;

  /**
   * How long worker logs are kept.
   *
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
}

export class GpuCompute extends Construct {
  readonly computeEnvironment: batch.ManagedEc2EcsComputeEnvironment;
  readonly jobQueue: batch.JobQueue;
  readonly jobDefinition: batch.EcsJobDefinition;
  /** The role the worker's code runs as: grant it access to data. */
  readonly jobRole: iam.Role;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: GpuComputeProps) {
    super(scope, id);

    const instanceTypes = props.instanceTypes ?? ['g5.xlarge', 'g5.2xlarge', 'g6.xlarge', 'g6.2xlarge'];
    const maxvCpus = props.maxvCpus ?? 64;
    const spot = props.spot ?? true;
    const workerCpu = props.workerCpu ?? 4;
    const workerMemoryMiB = props.workerMemoryMiB ?? 14336;
    const attemptTimeout = props.attemptTimeout ?? Duration.hours(2);

    if (instanceTypes.length === 0) {
      throw new Error(
        'GpuCompute instanceTypes must name at least one instance type or family, e.g. g5.xlarge.',
      );
    }
    if (!Token.isUnresolved(maxvCpus) && !Token.isUnresolved(workerCpu) && maxvCpus < workerCpu) {
      throw new Error(
        `GpuCompute maxvCpus (${maxvCpus}) is below workerCpu (${workerCpu}): no job could ever start. ` +
          'Raise maxvCpus or lower workerCpu.',
      );
    }
    if (!Token.isUnresolved(attemptTimeout.toSeconds()) && attemptTimeout.toSeconds() < 60) {
      throw new Error(`GpuCompute attemptTimeout must be at least 60 seconds (Batch's minimum).`);
    }

    this.computeEnvironment = new batch.ManagedEc2EcsComputeEnvironment(this, 'ComputeEnvironment', {
      vpc: props.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      instanceTypes: instanceTypes.map((t) => new ec2.InstanceType(t)),
      // 'optimal' means C/M/R families: no GPUs.
      useOptimalInstanceClasses: false,
      images: [{ imageType: batch.EcsMachineImageType.ECS_AL2023_NVIDIA }],
      minvCpus: 0,
      maxvCpus,
      spot,
      allocationStrategy: spot
        ? batch.AllocationStrategy.SPOT_PRICE_CAPACITY_OPTIMIZED
        : batch.AllocationStrategy.BEST_FIT_PROGRESSIVE,
      updateToLatestImageVersion: true,
    });

    this.jobQueue = new batch.JobQueue(this, 'JobQueue', {
      computeEnvironments: [{ computeEnvironment: this.computeEnvironment, order: 1 }],
      priority: 1,
    });

    this.jobRole = new iam.Role(this, 'JobRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'Worker jobs: reads shards and models, writes predictions and markers',
    });

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    const image =
      props.image ??
      ecs.ContainerImage.fromAsset(REPO_ROOT, {
        file: WORKER_DOCKERFILE,
        exclude: [...WORKER_IMAGE_EXCLUDE],
        ignoreMode: IgnoreMode.DOCKER,
        // GPU instances (g5/g6) are x86_64, whatever machine deploys.
        platform: Platform.LINUX_AMD64,
      });

    const container = new batch.EcsEc2ContainerDefinition(this, 'Worker', {
      image,
      cpu: workerCpu,
      memory: Size.mebibytes(workerMemoryMiB),
      gpu: 1,
      jobRole: this.jobRole,
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'worker', logGroup: this.logGroup }),
    });

    this.jobDefinition = new batch.EcsJobDefinition(this, 'JobDefinition', {
      container,
      timeout: attemptTimeout,
      propagateTags: true,
      // Batch retries an attempt that matches a RETRY rule; the catch-all EXIT rule is needed because an attempt
      // that matches no rule at all would be retried too. A worker failure is not retried here: the shard is
      // retried by the next round, after Reconcile has looked at what completed.
      retryAttempts: 3,
      retryStrategies: [
        batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.SPOT_INSTANCE_RECLAIMED),
        batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.CANNOT_PULL_CONTAINER),
        batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom({ onReason: '*' })),
      ],
    });
  }
}
