/**
 * The records of a shard as one stream of fixed-size batches, across its ranges (a shard of many small objects still
 * gets full batches), each record tagged with the index of its range. Batches are cut by count from the first
 * record read, so a stream started at a batch boundary forms the same batches as an uninterrupted one.
 *
 * `files` inputs (one object per record) are read FILES_CONCURRENCY objects at a time (readFileRanges): one request
 * per record means a sequential reader is bound by request latency (tens of objects a second from S3), not by
 * bandwidth. Other formats read their ranges one after the other: each range is a stream of many records.
 */
import { readFileRanges, readRange, type ReadOptions, type SourceRecord } from '../formats/index.js';
import type { InputRange } from '../runs/types.js';
import type { InputFormat } from '../spec/schema.js';
import type { ObjectStore } from '../storage/object-store.js';

export interface ShardBatch {
  readonly records: SourceRecord[];
  /** Range index (in the shard) of each record. */
  readonly ranges: number[];
}

export interface StreamRange {
  readonly index: number;
  readonly range: InputRange;
  /** Skip records at or before this offset (resuming inside a range). */
  readonly after?: number;
}

/**
 * `files` objects read at once (and so held ahead of the pipeline at most): enough to hide S3's per-request latency
 * behind a batch, few enough that memory stays a few objects per batch (each object is at most MAX_FILE_BYTES).
 */
export const FILES_CONCURRENCY = 16;

export class RecordStream {
  private current: { iterator: AsyncIterator<SourceRecord[]>; index: number; after?: number } | undefined;
  /** `files`: one reader over every range, with the range index of each record it will yield, in order. */
  private files: { iterator: AsyncIterator<SourceRecord[]>; indexes: number[]; next: number } | undefined;
  private next = 0;
  private readonly buffer: SourceRecord[] = [];
  private readonly bufferRanges: number[] = [];
  private exhausted = false;

  /**
   * @param readOptions passed to each range's reader (columns, and format-specific options such as CSV's numeric
   *   columns); the reader's batch size is the stream's read unit, not the batch size handed out.
   */
  constructor(
    private readonly store: ObjectStore,
    private readonly format: InputFormat,
    private readonly ranges: readonly StreamRange[],
    private readonly readOptions: ReadOptions,
  ) {}

  /** The next `n` records (fewer only at the end of the shard); undefined once the shard is exhausted. */
  async take(n: number): Promise<ShardBatch | undefined> {
    await this.fill(n);
    if (this.buffer.length === 0) return undefined;
    const count = Math.min(n, this.buffer.length);
    return { records: this.buffer.splice(0, count), ranges: this.bufferRanges.splice(0, count) };
  }

  /** Up to `n` records from the front of the stream without consuming them (the batch-size probe's sample). */
  async peek(n: number): Promise<readonly SourceRecord[]> {
    await this.fill(n);
    return this.buffer.slice(0, n);
  }

  private async fill(n: number): Promise<void> {
    if (this.format === 'files') return this.fillFiles(n);
    while (this.buffer.length < n && !this.exhausted) {
      if (!this.current) {
        const next = this.ranges[this.next++];
        if (!next) {
          this.exhausted = true;
          return;
        }
        const iterable = readRange(this.store, this.format, next.range, this.readOptions);
        this.current = {
          iterator: iterable[Symbol.asyncIterator](),
          index: next.index,
          ...(next.after !== undefined ? { after: next.after } : {}),
        };
      }
      const { iterator, index, after } = this.current;
      const step = await iterator.next();
      if (step.done) {
        this.current = undefined;
        continue;
      }
      for (const record of step.value) {
        if (after !== undefined && record.offset <= after) continue;
        this.buffer.push(record);
        this.bufferRanges.push(index);
      }
    }
  }

  private async fillFiles(n: number): Promise<void> {
    if (!this.files && !this.exhausted) {
      // A range owns its object's record only when it starts at byte 0 (a resumed range starts after it).
      const owned = this.ranges.filter((r) => r.range.start === 0);
      const reader = readFileRanges(
        this.store,
        owned.map((r) => r.range),
        // One record per step: the stream takes records as they arrive, while the next ones are being fetched.
        { ...this.readOptions, batchSize: 1, concurrency: FILES_CONCURRENCY },
      );
      this.files = { iterator: reader[Symbol.asyncIterator](), indexes: owned.map((r) => r.index), next: 0 };
    }
    const files = this.files;
    while (files && this.buffer.length < n && !this.exhausted) {
      const step = await files.iterator.next();
      if (step.done) {
        this.exhausted = true;
        return;
      }
      for (const record of step.value) {
        this.buffer.push(record);
        this.bufferRanges.push(files.indexes[files.next++]!);
      }
    }
  }

  /** Stops reading (closes the open range's reader). */
  async close(): Promise<void> {
    const current = this.current;
    const files = this.files;
    this.current = undefined;
    this.files = undefined;
    this.exhausted = true;
    await current?.iterator.return?.();
    await files?.iterator.return?.();
  }
}
