/**
 * A shard's CSV records for a tabular model as columnar batches (docs/adr/0019-tabular-data-path.md): the same
 * batches RecordStream forms (cut by count from the first record, across ranges, error rows in place), with the
 * model's tensor values and the input summaries' values as typed arrays beside the records, decoded on threads.
 *
 * Each range's bytes are read here (pinned, through the ObjectStore) and cut into blocks of about `blockBytes`,
 * each ending after a line break; the blocks are decoded on the decode threads (decode-thread.ts) and merged in the
 * order they were cut, so the records come out in input order whatever thread decoded them. Blocks keep the range
 * rule (a block owns the lines starting in it), so the records are exactly those a single reader yields.
 *
 * A block cut at a line break inside a quoted field (a record with a quoted line break) ends inside that record: its
 * decoder reports where the record starts, the blocks read ahead of it are dropped, and cutting starts again at
 * that record, the next cut past the line break that fooled the previous one (so a record with many quoted breaks
 * takes a few tries, each longer). A record crossing the range's end this way fails with the record path's
 * QuotedBreakAtBoundaryError, from the thread's line splitter. A range whose lines outgrow the block limit is
 * decoded on this thread by the record path's line reader (visitLines), which bounds over-long lines.
 *
 * With `threads: 0` every range is decoded here, on the main thread, by that same line reader.
 *
 * Parquet ranges (ColumnarPlan.format 'parquet') are read here, a row group at a time, column by column
 * (src/formats/parquet-columnar.ts), into the same blocks.
 */
import os from 'node:os';
import type * as ort from 'onnxruntime-node';
import {
  ColumnarBlockBuilder,
  inputColumnsOf,
  type BlockSpan,
  type ColumnarBlock,
  type ColumnarPlan,
} from '../formats/csv-columnar.js';
import { CSV_LINES, loadHeader, valuesFactory, type CsvHeader } from '../formats/csv.js';
import { readParquetColumnar, type NativeParquetOptions } from '../formats/parquet-columnar.js';
import { visitLines } from '../formats/lines.js';
import type { DecodedRecord, SourceRecord } from '../formats/records.js';
import { allocate, tensorOf } from '../inference/dtypes.js';
import type { ErrorReason } from '../runs/types.js';
import type { ObjectStore } from '../storage/object-store.js';
import type { ProbeSample } from './batch-size.js';
import { DecodePool, type InputCounter } from './decode-thread.js';
import type { ShardBatch, StreamRange } from './record-stream.js';

/** The columns of a columnar batch, row i for record i of the batch. */
export interface ColumnarPart {
  /** Per model input (ColumnarPlan.entries): records x columns values; rows of error records are zeros. */
  readonly entries: readonly (Float32Array | Float64Array)[];
  /** Per input column (inputColumnsOf): the value the writer's input summaries count. */
  readonly inputs: readonly Float64Array[];
  /**
   * Per identity column (ColumnarPlan.identity), by name: its value per record (null for an error record). The
   * writer appends these columns as they are; a record's `values` object is made from them only when read.
   */
  readonly identity: ReadonlyMap<string, readonly unknown[]>;
}

/**
 * A decoded record of a columnar batch. Its identity values stay in the batch's columns: the object they would make
 * (`values`) is built when something reads it (a processor, an error row's id), not for each of a shard's records.
 */
class ColumnarRecord implements DecodedRecord {
  // Private fields (#): a record spread or serialized shows its source and offset, not the batch's columns.
  readonly #columns: IdentityColumns;
  readonly #row: number;
  #values: Readonly<Record<string, unknown>> | undefined;

  constructor(
    readonly source: string,
    readonly offset: number,
    columns: IdentityColumns,
    row: number,
  ) {
    this.#columns = columns;
    this.#row = row;
  }

  get values(): Readonly<Record<string, unknown>> {
    this.#values ??= this.#columns.valuesOf(this.#row);
    return this.#values;
  }
}

/** The identity columns of one batch, and how a record's values object is made from them. */
class IdentityColumns {
  constructor(
    readonly columns: readonly unknown[][],
    private readonly make: (fields: readonly unknown[]) => Record<string, unknown>,
  ) {}

  valuesOf(row: number): Record<string, unknown> {
    return this.make(this.columns.map((column) => column[row]));
  }
}

export interface ColumnarShardBatch extends ShardBatch {
  readonly columnar: ColumnarPart;
}

export function isColumnar(batch: ShardBatch): batch is ColumnarShardBatch {
  return 'columnar' in batch;
}

export interface ColumnarStreamOptions {
  /** Decode threads; 0 decodes on the calling thread. */
  readonly threads: number;
  /** Bytes per block handed to a thread. @default DEFAULT_BLOCK_BYTES */
  readonly blockBytes?: number;
  /**
   * Decode threads lent by the caller (DecodePools), used instead of starting `threads` new ones; `close` leaves
   * them running. @default threads of its own, ended by `close`
   */
  readonly pool?: DecodePool;
  /**
   * A decode thread, lent by the caller, that counts the input summaries when no thread decodes (Parquet, decoded on
   * this thread): `inputCounter`. @default none: without decode threads the writer counts on this thread
   */
  readonly counting?: DecodePool;
  /** Reads Parquet files natively where it can (readParquetColumnar). @default none: hyparquet reads them */
  readonly nativeParquet?: NativeParquetOptions;
}

/** About 4,000 demo records: enough work per message, small enough to spread a shard over every thread. */
export const DEFAULT_BLOCK_BYTES = 1024 * 1024;
/** Records per block when decoding on this thread. */
const SEQUENTIAL_ROWS = 4096;
const NEWLINE = 0x0a;
const TAIL_WINDOW = 64 * 1024;
const TAIL_WINDOW_MAX = 8 * 1024 * 1024;

/** A block on its way (an async generator would await a promise it yields: this one is wrapped). */
interface Ahead {
  readonly pending: Promise<Piece>;
}

interface Piece {
  /** Position of the range in the stream's list. */
  readonly slot: number;
  /** The range's index in the shard. */
  readonly index: number;
  readonly source: string;
  readonly after?: number;
  readonly block: ColumnarBlock;
  /** Where the block's bytes end (after its last line break), when it was cut by `blocks`. */
  readonly cutAt?: number;
  /** The decode thread that decoded it; undefined when decoded on this thread. */
  readonly thread?: number;
  /** Next record to hand out, and the first error row at or after it. */
  cursor: number;
  errorAt: number;
}

export class ColumnarStream {
  private readonly pool: DecodePool | undefined;
  private readonly counting: DecodePool | undefined;
  private readonly nativeParquet: NativeParquetOptions | undefined;
  /** Whether `close` ends the pool (it was not lent). */
  private readonly ownsPool: boolean;
  private readonly blockBytes: number;
  /** Blocks decoded ahead of the consumer: every thread busy, one more queued. */
  private readonly maxAhead: number;
  private readonly headers = new Map<string, Promise<CsvHeader | undefined>>();
  private readonly builders = new Map<string, ColumnarBlockBuilder>();
  private producer: AsyncGenerator<Ahead, void, undefined> | undefined;
  private ahead: Promise<Piece>[] = [];
  private readonly pieces: Piece[] = [];
  private buffered = 0;
  /** Blocks decoded, and error rows per decode thread (logged with the shard; tests check the spread). */
  readonly stats: {
    blocks: number;
    restarts: number;
    readonly errorRowsByThread: number[];
    /** Parquet ranges read, by reader (readParquetColumnar). */
    readonly parquetRanges: { duckdb: number; hyparquet: number };
  };
  private readonly identityValues: (fields: readonly unknown[]) => Record<string, unknown>;
  private readonly widths: number[];

  constructor(
    private readonly store: ObjectStore,
    private readonly ranges: readonly StreamRange[],
    private readonly plan: ColumnarPlan,
    options: ColumnarStreamOptions,
  ) {
    this.ownsPool = options.pool === undefined;
    this.nativeParquet = options.nativeParquet;
    this.counting = options.counting;
    this.pool = options.pool ?? (options.threads > 0 ? DecodePool.start(options.threads, plan) : undefined);
    this.blockBytes = Math.max(1, Math.floor(options.blockBytes ?? DEFAULT_BLOCK_BYTES));
    this.maxAhead = Math.max(2, 2 * options.threads + 1);
    this.identityValues = valuesFactory(plan.identity);
    this.widths = plan.entries.map((e) => e.from.columns.length);
    this.producer = this.pieceSource(0);
    this.stats = {
      blocks: 0,
      restarts: 0,
      errorRowsByThread: new Array<number>(this.pool?.threads ?? 0).fill(0),
      parquetRanges: { duckdb: 0, hyparquet: 0 },
    };
  }

  /** Where the writer counts this stream's input columns: the first decode thread; undefined without threads. */
  get inputCounter(): InputCounter | undefined {
    return (this.pool ?? this.counting)?.counter;
  }

  /** Decode threads in use (0: decoding on this thread). */
  get threads(): number {
    return this.pool?.threads ?? 0;
  }

  /** The next `n` records (fewer only at the end of the shard); undefined once the shard is exhausted. */
  async take(n: number): Promise<ColumnarShardBatch | undefined> {
    await this.fill(n);
    if (this.buffered === 0) return undefined;
    return this.cut(Math.min(n, this.buffered), true);
  }

  /** Up to `n` records from the front of the stream, which stay in the stream. */
  async peek(n: number): Promise<ColumnarShardBatch | undefined> {
    await this.fill(n);
    if (this.buffered === 0) return undefined;
    return this.cut(Math.min(n, this.buffered), false);
  }

  /** A batch's model input: the feeds of its records without an error, and its error rows. */
  prepare(batch: ColumnarShardBatch): {
    readonly feeds: Record<string, ort.Tensor>;
    readonly included: readonly number[];
    readonly errors: Map<number, { reason: ErrorReason; message: string }>;
  } {
    const errors = new Map<number, { reason: ErrorReason; message: string }>();
    const included: number[] = [];
    batch.records.forEach((record, i) => {
      if (record.error) errors.set(i, { reason: record.error.reason, message: record.error.message });
      else included.push(i);
    });
    const feeds = included.length > 0 ? this.feedsOf(batch, included, false) : {};
    return { feeds, included, errors };
  }

  /** The batch-size probe's sample: the records of `batch` without an error, as the pipeline feeds them. */
  sample(batch: ColumnarShardBatch | undefined): ProbeSample {
    const included = batch ? batch.records.flatMap((r, i) => (r.error ? [] : [i])) : [];
    return {
      rows: included.length,
      build: (start, count) => {
        const rows = included.slice(start, start + count);
        // Copies: the probe may move a sample's feeds to the inference thread and build the same rows again.
        const feeds = batch && rows.length > 0 ? this.feedsOf(batch, rows, true) : {};
        return Promise.resolve({ feeds, rows: rows.length });
      },
    };
  }

  /** Stops reading and ends the decode threads. */
  async close(): Promise<void> {
    const producer = this.producer;
    this.producer = undefined;
    this.ahead = [];
    await producer?.return(undefined).catch(() => undefined);
    if (this.ownsPool) await this.pool?.close();
  }

  // -------------------------------------------------------------------------------------------------------------

  private feedsOf(
    batch: ColumnarShardBatch,
    rows: readonly number[],
    copy: boolean,
  ): Record<string, ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = {};
    const n = batch.records.length;
    this.plan.entries.forEach((entry, e) => {
      const width = this.widths[e]!;
      const values = batch.columnar.entries[e]!;
      const own =
        (entry.dtype === 'float32' && values instanceof Float32Array) ||
        (entry.dtype === 'float64' && values instanceof Float64Array);
      // Every record in: the batch's own array is the tensor (moved to the inference thread, not copied).
      if (!copy && own && rows.length === n) {
        feeds[entry.tensor] = tensorOf(entry.dtype, values, [n, width]);
        return;
      }
      const out = allocate(entry.dtype, rows.length * width);
      for (let r = 0; r < rows.length; r++) {
        const from = rows[r]! * width;
        if (out instanceof BigInt64Array) {
          for (let c = 0; c < width; c++) out[r * width + c] = BigInt(values[from + c]!);
        } else {
          (out as Float32Array).set(values.subarray(from, from + width), r * width);
        }
      }
      feeds[entry.tensor] = tensorOf(entry.dtype, out, [rows.length, width]);
    });
    return feeds;
  }

  private async fill(n: number): Promise<void> {
    while (this.buffered < n) {
      const piece = await this.nextPiece();
      if (!piece) return;
      const { block, after } = piece;
      this.stats.blocks++;
      if (piece.thread !== undefined) this.stats.errorRowsByThread[piece.thread]! += block.errors.length;
      // A resumed range: the records up to the checkpoint's offset were written by an earlier attempt.
      if (after !== undefined) {
        while (piece.cursor < block.count && block.offsets[piece.cursor]! <= after) piece.cursor++;
        while (piece.errorAt < block.errors.length && block.errors[piece.errorAt]!.index < piece.cursor)
          piece.errorAt++;
      }
      const left = block.count - piece.cursor;
      if (left > 0) {
        this.pieces.push(piece);
        this.buffered += left;
      }
    }
  }

  /** The next decoded block, in input order. */
  private async nextPiece(): Promise<Piece | undefined> {
    while (this.ahead.length < this.maxAhead && this.producer) {
      const step = await this.producer.next();
      if (step.done) {
        this.producer = undefined;
        break;
      }
      // Settled below, or dropped when a restart discards what was read ahead: never an unhandled rejection.
      step.value.pending.catch(() => undefined);
      this.ahead.push(step.value.pending);
    }
    const next = this.ahead.shift();
    if (!next) return undefined;
    const piece = await next;
    const incompleteAt = piece.block.incompleteAt;
    if (incompleteAt !== undefined) {
      // The block ended inside a record (a quoted line break): what was cut after it started inside that record.
      this.stats.restarts++;
      this.ahead = [];
      await this.producer?.return(undefined);
      this.producer = this.pieceSource(piece.slot, { at: incompleteAt, after: piece.cutAt ?? incompleteAt });
    }
    return piece;
  }

  /**
   * Blocks of the ranges from `first` on. `restart`: range `first` goes on from the line at `at`, its first block
   * cut at a line break after `after` (past the one that ended the previous block inside a record).
   */
  private async *pieceSource(
    first: number,
    restart?: { readonly at: number; readonly after: number },
  ): AsyncGenerator<Ahead, void, undefined> {
    for (let slot = first; slot < this.ranges.length; slot++) {
      const { range } = this.ranges[slot]!;
      if (this.plan.format === 'parquet') {
        const blocks = readParquetColumnar(this.store, range, this.plan, this.nativeParquet, (reader) => {
          this.stats.parquetRanges[reader]++;
        });
        for await (const block of blocks) {
          yield { pending: Promise.resolve(this.piece(slot, block)) };
        }
        continue;
      }
      if (range.end <= range.start || range.start >= range.size) continue;
      const header = await this.header(range.uri, range.size);
      if (!header) continue;
      // Made here first: a column missing from the header fails the shard on this thread (InputError).
      const builder = this.builder(range.uri, header);
      const from = slot === first && restart ? restart : { at: range.start, after: 0 };
      if (!this.pool) yield* this.sequential(slot, from.at, builder);
      else yield* this.blocks(slot, header, builder, this.pool, from);
    }
  }

  /** A range from `start` decoded on this thread by the line reader of the record path. */
  private async *sequential(
    slot: number,
    start: number,
    builder: ColumnarBlockBuilder,
  ): AsyncGenerator<Ahead, void, undefined> {
    const { range } = this.ranges[slot]!;
    const from = { ...range, start };
    for await (const _ of visitLines(this.store, from, builder.visit, CSV_LINES)) {
      if (builder.count >= SEQUENTIAL_ROWS)
        yield { pending: Promise.resolve(this.piece(slot, builder.take())) };
    }
    if (builder.count > 0) yield { pending: Promise.resolve(this.piece(slot, builder.take())) };
  }

  /** A range cut into blocks after line breaks, each decoded on a thread. */
  private async *blocks(
    slot: number,
    header: CsvHeader,
    builder: ColumnarBlockBuilder,
    pool: DecodePool,
    from: { readonly at: number; readonly after: number },
  ): AsyncGenerator<Ahead, void, undefined> {
    const { uri, end, size } = this.ranges[slot]!.range;
    const start = from.at;
    const readStart = start > 0 ? start - 1 : 0;
    // A block owns the lines starting in [owned, cut); its bytes start one byte early (the line break before it).
    let owned = start;
    let blockRead = readStart;
    let parts: Buffer[] = [];
    let pos = readStart;
    const cutFrom = (from: number): number => Math.max(Math.min(from + this.blockBytes, end), 1) - 1;
    let searchFrom = Math.max(cutFrom(owned), from.after);
    // Lines this long without a break are the line reader's to bound (over-long line errors): not buffered here.
    const limit = Math.max(8 * this.blockBytes, 8 * 1024 * 1024);
    let tooLong = false;
    const decode = (bytes: Uint8Array, span: BlockSpan, cutAt: number): Promise<Piece> =>
      pool
        .decode(uri, header, bytes, span)
        .then(({ block, thread }) => ({ ...this.piece(slot, block, thread), cutAt }));
    for await (const chunk of bytesFrom(this.store, uri, readStart, end, size)) {
      const chunkStart = pos;
      pos += chunk.length;
      parts.push(chunk);
      while (searchFrom < pos) {
        const nl = chunk.indexOf(NEWLINE, Math.max(searchFrom, chunkStart) - chunkStart);
        if (nl < 0) {
          searchFrom = pos;
          break;
        }
        const cut = chunkStart + nl + 1;
        const final = cut >= end;
        const bytes = gather(parts, cut - blockRead);
        yield {
          pending: decode(
            bytes,
            {
              start: owned,
              end: final ? end : cut,
              eof: false,
              boundaryFollows: final ? end < size : true,
            },
            cut,
          ),
        };
        if (final) return;
        // The next block starts after this line break, and its bytes with it (the break is in this chunk).
        parts = [chunk.subarray(cut - 1 - chunkStart)];
        owned = cut;
        blockRead = cut - 1;
        searchFrom = cutFrom(owned);
      }
      if (pos - blockRead > limit) {
        tooLong = true;
        break;
      }
    }
    if (tooLong) {
      yield* this.sequential(slot, owned, builder);
      return;
    }
    // The object ended before a line break at or after the range's end: the last block runs to its end.
    if (pos > blockRead && owned < end) {
      const bytes = gather(parts, pos - blockRead);
      yield { pending: decode(bytes, { start: owned, end, eof: true, boundaryFollows: end < size }, pos) };
    }
  }

  private piece(slot: number, block: ColumnarBlock, thread?: number): Piece {
    const { index, range, after } = this.ranges[slot]!;
    return {
      slot,
      ...(thread !== undefined ? { thread } : {}),
      index,
      source: range.uri,
      ...(after !== undefined ? { after } : {}),
      block,
      cursor: 0,
      errorAt: 0,
    };
  }

  private header(uri: string, size: number): Promise<CsvHeader | undefined> {
    let header = this.headers.get(uri);
    if (!header) {
      header = loadHeader(this.store, uri, size);
      this.headers.set(uri, header);
    }
    return header;
  }

  private builder(uri: string, header: CsvHeader): ColumnarBlockBuilder {
    let builder = this.builders.get(uri);
    if (!builder) {
      builder = new ColumnarBlockBuilder(this.plan, uri, header);
      this.builders.set(uri, builder);
    }
    return builder;
  }

  /** The next `n` buffered records as a batch; `consume` takes them out of the stream. */
  private cut(n: number, consume: boolean): ColumnarShardBatch {
    const records = new Array<SourceRecord>(n);
    const ranges = new Array<number>(n);
    const entries = this.plan.entries.map((entry, e) =>
      entry.dtype === 'float32'
        ? new Float32Array(n * this.widths[e]!)
        : new Float64Array(n * this.widths[e]!),
    );
    const inputs = inputColumnsOf(this.plan).map(() => new Float64Array(n));
    const identity = new IdentityColumns(
      this.plan.identity.map(() => new Array<unknown>(n)),
      this.identityValues,
    );
    let filled = 0;
    let p = 0;
    while (filled < n) {
      const piece = this.pieces[p]!;
      const { block, source, index } = piece;
      const from = piece.cursor;
      const m = Math.min(block.count - from, n - filled);
      entries.forEach((values, e) => {
        const width = this.widths[e]!;
        values.set(block.entries[e]!.subarray(from * width, (from + m) * width), filled * width);
      });
      inputs.forEach((values, k) => values.set(block.inputs[k]!.subarray(from, from + m), filled));
      // An error record's slot holds null (the block has no value for it); the writer skips it.
      identity.columns.forEach((values, k) => {
        const column = block.identity[k]!;
        for (let j = 0; j < m; j++) values[filled + j] = column[from + j] ?? null;
      });
      let errorAt = piece.errorAt;
      for (let i = from; i < from + m; i++) {
        const row = filled + i - from;
        ranges[row] = index;
        const offset = block.offsets[i]!;
        const error = block.errors[errorAt];
        if (error?.index === i) {
          errorAt++;
          records[row] = {
            source,
            offset,
            error: { reason: error.reason, message: error.message },
            ...(error.known ? { partial: error.known } : {}),
          };
          continue;
        }
        records[row] = new ColumnarRecord(source, offset, identity, row);
      }
      filled += m;
      if (consume) {
        piece.cursor = from + m;
        piece.errorAt = errorAt;
        if (piece.cursor >= block.count) this.pieces.shift();
        this.buffered -= m;
      } else {
        p++;
      }
    }
    const columns = new Map(this.plan.identity.map((name, k) => [name, identity.columns[k]!] as const));
    return { records, ranges, columnar: { entries, inputs, identity: columns } };
  }
}

/** A range's bytes from `from`: streamed to `end`, then in growing windows to the end of the object. */
async function* bytesFrom(
  store: ObjectStore,
  uri: string,
  from: number,
  end: number,
  size: number,
): AsyncGenerator<Buffer, void, undefined> {
  const mainEnd = Math.min(end, size);
  const stream = await store.getStream(uri, { start: from, end: mainEnd });
  try {
    for await (const chunk of stream as AsyncIterable<unknown>) yield toBuffer(chunk);
  } finally {
    stream.destroy();
  }
  let window = TAIL_WINDOW;
  let pos = mainEnd;
  while (pos < size) {
    const bytes = await store.get(uri, { start: pos, end: Math.min(pos + window, size) });
    if (bytes.length === 0) return;
    yield toBuffer(bytes);
    pos += bytes.length;
    window = Math.min(window * 2, TAIL_WINDOW_MAX);
  }
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new TypeError(`expected a byte stream, got ${typeof chunk} chunks`);
}

/**
 * Decode threads by default: one per core the process may use (`cores`; the main thread mostly waits on them), at
 * most one per block of the shard, and none for a shard of one block: a thread costs its start (it loads the
 * worker's modules), more than decoding a block on the main thread.
 */
export function defaultDecodeThreads(
  ranges: readonly StreamRange[],
  blockBytes: number = DEFAULT_BLOCK_BYTES,
  cores: number = os.availableParallelism(),
): number {
  const bytes = ranges.reduce((n, r) => n + Math.max(0, r.range.end - r.range.start), 0);
  const blocks = Math.ceil(bytes / blockBytes);
  return blocks <= 1 ? 0 : Math.min(8, Math.max(1, cores), blocks);
}

/**
 * The first `length` bytes of `parts` in one new buffer of its own (it is moved to a decode thread), copied once:
 * no intermediate concatenation.
 */
function gather(parts: readonly Uint8Array[], length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    if (at >= length) break;
    const take = Math.min(part.length, length - at);
    bytes.set(take === part.length ? part : part.subarray(0, take), at);
    at += take;
  }
  return bytes;
}
