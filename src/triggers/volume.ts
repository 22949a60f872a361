/**
 * The volume trigger: count the bytes that arrive under a prefix, and start one run over the prefix once the count
 * since the last run reaches `minBytes`.
 *
 * The count lives in one small JSON object per pipeline in the data bucket, updated with S3 conditional writes
 * (compare-and-swap on the ETag: `If-Match`, or `If-None-Match: *` for the first write). See ADR 0003 for why S3
 * rather than DynamoDB or SSM. Every update is read-modify-write under that CAS, so concurrent invocations never lose
 * a byte, and reaching the threshold resets the count in the same write that records the pending run:
 *
 *   record object ──> bytes >= minBytes? ──yes──> generation+1, bytes 0, pending += {generation}   (one CAS write)
 *   then, for every pending run: StartExecution(name = vol-<epoch>-g<generation>)  (idempotent by name)
 *   then drop the started generations from pending                                  (CAS write)
 *
 * A crash between the reset and StartExecution leaves the run in `pending`; the retried invocation (or the next
 * object) starts it, under the same name, so it runs exactly once. Duplicated S3 events are recognised by the
 * object version id (bucket, key, ETag, version) among the last `recentLimit` ones and counted once.
 *
 * Exactly the new objects (`VolumeDeps.newObjects`, what the deployed function passes): each counted object is also
 * recorded as one small object of its own, `<state>/<pipeline>/open/<object id>.json`, written BEFORE it is counted.
 * A pending run's list manifest is made once (a create-only write: the first invocation to write it decides) from the
 * records present then, which are deleted once the manifest exists; the run reads that manifest, not the prefix.
 * Every record of a generation was written before the write that closed it, so the run holds all of them; records
 * of objects counted just after the close may join it too (they are then in no later run). Each object is scored by
 * exactly one run. Without `newObjects` a run reads the whole prefix.
 */
import { GetObjectCommand, NoSuchKey, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { SFNClient } from '@aws-sdk/client-sfn';
import { z } from 'zod';
import { mapConcurrent } from '../manifest/concurrency.js';
import type { Logger } from '../runtime/log.js';
import type { VolumeTriggerEvent } from './events.js';
import { objectVersionHash, volumeExecutionName } from './execution-name.js';
import { startRun, type RunInput, type StartRunOutcome } from './start-run.js';
import type { TriggerStateStore } from './state-store.js';
import { listManifestRun, listManifestText, windowObjectSchema, type WindowObject } from './window.js';

const pendingRunSchema = z.strictObject({
  generation: z.number().int().nonnegative(),
  bytes: z.number().nonnegative(),
  objects: z.number().int().nonnegative(),
  triggeredAt: z.string(),
});
export type PendingRun = z.infer<typeof pendingRunSchema>;

export const volumeStateSchema = z.strictObject({
  version: z.literal(1),
  /** When this counter was created (base 36 milliseconds): part of every execution name it gives. */
  epoch: z.string(),
  /** The window being counted; incremented by every run it triggers. */
  generation: z.number().int().nonnegative(),
  /** Bytes and objects counted in the current window. */
  bytes: z.number().nonnegative(),
  objects: z.number().int().nonnegative(),
  windowStartedAt: z.string().optional(),
  /** Ids of the most recently counted objects, oldest first: a duplicated event is counted once. */
  recent: z.array(z.string()),
  /** Runs decided but not yet known to be started. */
  pending: z.array(pendingRunSchema),
  lastTriggeredAt: z.string().optional(),
});
export type VolumeState = z.infer<typeof volumeStateSchema>;

/** A stored state and the version token (the ETag) a conditional write must match. */
export interface VersionedState {
  readonly state: VolumeState;
  readonly etag: string;
}

/** Compare-and-swap storage of one counter. */
export interface VolumeStateStore {
  read(): Promise<VersionedState | undefined>;
  /** Writes `state` if the stored version is still `expected` (undefined: if nothing is stored). False if not. */
  write(state: VolumeState, expected: string | undefined): Promise<boolean>;
}

export interface VolumeDeps {
  readonly store: VolumeStateStore;
  readonly sfn: SFNClient;
  readonly log: Logger;
  readonly now?: () => Date;
  /** Waits between CAS attempts; tests pass a no-op. @default a jittered exponential sleep */
  readonly sleep?: (attempt: number) => Promise<void>;
  /** @default 1000 */
  readonly recentLimit?: number;
  /** @default 12 */
  readonly maxAttempts?: number;
  /**
   * Where the objects of each generation are recorded and the runs' list manifests written, so a run scores exactly
   * the objects counted since the last one. @default - none: a run reads the whole prefix
   */
  readonly newObjects?: VolumeObjectsDeps;
}

export interface VolumeObjectsDeps {
  readonly store: TriggerStateStore;
  /** `state/volume/`: the records go to `<statePrefix><pipeline>/open/`. */
  readonly statePrefix: string;
  /** `state/manifests/`: the manifests go to `<manifestPrefix><pipeline>/<run name>.jsonl`. */
  readonly manifestPrefix: string;
}

/** Requests in flight while reading and deleting a generation's records. */
const RECORD_CONCURRENCY = 16;

/** Where a pipeline's uncollected object records are kept. */
export function volumeRecordsPrefix(statePrefix: string, pipeline: string): string {
  return `${statePrefix.replace(/\/*$/, '/')}${pipeline}/open/`;
}

export interface VolumeOutcome {
  readonly counted: boolean;
  readonly duplicate: boolean;
  readonly ignored?: string;
  /** Bytes in the window after this object (0 right after a run was triggered). */
  readonly bytes: number;
  readonly generation: number;
  /** Runs this invocation started (or found started). */
  readonly runs: readonly (StartRunOutcome & { readonly name: string })[];
}

const DEFAULT_RECENT = 1000;
const DEFAULT_ATTEMPTS = 12;

/** Full jitter over an exponential bound (25 ms doubling, capped at 2 s): contending writers spread out. */
async function jitteredSleep(attempt: number): Promise<void> {
  const bound = Math.min(2000, 25 * 2 ** attempt);
  await new Promise((resolve) => setTimeout(resolve, Math.random() * bound));
}

export function initialVolumeState(now: Date): VolumeState {
  return {
    version: 1,
    epoch: now.getTime().toString(36),
    generation: 0,
    bytes: 0,
    objects: 0,
    recent: [],
    pending: [],
  };
}

/**
 * Applies a CAS update until it sticks: `update` gets the current state (or a new one) and returns the next state,
 * or undefined to write nothing. Returns the state that is stored afterwards.
 */
async function casUpdate(
  deps: VolumeDeps,
  update: (current: VolumeState) => VolumeState | undefined,
): Promise<VolumeState> {
  const now = deps.now ?? (() => new Date());
  const sleep = deps.sleep ?? jitteredSleep;
  const attempts = deps.maxAttempts ?? DEFAULT_ATTEMPTS;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const stored = await deps.store.read();
    const current = stored?.state ?? initialVolumeState(now());
    const next = update(current);
    if (next === undefined) return current;
    if (await deps.store.write(next, stored?.etag)) return next;
    // Someone else wrote in between: read again and reapply.
    await sleep(attempt);
  }
  throw new Error(
    `The volume counter is contended: ${attempts} conditional writes in a row lost to concurrent updates. The event will be retried`,
  );
}

/** Counts one created object and starts the run(s) it makes due. */
export async function recordVolume(event: VolumeTriggerEvent, deps: VolumeDeps): Promise<VolumeOutcome> {
  const now = deps.now ?? (() => new Date());
  const recentLimit = deps.recentLimit ?? DEFAULT_RECENT;
  const { bucket, object } = event.detail;
  const log = deps.log.child({ pipeline: event.pipeline, trigger: 'volume' });

  const size = object.size ?? 0;
  const ignored = object.key.endsWith('/') ? 'folder marker' : size === 0 ? 'empty object' : undefined;
  const versionId = object['version-id'] ?? undefined;
  const id = objectVersionHash({
    bucket: bucket.name,
    key: object.key,
    etag: object.etag,
    ...(versionId ? { versionId } : {}),
  });

  if (ignored === undefined && deps.newObjects) {
    // Recorded before it is counted, unless it was counted already (a duplicated event): a record written for an
    // object already in a run would put it in the next run too.
    const stored = await deps.store.read();
    if (!stored?.state.recent.includes(id)) {
      const record: WindowObject = {
        id,
        uri: `s3://${bucket.name}/${object.key}`,
        size,
        etag: object.etag,
        ...(versionId ? { versionId } : {}),
      };
      const { store, statePrefix } = deps.newObjects;
      await store.put(
        `${volumeRecordsPrefix(statePrefix, event.pipeline)}${id}.json`,
        JSON.stringify(record),
      );
    }
  }

  let duplicate = false;
  const state = await casUpdate(deps, (current) => {
    duplicate = current.recent.includes(id);
    if (ignored !== undefined || duplicate) return undefined;
    const at = now().toISOString();
    const counted: VolumeState = {
      ...current,
      bytes: current.bytes + size,
      objects: current.objects + 1,
      windowStartedAt: current.windowStartedAt ?? at,
      recent: [...current.recent, id].slice(-recentLimit),
    };
    if (counted.bytes < event.minBytes) return counted;
    // The threshold is reached: close the window and record the run in the same write.
    const { windowStartedAt: _closed, ...rest } = counted;
    return {
      ...rest,
      generation: current.generation + 1,
      bytes: 0,
      objects: 0,
      pending: [
        ...current.pending,
        { generation: current.generation, bytes: counted.bytes, objects: counted.objects, triggeredAt: at },
      ],
      lastTriggeredAt: at,
    };
  });
  if (ignored !== undefined) log.info('ignored object', { key: object.key, reason: ignored });
  else if (duplicate) log.info('duplicate event: object already counted', { key: object.key });
  else log.info('counted object', { key: object.key, size, bytes: state.bytes, minBytes: event.minBytes });

  const runs = await startPending(event, state, deps, log);
  return {
    counted: ignored === undefined && !duplicate,
    duplicate,
    ...(ignored !== undefined ? { ignored } : {}),
    bytes: state.bytes,
    generation: state.generation,
    runs,
  };
}

/** Starts every pending run (idempotently, by name) and removes the started ones from the state. */
async function startPending(
  event: VolumeTriggerEvent,
  state: VolumeState,
  deps: VolumeDeps,
  log: Logger,
): Promise<(StartRunOutcome & { name: string })[]> {
  if (state.pending.length === 0) return [];
  const runs: (StartRunOutcome & { name: string })[] = [];
  const scored: string[] = [];
  for (const pending of state.pending) {
    const name = volumeExecutionName(state.epoch, pending.generation);
    let input: RunInput = { spec: event.spec, inputUri: event.prefixUri };
    if (deps.newObjects) {
      const manifest = await generationManifest(event.pipeline, name, deps.newObjects, log);
      input = listManifestRun(event.spec, manifest.uri);
      scored.push(...manifest.ids);
    }
    const outcome = await startRun(deps.sfn, { stateMachineArn: event.stateMachineArn, name, input });
    log.info(outcome.status === 'duplicate' ? 'volume run already started' : 'started volume run', {
      name,
      executionArn: outcome.executionArn,
      generation: pending.generation,
      bytes: pending.bytes,
      objects: pending.objects,
    });
    runs.push({ ...outcome, name });
  }
  const started = new Set(state.pending.map((p) => p.generation));
  const recentLimit = deps.recentLimit ?? DEFAULT_RECENT;
  await casUpdate(deps, (current) => {
    if (!current.pending.some((p) => started.has(p.generation))) return undefined;
    // The objects now in a run count as seen: an event of one of them retried later records and counts nothing.
    const known = new Set(current.recent);
    const recent = [...current.recent, ...scored.filter((id) => !known.has(id))].slice(-recentLimit);
    return { ...current, recent, pending: current.pending.filter((p) => !started.has(p.generation)) };
  });
  return runs;
}

/**
 * The list manifest of a pending run: made once from the records present (a create-only write; a concurrent
 * invocation that lost reads the winner's), then the records it holds are deleted. Idempotent: a retry finds the
 * manifest and deletes what is left.
 */
async function generationManifest(
  pipeline: string,
  runName: string,
  deps: VolumeObjectsDeps,
  log: Logger,
): Promise<{ uri: string; ids: string[] }> {
  const { store } = deps;
  const key = `${deps.manifestPrefix.replace(/\/*$/, '/')}${pipeline}/${runName}.jsonl`;
  const uri = `s3://${store.bucket}/${key}`;
  const recordsPrefix = volumeRecordsPrefix(deps.statePrefix, pipeline);
  let text = await store.get(key);
  if (text === undefined) {
    const keys = await store.list(recordsPrefix);
    const records = await mapConcurrent(keys, RECORD_CONCURRENCY, async (recordKey) => {
      const body = await store.get(recordKey);
      // Deleted in between by a concurrent invocation that made this manifest: its records are in it.
      if (body === undefined) return undefined;
      const parsed = windowObjectSchema.safeParse(JSON.parse(body));
      if (!parsed.success) {
        throw new Error(
          `s3://${store.bucket}/${recordKey} is not a volume object record: ${parsed.error.message}`,
        );
      }
      return parsed.data;
    });
    const objects = records
      .filter((r): r is WindowObject => r !== undefined)
      .sort((a, b) => (a.uri < b.uri ? -1 : a.uri > b.uri ? 1 : 0));
    const candidate = listManifestText(objects);
    text = (await store.putIfAbsent(key, candidate)) ? candidate : ((await store.get(key)) ?? candidate);
    log.info('volume run manifest', { name: runName, objects: objects.length, manifestUri: uri });
  }
  const entries = text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => manifestLineSchema.parse(JSON.parse(line)));
  const ids = entries.map((e) => {
    const { bucket, key: objectKey } = splitS3Uri(e.uri);
    return objectVersionHash({
      bucket,
      key: objectKey,
      etag: e.etag,
      ...(e.versionId ? { versionId: e.versionId } : {}),
    });
  });
  await mapConcurrent(ids, RECORD_CONCURRENCY, (id) => store.delete(`${recordsPrefix}${id}.json`));
  return { uri, ids };
}

const manifestLineSchema = z.object({
  uri: z.string().startsWith('s3://'),
  etag: z.string(),
  versionId: z.string().optional(),
});

function splitS3Uri(uri: string): { bucket: string; key: string } {
  const rest = uri.slice('s3://'.length);
  const slash = rest.indexOf('/');
  return { bucket: rest.slice(0, slash), key: rest.slice(slash + 1) };
}

/** Where a pipeline's counter is stored: one object per pipeline. */
export function volumeStateKey(prefix: string, pipeline: string): string {
  return `${prefix.replace(/\/*$/, '/')}${pipeline}.json`;
}

/** HTTP statuses of a lost conditional write: 412 (the ETag moved) and 409 (a concurrent conditional write). */
function isConflict(error: unknown): boolean {
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return status === 412 || status === 409;
}

/** The counter as one S3 object, written with conditional PUTs. */
export class S3VolumeStateStore implements VolumeStateStore {
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly key: string,
  ) {}

  async read(): Promise<VersionedState | undefined> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key }));
      const text = (await out.Body?.transformToString('utf8')) ?? '';
      if (!out.ETag) throw new Error(`s3://${this.bucket}/${this.key} came back without an ETag`);
      const state = volumeStateSchema.parse(JSON.parse(text));
      return { state, etag: out.ETag };
    } catch (error) {
      if (error instanceof NoSuchKey || (error as { name?: unknown }).name === 'NoSuchKey') return undefined;
      throw error;
    }
  }

  async write(state: VolumeState, expected: string | undefined): Promise<boolean> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.key,
          Body: JSON.stringify(state),
          ContentType: 'application/json',
          ...(expected === undefined ? { IfNoneMatch: '*' } : { IfMatch: expected }),
        }),
      );
      return true;
    } catch (error) {
      if (isConflict(error)) return false;
      throw error;
    }
  }
}
