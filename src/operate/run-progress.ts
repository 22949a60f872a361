/**
 * How far a run got, from its run files only (plan, shard index, markers, checkpoints, rounds, reconcile records,
 * manifest): the same code for a local run and a deployed one, since both write the same files to an ObjectStore.
 * Backends add what only the orchestrator knows (the execution's status, the Batch array job's status summary).
 */
import { z } from 'zod';
import { manifestSchema } from '../results/manifest.js';
import { reconcileRecordSchema } from '../results/reconcile.js';
import { readShardIndex } from '../results/shard-list.js';
import { runLayout, runUriOf } from '../runs/layout.js';
import { planSchema, roundSchema } from '../runs/types.js';
import { getJson, NotFoundError, type ObjectStore } from '../storage/object-store.js';
import { checkpointSchema } from '../worker/checkpoint.js';
import { scanMarkers } from '../results/run-files.js';
import { joinUri } from '../storage/uri.js';

export const runProgressSchema = z.strictObject({
  /** Whether Plan finished (plan.json exists): before that there are no shards to count. */
  planned: z.boolean(),
  shards: z.number().int().nonnegative(),
  /** The round in progress or last run: 0 for the first, r for retry round r. */
  round: z.number().int().nonnegative(),
  /** Shards the current round runs (all shards in round 0, the retried ones after). */
  roundShards: z.number().int().nonnegative(),
  succeeded: z.number().int().nonnegative(),
  /** Shards with a checkpoint but no marker: started, partly done. */
  running: z.number().int().nonnegative(),
  /** Shards a finished round left without a marker (by the last reconcile record). */
  failed: z.number().int().nonnegative(),
  failedShardIds: z.array(z.number().int().nonnegative()),
  pending: z.number().int().nonnegative(),
  recordsPlanned: z.number().int().nonnegative(),
  recordsExact: z.boolean(),
  /** Records done: finished shards (markers) plus the checkpointed chunks of running ones. */
  recordsDone: z.number().int().nonnegative(),
  predictions: z.number().int().nonnegative(),
  errors: z.number().int().nonnegative(),
  errorsByReason: z.record(z.string(), z.number().int().nonnegative()),
  /** Why shards failed so far, by reason (from the reconcile records), e.g. "exit code 1": 2. */
  shardFailuresByReason: z.record(z.string(), z.number().int().nonnegative()),
  /** The manifest's status when Finalize wrote one. */
  manifestStatus: z.enum(['SUCCEEDED', 'FAILED']).optional(),
  manifestUri: z.string(),
  modelVersion: z.string().optional(),
  plannedAt: z.string().optional(),
});
export type RunProgress = z.infer<typeof runProgressSchema>;

async function getOptional(store: ObjectStore, uri: string): Promise<unknown> {
  try {
    return await getJson(store, uri);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

/** Reads a run's files. Files that do not exist yet (a run in Plan) count as nothing done. */
export async function readRunProgress(
  store: ObjectStore,
  outputUri: string,
  runId: string,
): Promise<RunProgress> {
  const runUri = runUriOf(outputUri, runId);
  const manifestUri = joinUri(runUri, 'manifest.json');
  const planValue = await getOptional(store, joinUri(runUri, 'plan.json'));
  const empty: RunProgress = {
    planned: false,
    shards: 0,
    round: 0,
    roundShards: 0,
    succeeded: 0,
    running: 0,
    failed: 0,
    failedShardIds: [],
    pending: 0,
    recordsPlanned: 0,
    recordsExact: false,
    recordsDone: 0,
    predictions: 0,
    errors: 0,
    errorsByReason: {},
    shardFailuresByReason: {},
    manifestUri,
  };
  if (planValue === undefined) return empty;
  const plan = planSchema.parse(planValue);
  const layout = runLayout(plan.spec.output.uri, plan.runId, plan.runDate);
  const index = await readShardIndex(store, layout, plan.shardCount);
  const scan = await scanMarkers(store, layout, plan.shardCount);

  // Rounds: rounds/<r>.json for r >= 1 names the shards retried; the highest one is the current round.
  let round = 0;
  let roundShards = plan.shardCount;
  for (let r = 1; r <= plan.maxRounds; r++) {
    const value = await getOptional(store, layout.roundUri(r));
    if (value === undefined) break;
    round = r;
    roundShards = roundSchema.parse(value).shardIds.length;
  }
  // The last reconcile record says which shards a finished round left missing, and why.
  const shardFailuresByReason: Record<string, number> = {};
  let failedShardIds: number[] = [];
  for (let r = round; r >= 0; r--) {
    const value = await getOptional(store, joinUri(layout.runUri, 'rounds', `${r}.reconcile.json`));
    if (value === undefined) continue;
    const record = reconcileRecordSchema.parse(value);
    if (r === round) failedShardIds = record.missing.filter((id) => !scan.markers.has(id));
    for (const e of record.shardErrors ?? []) {
      const reason = shardErrorReason(e);
      shardFailuresByReason[reason] = (shardFailuresByReason[reason] ?? 0) + 1;
    }
  }

  let recordsDone = 0;
  let predictions = 0;
  let errors = 0;
  const errorsByReason: Record<string, number> = {};
  const add = (m: {
    records: number;
    predictions: number;
    errors: number;
    errorsByReason: Record<string, number>;
  }) => {
    recordsDone += m.records;
    predictions += m.predictions;
    errors += m.errors;
    for (const [k, v] of Object.entries(m.errorsByReason)) errorsByReason[k] = (errorsByReason[k] ?? 0) + v;
  };
  for (const marker of scan.markers.values()) add(marker);
  let running = 0;
  const checkpointsPrefix = joinUri(layout.runUri, 'checkpoints/');
  for await (const info of store.list(checkpointsPrefix)) {
    const id = Number(/(\d+)\.json$/.exec(info.uri)?.[1] ?? NaN);
    if (!Number.isInteger(id) || scan.markers.has(id)) continue;
    const value = await getOptional(store, info.uri);
    const parsed = checkpointSchema.safeParse(value);
    if (!parsed.success) continue;
    running++;
    add(parsed.data);
  }

  const manifestValue = await getOptional(store, manifestUri);
  const manifest = manifestValue === undefined ? undefined : manifestSchema.safeParse(manifestValue);
  const failed = failedShardIds.filter((id) => !scan.markers.has(id)).length;
  const succeeded = scan.markers.size;
  return {
    ...empty,
    planned: true,
    shards: plan.shardCount,
    round,
    roundShards,
    succeeded,
    running,
    failed,
    failedShardIds,
    pending: Math.max(0, plan.shardCount - succeeded - running - failed),
    recordsPlanned: index.reduce((n, s) => n + s.records, 0),
    recordsExact: index.every((s) => s.recordsExact),
    recordsDone,
    predictions,
    errors,
    errorsByReason,
    shardFailuresByReason,
    ...(manifest?.success ? { manifestStatus: manifest.data.status } : {}),
    ...(plan.model.version !== undefined
      ? { modelVersion: `${plan.model.group ?? 'model'}:${plan.model.version}` }
      : {}),
    plannedAt: plan.createdAt,
  };
}

function shardErrorReason(error: {
  exitCode?: number | undefined;
  statusReason?: string | undefined;
  reason?: string | undefined;
}): string {
  if (error.reason) return error.reason.split('\n')[0]!.slice(0, 80);
  if (error.statusReason) return error.statusReason.split('\n')[0]!.slice(0, 80);
  if (error.exitCode !== undefined) return `exit code ${error.exitCode}`;
  return 'unknown';
}
