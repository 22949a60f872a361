/**
 * The columnar form of a tabular model's input records (docs/adr/0019-tabular-data-path.md), whatever the input
 * format: per block of records, typed arrays the tensors are made of, the input summaries' values, the record
 * offsets, the identity columns and the error rows. The CSV decoder (csv-columnar.ts) and the Parquet reader
 * (parquet-columnar.ts) fill it a record at a time through ColumnarRows, which judges every value with the record
 * path's own function (tabularValue), so both give the tensors, error rows and messages of the record path.
 */
import type { ErrorReason } from '../runs/types.js';
import type { TabularInputSpec } from '../spec/model-io.js';
import { tabularValue } from '../inference/tabular-value.js';

/** What a tabular model reads from its input: the same for every object of a run. */
export interface ColumnarPlan {
  /** The model's inputs, all tabular, in model.inputs order. */
  readonly entries: readonly TabularInputSpec[];
  /** The id and passthrough columns, in the writer's order (id first), without repeats. */
  readonly identity: readonly string[];
  /** CSV types of identity columns (output.schema's scalar types): see csv.ts parseTyped. */
  readonly types?: Readonly<Record<string, string>>;
  /** The input's format: CSV lines decoded here, or Parquet columns as hyparquet reads them. @default 'csv' */
  readonly format?: 'csv' | 'parquet';
}

/** The distinct columns the entries read, in order: the writer's input summary columns (tabularInputColumns). */
export function inputColumnsOf(plan: ColumnarPlan): string[] {
  return [...new Set(plan.entries.flatMap((e) => e.from.columns))];
}

export interface ColumnarErrorRow {
  /** Row of the record in its block. */
  readonly index: number;
  readonly reason: ErrorReason;
  readonly message: string;
  /** The record's identity values as far as they were read (the error row's id). */
  readonly known?: Record<string, unknown>;
}

/** The records of one block of an input object, as columns. Every array is its own buffer (transferable). */
export interface ColumnarBlock {
  /** Records in the block, error rows included. */
  readonly count: number;
  readonly offsets: Float64Array;
  /** Per identity column (ColumnarPlan.identity), per record: its value; undefined for an error row. */
  readonly identity: unknown[][];
  /** Per entry, count x columns values (rows of error rows are zeros). */
  readonly entries: (Float32Array | Float64Array)[];
  /** Per input column (inputColumnsOf), per record: the value the input summaries count. */
  readonly inputs: Float64Array[];
  /** In record order. */
  readonly errors: ColumnarErrorRow[];
  /** The bytes ended inside a line (a quoted line break at the block's end): where that line starts. */
  readonly incompleteAt?: number;
}

/** The typed arrays of a block, for postMessage's transfer list. */
export function blockBuffers(block: ColumnarBlock): ArrayBuffer[] {
  return [block.offsets, ...block.entries, ...block.inputs].map((a) => a.buffer as ArrayBuffer);
}

/** Rows per tile of `acceptNumberRows`' transposition (a tile of 30 float32 features: 30 KiB). */
const TILE_ROWS = 256;

/** A column of identity values for `acceptNumberRows`: values (null when missing), or numbers with a null mask. */
export type IdentityColumn =
  readonly unknown[] | { readonly values: Float64Array; readonly nulls: Uint8Array | undefined };

/**
 * Builds columnar blocks a record at a time: the caller puts a record's input column values in `raw` (in
 * inputColumnsOf order) and its identity values in `ident` (ColumnarPlan.identity order), then calls `accept` with
 * its offset; or `reject` for a record that could not be decoded at all.
 */
export class ColumnarRows {
  /** inputColumnsOf(plan). */
  protected readonly inputs: readonly string[];
  /**
   * The current record's raw input column values and identity values. An input value that is a number may be in
   * `rawNumber` instead, flagged in `rawIsNumber` (a double kept unboxed: a number in `raw` is a heap object); a
   * producer that writes `raw[k]` clears `rawIsNumber[k]`.
   */
  protected readonly raw: unknown[];
  protected readonly rawNumber: Float64Array;
  protected readonly rawIsNumber: Uint8Array;
  protected readonly ident: unknown[];
  private readonly width: number[];
  private readonly integralEntry: boolean[];
  /** Per entry and column: the input column index it reads. */
  private readonly entryInputs: Int32Array[];

  private capacity = 0;
  private rows = 0;
  private offsets = new Float64Array(0);
  private entryValues: (Float32Array | Float64Array)[] = [];
  private inputValues: Float64Array[] = [];
  private identityValues: unknown[][] = [];
  private errors: ColumnarErrorRow[] = [];

  constructor(protected readonly plan: ColumnarPlan) {
    const inputs = inputColumnsOf(plan);
    this.inputs = inputs;
    this.width = plan.entries.map((e) => e.from.columns.length);
    this.integralEntry = plan.entries.map((e) => e.dtype === 'int32' || e.dtype === 'int64');
    this.entryInputs = plan.entries.map((e) => Int32Array.from(e.from.columns, (c) => inputs.indexOf(c)));
    this.raw = new Array<unknown>(inputs.length);
    this.rawNumber = new Float64Array(inputs.length);
    this.rawIsNumber = new Uint8Array(inputs.length);
    this.ident = new Array<unknown>(plan.identity.length);
    this.reset();
  }

  /** Records taken since the last `take`. */
  get count(): number {
    return this.rows;
  }

  /** The records so far, as a block; the builder starts a new one. */
  take(incompleteAt?: number): ColumnarBlock {
    const n = this.rows;
    const block: ColumnarBlock = {
      count: n,
      offsets: this.offsets.slice(0, n),
      identity: this.identityValues.map((values) => values.slice(0, n)),
      entries: this.entryValues.map((values, e) => values.slice(0, n * this.width[e]!)),
      inputs: this.inputValues.map((values) => values.slice(0, n)),
      errors: this.errors,
      ...(incompleteAt !== undefined ? { incompleteAt } : {}),
    };
    this.reset();
    return block;
  }

  /** A record that could not be decoded: its error row, with the identity values `partial` has. */
  protected reject(
    offset: number,
    reason: ErrorReason,
    message: string,
    partial: Readonly<Record<string, unknown>> | undefined,
  ): void {
    const row = this.nextRow(offset);
    const known = this.identityObject(partial);
    this.errors.push({ index: row, reason, message, ...(known ? { known } : {}) });
  }

  private reset(): void {
    this.rows = 0;
    this.errors = [];
    // The typed arrays are kept (take copies out what it needs): the next block reuses them. The identity arrays are
    // new, at full size (rows not accepted keep a hole, as before): appending to an empty array, growing it as it
    // went, cost 2.7 times as much per value (about 75 against 28 ms per million).
    if (this.capacity === 0) this.grow(1024);
    this.identityValues = this.plan.identity.map(() => new Array<unknown>(this.capacity));
  }

  private grow(capacity: number): void {
    const offsets = new Float64Array(capacity);
    offsets.set(this.offsets.subarray(0, this.rows));
    this.offsets = offsets;
    this.entryValues = this.plan.entries.map((entry, e) => {
      const values =
        entry.dtype === 'float32'
          ? new Float32Array(capacity * this.width[e]!)
          : new Float64Array(capacity * this.width[e]!);
      const old = this.entryValues[e];
      if (old) values.set(old.subarray(0, this.rows * this.width[e]!));
      return values;
    });
    this.inputValues = this.inputs.map((_, k) => {
      const values = new Float64Array(capacity);
      const old = this.inputValues[k];
      if (old) values.set(old.subarray(0, this.rows));
      return values;
    });
    this.identityValues = this.plan.identity.map((_, i) => {
      const values = new Array<unknown>(capacity);
      const old = this.identityValues[i];
      if (old) for (let r = 0; r < this.rows; r++) if (r in old) values[r] = old[r];
      return values;
    });
    this.capacity = capacity;
  }

  /** Records the decoded line in `raw` / `ident`: its tensor rows, or the error row its first bad value makes. */
  protected accept(offset: number): void {
    const row = this.nextRow(offset);
    const { entries } = this.plan;
    for (let e = 0; e < entries.length; e++) {
      const entry = entries[e]!;
      const columns = entry.from.columns;
      const reads = this.entryInputs[e]!;
      const values = this.entryValues[e]!;
      const width = this.width[e]!;
      const base = row * width;
      for (let c = 0; c < width; c++) {
        const k = reads[c]!;
        const raw = this.rawIsNumber[k] === 1 ? this.rawNumber[k]! : this.raw[k];
        // The common case without a call: a finite number into a float tensor.
        if (typeof raw === 'number' && !this.integralEntry[e] && Number.isFinite(raw)) {
          values[base + c] = raw;
          continue;
        }
        const value = tabularValue(entry, columns[c]!, raw);
        if (typeof value !== 'number') {
          const known = this.identityObject(undefined);
          this.errors.push({
            index: row,
            reason: value.reason,
            message: value.message,
            ...(known ? { known } : {}),
          });
          return;
        }
        values[base + c] = value;
      }
    }
    for (let k = 0; k < this.raw.length; k++) {
      this.inputValues[k]![row] = this.rawIsNumber[k] === 1 ? this.rawNumber[k]! : summaryValue(this.raw[k]);
    }
    for (let i = 0; i < this.ident.length; i++) this.identityValues[i]![row] = this.ident[i];
  }

  /** Whether every model input is a float tensor: `acceptNumberRows` may be used. */
  protected get floatEntriesOnly(): boolean {
    return !this.integralEntry.includes(true);
  }

  /**
   * `accept` for rows [from, to) of `columns` at once (`columns[k][r]`: input column k, in inputColumnsOf order),
   * numbered from `offset`, a column at a time. Every input value of these rows must be a finite number and every
   * entry a float tensor (`floatEntriesOnly`): `accept`'s checks cannot fail for them, so they are not made.
   * `identity[i]` holds the rows' values of identity column i (ColumnarPlan.identity order).
   */
  protected acceptNumberRows(
    offset: number,
    columns: readonly Float64Array[],
    from: number,
    to: number,
    identity: readonly IdentityColumn[],
  ): void {
    const n = to - from;
    if (n <= 0) return;
    let capacity = this.capacity;
    while (capacity < this.rows + n) capacity *= 2;
    if (capacity > this.capacity) this.grow(capacity);
    const first = this.rows;
    this.rows += n;
    for (let j = 0; j < n; j++) this.offsets[first + j] = offset + j;
    const { entries } = this.plan;
    for (let e = 0; e < entries.length; e++) {
      const reads = this.entryInputs[e]!;
      const values = this.entryValues[e]!;
      const width = this.width[e]!;
      // In tiles of rows, so that the strided writes of one column land in lines the previous column brought in.
      for (let t = 0; t < n; t += TILE_ROWS) {
        const end = Math.min(n, t + TILE_ROWS);
        for (let c = 0; c < width; c++) {
          const column = columns[reads[c]!]!;
          for (let j = t, at = (first + t) * width + c; j < end; j++, at += width)
            values[at] = column[from + j]!;
        }
      }
    }
    for (let k = 0; k < columns.length; k++) this.inputValues[k]!.set(columns[k]!.subarray(from, to), first);
    for (let i = 0; i < this.ident.length; i++) {
      const into = this.identityValues[i]!;
      const column = identity[i]!;
      if (Array.isArray(column)) {
        for (let j = 0; j < n; j++) into[first + j] = column[from + j] ?? null;
      } else {
        const { values, nulls } = column as Exclude<IdentityColumn, readonly unknown[]>;
        for (let j = 0; j < n; j++) into[first + j] = nulls?.[from + j] === 1 ? null : values[from + j];
      }
    }
  }

  private nextRow(offset: number): number {
    if (this.rows === this.capacity) this.grow(this.capacity * 2);
    const row = this.rows++;
    this.offsets[row] = offset;
    return row;
  }

  /** The identity values of the current line (from `ident`), or of a partial record; undefined when none. */
  private identityObject(
    partial: Readonly<Record<string, unknown>> | undefined,
  ): Record<string, unknown> | undefined {
    const known: Record<string, unknown> = {};
    let any = false;
    this.plan.identity.forEach((name, i) => {
      const value = partial ? (Object.hasOwn(partial, name) ? partial[name] : undefined) : this.ident[i];
      if (value === undefined) return;
      Object.defineProperty(known, name, { value, enumerable: true, writable: true, configurable: true });
      any = true;
    });
    return any ? known : undefined;
  }
}

/** The number the writer's input summary counts for a raw feature value (shard-writer.ts numericInput, then add). */
function summaryValue(raw: unknown): number {
  if (typeof raw === 'number') return raw;
  if (typeof raw === 'string') return raw.trim() !== '' ? Number(raw) : NaN;
  if (typeof raw === 'boolean') return raw ? 1 : 0;
  if (typeof raw === 'bigint') return Number(raw);
  return NaN;
}
