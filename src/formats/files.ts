/**
 * `files`: every input object is one record (an image, a text document, any binary), for models whose unit of
 * work is a whole file. The record's values are:
 *
 * | column    | value                                                     |
 * |-----------|-----------------------------------------------------------|
 * | `uri`     | the object's URI (string)                                 |
 * | `name`    | its file name, the last path segment (string)             |
 * | `size`    | its size in bytes (number)                                |
 * | `content` | its bytes (Uint8Array); text inputs decode them as UTF-8  |
 *
 * so a job spec reads a file with `from: { image: content }` or `from: { text: content }`, and can pass `uri` or
 * `name` through to the output. The record's offset is 0, so `(_source, _offset)` is `(uri, 0)`.
 *
 * Ranges: the one record of an object starts at byte 0, so only a range with `start === 0` owns it (the rule every
 * text format follows: a range owns the records that start inside it). A range starting later yields nothing, so
 * however a planner cuts an object, its record is read exactly once.
 *
 * An object that cannot be read as a record (gone since planning, unreadable, over the size limit) becomes an
 * UndecodableRecord (an error row) and the shard goes on; any other storage failure fails the shard, which is
 * retried, rather than turning a transient outage into error rows.
 */
import type { InputRange } from '../runs/types.js';
import { NotFoundError, type ObjectStore } from '../storage/object-store.js';
import type { RangeReader, ReadOptions, SourceRecord, UndecodableRecord } from './records.js';

/** The largest object read as one record: a whole file is held in memory, times the batch size. */
export const MAX_FILE_BYTES = 256 * 1024 * 1024;

/** Storage errors that reading again will not fix: the object becomes an error row rather than failing the shard. */
const PERMANENT_CODES = new Set([
  'EACCES',
  'EPERM',
  'EISDIR',
  'ENOTDIR',
  'AccessDenied',
  'InvalidObjectState',
]);

export const readFiles: RangeReader = async function* (store, range) {
  if (range.start > 0) return;
  yield [await readFileRecord(store, range)];
};

/** The record of one object (a range with start 0). */
export async function readFileRecord(store: ObjectStore, range: InputRange): Promise<SourceRecord> {
  const source = range.uri;
  const fail = (message: string): UndecodableRecord => ({
    source,
    offset: 0,
    error: { reason: 'DECODE_ERROR', message },
  });
  if (range.size === 0) {
    return fail('object is empty (0 bytes): a files input needs content in every object');
  }
  if (range.size > MAX_FILE_BYTES) {
    return fail(
      `object is ${range.size} bytes, over the ${MAX_FILE_BYTES / 2 ** 20} MiB limit of files inputs`,
    );
  }
  let content: Uint8Array;
  try {
    content = await store.get(source);
  } catch (err) {
    if (err instanceof NotFoundError)
      return fail('object no longer exists (deleted since the run was planned)');
    const code = (err as { code?: unknown; name?: unknown }).code ?? (err as { name?: unknown }).name;
    if (typeof code === 'string' && PERMANENT_CODES.has(code)) {
      return fail(`object cannot be read: ${code}: ${(err as Error).message}`);
    }
    throw err;
  }
  if (content.length > MAX_FILE_BYTES) {
    return fail(
      `object is ${content.length} bytes, over the ${MAX_FILE_BYTES / 2 ** 20} MiB limit of files inputs`,
    );
  }
  return {
    source,
    offset: 0,
    values: { uri: source, name: fileName(source), size: content.length, content },
  };
}

/**
 * Reads many `files` ranges with up to `concurrency` objects in flight, in range order, as batches of
 * `batchSize` records. One object per request means latency, not bandwidth, bounds a sequential reader (tens of
 * objects a second from S3); the shard worker's record stream reads `files` inputs with it.
 *
 * Exactly one record per range that starts at byte 0, in the order of `ranges` (ranges starting later are skipped),
 * so a caller can pair each record with its range by position. While the consumer holds a batch, the reads already
 * started go on, so up to `concurrency` objects are fetched ahead of it, and never more.
 */
export async function* readFileRanges(
  store: ObjectStore,
  ranges: readonly InputRange[],
  options: ReadOptions & { readonly concurrency?: number },
): AsyncIterable<SourceRecord[]> {
  const owned = ranges.filter((r) => r.start === 0);
  const concurrency = Math.max(1, options.concurrency ?? 16);
  const inFlight: Promise<SourceRecord>[] = [];
  let next = 0;
  let batch: SourceRecord[] = [];
  while (next < owned.length || inFlight.length > 0) {
    while (next < owned.length && inFlight.length < concurrency) {
      const read = readFileRecord(store, owned[next++]!);
      // Awaited in order below; this only keeps a failure behind an earlier one from going unhandled meanwhile.
      read.catch(() => undefined);
      inFlight.push(read);
    }
    batch.push(await inFlight.shift()!);
    if (batch.length >= options.batchSize) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

function fileName(uri: string): string {
  const path = uri.replace(/\/+$/, '');
  const last = path.slice(path.lastIndexOf('/') + 1);
  // file:// URIs are percent-encoded (a space is %20); S3 keys in s3:// URIs are written as they are.
  if (!uri.startsWith('file://')) return last;
  try {
    return decodeURIComponent(last);
  } catch {
    return last;
  }
}
