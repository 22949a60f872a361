/**
 * Deploy-time configuration: the cdk.json context key `batchInfer` (or `-c batchInfer='{"stage":"prod"}'`),
 * validated up front so a typo fails `cdk synth` with the key, the value and the fix, not a CloudFormation error
 * twenty minutes into a deployment.
 */
import { z } from 'zod';

/** The context key the configuration is read from. */
export const CONFIG_CONTEXT_KEY = 'batchInfer';

/**
 * x86_64 NVIDIA instance families the ECS_AL2023_NVIDIA AMI supports (not p3/g3, not Graviton g5g), as a family
 * (`g5`) or a size (`g5.xlarge`).
 */
const GPU_INSTANCE_TYPE = /^(g4dn|g5|g6|g6e|gr6|p4d|p4de|p5|p5e|p5en)(\.[0-9a-z-]+)?$/;

/** How to fix each key, quoted in errors. */
const FIX: Readonly<Record<string, string>> = {
  stage:
    'use 1-16 lowercase letters, digits or hyphens, starting with a letter (it names the stack and database)',
  gpuInstanceTypes:
    'list x86_64 NVIDIA GPU instance types or families supported by ECS_AL2023_NVIDIA, e.g. ["g5.xlarge", "g6"]',
  maxvCpus: 'use a whole number of vCPUs from 1 to 10000, at least workerCpu',
  spot: 'use true or false',
  workerCpu: 'use a whole number of vCPUs from 1 to 192 that fits the smallest instance type',
  workerMemoryMiB:
    "use a whole number of MiB from 1024 up, below the instance's memory less what ECS reserves",
};

export const deployConfigSchema = z
  .strictObject({
    /** Deployment name: the stack is `BatchInfer-<stage>`, the Glue database `batch_infer_<stage>`. */
    stage: z
      .string()
      .regex(/^[a-z][a-z0-9-]{0,15}$/)
      .default('dev'),
    /** Instance types or families the GPU compute environment may launch. */
    gpuInstanceTypes: z
      .array(z.string().regex(GPU_INSTANCE_TYPE))
      .min(1)
      .default(['g5.xlarge', 'g5.2xlarge', 'g6.xlarge', 'g6.2xlarge']),
    /** Upper bound of the GPU compute environment, in vCPUs. */
    maxvCpus: z.number().int().min(1).max(10000).default(64),
    /** Run on Spot capacity. */
    spot: z.boolean().default(true),
    /** vCPUs per worker job. */
    workerCpu: z.number().int().min(1).max(192).default(4),
    /** Memory per worker job, in MiB. */
    workerMemoryMiB: z.number().int().min(1024).default(14336),
  })
  .refine((c) => c.maxvCpus >= c.workerCpu, {
    path: ['maxvCpus'],
    message: 'is below workerCpu, so no job could ever start',
  });

export type DeployConfig = z.infer<typeof deployConfigSchema>;

/** The value at a path of a raw object, for error messages. */
function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let current = raw;
  for (const key of path) {
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
export function parseDeployConfig(raw: unknown): DeployConfig {
  let value: unknown = raw ?? {};
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value) as unknown;
    } catch {
      throw new Error(
        `Invalid ${CONFIG_CONTEXT_KEY} context: got ${render(raw)}, which is not JSON. ` +
          `Fix: pass an object, e.g. -c ${CONFIG_CONTEXT_KEY}='{"stage":"prod"}'.`,
      );
    }
  }
  const parsed = deployConfigSchema.safeParse(value);
  if (parsed.success) return parsed.data;

  const problems = parsed.error.issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return (
        `${CONFIG_CONTEXT_KEY}: unknown key(s) ${issue.keys.join(', ')}. ` +
        `Fix: remove them; the keys are ${Object.keys(FIX).join(', ')}.`
      );
    }
    const [top] = issue.path;
    const key = [CONFIG_CONTEXT_KEY, ...issue.path.map(String)].join('.');
    const fix = typeof top === 'string' ? FIX[top] : undefined;
    const got = issue.path.length === 0 ? render(value) : render(valueAt(value, issue.path));
    return `${key}: got ${got}; ${issue.message}.${fix ? ` Fix: ${fix}.` : ''}`;
  });
  throw new Error(
    `Invalid deploy configuration (cdk.json context "${CONFIG_CONTEXT_KEY}"):\n  ${problems.join('\n  ')}`,
  );
}

/** Reads and validates the configuration from a construct's context (the App's, in bin/app.ts). */
export function loadDeployConfig(scope: {
  readonly node: { tryGetContext(key: string): unknown };
}): DeployConfig {
  return parseDeployConfig(scope.node.tryGetContext(CONFIG_CONTEXT_KEY));
}

/** The Glue database name of a stage: Glue names allow no hyphens. */
export function glueDatabaseName(config: Pick<DeployConfig, 'stage'>): string {
  return `batch_infer_${config.stage.replace(/-/g, '_')}`;
}

/** The stack name of a stage. */
export function stackName(config: Pick<DeployConfig, 'stage'>): string {
  return `BatchInfer-${config.stage}`;
}
