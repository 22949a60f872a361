/**
 * Writes a shard's outputs as it goes: prediction rows into Parquet chunks (DuckDB's writer, encoding off the
 * JavaScript thread; jsonl and csv chunks with encodeChunk), error rows into per-chunk pieces, and a checkpoint after each chunk (see checkpoint.ts for
 * the protocol and why it loses and duplicates nothing). Memory is bounded by one chunk being filled plus one being
 * sealed, whatever the shard size.
 *
 * Output columns: the id, passthrough columns, the predictions, then lineage (`_shard`, `_source`, `_offset`).
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { SourceRecord } from '../formats/records.js';
import { encodeChunk } from '../formats/output.js';
import { columnPlucker, type ColumnPlucker } from '../formats/pluck.js';
import { OUTPUT_FILES } from '../formats/output-files.js';
import { ParquetChunkWriter, type ColumnSpec } from '../formats/parquet-chunk-writer.js';
import type { OutputColumnType } from '../formats/parquet-write.js';
import type { RunLayout } from '../runs/layout.js';
import {
  createAccumulator,
  mergeSummaries,
  NumericAccumulator,
  summaryKindFor,
  type ColumnAccumulator,
  type OutputSummaries,
} from '../runs/stats.js';
import { boundText } from '../runtime/bounded-text.js';
import type { BatchSizeProbe, ErrorReason, ErrorRow, OutputFile } from '../runs/types.js';
import { errorRowWithId } from '../runs/error-rows.js';
import type { InputCounter } from './decode-thread.js';
import { DEFAULT_CHECKPOINT_RECORDS, type JobSpec } from '../spec/schema.js';
import type { ObjectStore } from '../storage/object-store.js';
import {
  CHECKPOINT_VERSION,
  chunkCloseReason,
  errorsPieceUri,
  writeCheckpoint,
  type Checkpoint,
  type CheckpointClock,
  type ChunkRecord,
  type Position,
  type StageTimings,
} from './checkpoint.js';
import { stagingPath } from './staging.js';

/** Input records per chunk (rounded up to whole batches), unless the spec's run.checkpoint.records says otherwise. */
export const DEFAULT_CHUNK_RECORDS = DEFAULT_CHECKPOINT_RECORDS;
/** A chunk is also sealed once its rows are estimated to take this much memory (wide outputs: embeddings). */
export const DEFAULT_CHUNK_BYTES = 256 * 1024 * 1024;

/** One processed batch, in input order. */
export interface BatchRows {
  readonly records: readonly SourceRecord[];
  /** Range index of each record. */
  readonly ranges: readonly number[];
  /** Per record: its row in `predictions`, or -1 when the record is an error row (reason in `errors`). */
  readonly rowOf: Int32Array;
  /** One array per prediction column, `predictionCount` values each, in record order. */
  readonly predictions: readonly (readonly unknown[])[];
  readonly predictionCount: number;
  readonly errors: ReadonlyMap<number, { readonly reason: ErrorReason; readonly message: string }>;
  /**
   * A columnar batch (src/worker/columnar-stream.ts): per tabular input column, per record, the value the input
   * summaries count (the records then carry only their identity values).
   */
  readonly inputs?: readonly Float64Array[];
  /**
   * A columnar batch's identity columns by name, a value per record: read from here instead of each record's
   * `values` (which a columnar record builds only when asked).
   */
  readonly identity?: ReadonlyMap<string, readonly unknown[]>;
}

export interface ShardWriterOptions {
  readonly store: ObjectStore;
  readonly layout: RunLayout;
  readonly runId: string;
  readonly shardId: number;
  readonly spec: JobSpec;
  readonly predictionColumns: readonly { readonly name: string; readonly type: OutputColumnType }[];
  /** Prediction columns that are class labels (summarised as categories whatever their type). */
  readonly labelColumns: ReadonlySet<string>;
  /** URIs of the shard's input objects: every value `_source` can take. */
  readonly sources: readonly string[];
  readonly batchSize: number;
  /** Records per `appendBatch` call (a batch, or a window of batches): chunks are whole units. */
  readonly appendUnit?: number;
  readonly batchSizeProbe?: BatchSizeProbe;
  /** Overrides the spec's run.checkpoint.records (the worker's BATCH_INFER_CHUNK_RECORDS). */
  readonly chunkRecords?: number;
  readonly chunkBytes?: number;
  /** Measures run.checkpoint.seconds between chunks. @default performance.now */
  readonly clock?: CheckpointClock;
  /** Where Parquet files are staged before upload. */
  readonly tmpDir: string;
  /** Stage timings so far (earlier attempts included), stored with each checkpoint. */
  readonly timings: () => StageTimings;
  /** The state to continue from (a resumed shard). */
  readonly resume?: Checkpoint;
  /** Called as a chunk with records is sealed (the challenger's writer seals in step: docs/adr/0020). */
  readonly onSeal?: () => void;
  /**
   * Summarise the model's tabular input columns per chunk (for input drift). The challenger's writer does not: its
   * inputs are the champion's, summarised by the champion's writer. @default true
   */
  readonly inputSummaries?: boolean;
  /**
   * Where columnar batches' input columns are counted (a decode thread: DecodePool.counter), instead of this thread.
   * @default this thread
   */
  readonly inputCounter?: InputCounter;
}

export interface FinishedShard {
  readonly checkpoint: Checkpoint;
  readonly outputs: OutputFile[];
  readonly errorsFile?: OutputFile;
}

interface IdentitySlot {
  readonly name: string;
  type: OutputColumnType | undefined;
}

interface OpenChunk {
  readonly index: number;
  records: number;
  predictions: number;
  bytes: number;
  readonly errorLines: string[];
  readonly errorsByReason: Record<string, number>;
  /** Parquet output: the chunk's rows, in DuckDB. */
  parquet: Promise<ParquetChunkWriter> | undefined;
  /** jsonl / csv output: the chunk's columns, encoded when the chunk is sealed. */
  text: unknown[][] | undefined;
  readonly accumulators: (ColumnAccumulator | undefined)[];
  /** One per tabular input column (`inputColumns`): the model's input distribution, for input drift. */
  readonly inputAccumulators: NumericAccumulator[];
  /** The chunk's key at the `inputCounter`, once a columnar batch was counted there. */
  countedKey: string | undefined;
  position: Position | undefined;
}

export class ShardWriter {
  private done: Checkpoint;
  private current: OpenChunk | undefined;
  /** The seal in progress (one at a time, in chunk order). */
  private sealing: Promise<void> = Promise.resolve();
  private wroteThisAttempt = false;
  /** Index of the next chunk to open: ahead of `done.chunks` while a seal is in progress. */
  private nextIndex: number;
  private readonly identity: IdentitySlot[];
  private readonly chunkRecords: number;
  private readonly chunkBytes: number;
  /** run.checkpoint.seconds in milliseconds, measured by `clock` from `chunkSince`. */
  private readonly chunkIntervalMs: number;
  private readonly clock: CheckpointClock;
  /** When the previous chunk closed (or the writer started): the open chunk's work is counted from here. */
  private chunkSince: number;
  /** The tabular input columns the model reads, summarised per chunk like numeric outputs. */
  private readonly inputColumns: readonly string[];
  /** Reads the input columns of a record (pluck.ts), into `inputRow`. */
  private readonly pluckInputs: ColumnPlucker;
  private readonly inputRow: unknown[];

  constructor(private readonly options: ShardWriterOptions) {
    const { spec, resume } = options;
    const declared = spec.output.schema ?? {};
    const identityNames = [
      ...(spec.input.id ? [spec.input.id] : []),
      ...spec.output.passthrough.filter((c) => c !== spec.input.id),
    ];
    // Types fixed by an earlier attempt win: every chunk of a shard has the same schema.
    this.identity = identityNames.map((name) => ({
      name,
      type: (resume?.columns[name] as OutputColumnType | undefined) ?? declared[name],
    }));
    const unit = options.appendUnit ?? options.batchSize;
    const units = Math.max(1, Math.ceil((options.chunkRecords ?? spec.run.checkpoint.records) / unit));
    // Whole batches (windows) per chunk, so chunk boundaries (and resume points) are batch boundaries.
    this.chunkRecords = units * unit;
    this.chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.chunkIntervalMs = spec.run.checkpoint.seconds * 1000;
    this.clock = options.clock ?? (() => performance.now());
    this.chunkSince = this.clock();
    this.inputColumns = options.inputSummaries === false ? [] : tabularInputColumns(spec);
    this.pluckInputs = columnPlucker(this.inputColumns);
    this.inputRow = new Array<unknown>(this.inputColumns.length);
    this.done = resume ?? {
      version: CHECKPOINT_VERSION,
      runId: options.runId,
      shardId: options.shardId,
      batchSize: options.batchSize,
      ...(options.batchSizeProbe ? { batchSizeProbe: options.batchSizeProbe } : {}),
      chunks: [],
      records: 0,
      predictions: 0,
      errors: 0,
      errorsByReason: {},
      columns: {},
      summaries: {},
      timings: { readMs: 0, decodeMs: 0, inferMs: 0, writeMs: 0, totalMs: 0 },
      attempts: 0,
    };
    this.nextIndex = this.done.chunks.length;
  }

  /** Records covered so far: checkpointed chunks plus the open one. */
  get records(): number {
    return this.done.records + (this.current?.records ?? 0);
  }

  /** The state as of the last checkpoint. */
  get checkpoint(): Checkpoint {
    return this.done;
  }

  /** Appends one processed batch; seals the chunk when it is full (the seal proceeds in the background). */
  async appendBatch(batch: BatchRows): Promise<void> {
    const n = batch.records.length;
    if (n === 0) return;
    const chunk = (this.current ??= this.openChunk());
    const { shardId, spec } = this.options;
    const idColumn = spec.input.id;

    if (batch.predictionCount > 0) {
      const rows = batch.predictionCount;
      this.fixIdentityTypes(batch);
      const { rowOf } = batch;
      const identityValues = this.identity.map((slot) => {
        const column = batch.identity?.get(slot.name);
        if (!column) return new Array<unknown>(rows);
        // A column at a time, for the records with a prediction.
        const values = new Array<unknown>(rows);
        for (let i = 0; i < n; i++) {
          const row = rowOf[i]!;
          if (row >= 0) values[row] = coerce(column[i], slot.type);
        }
        return values;
      });
      const fromRecords = this.identity.flatMap((slot, s) =>
        batch.identity?.has(slot.name) ? [] : [{ slot, values: identityValues[s]! }],
      );
      // A record's values are read only for what the batch has no column of (a columnar record builds them then).
      const pluck = !batch.inputs && this.inputColumns.length > 0;
      const readsValues = fromRecords.length > 0 || pluck;
      const sources = new Array<string>(rows);
      const offsets = new Float64Array(rows);
      for (let i = 0; i < n; i++) {
        const row = rowOf[i]!;
        if (row < 0) continue;
        const rec = batch.records[i]!;
        sources[row] = rec.source;
        offsets[row] = rec.offset;
        if (!readsValues) continue;
        const values = rec.values;
        for (const { slot, values: into } of fromRecords) into[row] = coerce(values?.[slot.name], slot.type);
        if (pluck) {
          const inputs = this.inputRow;
          this.pluckInputs(values, inputs);
          for (let k = 0; k < inputs.length; k++) chunk.inputAccumulators[k]!.add(numericInput(inputs[k]));
        }
      }
      // The columnar path's summary values: a column at a time, the records with a prediction in input order.
      const counter = this.options.inputCounter;
      if (batch.inputs && counter && this.inputColumns.length > 0) {
        chunk.countedKey ??= `${this.options.shardId}/${chunk.index}/${randomBytes(4).toString('hex')}`;
        // The columns are moved to the counting thread: nothing reads them after this batch is written.
        counter.count(chunk.countedKey, batch.inputs, batch.rowOf.slice());
      } else if (batch.inputs) {
        for (let k = 0; k < batch.inputs.length; k++) {
          chunk.inputAccumulators[k]!.addColumn(batch.inputs[k]!, batch.rowOf);
        }
      }
      const shardColumn = new Int32Array(rows).fill(shardId);
      const columns = [...identityValues, ...batch.predictions, shardColumn, sources, offsets];
      if (this.options.spec.output.format === 'parquet') {
        const parquet = await (chunk.parquet ??= ParquetChunkWriter.create(this.columnSpecs()));
        parquet.append(columns, rows);
      } else {
        // Text formats are small per row and encoded in one go at the seal (encodeChunk).
        const text = (chunk.text ??= columns.map(() => []));
        columns.forEach((values, c) => {
          const into = text[c]!;
          for (let r = 0; r < rows; r++) into.push(values[r]);
        });
      }
      batch.predictions.forEach((values, c) => {
        const acc = chunk.accumulators[c];
        if (acc) for (let r = 0; r < rows; r++) acc.add(values[r]);
      });
      chunk.predictions += rows;
      chunk.bytes += rows * estimateRowBytes(identityValues, batch.predictions, sources);
    }

    // Error rows in input order, whichever stage found them.
    for (const i of [...batch.errors.keys()].sort((a, b) => a - b)) {
      const error = batch.errors.get(i)!;
      const rec = batch.records[i]!;
      // An undecodable record may still have its values in part (a CSV value of the wrong type): keep its id.
      const known = rec.values ?? rec.partial;
      const idValue = idColumn && known ? known[idColumn] : undefined;
      const row: ErrorRow = {
        _shard: shardId,
        _source: rec.source,
        _offset: rec.offset,
        reason: error.reason,
        message: boundText(error.message),
      };
      chunk.errorLines.push(JSON.stringify(errorRowWithId(row, idColumn, errorRowId(idValue))));
      chunk.errorsByReason[error.reason] = (chunk.errorsByReason[error.reason] ?? 0) + 1;
    }
    chunk.records += n;
    chunk.position = { range: batch.ranges[n - 1]!, offset: batch.records[n - 1]!.offset };
    if (this.chunkIsDue(chunk)) await this.sealCurrent();
  }

  /**
   * Seals the open chunk now (whatever its size) once the previous seal is done; the returned promise settles when
   * this seal has been started, `flush` waits for it to finish.
   */
  async sealCurrent(): Promise<void> {
    const chunk = this.current;
    this.current = undefined;
    if (!chunk || chunk.records === 0) {
      if (chunk?.countedKey) this.options.inputCounter?.forget(chunk.countedKey);
      await chunk?.parquet?.then((p) => p.abort());
      return;
    }
    this.options.onSeal?.();
    // Back-pressure: one chunk sealing while the next fills, never more.
    await this.sealing;
    this.chunkSince = this.clock();
    const sealing = this.writeChunk(chunk);
    // Marked as handled here; its error is rethrown by the next `flush` or seal, which await it.
    sealing.catch(() => undefined);
    this.sealing = sealing;
  }

  /** Waits for the seal in progress; rethrows its error. */
  async flush(): Promise<void> {
    await this.sealing;
  }

  /**
   * Seals the last chunk, then assembles the shard's errors file from the pieces. Deletes the keys one past the last
   * chunk, in case an earlier attempt left files there.
   */
  async finish(): Promise<FinishedShard> {
    await this.sealCurrent();
    await this.flush();
    const { store, layout, shardId } = this.options;
    const next = this.done.chunks.length;
    await store.delete(
      layout.partUri(shardId, next, OUTPUT_FILES[this.options.spec.output.format].extension),
    );
    await store.delete(errorsPieceUri(layout, shardId, next));
    const outputs = this.done.chunks.flatMap((c) => (c.output ? [c.output] : []));
    const pieces = this.done.chunks.flatMap((c) => (c.errorsPiece ? [c.errorsPiece] : []));
    const errorsUri = layout.errorsUri(shardId);
    let errorsFile: OutputFile | undefined;
    if (pieces.length > 0) {
      const info = await store.putStream(
        errorsUri,
        concatenate(
          store,
          pieces.map((p) => p.uri),
        ),
        {
          contentType: 'application/x-ndjson',
        },
      );
      errorsFile = { uri: errorsUri, rows: this.done.errors, bytes: info.size, etag: info.etag };
    } else {
      await store.delete(errorsUri);
    }
    return { checkpoint: this.done, outputs, ...(errorsFile ? { errorsFile } : {}) };
  }

  /** Drops the open chunk without writing it (the shard failed; the checkpoint stays as it was). */
  async abort(): Promise<void> {
    const chunk = this.current;
    this.current = undefined;
    if (chunk?.countedKey) this.options.inputCounter?.forget(chunk.countedKey);
    await chunk?.parquet?.then((p) => p.abort()).catch(() => undefined);
    await this.sealing.catch(() => undefined);
  }

  /** Deletes the checkpoint and the error pieces (after the marker is written). */
  async cleanUp(): Promise<void> {
    const { store, layout, shardId } = this.options;
    for (const chunk of this.done.chunks) if (chunk.errorsPiece) await store.delete(chunk.errorsPiece.uri);
    await store.delete(layout.checkpointUri(shardId));
  }

  /** Output column name -> type, as written (identity types fall back to string when never seen). */
  columnTypes(): Record<string, string> {
    const types: Record<string, string> = {};
    for (const c of this.columnSpecs()) types[c.name] = c.type;
    return types;
  }

  /** Whether the open chunk closes after the unit just appended: by records, bytes or time (checkpoint.ts). */
  private chunkIsDue(chunk: OpenChunk): boolean {
    const limits = { records: this.chunkRecords, bytes: this.chunkBytes, intervalMs: this.chunkIntervalMs };
    return chunkCloseReason(chunk, this.clock() - this.chunkSince, limits) !== undefined;
  }

  private openChunk(): OpenChunk {
    const labels = this.options.labelColumns;
    return {
      index: this.nextIndex++,
      records: 0,
      predictions: 0,
      bytes: 0,
      errorLines: [],
      errorsByReason: {},
      parquet: undefined,
      text: undefined,
      accumulators: this.options.predictionColumns.map((c) => {
        const kind = summaryKindFor(c.type, labels.has(c.name));
        return kind ? createAccumulator(kind) : undefined;
      }),
      inputAccumulators: this.inputColumns.map(() => new NumericAccumulator()),
      countedKey: undefined,
      position: undefined,
    };
  }

  /**
   * Identity column types come from the declared schema, else from the first non-null value seen; once the first
   * rows are written they are fixed (a column never seen with a value is a string column).
   */
  private fixIdentityTypes(batch: BatchRows): void {
    for (const slot of this.identity) {
      if (slot.type !== undefined) continue;
      const column = batch.identity?.get(slot.name);
      for (let i = 0; i < batch.records.length && slot.type === undefined; i++) {
        if (batch.rowOf[i]! < 0) continue;
        slot.type = inferType(column ? column[i] : batch.records[i]!.values?.[slot.name]);
      }
      slot.type ??= 'string';
    }
  }

  private columnSpecs(): ColumnSpec[] {
    return [
      ...this.identity.map((s) => ({ name: s.name, type: s.type ?? 'string' })),
      ...this.options.predictionColumns.map((c) => ({ name: c.name, type: c.type })),
      { name: '_shard', type: 'int' },
      // Known up front: held as a small integer per row until the file is written.
      { name: '_source', type: 'string', categories: this.options.sources },
      // Offsets are safe integers (byte offsets, row indexes): no BigInt per row on the way to INT64.
      { name: '_offset', type: 'bigint', safeIntegers: true },
    ];
  }

  private async writeChunk(chunk: OpenChunk): Promise<void> {
    const { store, layout, shardId, tmpDir, spec } = this.options;
    const format = spec.output.format;
    const partUri = layout.partUri(shardId, chunk.index, OUTPUT_FILES[format].extension);
    let output: OutputFile | undefined;
    const parquet = chunk.parquet ? await chunk.parquet : undefined;
    if (chunk.text && chunk.predictions > 0) {
      const text = chunk.text;
      const encoded = encodeChunk(
        format,
        this.columnSpecs().map((c, k) => ({ name: c.name, type: c.type, values: text[k]! })),
      );
      const info = await store.put(partUri, encoded.body, { contentType: encoded.contentType });
      output = { uri: partUri, rows: chunk.predictions, bytes: info.size, etag: info.etag };
    } else if (parquet && chunk.predictions > 0) {
      const file = stagingPath(tmpDir, shardId, chunk.index);
      try {
        await parquet.finish(file);
        const info = await store.putStream(partUri, createReadStream(file), {
          contentType: 'application/vnd.apache.parquet',
        });
        output = { uri: partUri, rows: chunk.predictions, bytes: info.size, etag: info.etag };
      } finally {
        await rm(file, { force: true });
      }
    } else {
      await parquet?.abort();
      // An earlier attempt may have left a part under this key with different records: remove it.
      await store.delete(partUri);
    }
    const pieceUri = errorsPieceUri(layout, shardId, chunk.index);
    let errorsPiece: OutputFile | undefined;
    if (chunk.errorLines.length > 0) {
      const info = await store.put(pieceUri, `${chunk.errorLines.join('\n')}\n`, {
        contentType: 'application/x-ndjson',
      });
      errorsPiece = { uri: pieceUri, rows: chunk.errorLines.length, bytes: info.size, etag: info.etag };
    } else {
      await store.delete(pieceUri);
    }
    const record: ChunkRecord = {
      index: chunk.index,
      records: chunk.records,
      predictions: chunk.predictions,
      errors: chunk.errorLines.length,
      ...(output ? { output } : {}),
      ...(errorsPiece ? { errorsPiece } : {}),
    };
    const summaries: OutputSummaries = {};
    this.options.predictionColumns.forEach((c, k) => {
      const acc = chunk.accumulators[k];
      if (acc) summaries[c.name] = acc.summary();
    });
    const counted = chunk.countedKey
      ? await this.options.inputCounter!.summaries(chunk.countedKey)
      : undefined;
    const inputSummaries: OutputSummaries = {};
    this.inputColumns.forEach((name, k) => {
      const here = chunk.inputAccumulators[k]!.summary();
      const there = counted?.[k];
      // A chunk's batches are all columnar or all records, so one side is empty; merged otherwise.
      inputSummaries[name] =
        !there || here.count + here.missing > 0
          ? mergeSummaries({ [name]: here }, there ? { [name]: there } : {})[name]!
          : there;
    });
    const errorsByReason = { ...this.done.errorsByReason };
    for (const [reason, n] of Object.entries(chunk.errorsByReason))
      errorsByReason[reason] = (errorsByReason[reason] ?? 0) + n;
    const next: Checkpoint = {
      ...this.done,
      chunks: [...this.done.chunks, record],
      ...(chunk.position ? { position: chunk.position } : {}),
      records: this.done.records + chunk.records,
      predictions: this.done.predictions + chunk.predictions,
      errors: this.done.errors + chunk.errorLines.length,
      errorsByReason,
      columns: this.columnTypes(),
      summaries: mergeSummaries(this.done.summaries, summaries),
      ...(this.inputColumns.length > 0 && {
        inputSummaries: mergeSummaries(this.done.inputSummaries ?? {}, inputSummaries),
      }),
      timings: this.options.timings(),
      attempts: this.done.attempts + (this.wroteThisAttempt ? 0 : 1),
    };
    // The checkpoint goes last: it may only name files that are already complete.
    await writeCheckpoint(store, layout, next);
    this.done = next;
    this.wroteThisAttempt = true;
  }
}

/** The pieces, in order, as one stream (one piece in memory at a time). */
async function* concatenate(store: ObjectStore, uris: readonly string[]): AsyncIterable<Uint8Array> {
  for (const uri of uris) yield await store.get(uri);
}

/** Rough bytes per row of a batch, from its first row: enough to bound a chunk of wide rows. */
function estimateRowBytes(
  identity: readonly (readonly unknown[])[],
  predictions: readonly (readonly unknown[])[],
  sources: readonly string[],
): number {
  let bytes = 24 + (sources[0]?.length ?? 0);
  for (const column of [...identity, ...predictions]) bytes += valueBytes(column[0]);
  return bytes;
}

function valueBytes(v: unknown): number {
  if (typeof v === 'string') return 16 + v.length;
  if (Array.isArray(v)) return 16 + v.length * 8;
  if (ArrayBuffer.isView(v)) return 16 + v.byteLength;
  return 8;
}

/** An id as an errors file (JSON) can hold it: a bigint as a number when exact, else as its digits. */
function errorRowId(v: unknown): string | number | null {
  if (typeof v === 'string' || typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  return null;
}

function inferType(v: unknown): OutputColumnType | undefined {
  switch (typeof v) {
    case 'string':
      return 'string';
    case 'number':
      return Number.isInteger(v) ? 'bigint' : 'double';
    case 'bigint':
      return 'bigint';
    case 'boolean':
      return 'boolean';
    default:
      return v === null || v === undefined ? undefined : 'string';
  }
}

/**
 * Passthrough values keep their type; a value of another type is converted (a number in a string column becomes
 * its text). A value that cannot be converted (text in a column declared numeric in output.schema) is written as
 * null: the prediction itself is still valid.
 */
function coerce(v: unknown, type: OutputColumnType | undefined): unknown {
  if (v === null || v === undefined) return null;
  switch (type) {
    case 'string':
      if (typeof v === 'string') return v;
      if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return v.toString();
      return v instanceof Date ? v.toISOString() : JSON.stringify(v);
    case 'bigint':
      return typeof v === 'bigint' ? v : Number.isSafeInteger(Number(v)) ? BigInt(Number(v)) : null;
    case 'int': {
      const n = Number(v);
      return Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 ? n : null;
    }
    case 'double':
    case 'float': {
      const n = Number(v);
      return Number.isFinite(n) ? n : null;
    }
    case 'boolean':
      return typeof v === 'boolean' ? v : v === 'true' ? true : v === 'false' ? false : null;
    default:
      return v;
  }
}

/**
 * The columns the model's tabular inputs read (`model.inputs[].from.columns`), each once, in spec order: numeric
 * features whose distribution the worker records for input drift.
 */
export function tabularInputColumns(spec: JobSpec): string[] {
  const columns = new Set<string>();
  for (const input of spec.model.inputs) {
    if ('columns' in input.from) for (const c of input.from.columns) columns.add(c);
  }
  return [...columns];
}

/** A tabular feature value as a number: numbers and bigints as they are, numeric text (CSV) parsed. */
function numericInput(v: unknown): unknown {
  if (typeof v === 'string' && v.trim() !== '') return Number(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  return v;
}
