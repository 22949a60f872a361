/**
 * S3 triggers that batch: the objects created under a pipeline's prefix within one upload window become one run
 * over exactly those objects (a list manifest of them), split into several runs only beyond `maxObjects` or
 * `maxBytes` per run.
 *
 *   upload ─> trigger function (recordWindowObject)
 *               window W = the `windowSeconds` slice of the clock the invocation runs in
 *               1. W has no timer yet: StartExecution(timer state machine, name <trigger>-<W>)   idempotent by name
 *               2. PUT <state>/<pipeline>/<trigger>/windows/<W>/objects/<object id>.json         idempotent by key
 *   timer execution: Wait until W's end + settle ─> collector function (collectWindow)
 *               3. list W's objects; claim each one (PUT claims/<object id> If-None-Match: *); an object claimed by
 *                  another window is a duplicate (the same object version announced again later)
 *               4. per run: PUT <manifests>/<pipeline>/<run>.jsonl, StartExecution(pipeline, name s3w-<trigger>-<W>-p<k>)
 *
 * Why it is exact: an invocation writes its object during its own lifetime, which the function timeout bounds, and
 * it started inside W; the timer waits until W's end plus `settleSeconds` (longer than that timeout), so every object
 * of W is written before the collector lists W. Every step is idempotent (names and keys derived from what they
 * describe), so a retried invocation or a retried collector redoes it to the same result, and duplicated or
 * redelivered events start nothing new: the same delivery lands on the same key, and a later one of the same object
 * version loses its claim. No object is read-modify-written, so a burst of thousands of uploads does not contend.
 */
import type { SFNClient } from '@aws-sdk/client-sfn';
import { z } from 'zod';
import { mapConcurrent } from '../manifest/concurrency.js';
import type { Logger } from '../runtime/log.js';
import type { S3TriggerEvent, WindowCloseEvent } from './events.js';
import { objectVersionHash } from './execution-name.js';
import { startRun, type RunInput, type StartRunOutcome } from './start-run.js';
import type { TriggerStateStore } from './state-store.js';

/** Requests in flight while reading a window's objects and claiming them. */
const CONCURRENCY = 16;

/** `2025-03-01T12:05:00.000Z` -> `20250301T120500Z`. */
export function compactInstant(instant: Date): string {
  return instant
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '');
}

/** The start of the window `at` falls in: windows are aligned slices of `seconds` of the UTC clock. */
export function windowStart(at: Date, seconds: number): Date {
  const ms = seconds * 1000;
  return new Date(Math.floor(at.getTime() / ms) * ms);
}

/** What the trigger function records about one object of a window. */
export const windowObjectSchema = z.strictObject({
  id: z.string().min(1),
  uri: z.string().startsWith('s3://'),
  size: z.number().int().nonnegative(),
  etag: z.string().min(1),
  versionId: z.string().min(1).optional(),
});
export type WindowObject = z.infer<typeof windowObjectSchema>;

const claimSchema = z.object({ window: z.string() });

/** The keys of one trigger's state, under the store's prefix. */
export function windowKeys(statePrefix: string, pipeline: string, triggerId: string, start: Date) {
  const base = `${statePrefix.replace(/\/*$/, '/')}${pipeline}/${triggerId}/`;
  const window = `${base}windows/${compactInstant(start)}/`;
  return {
    timer: `${window}timer.json`,
    objects: `${window}objects/`,
    object: (id: string) => `${window}objects/${id}.json`,
    claim: (id: string) => `${base}claims/${id}.json`,
  };
}

/** The timer execution of a window: one per trigger and window, so starting it twice starts nothing. */
export function timerExecutionName(triggerId: string, start: Date): string {
  return `${triggerId}-${compactInstant(start)}`;
}

/** A batched run's name, the run id: `s3w-<trigger id>-<window start, UTC>-p<part>`. */
export function windowRunName(triggerId: string, start: Date, part: number): string {
  return `s3w-${triggerId.slice(0, 12)}-${compactInstant(start)}-p${part}`;
}

/** The run input of a batch: the pipeline's spec reading the list manifest. */
export function listManifestRun(spec: Readonly<Record<string, unknown>>, manifestUri: string): RunInput {
  const input = typeof spec.input === 'object' && spec.input !== null ? spec.input : {};
  return { spec: { ...spec, input: { ...input, manifest: 'list' } }, inputUri: manifestUri };
}

/** One JSON line per object, with size and ETag: Plan needs no HEAD, and the workers read exactly those bytes. */
export function listManifestText(objects: readonly Omit<WindowObject, 'id'>[]): string {
  return objects
    .map((o) =>
      JSON.stringify({
        uri: o.uri,
        size: o.size,
        etag: o.etag,
        ...(o.versionId ? { versionId: o.versionId } : {}),
      }),
    )
    .join('\n')
    .concat(objects.length > 0 ? '\n' : '');
}

/**
 * Splits objects (in order) into runs of at most `maxObjects` objects and `maxBytes` bytes; an object larger than
 * `maxBytes` is a run of its own.
 */
export function splitIntoRuns<T extends { readonly size: number }>(
  objects: readonly T[],
  maxObjects: number,
  maxBytes: number | undefined,
): T[][] {
  const runs: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const object of objects) {
    const full =
      current.length >= maxObjects ||
      (maxBytes !== undefined && current.length > 0 && bytes + object.size > maxBytes);
    if (full) {
      runs.push(current);
      current = [];
      bytes = 0;
    }
    current.push(object);
    bytes += object.size;
  }
  if (current.length > 0) runs.push(current);
  return runs;
}

export interface WindowDeps {
  readonly store: TriggerStateStore;
  readonly sfn: SFNClient;
  readonly log: Logger;
  /** Where the trigger state is kept in the store's bucket (`state/batch/`). */
  readonly statePrefix: string;
  readonly now?: () => Date;
}

export type WindowRecordOutcome =
  | {
      readonly status: 'recorded';
      readonly window: string;
      readonly closeAt: string;
      /** The timer was started by this invocation (false: it existed). */
      readonly timerStarted: boolean;
    }
  | { readonly status: 'ignored'; readonly reason: string };

/** An object was created under a batching trigger's prefix: record it in the current window. */
export async function recordWindowObject(
  event: S3TriggerEvent,
  deps: WindowDeps,
): Promise<WindowRecordOutcome> {
  const batch = event.batch;
  if (!batch)
    throw new Error(`Pipeline ${event.pipeline}: this S3 trigger does not batch (no batch settings)`);
  const { bucket, object } = event.detail;
  const log = deps.log.child({ pipeline: event.pipeline, trigger: 's3', triggerId: batch.triggerId });
  if (object.key.endsWith('/') || object.size === 0) {
    const reason = object.key.endsWith('/') ? 'folder marker' : 'empty object';
    log.info('ignored object', { key: object.key, reason });
    return { status: 'ignored', reason };
  }
  const versionId = object['version-id'] ?? undefined;
  const ref = {
    bucket: bucket.name,
    key: object.key,
    etag: object.etag,
    ...(versionId ? { versionId } : {}),
  };
  const id = objectVersionHash(ref);
  const now = (deps.now ?? (() => new Date()))();
  const start = windowStart(now, batch.windowSeconds);
  const closeAt = new Date(start.getTime() + (batch.windowSeconds + batch.settleSeconds) * 1000);
  const keys = windowKeys(deps.statePrefix, event.pipeline, batch.triggerId, start);

  // The timer first: an object is only ever recorded in a window whose collector will run.
  let timerStarted = false;
  if (!(await deps.store.exists(keys.timer))) {
    const close: WindowCloseEvent = {
      trigger: 's3-window',
      pipeline: event.pipeline,
      stateMachineArn: event.stateMachineArn,
      spec: event.spec,
      triggerId: batch.triggerId,
      windowStart: start.toISOString(),
      closeAt: closeAt.toISOString(),
      maxObjects: batch.maxObjects,
      ...(batch.maxBytes !== undefined ? { maxBytes: batch.maxBytes } : {}),
    };
    const outcome = await startRun(deps.sfn, {
      stateMachineArn: batch.timerStateMachineArn,
      name: timerExecutionName(batch.triggerId, start),
      input: close,
    });
    timerStarted = outcome.status === 'started';
    await deps.store.put(keys.timer, JSON.stringify({ executionArn: outcome.executionArn, closeAt }));
    log.info(timerStarted ? 'window opened' : 'window timer already started', {
      window: start.toISOString(),
      closeAt: closeAt.toISOString(),
    });
  }
  const record: WindowObject = {
    id,
    uri: `s3://${bucket.name}/${object.key}`,
    size: object.size ?? 0,
    etag: object.etag,
    ...(versionId ? { versionId } : {}),
  };
  await deps.store.put(keys.object(id), JSON.stringify(record));
  log.info('recorded object in window', { key: object.key, window: start.toISOString() });
  return { status: 'recorded', window: start.toISOString(), closeAt: closeAt.toISOString(), timerStarted };
}

export interface WindowCloseOutcome {
  readonly window: string;
  /** Objects recorded in the window. */
  readonly recorded: number;
  /** Of those, objects another window had already claimed (announced again): in no run of this window. */
  readonly duplicates: number;
  readonly runs: readonly (StartRunOutcome & {
    readonly name: string;
    readonly manifestUri: string;
    readonly objects: number;
    readonly bytes: number;
  })[];
}

export interface CollectDeps extends WindowDeps {
  /** Where list manifests are written in the store's bucket (`state/manifests/`): Plan may read them. */
  readonly manifestPrefix: string;
}

/** A window is over (its timer fired): one run per part over exactly its objects. */
export async function collectWindow(event: WindowCloseEvent, deps: CollectDeps): Promise<WindowCloseOutcome> {
  const start = new Date(event.windowStart);
  const window = start.toISOString();
  const keys = windowKeys(deps.statePrefix, event.pipeline, event.triggerId, start);
  const log = deps.log.child({ pipeline: event.pipeline, trigger: 's3', triggerId: event.triggerId, window });

  const entryKeys = await deps.store.list(keys.objects);
  const recorded = await mapConcurrent(entryKeys, CONCURRENCY, async (key) => {
    const text = await deps.store.get(key);
    if (text === undefined) throw new Error(`s3://${deps.store.bucket}/${key} was listed but is gone`);
    const parsed = windowObjectSchema.safeParse(JSON.parse(text));
    if (!parsed.success) {
      throw new Error(
        `s3://${deps.store.bucket}/${key} is not a window object record: ${parsed.error.message}`,
      );
    }
    return parsed.data;
  });
  // Claims: the first window to collect an object version keeps it. A retried collection of this window finds its
  // own claims and keeps the same objects.
  const kept = await mapConcurrent(recorded, CONCURRENCY, async (object) => {
    const claim = JSON.stringify({ window });
    if (await deps.store.putIfAbsent(keys.claim(object.id), claim)) return true;
    const existing = await deps.store.get(keys.claim(object.id));
    return existing !== undefined && claimSchema.parse(JSON.parse(existing)).window === window;
  });
  const objects = recorded
    .filter((_, index) => kept[index])
    .sort((a, b) =>
      a.uri < b.uri ? -1 : a.uri > b.uri ? 1 : (a.versionId ?? '').localeCompare(b.versionId ?? ''),
    );
  const duplicates = recorded.length - objects.length;
  if (duplicates > 0) log.info('objects already run by an earlier window', { duplicates });

  const runs: WindowCloseOutcome['runs'][number][] = [];
  const parts = splitIntoRuns(objects, event.maxObjects, event.maxBytes);
  for (const [part, members] of parts.entries()) {
    const name = windowRunName(event.triggerId, start, part);
    const manifestKey = `${deps.manifestPrefix.replace(/\/*$/, '/')}${event.pipeline}/${name}.jsonl`;
    const manifestUri = `s3://${deps.store.bucket}/${manifestKey}`;
    await deps.store.put(manifestKey, listManifestText(members));
    const outcome = await startRun(deps.sfn, {
      stateMachineArn: event.stateMachineArn,
      name,
      input: listManifestRun(event.spec, manifestUri),
    });
    const bytes = members.reduce((sum, o) => sum + o.size, 0);
    log.info(outcome.status === 'duplicate' ? 'window run already started' : 'started window run', {
      name,
      objects: members.length,
      bytes,
      manifestUri,
    });
    runs.push({ ...outcome, name, manifestUri, objects: members.length, bytes });
  }
  if (parts.length === 0) log.info('window closed with no new object: no run');
  return { window, recorded: recorded.length, duplicates, runs };
}
