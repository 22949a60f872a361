/**
 * Where a shard ran, as its marker records it (`ShardMarker.instance`) for the run's cost: the instance type and
 * whether it was Spot or On-Demand.
 *
 * In AWS Batch the worker asks the EC2 instance metadata service (IMDSv2) for `instance-type` and
 * `instance-life-cycle`. The default launch template allows one hop (ADR 0013), so a container on the bridge network
 * gets no answer: the worker waits at most IMDS_TIMEOUT_MS, then records the type as `unknown` and takes the
 * lifecycle from the compute environment's name (`AWS_BATCH_CE_NAME`, which Batch sets: the Spot and On-Demand
 * environments are named after their role). An unknown type is priced at the dearest default type of its queue
 * (prices.ts `referenceInstanceType`). `BATCH_INFER_INSTANCE_TYPE` (and `BATCH_INFER_INSTANCE_LIFECYCLE`) set
 * both explicitly. Outside Batch (local runs) the instance is `local`.
 */
import { z } from 'zod';
import { LIFECYCLES, type Lifecycle } from './prices.js';

export const INSTANCE_ENV = {
  type: 'BATCH_INFER_INSTANCE_TYPE',
  lifecycle: 'BATCH_INFER_INSTANCE_LIFECYCLE',
} as const;

/** How long the worker waits for the instance metadata service, in all. */
export const IMDS_TIMEOUT_MS = 1_000;
const IMDS = 'http://169.254.169.254/latest';

export const shardInstanceSchema = z.strictObject({
  /** EC2 instance type (`g6.xlarge`), `local` for a local run, `unknown` when it could not be read. */
  type: z.string().min(1),
  lifecycle: z.enum(LIFECYCLES),
  /** Where the type came from: the environment, the instance metadata, a local run, or nowhere. */
  source: z.enum(['env', 'imds', 'local', 'unknown']),
});
export type ShardInstance = z.infer<typeof shardInstanceSchema>;

/** The lifecycle a compute environment's name implies: `...OnDemand...` or `...Spot...`; otherwise unknown. */
export function lifecycleOfComputeEnvironment(name: string | undefined): Lifecycle {
  if (!name) return 'unknown';
  if (/on-?demand/i.test(name)) return 'on-demand';
  if (/spot/i.test(name)) return 'spot';
  return 'unknown';
}

type Fetch = (
  url: string,
  init: { method: string; headers: Record<string, string>; signal: AbortSignal },
) => Promise<{
  ok: boolean;
  status: number;
  text(): Promise<string>;
}>;

export interface DetectInstanceDeps {
  /** @default globalThis.fetch */
  readonly fetch?: Fetch;
  /** @default IMDS_TIMEOUT_MS */
  readonly timeoutMs?: number;
}

/** The instance this worker runs on (see the module comment for the order of sources). Never throws. */
export async function detectInstance(
  env: Readonly<Record<string, string | undefined>>,
  deps: DetectInstanceDeps = {},
): Promise<ShardInstance> {
  const explicitLifecycle = z.enum(LIFECYCLES).safeParse(env[INSTANCE_ENV.lifecycle]);
  const lifecycle = explicitLifecycle.success
    ? explicitLifecycle.data
    : lifecycleOfComputeEnvironment(env.AWS_BATCH_CE_NAME);
  const type = env[INSTANCE_ENV.type]?.trim();
  if (type) return { type, lifecycle: type === 'local' ? 'local' : lifecycle, source: 'env' };
  if (env.AWS_BATCH_JOB_ID === undefined) return { type: 'local', lifecycle: 'local', source: 'local' };
  const fromImds = await readImds(deps).catch(() => undefined);
  if (fromImds) return { ...fromImds, source: 'imds' };
  return { type: 'unknown', lifecycle, source: 'unknown' };
}

async function readImds(deps: DetectInstanceDeps): Promise<Omit<ShardInstance, 'source'> | undefined> {
  const fetcher = deps.fetch ?? globalThis.fetch;
  const signal = AbortSignal.timeout(deps.timeoutMs ?? IMDS_TIMEOUT_MS);
  const tokenResponse = await fetcher(`${IMDS}/api/token`, {
    method: 'PUT',
    headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' },
    signal,
  });
  if (!tokenResponse.ok) return undefined;
  const token = (await tokenResponse.text()).trim();
  const get = async (path: string): Promise<string | undefined> => {
    const response = await fetcher(`${IMDS}/meta-data/${path}`, {
      method: 'GET',
      headers: { 'X-aws-ec2-metadata-token': token },
      signal,
    });
    return response.ok ? (await response.text()).trim() : undefined;
  };
  const type = await get('instance-type');
  if (!type) return undefined;
  // `spot`, `on-demand` or `scheduled` (priced as On-Demand).
  const life = await get('instance-life-cycle');
  return { type, lifecycle: life === 'spot' ? 'spot' : 'on-demand' };
}
