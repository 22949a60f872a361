/**
 * Execution names of triggered runs. A Step Functions STANDARD state machine refuses a second execution with a name
 * it has seen in the last 90 days (`ExecutionAlreadyExists`), so a name derived only from *what* triggered the run
 * turns at-least-once event delivery into exactly-once runs: a duplicated S3 event, a schedule that fires twice or
 * a retried trigger function all compute the same name, and the second StartExecution is a no-op.
 *
 * The execution name is also the run id (`$$.Execution.Name`), so it appears in output paths: names keep a short
 * readable part next to the hash.
 */
import { createHash } from 'node:crypto';

/** Step Functions execution names: 1-80 characters of letters, digits, `-` and `_` (the run id rule too). */
export const EXECUTION_NAME = /^[A-Za-z0-9_-]{1,80}$/;

/** Hex characters of sha256 kept in a name: 128 bits, collisions are not a practical concern. */
const HASH_CHARS = 32;

/** The readable part of an S3-triggered name: at most this many characters of the object's file name. */
const MAX_SLUG = 36;

/** What identifies one version of one object. */
export interface ObjectVersionRef {
  readonly bucket: string;
  readonly key: string;
  /** The ETag as S3 reports it, with or without the surrounding quotes. */
  readonly etag: string;
  /** Present for versioned buckets: a re-upload of the same bytes is a new version and a new run. */
  readonly versionId?: string;
}

/** `"abc"` -> `abc`: S3 events carry ETags bare, HeadObject and ListObjects quoted. */
export function normalizeEtag(etag: string): string {
  return etag.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
}

function sha256Hex(parts: readonly string[]): string {
  // A separator that cannot occur in a bucket name, and length-prefixed parts, so ("a/b","c") != ("a","b/c").
  const hash = createHash('sha256');
  for (const part of parts) hash.update(`${part.length}:${part}\u0000`);
  return hash.digest('hex');
}

/** Letters, digits, `-` and `_` only; anything else becomes `_`, runs of it collapse. */
function slug(text: string, max: number): string {
  return text
    .replace(/[^A-Za-z0-9_-]+/g, '_')
    .replace(/^[_-]+|[_-]+$/g, '')
    .slice(0, max)
    .replace(/[_-]+$/g, '');
}

/** A stable hash of one object version (bucket, key, ETag, version id), as hex. */
export function objectVersionHash(ref: ObjectVersionRef): string {
  return sha256Hex(['s3', ref.bucket, ref.key, normalizeEtag(ref.etag), ref.versionId ?? '']).slice(
    0,
    HASH_CHARS,
  );
}

/**
 * The execution name of a run triggered by one object: `s3-<file name>-<hash of bucket/key/ETag/versionId>`, at most
 * 73 characters. The same object version always gives the same name; any other object (another key, other bytes,
 * another version) a different one.
 */
export function s3ExecutionName(ref: ObjectVersionRef): string {
  const fileName = ref.key.split('/').filter(Boolean).at(-1) ?? '';
  const readable = slug(fileName, MAX_SLUG);
  return ['s3', ...(readable ? [readable] : []), objectVersionHash(ref)].join('-');
}

/** `2024-01-31T02:00:00Z` -> `20240131T020000Z`. */
function compactUtc(instant: Date): string {
  return instant
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '');
}

/**
 * The execution name of a scheduled run: `sched-<schedule id>-<scheduled time, UTC>`. A schedule that fires twice
 * for the same time (Scheduler delivers at least once) gives the same name; the schedule id keeps two schedules of
 * one pipeline that fire at the same minute apart.
 */
export function scheduleExecutionName(scheduleId: string, scheduledTime: Date): string {
  return `sched-${slug(scheduleId, 16)}-${compactUtc(scheduledTime)}`;
}

/**
 * A stable id for a schedule, from what defines it (expression, time zone, input template, offset): reordering a
 * pipeline's schedules does not change it, editing one does.
 */
export function scheduleId(parts: readonly string[]): string {
  return sha256Hex(['schedule', ...parts]).slice(0, 12);
}

/**
 * A stable id for a batching S3 trigger, from what defines it (pipeline, bucket, prefix, suffix, window length): part
 * of its state keys, its timers' and its runs' names. Editing the trigger starts a new series of windows.
 */
export function windowTriggerId(parts: readonly string[]): string {
  return sha256Hex(['window', ...parts]).slice(0, 12);
}

/**
 * The execution name of a volume-triggered run: `vol-<counter epoch>-<generation>`. The epoch (when the counter was
 * created, base 36) keeps a counter that was deleted and started again from reusing the names of its predecessor.
 */
export function volumeExecutionName(epoch: string, generation: number): string {
  return `vol-${slug(epoch, 16)}-g${generation}`;
}
