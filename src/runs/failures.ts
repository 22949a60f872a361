/**
 * Failure records: `<runUri>failures/<shard>.json`, written by a worker whose shard failed for a reason a retry
 * cannot fix (the spec does not fit the model, the model artifact is corrupt, the processor module throws on load).
 * They sit beside the completion markers; Reconcile reads both and does not retry a shard whose latest failure is
 * deterministic, and the first reason travels to Finalize, the manifest and the run result.
 */
import { z } from 'zod';
import type { ObjectStore } from '../storage/object-store.js';
import { NotFoundError, putJson } from '../storage/object-store.js';
import { asPrefix, joinUri } from '../storage/uri.js';

/**
 * Names of the typed errors that fail the same way however often they are retried (src/spec/errors.ts, the
 * preflight and ONNX reader errors). A worker failing with one of them exits with DETERMINISTIC_EXIT_CODE.
 */
export const DETERMINISTIC_ERRORS: ReadonlySet<string> = new Set([
  'SpecError',
  'ModelError',
  'PreflightError',
  'OnnxFormatError',
  'RunStateError',
  'QuotedBreakAtBoundaryError',
]);

export function isDeterministicError(err: unknown): boolean {
  return err instanceof Error && DETERMINISTIC_ERRORS.has(err.name);
}

export const failureRecordSchema = z.object({
  version: z.literal(1),
  runId: z.string(),
  shardId: z.number().int().nonnegative(),
  round: z.number().int().nonnegative(),
  arrayIndex: z.number().int().nonnegative(),
  attempt: z.number().int().positive(),
  /** The error's class name (`ModelError`, `PreflightError`...). */
  errorClass: z.string(),
  message: z.string(),
  /** A retry cannot fix it: Reconcile does not schedule the shard again. */
  deterministic: z.boolean(),
  /** Where the attempt's log is: a local log file, or the Batch job id whose attempt's log stream holds it. */
  log: z.string().optional(),
  failedAt: z.string(),
});
export type FailureRecord = z.infer<typeof failureRecordSchema>;

/** Longest message kept: ONNX Runtime's can run to several kilobytes. */
const MAX_MESSAGE = 4_000;

export function failuresPrefixUri(runUri: string): string {
  return asPrefix(joinUri(asPrefix(runUri), 'failures'));
}

export function failureUri(runUri: string, shardId: number): string {
  return joinUri(failuresPrefixUri(runUri), `${shardId}.json`);
}

export async function writeFailureRecord(
  store: ObjectStore,
  runUri: string,
  record: Omit<FailureRecord, 'version'>,
): Promise<void> {
  const message =
    record.message.length > MAX_MESSAGE ? `${record.message.slice(0, MAX_MESSAGE)}…` : record.message;
  await putJson(store, failureUri(runUri, record.shardId), { version: 1, ...record, message });
}

/** Failure records of the given shards (listed once; only records that parse are returned), by shard id. */
export async function readFailureRecords(
  store: ObjectStore,
  runUri: string,
  shardIds: ReadonlySet<number>,
): Promise<Map<number, FailureRecord>> {
  const prefix = failuresPrefixUri(runUri);
  const found = new Map<number, FailureRecord>();
  if (shardIds.size === 0) return found;
  for await (const info of store.list(prefix)) {
    const id = /^(\d+)\.json$/.exec(info.uri.slice(prefix.length))?.[1];
    if (id === undefined || !shardIds.has(Number(id))) continue;
    try {
      const parsed = failureRecordSchema.safeParse(
        JSON.parse(new TextDecoder().decode(await store.get(info.uri))),
      );
      if (parsed.success) found.set(parsed.data.shardId, parsed.data);
    } catch (err) {
      // Gone or unreadable: the shard is treated as an ordinary failure (retried), never worse.
      if (!(err instanceof NotFoundError) && !(err instanceof SyntaxError)) throw err;
    }
  }
  return found;
}

/** One line: `shard 3: ModelError: ... (attempt 1, log /path)`. */
export function describeFailureRecord(record: FailureRecord): string {
  return (
    `shard ${record.shardId}: ${record.errorClass}: ${record.message} (round ${record.round}, attempt ` +
    `${record.attempt}${record.log ? `, log ${record.log}` : ''})`
  );
}

/**
 * The first failure's reason, as the user sees it wherever they look (CLI summary and --json, manifest, run
 * result): what failed, why, which shard, and where its log is.
 */
export const runErrorSchema = z.object({
  /** The error class (`ModelError`, `PreflightError`...) or the Fail state's error (`PlanFailed`). */
  code: z.string(),
  message: z.string(),
  shard: z.number().int().nonnegative().optional(),
  log: z.string().optional(),
});
export type RunError = z.infer<typeof runErrorSchema>;

/** The run error of the lowest-numbered failed shard that left a failure record. */
export function firstRunError(records: ReadonlyMap<number, FailureRecord>): RunError | undefined {
  const first = [...records.values()].sort((a, b) => a.shardId - b.shardId)[0];
  if (!first) return undefined;
  return {
    code: first.errorClass,
    message: first.message,
    shard: first.shardId,
    ...(first.log !== undefined && { log: first.log }),
  };
}
