/**
 * The canary check (`run.canary`, issue 10): the Reconcile function, given a run state that still carries `canary`
 * (the `Check canary` state), decides from storage whether the canary passed:
 * - its marker exists and its error rows are at most `validation.maxErrorRate` of its records: the run goes on to
 *   round 0 (`next: infer`, `canary` dropped from the state);
 * - otherwise the run stops: the worker's failure record (its error class and message), or the canary's error rate
 *   with its first error row, or the Batch job's error when the worker left nothing, becomes the run's stop record
 *   (`CanaryFailed`), and the state goes to Finalize, which fails the run with that reason.
 */
import { describeFailureRecord, failureUri, readFailureRecords } from '../runs/failures.js';
import { writeRunStop } from '../runs/stop.js';
import type { RunState } from '../runs/tasks.js';
import { shardMarkerSchema, type ShardMarker } from '../runs/types.js';
import { getJson, NotFoundError, type ObjectStore } from '../storage/object-store.js';
import { canaryLayout } from '../runs/canary-layout.js';
import { readPlan } from './run-files.js';
import { errorRowIdKey } from '../runs/error-rows.js';

export interface CanaryCheckDeps {
  readonly store: ObjectStore;
  readonly now?: () => Date;
}

/** Checks the canary of `state` (which has `canary`); returns the state for `Canary passed?`. */
export async function checkCanary(
  state: RunState & { readonly canary: number },
  /** The canary job's error as one line (reconcile.ts `describeInferError`), when the job failed. */
  inferError: string | undefined,
  deps: CanaryCheckDeps,
): Promise<RunState> {
  const { store } = deps;
  const { plan } = await readPlan(store, state.runUri, state.runId);
  const { canary: records, ...rest } = state;
  const base: RunState = { ...rest, round: 0, pending: state.shardCount };
  const marker = await readCanaryMarker(store, canaryLayout(state.runUri, plan).markerUri(0));
  const failure = (await readFailureRecords(store, state.runUri, new Set([0]))).get(0);

  let reason: string | undefined;
  let log: string | undefined;
  if (!marker) {
    if (failure) {
      reason = describeFailureRecord(failure).replace(/^shard \d+: /, '');
      log = failure.log;
    } else if (inferError !== undefined) {
      reason = `the canary job failed without a failure record: ${inferError}`;
    } else {
      reason = 'the canary job left no completion marker and no failure record';
    }
  } else {
    const max = plan.spec.validation.maxErrorRate;
    if (marker.records > 0 && marker.errors / marker.records > max) {
      reason =
        `${marker.errors} of its ${marker.records} records are error rows, above validation.maxErrorRate ${max}` +
        `${await firstErrorRow(store, marker, plan.spec.input.id)}`;
    }
  }
  if (reason === undefined) {
    // A failure record of an earlier canary attempt must not make shard 0 look deterministically failed later.
    if (failure) await store.delete(failureUri(state.runUri, 0));
    return { ...base, next: 'infer' };
  }
  await writeRunStop(store, state.runUri, {
    runId: state.runId,
    code: 'CanaryFailed',
    message: `the canary (the first ${records} records of shard 0) failed: ${reason}`,
    round: 0,
    shard: 0,
    ...(log !== undefined && { log }),
    stoppedAt: (deps.now?.() ?? new Date()).toISOString(),
  });
  return { ...base, next: 'finalize' };
}

async function readCanaryMarker(store: ObjectStore, uri: string): Promise<ShardMarker | undefined> {
  try {
    const parsed = shardMarkerSchema.safeParse(await getJson(store, uri));
    return parsed.success ? parsed.data : undefined;
  } catch (err) {
    if (err instanceof NotFoundError || err instanceof SyntaxError) return undefined;
    throw err;
  }
}

/** `; first: record <id> <reason>: <message>` from the canary's errors file, or nothing when it cannot be read. */
async function firstErrorRow(
  store: ObjectStore,
  marker: ShardMarker,
  idColumn: string | undefined,
): Promise<string> {
  if (!marker.errorsFile) return '';
  try {
    const text = new TextDecoder().decode(
      await store.get(marker.errorsFile.uri, { start: 0, end: 64 * 1024 }),
    );
    const row = JSON.parse(text.split('\n')[0] ?? '') as Record<string, unknown>;
    const text_ = (v: unknown): string =>
      typeof v === 'string' || typeof v === 'number' ? String(v) : JSON.stringify(v);
    // The id sits under the declared input.id name (src/runs/error-rows.ts); else the record's place names it.
    const declared = idColumn === undefined ? undefined : row[errorRowIdKey(idColumn)];
    const id = declared ?? `${text_(row._source)}@${text_(row._offset)}`;
    return `; first: record ${text_(id)} ${text_(row.reason)}: ${text_(row.message)}`;
  } catch {
    return '';
  }
}
