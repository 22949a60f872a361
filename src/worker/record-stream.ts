/**
 * The records of a shard as one stream of fixed-size batches, across its ranges (a shard of many small objects still
 * gets full batches), each record tagged with the index of its range. Batches are cut by count from the first
 * record read, so a stream started at a batch boundary forms the same batches as an uninterrupted one.
 */
import { readRange, type ReadOptions, type SourceRecord } from '../formats/index.js';
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

export class RecordStream {
  private current: { iterator: AsyncIterator<SourceRecord[]>; index: number; after?: number } | undefined;
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

  /** Stops reading (closes the open range's reader). */
  async close(): Promise<void> {
    const current = this.current;
    this.current = undefined;
    this.exhausted = true;
    await current?.iterator.return?.();
  }
}
