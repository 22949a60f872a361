/**
 * Deploy-time configuration of a deployment: the stack settings. Read from the cdk.json context key `batchInfer`:
 * an object, its JSON text (`-c batchInfer='{"stage":"prod"}'`), or the path of a YAML/JSON file
 * (`-c batchInfer=deploy/prod/stack.yaml`, whose `pipelinesDir` is then relative to that file). Validated up front,
 * so a typo fails `cdk synth` with the key, the value and the fix, not a CloudFormation error twenty minutes into
 * a deployment.
 *
 * A deployment is this configuration plus a folder of pipeline files (`pipelinesDir`, see lib/pipelines.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { priceOverridesSchema } from '../src/cost/prices.js';
import { REPO_ROOT } from './paths.js';

/** The context key the configuration is read from. */
export const CONFIG_CONTEXT_KEY = 'batchInfer';

/**
 * Written in place of the data bucket's name in pipeline files and in the configuration: the bucket is created by
 * the stack, so its name is only known at deploy time.
 */
export const DATA_BUCKET_PLACEHOLDER = '${dataBucket}';

/** Data bucket prefixes with a role of their own. */
export const DATA_PREFIXES = {
  /** One JSON row per finalized run, per pipeline: the runs tables. */
  auditRuns: 'audit/runs/',
  /** Volume trigger counters. */
  volumeState: 'state/volume/',
  /** Batching S3 triggers' upload windows: the objects recorded, the claims, the timers. */
  windowState: 'state/batch/',
  /** List manifests of triggered runs (the objects of a window, of a volume generation): Plan reads them. */
  triggerManifests: 'state/manifests/',
  /** Temporary run data: expired by a lifecycle rule. */
  temp: 'tmp/',
  /**
   * Runs submitted ad hoc (a spec that is no pipeline of the deployment) read their input and write their output
   * under this prefix: the run roles may touch nothing else of the data bucket outside the pipelines' prefixes.
   */
  adHoc: 'adhoc/',
} as const;

/**
 * x86_64 NVIDIA instance families the ECS_AL2023_NVIDIA AMI supports (not p3/g3, not Graviton g5g), as a family
 * (`g5`) or a size (`g5.xlarge`).
 */
const GPU_INSTANCE_TYPE = /^(g4dn|g5|g6|g6e|gr6|p4d|p4de|p5|p5e|p5en)(\.[0-9a-z-]+)?$/;

/**
 * Single-GPU sizes of three NVIDIA families (L4, A10G, T4) that fit the default GPU job (4 vCPUs, 14 GiB, 1 GPU):
 * three families give Spot many pools to choose from, and a job never lands on a multi-GPU host it cannot fill.
 */
export const DEFAULT_GPU_INSTANCE_TYPES: readonly string[] = [
  'g6.xlarge',
  'g6.2xlarge',
  'g5.xlarge',
  'g5.2xlarge',
  'g4dn.xlarge',
  'g4dn.2xlarge',
];

/** x86_64 general purpose, compute and memory families for the CPU queue (the worker image is linux/amd64). */
const CPU_INSTANCE_TYPE =
  /^(c5|c5a|c5n|c6a|c6i|c6in|c7a|c7i|m5|m5a|m6a|m6i|m7a|m7i|r5|r5a|r6a|r6i|r7a|r7i)(\.[0-9a-z-]+)?$/;

/** Retention periods CloudWatch Logs accepts, in days. */
const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;

/** How to fix each key, quoted in errors. */
const FIX: Readonly<Record<string, string>> = {
  stage:
    'use 1-16 lowercase letters, digits or hyphens, starting with a letter (it names the stack and database)',
  pipelinesDir:
    'name the folder of pipeline files (*.yaml), relative to the repository root or the config file',
  gpuInstanceTypes:
    'list x86_64 NVIDIA GPU instance types or families supported by ECS_AL2023_NVIDIA, e.g. ["g5.xlarge", "g6"]',
  maxvCpus: 'use a whole number of vCPUs from 1 to 10000, at least workerCpu',
  spot: 'use true (first round on Spot, retry rounds On-Demand) or false (On-Demand only)',
  workerCpu: 'use a whole number of vCPUs from 1 to 192 that fits the smallest instance type',
  workerMemoryMiB:
    "use a whole number of MiB from 1024 up, below the instance's memory less what ECS reserves",
  cpuInstanceTypes:
    'list x86_64 c/m/r instance types or families (5th generation or newer), e.g. ["c6i", "m6i"]',
  cpuMaxvCpus: 'use a whole number of vCPUs from 1 to 10000, at least cpuWorkerCpu',
  cpuWorkerCpu: 'use a whole number of vCPUs from 1 to 192',
  cpuWorkerMemoryMiB: 'use a whole number of MiB from 512 up',
  attemptTimeoutMinutes: 'use a whole number of minutes from 1 to 20160 (14 days)',
  runnableTimeoutMinutes:
    'use a whole number of minutes from 10 to 1440: how long a job may wait RUNNABLE before Batch cancels it',
  spotRunnableTimeoutMinutes:
    'use a whole number of minutes from 10 to 1440: how long a first-round job may wait for Spot before the next round goes On-Demand',
  runTimeoutHours: 'use a whole number of hours from 1 to 8760 (365 days, the Step Functions limit)',
  alarmEmail: 'use an email address, or leave the key out for no subscription',
  vpc: 'use { "create": { "maxAzs": 2, "cidr": "10.64.0.0/16", "isolated": false } } or { "import": { "vpcId": ..., "cidr": ..., "availabilityZones": [...], "subnetIds": [...], "routeTableIds": [...] } }',
  removalPolicy: 'use "retain" (keep data and logs when the stack is deleted) or "destroy"',
  logRetentionDays: `use one of ${LOG_RETENTION_DAYS.join(', ')}`,
  tempDataExpirationDays: 'use a whole number of days from 1 to 365',
  dataBucketName: 'use the name of an existing S3 bucket (3-63 lowercase letters, digits, dots, hyphens)',
  modelPackageGroups: 'list SageMaker model package group names (letters, digits, hyphens)',
  modelArtifactUris: `list s3:// prefixes ending in "/", e.g. "s3://${DATA_BUCKET_PLACEHOLDER}/models/"`,
  driftThreshold: 'use a number above 0 (a population stability index; 0.2 means a significant shift)',
  queueDepthMetrics: 'use true or false',
  prices:
    'map EC2 instance types to hourly prices, e.g. { "g6.xlarge": { "onDemand": 0.8048, "spot": 0.33 } } (the currency of the price table, USD)',
};

const bucketName = z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'is not a valid S3 bucket name');

const cidr = z
  .string()
  .regex(/^(\d{1,3}\.){3}\d{1,3}\/(1[6-9]|2[0-8])$/, 'must be an IPv4 CIDR block from /16 to /28');

const createVpcSchema = z.strictObject({
  /** Availability zones to spread the private subnets over. */
  maxAzs: z.number().int().min(2, 'must be at least 2, for capacity and resilience').max(6).default(2),
  /** The VPC's address range. */
  cidr: cidr.default('10.64.0.0/16'),
  /**
   * Isolated worker subnets with interface endpoints (billed by the hour, idle or not) instead of public subnets with
   * no inbound access (nothing billed by the hour).
   */
  isolated: z.boolean().default(false),
});

const importVpcSchema = z
  .strictObject({
    vpcId: z.string().regex(/^vpc-[0-9a-f]{8,17}$/, 'must be a VPC id, vpc-...'),
    /** The VPC's primary CIDR block: interface endpoints admit HTTPS from it. */
    cidr,
    availabilityZones: z.array(z.string().min(1)).min(2, 'must list at least 2 availability zones'),
    /** Private subnets (one per availability zone, in the same order) where workers run. */
    subnetIds: z.array(z.string().regex(/^subnet-[0-9a-f]{8,17}$/, 'must be a subnet id, subnet-...')),
    /** Their route tables (same order): the S3 gateway endpoint is added to them. */
    routeTableIds: z.array(z.string().regex(/^rtb-[0-9a-f]{8,17}$/, 'must be a route table id, rtb-...')),
    /**
     * Create the VPC endpoints the workers need. Turn off when the VPC has them already: a second interface endpoint
     * with private DNS for the same service fails to deploy.
     */
    endpoints: z.boolean().default(true),
  })
  .superRefine((v, ctx) => {
    if (v.subnetIds.length !== v.availabilityZones.length) {
      ctx.addIssue({
        code: 'custom',
        path: ['subnetIds'],
        message: `lists ${v.subnetIds.length} subnet(s) for ${v.availabilityZones.length} availability zone(s); give one per zone, in order`,
      });
    }
    if (v.routeTableIds.length !== v.subnetIds.length) {
      ctx.addIssue({
        code: 'custom',
        path: ['routeTableIds'],
        message: `lists ${v.routeTableIds.length} route table(s) for ${v.subnetIds.length} subnet(s); give one per subnet, in order`,
      });
    }
  });

const vpcSchema = z
  .strictObject({ create: createVpcSchema.optional(), import: importVpcSchema.optional() })
  .superRefine((v, ctx) => {
    if ((v.create === undefined) === (v.import === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'must have exactly one of "create" and "import"' });
    }
  });

export type VpcConfig = z.output<typeof vpcSchema>;

export const deployConfigSchema = z
  .strictObject({
    /** Deployment name: the stack is `BatchInfer-<stage>`, the Glue database `batch_infer_<stage>_<stack id suffix>`. */
    stage: z
      .string()
      .regex(/^[a-z][a-z0-9-]{0,15}$/)
      .default('dev'),
    /** The folder of pipeline files. */
    pipelinesDir: z.string().min(1).default('pipelines'),
    /** Instance types or families the GPU compute environments may launch. */
    gpuInstanceTypes: z
      .array(z.string().regex(GPU_INSTANCE_TYPE))
      .min(1)
      .default([...DEFAULT_GPU_INSTANCE_TYPES]),
    /** Upper bound of each GPU compute environment, in vCPUs. */
    maxvCpus: z.number().int().min(1).max(10000).default(64),
    /** Run on Spot capacity first (On-Demand as fallback), or On-Demand only. */
    spot: z.boolean().default(true),
    /** vCPUs per GPU worker job. */
    workerCpu: z.number().int().min(1).max(192).default(4),
    /** Memory per GPU worker job, in MiB. */
    workerMemoryMiB: z.number().int().min(1024).default(14336),
    /** Instance types or families of the CPU queue (pipelines with `run.compute: cpu`). */
    cpuInstanceTypes: z
      .array(z.string().regex(CPU_INSTANCE_TYPE))
      .min(1)
      .default(['c6i', 'c7i', 'm6i', 'm7i']),
    cpuMaxvCpus: z.number().int().min(1).max(10000).default(32),
    cpuWorkerCpu: z.number().int().min(1).max(192).default(2),
    cpuWorkerMemoryMiB: z.number().int().min(512).default(4096),
    /** Time limit of one attempt of a worker job. */
    attemptTimeoutMinutes: z.number().int().min(1).max(20160).default(120),
    /** A job at the head of a queue RUNNABLE for this long is cancelled (capacity or misconfiguration). */
    runnableTimeoutMinutes: z.number().int().min(10).max(1440).default(60),
    /**
     * A job RUNNABLE this long on a Spot queue (a run's first round) is cancelled; the next round runs On-Demand.
     */
    spotRunnableTimeoutMinutes: z.number().int().min(10).max(1440).default(15),
    /** Maximum duration of a run, every round included. */
    runTimeoutHours: z.number().int().min(1).max(8760).default(24),
    /** Subscribed to the alarm topic (a confirmation email is sent at deploy). */
    alarmEmail: z.email().optional(),
    vpc: vpcSchema.default({ create: { maxAzs: 2, cidr: '10.64.0.0/16', isolated: false } }),
    /** What deleting the stack does to buckets, tables and logs. */
    removalPolicy: z.enum(['retain', 'destroy']).default('retain'),
    logRetentionDays: z
      .number()
      .refine(
        (d) => (LOG_RETENTION_DAYS as readonly number[]).includes(d),
        'is not a CloudWatch Logs retention',
      )
      .default(30),
    /** Objects under the data bucket's `tmp/` prefix expire after this many days. */
    tempDataExpirationDays: z.number().int().min(1).max(365).default(7),
    /** Use this existing bucket as the data bucket instead of creating one. */
    dataBucketName: bucketName.optional(),
    /** Model package groups Plan may read besides those the pipelines name. */
    modelPackageGroups: z
      .array(z.string().regex(/^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/, 'is not a model package group name'))
      .default([]),
    /** Where model artifacts live: Plan and the workers may read these prefixes, nothing else of the models. */
    modelArtifactUris: z
      .array(z.string().regex(/^s3:\/\/[^/]+\/(.+\/)?$/, 'must be an s3:// prefix ending in "/"'))
      .min(1)
      .default([`s3://${DATA_BUCKET_PLACEHOLDER}/models/`]),
    /** The drift alarm's threshold. */
    driftThreshold: z.number().positive().default(0.2),
    /** Measure job queue depth every minute (a scheduled function) for the dashboard and the RUNNABLE alarm. */
    queueDepthMetrics: z.boolean().default(true),
    /**
     * Hourly prices by instance type over the default price table (src/cost/prices.ts), for every pipeline that does
     * not price the type itself (`run.prices`): your region's prices, a Savings Plan rate.
     */
    prices: priceOverridesSchema.optional(),
    /**
     * The Glue database (ADR 0017). By default the stack creates one named `batch_infer_<stage>_<first 8 characters of
     * the stack's id>`: a stack created after a deleted one gets a new name, so a database the old stack retained never
     * blocks the deploy. `existing` names a database that exists already (one retained from an earlier stack, whose
     * tables and partitions are then kept, or one a data team made): the stack creates none and owns nothing in Glue.
     */
    glueDatabase: z
      .strictObject({
        existing: z
          .string()
          .regex(/^[a-z0-9_]{1,255}$/, 'is not a Glue database name (lowercase letters, digits, underscores)')
          .optional(),
      })
      .default({}),
    /**
     * Grant Lake Formation permissions to the role that uses the Data Catalog (Finalize), for a catalog whose
     * databases Lake Formation governs: CREATE_TABLE and DESCRIBE on the database, ALTER, DESCRIBE and INSERT on its
     * tables, and DATA_LOCATION_ACCESS on each registered location in `dataLocationArns` (S3 ARNs of locations
     * registered with Lake Formation that hold pipeline outputs or the audit records). The deploying role must be a
     * Lake Formation administrator (or hold these permissions with the grant option).
     */
    lakeFormation: z
      .strictObject({
        dataLocationArns: z
          .array(
            z
              .string()
              .regex(
                /^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/,
                'is not an S3 bucket or prefix ARN',
              ),
          )
          .default([]),
      })
      .optional(),
  })
  .superRefine((c, ctx) => {
    if (c.maxvCpus < c.workerCpu) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxvCpus'],
        message: 'is below workerCpu, so no job could ever start',
      });
    }
    if (c.cpuMaxvCpus < c.cpuWorkerCpu) {
      ctx.addIssue({
        code: 'custom',
        path: ['cpuMaxvCpus'],
        message: 'is below cpuWorkerCpu, so no CPU job could ever start',
      });
    }
  });

export type DeployConfig = z.output<typeof deployConfigSchema>;

/** The value at a path of a raw object, for error messages. */
function valueAt(raw: unknown, keys: readonly PropertyKey[]): unknown {
  let current = raw;
  for (const key of keys) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

function render(value: unknown): string {
  return value === undefined ? 'undefined' : JSON.stringify(value);
}

/**
 * Validates a raw configuration value (an object, or its JSON text as `-c` passes it) and fills in defaults.
 * Throws an Error listing every problem as `batchInfer.<key>: got <value>; <problem>. Fix: <how>`.
 */
export function parseDeployConfig(raw: unknown, source?: string): DeployConfig {
  let value: unknown = raw ?? {};
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value) as unknown;
    } catch {
      throw new Error(
        `Invalid ${CONFIG_CONTEXT_KEY} context: got ${render(raw)}, which is neither JSON nor a .yaml/.json file path. ` +
          `Fix: pass an object, e.g. -c ${CONFIG_CONTEXT_KEY}='{"stage":"prod"}', or -c ${CONFIG_CONTEXT_KEY}=path/to/stack.yaml.`,
      );
    }
  }
  const parsed = deployConfigSchema.safeParse(value);
  if (parsed.success) return parsed.data;

  const problems = parsed.error.issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      const at = [CONFIG_CONTEXT_KEY, ...issue.path.map(String)].join('.');
      return (
        `${at}: unknown key(s) ${issue.keys.join(', ')}. ` +
        (issue.path.length === 0
          ? `Fix: remove them; the keys are ${Object.keys(FIX).join(', ')}.`
          : `Fix: remove them.${typeof issue.path[0] === 'string' && FIX[issue.path[0]] ? ` ${FIX[issue.path[0]]}.` : ''}`)
      );
    }
    const [top] = issue.path;
    const key = [CONFIG_CONTEXT_KEY, ...issue.path.map(String)].join('.');
    const fix = typeof top === 'string' ? FIX[top] : undefined;
    const got = issue.path.length === 0 ? render(value) : render(valueAt(value, issue.path));
    return `${key}: got ${got}; ${issue.message}.${fix ? ` Fix: ${fix}.` : ''}`;
  });
  throw new Error(
    `Invalid deploy configuration (${source ?? `cdk.json context "${CONFIG_CONTEXT_KEY}"`}):\n  ${problems.join('\n  ')}`,
  );
}

/** A validated configuration and the folder its relative paths are relative to. */
export interface LoadedConfig {
  readonly config: DeployConfig;
  /** Where `pipelinesDir` is resolved from: the config file's folder, else the repository root. */
  readonly baseDir: string;
  /** `pipelinesDir`, absolute. */
  readonly pipelinesDir: string;
}

/** True when a context string names a config file rather than holding JSON. */
function isConfigFilePath(value: string): boolean {
  return !value.trimStart().startsWith('{') && /\.(ya?ml|json)$/i.test(value.trim());
}

/** Reads a YAML or JSON config file and validates it. */
export function loadDeployConfigFile(file: string): LoadedConfig {
  const absolute = path.resolve(REPO_ROOT, file);
  let text: string;
  try {
    text = fs.readFileSync(absolute, 'utf8');
  } catch (error) {
    throw new Error(
      `Cannot read the deploy configuration file ${absolute}: ${(error as NodeJS.ErrnoException).code ?? String(error)}. ` +
        `Fix: pass an existing file with -c ${CONFIG_CONTEXT_KEY}=path/to/stack.yaml.`,
    );
  }
  let raw: unknown;
  try {
    raw = YAML.parse(text) as unknown;
  } catch (error) {
    throw new Error(
      `Invalid deploy configuration file ${absolute}: not YAML or JSON: ${(error as Error).message}`,
    );
  }
  const config = parseDeployConfig(raw, absolute);
  const baseDir = path.dirname(absolute);
  return { config, baseDir, pipelinesDir: path.resolve(baseDir, config.pipelinesDir) };
}

/** Reads and validates the configuration from a construct's context (the App's, in bin/app.ts). */
export function loadDeployConfig(scope: {
  readonly node: { tryGetContext(key: string): unknown };
}): LoadedConfig {
  const raw = scope.node.tryGetContext(CONFIG_CONTEXT_KEY);
  if (typeof raw === 'string' && isConfigFilePath(raw)) return loadDeployConfigFile(raw);
  const config = parseDeployConfig(raw);
  return { config, baseDir: REPO_ROOT, pipelinesDir: path.resolve(REPO_ROOT, config.pipelinesDir) };
}

/** The Glue database name prefix of a stage (the stack appends a stack-unique suffix): Glue names allow no hyphens. */
export function glueDatabaseName(config: Pick<DeployConfig, 'stage'>): string {
  return `batch_infer_${config.stage.replace(/-/g, '_')}`;
}

/** The stack name of a stage. */
export function stackName(config: Pick<DeployConfig, 'stage'>): string {
  return `BatchInfer-${config.stage}`;
}
