/**
 * A shard's checkpoint (`_runs/<runId>/checkpoints/<shard>.json`): what is durably done, so that a retried shard
 * (Spot reclaim, SIGTERM, SIGKILL, a crash) resumes after its last finished chunk instead of starting over.
 *
 * The protocol, per chunk k (chunks are consecutive runs of whole batches of input records):
 *   1. write part k (the predictions; deleted instead when the chunk has none, to remove a stale one);
 *   2. write errors piece k (the chunk's error rows, same rule);
 *   3. write the checkpoint listing chunks 0..k, the counts they cover, and the position of the last record read.
 * Every write is atomic (a reader sees the old object or the new one), and the checkpoint is written only after the
 * files it lists. So after a crash at any point the checkpoint names only complete files; anything written after it
 * (part k+1 of the interrupted attempt) has a deterministic key that the retry overwrites (or deletes).
 *
 * Resuming: the retry reads the checkpoint and continues with the record right after `position`: for jsonl/csv the
 * byte range restarts at `offset + 1` (the range rule then skips the rest of that record's line: the next owned line
 * is the next record), for parquet at the row group holding row `offset + 1`, with earlier rows of that group
 * skipped. Records are never re-read into a finished chunk and never skipped, and error rows live in the chunk
 * pieces, so no row is lost or written twice. The batch size is fixed in the checkpoint, so the resumed batches are
 * the same record sets as in an uninterrupted run and every prediction is computed from the same batch.
 *
 * At the end the pieces are concatenated into the shard's errors file, the marker is written, and the checkpoint
 * and pieces are deleted (a crash between the marker and the clean-up leaves only garbage: the marker wins).
 *
 * When a chunk closes (`chunkCloseReason`): after the batch (or window) that takes it to `run.checkpoint.records`
 * input records, to about `chunkBytes` of rows, or past `run.checkpoint.seconds` since the previous chunk closed,
 * whichever comes first. The decision is only taken after a whole batch (window) is appended, so every boundary is a
 * batch boundary and resuming stays exact. The time limit bounds what a host lost without warning (a Spot reclaim
 * sends Batch jobs no SIGTERM) costs: the interval, plus the batches in flight and the seal still being written.
 */
import { z } from 'zod';
import { parquetLayout } from '../formats/parquet-read.js';
import type { RunLayout } from '../runs/layout.js';
import { outputSummariesSchema } from '../runs/stats.js';
import { batchSizeProbeSchema, outputFileSchema, type InputRange } from '../runs/types.js';
import type { InputFormat } from '../spec/schema.js';
import { getJson, putJson, type ObjectStore } from '../storage/object-store.js';

export const CHECKPOINT_VERSION = 1;

const timingsSchema = z.strictObject({
  readMs: z.number().nonnegative(),
  decodeMs: z.number().nonnegative(),
  inferMs: z.number().nonnegative(),
  writeMs: z.number().nonnegative(),
  totalMs: z.number().nonnegative(),
});
export type StageTimings = z.infer<typeof timingsSchema>;

export const chunkRecordSchema = z.strictObject({
  index: z.number().int().nonnegative(),
  /** Input records the chunk covers: predictions + errors. */
  records: z.number().int().nonnegative(),
  predictions: z.number().int().nonnegative(),
  errors: z.number().int().nonnegative(),
  /** The part file; absent when the chunk has no predictions. */
  output: outputFileSchema.optional(),
  /** The chunk's error rows (JSON lines); absent when it has none. */
  errorsPiece: outputFileSchema.optional(),
});
export type ChunkRecord = z.infer<typeof chunkRecordSchema>;

/** The last record covered by the finished chunks: everything before it in shard order is done too. */
export const positionSchema = z.strictObject({
  /** Index into the shard's ranges. */
  range: z.number().int().nonnegative(),
  /** The record's offset: byte offset of its line (jsonl, csv) or row index in the file (parquet). */
  offset: z.number().int().nonnegative(),
});
export type Position = z.infer<typeof positionSchema>;

export const checkpointSchema = z.strictObject({
  version: z.literal(CHECKPOINT_VERSION),
  runId: z.string(),
  shardId: z.number().int().nonnegative(),
  /** Fixed for the shard once chosen: a resumed attempt must form the same batches. */
  batchSize: z.number().int().positive(),
  batchSizeProbe: batchSizeProbeSchema.optional(),
  chunks: z.array(chunkRecordSchema),
  position: positionSchema.optional(),
  records: z.number().int().nonnegative(),
  predictions: z.number().int().nonnegative(),
  errors: z.number().int().nonnegative(),
  errorsByReason: z.record(z.string(), z.number().int().nonnegative()),
  /** Output column -> type, fixed when the first chunk was written (later chunks must match it). */
  columns: z.record(z.string(), z.string()),
  summaries: outputSummariesSchema,
  /** Per tabular input column the model reads: a numeric summary, for input drift (absent before it existed). */
  inputSummaries: outputSummariesSchema.optional(),
  /** Stage times of every attempt so far, up to the last checkpoint. */
  timings: timingsSchema,
  /** Attempts that wrote at least one chunk. */
  attempts: z.number().int().nonnegative(),
});
export type Checkpoint = z.infer<typeof checkpointSchema>;

/** Key of chunk k's error rows: next to the checkpoint, never under the published errors prefix. */
export function errorsPieceUri(layout: RunLayout, shardId: number, chunk: number): string {
  const base = layout.checkpointUri(shardId).replace(/\.json$/, '');
  return `${base}/errors-${String(chunk).padStart(4, '0')}.jsonl`;
}

export async function writeCheckpoint(
  store: ObjectStore,
  layout: RunLayout,
  checkpoint: Checkpoint,
): Promise<void> {
  await putJson(store, layout.checkpointUri(checkpoint.shardId), checkpoint);
}

export type CheckpointReading =
  | { readonly kind: 'none' }
  | { readonly kind: 'usable'; readonly checkpoint: Checkpoint }
  | { readonly kind: 'unusable'; readonly reason: string };

/**
 * The shard's checkpoint, checked: it must parse, name this run and shard, and every file it lists must still
 * exist with the recorded ETag. Anything else is `unusable` and the shard starts over (overwriting every key).
 */
export async function readCheckpoint(
  store: ObjectStore,
  layout: RunLayout,
  runId: string,
  shardId: number,
): Promise<CheckpointReading> {
  const uri = layout.checkpointUri(shardId);
  if (!(await store.tryHead(uri))) return { kind: 'none' };
  let raw: unknown;
  try {
    raw = await getJson(store, uri);
  } catch (err) {
    return {
      kind: 'unusable',
      reason: `not readable JSON (${err instanceof Error ? err.message : String(err)})`,
    };
  }
  const parsed = checkpointSchema.safeParse(raw);
  if (!parsed.success) return { kind: 'unusable', reason: `does not match the checkpoint schema` };
  const checkpoint = parsed.data;
  if (checkpoint.runId !== runId || checkpoint.shardId !== shardId) {
    return { kind: 'unusable', reason: `belongs to run ${checkpoint.runId} shard ${checkpoint.shardId}` };
  }
  for (const chunk of checkpoint.chunks) {
    for (const file of [chunk.output, chunk.errorsPiece]) {
      if (!file) continue;
      const info = await store.tryHead(file.uri);
      if (!info || info.etag !== file.etag) {
        return { kind: 'unusable', reason: `${file.uri} is missing or changed since the checkpoint` };
      }
    }
  }
  return { kind: 'usable', checkpoint };
}

/**
 * The shard's ranges still to read after `position`, each with its index in the shard. The range holding the
 * position is narrowed to start right after it; `after` is the offset its records must exceed (a filter the worker
 * applies too, so a parquet row group that holds the position is not read into a chunk twice).
 */
export async function remainingRanges(
  store: ObjectStore,
  format: InputFormat,
  ranges: readonly InputRange[],
  position: Position | undefined,
): Promise<{ readonly index: number; readonly range: InputRange; readonly after?: number }[]> {
  const all = ranges.map((range, index) => ({ index, range }));
  if (!position) return all;
  const out: { index: number; range: InputRange; after?: number }[] = [];
  for (const { index, range } of all) {
    if (index < position.range) continue;
    if (index > position.range) {
      out.push({ index, range });
      continue;
    }
    const narrowed = await rangeAfter(store, format, range, position.offset);
    if (narrowed) out.push({ index, range: narrowed, after: position.offset });
  }
  return out;
}

async function rangeAfter(
  store: ObjectStore,
  format: InputFormat,
  range: InputRange,
  offset: number,
): Promise<InputRange | undefined> {
  if (format === 'csv') return csvRangeAfter(range, offset);
  if (format !== 'parquet') {
    // Starting at offset + 1 lands inside the record's own line; the range rule drops that partial line, so the
    // first line read is the next one.
    const start = offset + 1;
    return start >= range.end ? undefined : { ...range, start };
  }
  const layout = await parquetLayout(store, range.uri, range.size);
  const groupEnd = range.rowGroupEnd ?? layout.rowGroups.length;
  let row = 0;
  for (let g = 0; g < groupEnd; g++) {
    const rows = layout.rowGroups[g]?.rows ?? 0;
    if (offset + 1 < row + rows) {
      // Group g holds the next row; its rows up to `offset` are filtered out by the worker.
      return { ...range, rowGroupStart: g, rowStart: row };
    }
    row += rows;
  }
  return undefined;
}

/**
 * CSV: a record may span lines (a quoted line break), so a range starting at offset + 1 would start after the
 * record's first '\n', inside it. Starting at the record's own first byte keeps its line (byte offset - 1 is its
 * line start's '\n'); the `after` filter then drops the record, which is already in a chunk (issue 17).
 */
function csvRangeAfter(range: InputRange, offset: number): InputRange | undefined {
  return offset >= range.end ? undefined : { ...range, start: offset };
}

// ---------------------------------------------------------------------------------------------------------------
// When a chunk closes

/** A monotonic clock in milliseconds (performance.now by default; tests inject their own). */
export type CheckpointClock = () => number;

export interface ChunkLimits {
  /** Input records (already rounded up to whole batches or windows). */
  readonly records: number;
  /** Estimated bytes of the chunk's rows. */
  readonly bytes: number;
  /** Milliseconds of work since the previous chunk closed (or the writer started). */
  readonly intervalMs: number;
}

export type ChunkCloseReason = 'records' | 'bytes' | 'interval';

/**
 * Whether the open chunk closes now, and why; undefined: it stays open. Called after each whole batch (or window)
 * is appended, so a chunk never ends inside one. `elapsedMs` is the time since the previous chunk closed.
 */
export function chunkCloseReason(
  chunk: { readonly records: number; readonly bytes: number },
  elapsedMs: number,
  limits: ChunkLimits,
): ChunkCloseReason | undefined {
  if (chunk.records === 0) return undefined;
  if (chunk.records >= limits.records) return 'records';
  if (chunk.bytes >= limits.bytes) return 'bytes';
  if (elapsedMs >= limits.intervalMs) return 'interval';
  return undefined;
}
