/**
 * Compute for the worker: GPU compute environments that scale to zero (Spot over several instance families, and
 * On-Demand), two GPU job queues (the Spot queue for a run's first round, the On-Demand queue for retry rounds, so
 * capacity arrives even when Spot has none), queues that never let a job wait RUNNABLE forever, the worker's job
 * definitions (one GPU per job; the image built from this repository at deploy time), and optionally the same pair of
 * queues on CPU instances for pipelines with `run.compute: cpu`.
 */
import { Duration, IgnoreMode, RemovalPolicy, Size, Stack, Token } from 'aws-cdk-lib';
import * as batch from 'aws-cdk-lib/aws-batch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { DockerImageAsset, Platform } from 'aws-cdk-lib/aws-ecr-assets';
import { Construct } from 'constructs';
import { WORKER_ENV } from '../../src/runs/tasks.js';
import { WORKER_RETRY } from '../../src/runs/worker-retry.js';
import { DEFAULT_GPU_INSTANCE_TYPES } from '../config.js';
import { REPO_ROOT } from '../paths.js';

export { DEFAULT_GPU_INSTANCE_TYPES };

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

/** Root volume of worker instances: the CUDA image alone is several GiB, and the default 30 GiB fills up. */
const ROOT_VOLUME_GIB = 100;

/**
 * A queue name prefix: Batch names are up to 128 letters, digits, hyphens and underscores; 100 leaves room for the
 * longest suffix (`-cpu-ondemand`).
 */
const NAME_PREFIX = /^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/;

/** Batch's bounds for jobStateTimeLimitActions' maxTime. */
const MIN_RUNNABLE_TIMEOUT = Duration.minutes(10);
const MAX_RUNNABLE_TIMEOUT = Duration.hours(24);

/** The CPU queue's settings. */
export interface CpuComputeProps {
  /**
   * x86_64 instance types or families (the worker image is linux/amd64).
   *
   * @default ['c6i', 'c7i', 'm6i', 'm7i']
   */
  readonly instanceTypes?: readonly string[];
  /** @default 32 */
  readonly maxvCpus?: number;
  /** @default 2 */
  readonly workerCpu?: number;
  /** @default 4096 */
  readonly workerMemoryMiB?: number;
}

export interface GpuComputeProps {
  /** Where instances run. */
  readonly vpc: ec2.IVpc;

  /**
   * The subnets instances are placed in: isolated ones with the VPC endpoints the workers need, or public ones
   * (instances with public addresses; their security group admits nothing in).
   *
   * @default { subnetType: ec2.SubnetType.PRIVATE_ISOLATED }
   */
  readonly subnets?: ec2.SubnetSelection;

  /**
   * Instance types or families Batch may launch. Each job takes one GPU, so single-GPU sizes pack best; several
   * types give Spot more pools to choose from.
   *
   * @default DEFAULT_GPU_INSTANCE_TYPES (g6, g5 and g4dn xlarge and 2xlarge)
   */
  readonly instanceTypes?: readonly string[];

  /**
   * Upper bound of each GPU compute environment's vCPUs (all running jobs together). The lower bound is 0: no cost
   * when no run is in flight.
   *
   * @default 64
   */
  readonly maxvCpus?: number;

  /**
   * Use Spot instances for a run's first round: the Spot queue (`jobQueue`) orders a Spot environment
   * (SPOT_PRICE_CAPACITY_OPTIMIZED over every instance type) then the On-Demand one, which Batch uses only when the
   * Spot environment is at its maxvCpus. Retry rounds go to the On-Demand queue (`onDemandJobQueue`), so a job that
   * Spot could not place (cancelled after `spotRunnableTimeout`) or whose host was reclaimed runs next on capacity
   * that arrives. Reclaimed instances fail their jobs with a `Host EC2*` status reason, which the job definition
   * retries first. False: On-Demand only (one queue, which is also `onDemandJobQueue`).
   *
   * @default true
   */
  readonly spot?: boolean;

  /**
   * vCPUs reserved per GPU worker job.
   *
   * @default 4
   */
  readonly workerCpu?: number;

  /**
   * Memory reserved per GPU worker job, in MiB. Must fit what the ECS agent leaves of the instance's memory (a
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
   * How long a job may sit RUNNABLE at the head of a queue, for lack of capacity or because no environment can ever
   * run it, before Batch cancels it (the round's Batch task then fails and Reconcile decides). 10 minutes to 24 hours.
   *
   * @default Duration.hours(1)
   */
  readonly runnableTimeout?: Duration;

  /**
   * How long a job may wait RUNNABLE on the Spot queue before Batch cancels it; the round fails, Reconcile plans the
   * next round, and that round runs on the On-Demand queue. Shorter than `runnableTimeout`: with no Spot capacity
   * (or an account whose Spot quota is 0) a run loses this much time, not an hour. 10 minutes to 24 hours.
   *
   * @default Duration.minutes(15)
   */
  readonly spotRunnableTimeout?: Duration;

  /**
   * A CPU queue and job definition, for pipelines with `run.compute: cpu`.
   *
   * @default - no CPU queue
   */
  readonly cpu?: CpuComputeProps;

  /**
   * Prefix of the job queue names (`<prefix>-gpu`, `<prefix>-cpu`) and the job definition names (`<prefix>-worker`,
   * `<prefix>-cpu-worker`): fixed names keep the queue-depth metrics' dimension readable and stable, and name the
   * job definitions the state machines may submit. 1-100 letters, digits, hyphens or underscores, starting with a
   * letter or digit.
   *
   * @default - names generated by CloudFormation
   */
  readonly queueNamePrefix?: string;

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

  /**
   * What happens to the worker log group when the stack is deleted.
   *
   * @default RemovalPolicy.RETAIN
   */
  readonly logRemovalPolicy?: RemovalPolicy;
}

export class GpuCompute extends Construct {
  /** The environments: GPU Spot then On-Demand (On-Demand only when spot is off), then the CPU ones likewise. */
  readonly computeEnvironments: readonly batch.ManagedEc2EcsComputeEnvironment[];
  /** The GPU queue of a run's first round: Spot first when `spot` is on. */
  readonly jobQueue: batch.JobQueue;
  /** The GPU queue of retry rounds: On-Demand only. The same queue as `jobQueue` when `spot` is off. */
  readonly onDemandJobQueue: batch.JobQueue;
  readonly jobDefinition: batch.EcsJobDefinition;
  readonly cpuJobQueue?: batch.JobQueue;
  /** The CPU queue of retry rounds: On-Demand only. The same queue as `cpuJobQueue` when `spot` is off. */
  readonly cpuOnDemandJobQueue?: batch.JobQueue;
  readonly cpuJobDefinition?: batch.EcsJobDefinition;
  /** The names of the job definitions, when `queueNamePrefix` fixes them (`<prefix>-worker`, `<prefix>-cpu-worker`). */
  readonly jobDefinitionNames?: { readonly gpu: string; readonly cpu?: string };
  /** The role the worker's code runs as (both queues): grant it access to data. */
  readonly jobRole: iam.Role;
  /** The worker image's URI (ECR, tagged with the asset hash); undefined when `image` was given. */
  readonly workerImageUri?: string;
  readonly logGroup: logs.LogGroup;
  /** The security group of worker instances: HTTPS out, nothing in. */
  readonly securityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: GpuComputeProps) {
    super(scope, id);

    const instanceTypes = props.instanceTypes ?? DEFAULT_GPU_INSTANCE_TYPES;
    const maxvCpus = props.maxvCpus ?? 64;
    const spot = props.spot ?? true;
    const workerCpu = props.workerCpu ?? 4;
    const workerMemoryMiB = props.workerMemoryMiB ?? 14336;
    const attemptTimeout = props.attemptTimeout ?? Duration.hours(2);
    const runnableTimeout = props.runnableTimeout ?? Duration.hours(1);
    const spotRunnableTimeout = props.spotRunnableTimeout ?? Duration.minutes(15);
    const subnets = props.subnets ?? { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };

    if (instanceTypes.length === 0) {
      throw new Error(
        'GpuCompute instanceTypes must name at least one instance type or family, e.g. g5.xlarge.',
      );
    }
    const namePrefix = props.queueNamePrefix;
    if (namePrefix !== undefined && !Token.isUnresolved(namePrefix) && !NAME_PREFIX.test(namePrefix)) {
      throw new Error(
        `GpuCompute queueNamePrefix must be 1-100 letters, digits, hyphens or underscores, starting with a letter or ` +
          `digit (it names the job queues <prefix>-gpu and <prefix>-cpu and the job definitions <prefix>-worker and ` +
          `<prefix>-cpu-worker), got ${JSON.stringify(namePrefix)}.`,
      );
    }
    checkWholeAtLeastOne('GpuCompute workerCpu', workerCpu);
    checkWholeAtLeastOne('GpuCompute maxvCpus', maxvCpus);
    checkCapacity('GpuCompute maxvCpus', maxvCpus, 'workerCpu', workerCpu);
    if (!Token.isUnresolved(workerMemoryMiB) && workerMemoryMiB < 1024) {
      throw new Error(`GpuCompute workerMemoryMiB must be at least 1024, got ${workerMemoryMiB}.`);
    }
    if (!Token.isUnresolved(attemptTimeout.toSeconds()) && attemptTimeout.toSeconds() < 60) {
      throw new Error(`GpuCompute attemptTimeout must be at least 60 seconds (Batch's minimum).`);
    }
    checkRunnableTimeout('GpuCompute runnableTimeout', runnableTimeout);
    checkRunnableTimeout('GpuCompute spotRunnableTimeout', spotRunnableTimeout);
    const cpu = props.cpu && {
      instanceTypes: props.cpu.instanceTypes ?? ['c6i', 'c7i', 'm6i', 'm7i'],
      maxvCpus: props.cpu.maxvCpus ?? 32,
      workerCpu: props.cpu.workerCpu ?? 2,
      workerMemoryMiB: props.cpu.workerMemoryMiB ?? 4096,
    };
    if (cpu) {
      if (cpu.instanceTypes.length === 0) {
        throw new Error(
          'GpuCompute cpu.instanceTypes must name at least one instance type or family, e.g. c6i.',
        );
      }
      checkWholeAtLeastOne('GpuCompute cpu.workerCpu', cpu.workerCpu);
      checkWholeAtLeastOne('GpuCompute cpu.maxvCpus', cpu.maxvCpus);
      checkCapacity('GpuCompute cpu.maxvCpus', cpu.maxvCpus, 'cpu.workerCpu', cpu.workerCpu);
    }

    // Workers only talk HTTPS: to VPC endpoints (isolated subnets) or to AWS's public endpoints (public subnets).
    // Nothing talks to them.
    this.securityGroup = new ec2.SecurityGroup(this, 'InstanceSecurityGroup', {
      vpc: props.vpc,
      description: 'Batch worker instances: HTTPS out to VPC endpoints, no inbound',
      allowAllOutbound: false,
    });
    this.securityGroup.addEgressRule(
      ec2.Peer.anyIpv4(),
      ec2.Port.tcp(443),
      'HTTPS to VPC endpoints and the S3 gateway',
    );

    // IMDSv2 only, one hop: the ECS agent (host network) reaches the instance metadata, containers do not, so job
    // code can only use the job role (through the ECS credentials endpoint), never the instance role.
    const launchTemplate = new ec2.LaunchTemplate(this, 'LaunchTemplate', {
      requireImdsv2: true,
      httpPutResponseHopLimit: 1,
      blockDevices: [
        {
          deviceName: '/dev/xvda',
          volume: ec2.BlockDeviceVolume.ebs(ROOT_VOLUME_GIB, {
            encrypted: true,
            volumeType: ec2.EbsDeviceVolumeType.GP3,
            deleteOnTermination: true,
          }),
        },
      ],
    });

    const environment = (
      envId: string,
      options: {
        readonly spot: boolean;
        readonly instanceTypes: readonly string[];
        readonly maxvCpus: number;
        readonly gpu: boolean;
      },
    ): batch.ManagedEc2EcsComputeEnvironment =>
      new batch.ManagedEc2EcsComputeEnvironment(this, envId, {
        vpc: props.vpc,
        vpcSubnets: subnets,
        securityGroups: [this.securityGroup],
        launchTemplate,
        // Sizes (`g5.xlarge`) are instance types; families (`g6`, `c6i`) are instance classes to Batch.
        instanceTypes: options.instanceTypes
          .filter((t) => t.includes('.'))
          .map((t) => new ec2.InstanceType(t)),
        instanceClasses: options.instanceTypes
          .filter((t) => !t.includes('.'))
          .map((t) => t as ec2.InstanceClass),
        // 'optimal' means C/M/R families: no GPUs, and not the families chosen here.
        useOptimalInstanceClasses: false,
        images: [
          {
            imageType: options.gpu
              ? batch.EcsMachineImageType.ECS_AL2023_NVIDIA
              : batch.EcsMachineImageType.ECS_AL2023,
          },
        ],
        minvCpus: 0,
        maxvCpus: options.maxvCpus,
        spot: options.spot,
        // Spot: the pools least likely to be reclaimed, at a low price. On-Demand: the cheapest type that fits.
        allocationStrategy: options.spot
          ? batch.AllocationStrategy.SPOT_PRICE_CAPACITY_OPTIMIZED
          : batch.AllocationStrategy.BEST_FIT_PROGRESSIVE,
        updateToLatestImageVersion: true,
      });

    const gpuEnvironments = spot
      ? [
          environment('SpotComputeEnvironment', { spot: true, instanceTypes, maxvCpus, gpu: true }),
          environment('OnDemandComputeEnvironment', { spot: false, instanceTypes, maxvCpus, gpu: true }),
        ]
      : [environment('OnDemandComputeEnvironment', { spot: false, instanceTypes, maxvCpus, gpu: true })];
    this.computeEnvironments = gpuEnvironments;

    const queues = this.queuePair({
      id: '',
      name: props.queueNamePrefix && `${props.queueNamePrefix}-gpu`,
      environments: gpuEnvironments,
      runnableTimeout,
      spotRunnableTimeout,
    });
    this.jobQueue = queues.first;
    this.onDemandJobQueue = queues.onDemand;

    this.jobRole = new iam.Role(this, 'JobRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'Worker jobs: reads shards and models, writes predictions and markers',
    });

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: props.logRemovalPolicy ?? RemovalPolicy.RETAIN,
    });

    // The image is a Docker asset: synthesis only stages its build context; `cdk deploy` builds and pushes it.
    const asset = props.image
      ? undefined
      : new DockerImageAsset(this, 'WorkerImage', {
          directory: REPO_ROOT,
          file: WORKER_DOCKERFILE,
          exclude: [...WORKER_IMAGE_EXCLUDE],
          ignoreMode: IgnoreMode.DOCKER,
          // GPU instances (g5/g6) are x86_64, whatever machine deploys.
          platform: Platform.LINUX_AMD64,
        });
    this.workerImageUri = asset?.imageUri;
    const image = props.image ?? ecs.ContainerImage.fromDockerImageAsset(asset!);

    this.jobDefinitionNames = namePrefix
      ? { gpu: `${namePrefix}-worker`, ...(cpu ? { cpu: `${namePrefix}-cpu-worker` } : {}) }
      : undefined;

    this.jobDefinition = this.jobDefinitionFor('', {
      name: this.jobDefinitionNames?.gpu,
      image,
      cpu: workerCpu,
      memoryMiB: workerMemoryMiB,
      gpu: true,
      attemptTimeout,
    });

    if (cpu) {
      const cpuOptions = { instanceTypes: cpu.instanceTypes, maxvCpus: cpu.maxvCpus, gpu: false };
      // The same fallback as the GPU queues. The Spot environment keeps its original id, so an existing deployment
      // updates it in place rather than replacing it.
      const cpuEnvironments = spot
        ? [
            environment('CpuComputeEnvironment', { spot: true, ...cpuOptions }),
            environment('CpuOnDemandComputeEnvironment', { spot: false, ...cpuOptions }),
          ]
        : [environment('CpuComputeEnvironment', { spot: false, ...cpuOptions })];
      this.computeEnvironments = [...gpuEnvironments, ...cpuEnvironments];
      const cpuQueues = this.queuePair({
        id: 'Cpu',
        name: props.queueNamePrefix && `${props.queueNamePrefix}-cpu`,
        environments: cpuEnvironments,
        runnableTimeout,
        spotRunnableTimeout,
      });
      this.cpuJobQueue = cpuQueues.first;
      this.cpuOnDemandJobQueue = cpuQueues.onDemand;
      this.cpuJobDefinition = this.jobDefinitionFor('Cpu', {
        name: this.jobDefinitionNames?.cpu,
        image,
        cpu: cpu.workerCpu,
        memoryMiB: cpu.workerMemoryMiB,
        gpu: false,
        attemptTimeout,
      });
    }
  }

  /**
   * The queues over one kind of environment. `environments` is [Spot, On-Demand] or [On-Demand]. With Spot: the
   * first-round queue orders Spot then On-Demand (Batch moves on only when Spot is at its maxvCpus) and cancels a job
   * RUNNABLE past `spotRunnableTimeout`; the On-Demand queue (`<name>-ondemand`) runs retry rounds. Without: one
   * On-Demand queue serves both.
   */
  private queuePair(options: {
    readonly id: string;
    readonly name: string | undefined;
    readonly environments: readonly batch.ManagedEc2EcsComputeEnvironment[];
    readonly runnableTimeout: Duration;
    readonly spotRunnableTimeout: Duration;
  }): { readonly first: batch.JobQueue; readonly onDemand: batch.JobQueue } {
    const onDemandEnvironment = options.environments[options.environments.length - 1]!;
    const withSpot = options.environments.length > 1;
    const first = new batch.JobQueue(this, `${options.id}JobQueue`, {
      ...(options.name ? { jobQueueName: options.name } : {}),
      computeEnvironments: options.environments.map((computeEnvironment, i) => ({
        computeEnvironment,
        order: i + 1,
      })),
      priority: 1,
      jobStateTimeLimitActions: runnableLimits(
        withSpot ? options.spotRunnableTimeout : options.runnableTimeout,
      ),
    });
    if (!withSpot) return { first, onDemand: first };
    const onDemand = new batch.JobQueue(this, `${options.id}OnDemandJobQueue`, {
      ...(options.name ? { jobQueueName: `${options.name}-ondemand` } : {}),
      computeEnvironments: [{ computeEnvironment: onDemandEnvironment, order: 1 }],
      priority: 1,
      jobStateTimeLimitActions: runnableLimits(options.runnableTimeout),
    });
    return { first, onDemand };
  }

  private jobDefinitionFor(
    prefix: string,
    options: {
      /** Fixed job definition name; undefined: generated by CloudFormation. */
      readonly name: string | undefined;
      readonly image: ecs.ContainerImage;
      readonly cpu: number;
      readonly memoryMiB: number;
      readonly gpu: boolean;
      readonly attemptTimeout: Duration;
    },
  ): batch.EcsJobDefinition {
    const container = new batch.EcsEc2ContainerDefinition(this, `${prefix}Worker`, {
      image: options.image,
      cpu: options.cpu,
      memory: Size.mebibytes(options.memoryMiB),
      ...(options.gpu ? { gpu: 1 } : {}),
      jobRole: this.jobRole,
      // The image runs as a non-root user; a read-only root filesystem would break onnxruntime's temp files.
      user: '10001:10001',
      environment: {
        // A CPU job must not try to load the CUDA provider (there is no GPU to find).
        [WORKER_ENV.executionProviders]: options.gpu ? 'cuda,cpu' : 'cpu',
        // The SDK clients' region, explicit: the container otherwise finds it only through the ECS agent's
        // environment, which a custom AMI or a local `docker run` may not set.
        AWS_REGION: Stack.of(this).region,
      },
      logging: ecs.LogDrivers.awsLogs({
        streamPrefix: options.gpu ? 'worker' : 'cpu-worker',
        logGroup: this.logGroup,
      }),
      // The image's ENTRYPOINT is `node ...`. Without an init process node is PID 1, and the kernel applies no default
      // action to a signal PID 1 does not handle: a worker that re-raises SIGTERM (timeout, Spot reclaim, cancel)
      // after checkpointing keeps running and then exits 0, which Batch reads as success. Docker's init (tini) is
      // PID 1 instead: it forwards signals to node, reaps children, and exits with node's status.
      linuxParameters: new batch.LinuxParameters(this, `${prefix}LinuxParameters`, {
        initProcessEnabled: true,
      }),
    });

    const jobDefinition = new batch.EcsJobDefinition(this, `${prefix}JobDefinition`, {
      ...(options.name ? { jobDefinitionName: options.name } : {}),
      // Deploys and runs coexist: a change registers a new revision, and the old one stays ACTIVE for the executions
      // started before the deploy, which submit it in their next round (the state machines grant every revision
      // of the name; see docs/operations.md, "Deploying while runs are in flight").
      skipDeregisterOnUpdate: true,
      container,
      timeout: options.attemptTimeout,
      propagateTags: true,
      // Batch retries an attempt that matches a RETRY rule; the catch-all EXIT rule is needed because an attempt
      // that matches no rule at all would be retried too. A worker failure is not retried here: the shard is
      // retried by the next round, after Reconcile has looked at what completed.
      retryAttempts: WORKER_RETRY.attempts,
      retryStrategies: [
        // A deterministic failure (the spec does not fit the model, a corrupt model): never retried, not even after
        // a host went away; the worker wrote failures/<shard>.json, and Reconcile does not retry the shard either.
        ...WORKER_RETRY.exitOn.map((rule) =>
          batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom({ onExitCode: rule.onExitCode })),
        ),
        batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.SPOT_INSTANCE_RECLAIMED),
        batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.CANNOT_PULL_CONTAINER),
        batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom({ onReason: '*' })),
      ],
    });
    // Nor does a replacement (a new name) or the stack's deletion deregister a revision a run may still submit.
    jobDefinition.applyRemovalPolicy(RemovalPolicy.RETAIN);
    return jobDefinition;
  }
}

/**
 * A job that cannot be placed waits RUNNABLE; without a limit it waits forever and the run with it. These are every
 * reason Batch reports for a job that is not getting capacity; CANCEL is the only action Batch offers.
 */
function runnableLimits(maxTime: Duration): batch.JobStateTimeLimitAction[] {
  return [
    batch.JobStateTimeLimitActionsReason.INSUFFICIENT_INSTANCE_CAPACITY,
    batch.JobStateTimeLimitActionsReason.COMPUTE_ENVIRONMENT_MAX_RESOURCE,
    batch.JobStateTimeLimitActionsReason.JOB_RESOURCE_REQUIREMENT,
  ].map((reason) => ({
    action: batch.JobStateTimeLimitActionsAction.CANCEL,
    state: batch.JobStateTimeLimitActionsState.RUNNABLE,
    maxTime,
    reason,
  }));
}

/** Batch's bounds of a RUNNABLE time limit. */
function checkRunnableTimeout(what: string, timeout: Duration): void {
  const seconds = timeout.toSeconds();
  if (
    !Token.isUnresolved(seconds) &&
    (seconds < MIN_RUNNABLE_TIMEOUT.toSeconds() || seconds > MAX_RUNNABLE_TIMEOUT.toSeconds())
  ) {
    throw new Error(`${what} must be from 10 minutes to 24 hours (Batch's bounds), got ${seconds} seconds.`);
  }
}

/** Batch counts EC2 vCPUs in whole numbers: a job or an environment needs at least one. */
function checkWholeAtLeastOne(what: string, value: number): void {
  if (!Token.isUnresolved(value) && (!Number.isInteger(value) || value < 1)) {
    throw new Error(`${what} must be a whole number of vCPUs, at least 1, got ${value}.`);
  }
}

/** Rejects a compute environment that can never run its job. */
function checkCapacity(what: string, maxvCpus: number, jobWhat: string, jobCpu: number): void {
  if (!Token.isUnresolved(maxvCpus) && !Token.isUnresolved(jobCpu) && maxvCpus < jobCpu) {
    throw new Error(
      `${what} (${maxvCpus}) is below ${jobWhat} (${jobCpu}): no job could ever start. Raise the first or lower the second.`,
    );
  }
}
