/**
 * A run stopped on purpose before all its shards ran (issue 10 item 5, ADR 0009): its canary's records failed
 * (`run.canary`), or its observed error rate was surely above `validation.maxErrorRate` (`validation.stopEarly`).
 * `<runUri>stopped.json` records why; Finalize fails the run with that reason (manifest.error, the run's message).
 */
import { z } from 'zod';
import { getJson, NotFoundError, putJson, type ObjectStore } from '../storage/object-store.js';
import { asPrefix, joinUri } from '../storage/uri.js';
import type { RunError } from './failures.js';

/** Why a run was stopped: the `code` of its run error. */
export const STOP_CODES = ['CanaryFailed', 'ErrorRateAboveMax'] as const;
export type StopCode = (typeof STOP_CODES)[number];

export const runStopSchema = z.object({
  version: z.literal(1),
  runId: z.string(),
  code: z.enum(STOP_CODES),
  message: z.string(),
  /** The round after which the run stopped (the canary: before round 0, recorded as 0). */
  round: z.number().int().nonnegative(),
  shard: z.number().int().nonnegative().optional(),
  log: z.string().optional(),
  stoppedAt: z.string(),
});
export type RunStop = z.infer<typeof runStopSchema>;

export function runStopUri(runUri: string): string {
  return joinUri(asPrefix(runUri), 'stopped.json');
}

export async function writeRunStop(
  store: ObjectStore,
  runUri: string,
  stop: Omit<RunStop, 'version'>,
): Promise<void> {
  await putJson(store, runStopUri(runUri), { version: 1, ...stop });
}

/** The run's stop record; undefined when it was not stopped (or the record does not parse: it then fails as usual). */
export async function readRunStop(store: ObjectStore, runUri: string): Promise<RunStop | undefined> {
  let raw: unknown;
  try {
    raw = await getJson(store, runStopUri(runUri));
  } catch (err) {
    if (err instanceof NotFoundError || err instanceof SyntaxError) return undefined;
    throw err;
  }
  const parsed = runStopSchema.safeParse(raw);
  return parsed.success ? parsed.data : undefined;
}

/** The stop as the run's first error. */
export function runErrorOfStop(stop: RunStop): RunError {
  return {
    code: stop.code,
    message: stop.message,
    ...(stop.shard !== undefined && { shard: stop.shard }),
    ...(stop.log !== undefined && { log: stop.log }),
  };
}
