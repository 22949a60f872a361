/**
 * Columnar CSV decoding for tabular models (docs/adr/0019-tabular-data-path.md): the lines of a block of a CSV
 * object become typed arrays, not one object per record. Per block:
 *
 * - one array per tabular model input (`model.inputs` with `from: { columns }`), rows x columns, holding the values
 *   the tensor takes: a Float32Array for float32 inputs (the model's own buffer, filled straight from the bytes),
 *   a Float64Array for the other dtypes (converted when the batch is assembled, as the record path does);
 * - one Float64Array per distinct input column: the value the writer's input summaries count (NaN when missing);
 * - the byte offset of every record, and the id and passthrough columns as plain arrays (typed per output.schema);
 * - the error rows, with their reasons, in record order.
 *
 * Exactness: the fast path only takes a line when it is plainly decodable (no quote, the header's field count,
 * UTF-8, every feature a plain decimal that parseDecimal reads exactly as `Number` would, every typed identity
 * value of its type); any other line goes through csv.ts's record decoder (csvLineDecoder), whose record is then
 * judged by the same rule. Every value, missing or not, goes through tabularValue, the function the record path's
 * tensor builder uses, so the tensors, the error rows and their messages are those of the record path.
 *
 * A block is decoded by a LineSplitter over exactly its bytes: blocks are cut after a line break, so the range
 * rule (a range owns the lines that start in it) gives each line to exactly one block. A quoted line break at a
 * block's end leaves its last line incomplete: the block says where that line starts (`incompleteAt`), and the
 * caller decodes from there in one piece (columnar-stream.ts).
 */
import { isUtf8 } from 'node:buffer';
import type { ErrorReason } from '../runs/types.js';
import type { TabularInputSpec } from '../spec/model-io.js';
import { tabularValue } from '../inference/tabular-value.js';
import {
  csvLineDecoder,
  CSV_TYPES,
  NOT_OF_TYPE,
  parseDecimal,
  parsedDecimalEnd,
  parseTyped,
  selectColumns,
  type CsvColumnType,
  type CsvHeader,
} from './csv.js';
import { DEFAULT_MAX_LINE_BYTES, LineSplitter, type LineVisitor } from './lines.js';
import type { SourceRecord } from './records.js';

const QUOTE = 0x22;
const COMMA = 0x2c;

/** What a tabular model reads from a CSV input: the same for every object of a run. */
export interface ColumnarPlan {
  /** The model's inputs, all tabular, in model.inputs order. */
  readonly entries: readonly TabularInputSpec[];
  /** The id and passthrough columns, in the writer's order (id first), without repeats. */
  readonly identity: readonly string[];
  /** CSV types of identity columns (output.schema's scalar types): see csv.ts parseTyped. */
  readonly types?: Readonly<Record<string, string>>;
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

/** The records of one block of a CSV object, as columns. Every array is its own buffer (transferable). */
export interface ColumnarBlock {
  /** Records (lines) in the block, error rows included. */
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

/** Where a block's bytes lie in its object, and what the range around it says. */
export interface BlockSpan {
  /** Offset of the first byte the block owns (a line start, or the range start). */
  readonly start: number;
  /** The block owns the lines that start before this offset. */
  readonly end: number;
  /** The bytes reach the end of the object: a last line without a line break is finished. */
  readonly eof: boolean;
  /** Another range of the object starts at `end` (QuotedLines.boundaryFollows). */
  readonly boundaryFollows: boolean;
}

/** Decodes the lines of one CSV object into columnar blocks. One per object (its header decides the layout). */
export class ColumnarBlockBuilder {
  private readonly width: number[];
  private readonly integralEntry: boolean[];
  private readonly expected: number;
  /** Per header field: its input column index, or -1. */
  private readonly featureOf: Int32Array;
  /** Per header field: its identity column index, or -1. */
  private readonly identityOf: Int32Array;
  private readonly identityTypes: (CsvColumnType | undefined)[];
  /** Per entry and column: the input column index it reads. */
  private readonly entryInputs: Int32Array[];
  private readonly records: { readonly pending: { items: SourceRecord[] }; readonly visit: LineVisitor };
  /** The current line's raw feature values and identity values. */
  private readonly raw: unknown[];
  private readonly ident: unknown[];
  /** inputColumnsOf(plan). */
  private readonly inputs: readonly string[];

  private capacity = 0;
  private rows = 0;
  private offsets = new Float64Array(0);
  private entryValues: (Float32Array | Float64Array)[] = [];
  private inputValues: Float64Array[] = [];
  private identityValues: unknown[][] = [];
  private errors: ColumnarErrorRow[] = [];

  /** Receives each owned line of the object: give it to a LineSplitter (or visitLines). */
  readonly visit: LineVisitor;

  constructor(
    private readonly plan: ColumnarPlan,
    private readonly uri: string,
    private readonly header: CsvHeader,
  ) {
    const inputs = inputColumnsOf(plan);
    this.inputs = inputs;
    const { names } = header;
    const identity = new Set(plan.identity);
    const columns = [...new Set([...plan.identity, ...inputs])];
    // A requested column missing from the header fails as the record reader does (InputError).
    selectColumns(uri, names, columns);
    this.records = csvLineDecoder(uri, header, {
      columns,
      numeric: inputs.filter((c) => !identity.has(c)),
      ...(plan.types ? { types: plan.types } : {}),
    });
    this.expected = names.length;
    this.featureOf = new Int32Array(names.length).fill(-1);
    this.identityOf = new Int32Array(names.length).fill(-1);
    names.forEach((name, k) => {
      this.featureOf[k] = inputs.indexOf(name);
      this.identityOf[k] = plan.identity.indexOf(name);
    });
    this.identityTypes = plan.identity.map((name) => {
      const type = plan.types?.[name];
      return type !== undefined && CSV_TYPES.has(type) ? (type as CsvColumnType) : undefined;
    });
    this.width = plan.entries.map((e) => e.from.columns.length);
    this.integralEntry = plan.entries.map((e) => e.dtype === 'int32' || e.dtype === 'int64');
    this.entryInputs = plan.entries.map((e) => Int32Array.from(e.from.columns, (c) => inputs.indexOf(c)));
    this.raw = new Array<unknown>(inputs.length);
    this.ident = new Array<unknown>(plan.identity.length);
    this.reset();
    this.visit = (bytes, start, end, offset, tooLong, ascii) =>
      this.line(bytes, start, end, offset, tooLong, ascii);
  }

  /** Records decoded since the last `take`. */
  get count(): number {
    return this.rows;
  }

  /** Decodes a block: `bytes` start at the block's read start (one byte before `span.start`, unless it is 0). */
  decode(bytes: Buffer, span: BlockSpan): ColumnarBlock {
    const splitter = new LineSplitter(span.start, span.end, DEFAULT_MAX_LINE_BYTES, {
      uri: this.uri,
      boundaryFollows: span.boundaryFollows,
    });
    splitter.pushSpans(bytes, this.visit);
    if (span.eof) splitter.finishSpans(this.visit);
    return this.take(splitter.done ? undefined : splitter.pendingStart);
  }

  /** The records decoded so far, as a block; the builder starts a new one. */
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

  private reset(): void {
    this.rows = 0;
    this.errors = [];
    this.identityValues = this.plan.identity.map(() => []);
    // The typed arrays are kept (take copies out what it needs): the next block reuses them.
    if (this.capacity === 0) this.grow(1024);
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
    this.capacity = capacity;
  }

  private line(
    bytes: Buffer,
    start: number,
    end: number,
    offset: number,
    tooLong: number,
    ascii: boolean,
  ): void {
    if (offset === this.header.offset) return;
    if (tooLong > 0 || (!ascii && !isUtf8(bytes.subarray(start, end)))) {
      return this.viaRecord(bytes, start, end, offset, tooLong, ascii);
    }
    // Fast path: as csv.ts's, but every field lands in `raw` / `ident`; anything unusual goes the record way.
    const { featureOf, identityOf, raw, ident, expected } = this;
    let k = 0;
    let p = start;
    for (;;) {
      const f = k < expected ? featureOf[k]! : -1;
      const id = k < expected ? identityOf[k]! : -1;
      let q = p;
      if (f >= 0 && id < 0) {
        const value = parseDecimal(bytes, p, end);
        if (value === undefined) return this.viaRecord(bytes, start, end, offset, tooLong, ascii);
        raw[f] = value;
        q = parsedDecimalEnd();
      } else {
        while (q < end) {
          const c = bytes[q]!;
          if (c === COMMA) break;
          if (c === QUOTE) return this.viaRecord(bytes, start, end, offset, tooLong, ascii);
          q++;
        }
        if (id >= 0) {
          let value: unknown =
            q === p ? null : ascii ? bytes.toString('latin1', p, q) : bytes.toString('utf8', p, q);
          const type = this.identityTypes[id];
          if (type !== undefined && typeof value === 'string') {
            value = parseTyped(value, type);
            if (value === NOT_OF_TYPE) return this.viaRecord(bytes, start, end, offset, tooLong, ascii);
          }
          ident[id] = value;
          if (f >= 0) raw[f] = value;
        }
      }
      k++;
      if (q >= end) break;
      p = q + 1;
      // A trailing comma is one more (empty) field.
      if (p === end) {
        if (k < expected) {
          if (featureOf[k]! >= 0) raw[featureOf[k]!] = null;
          if (identityOf[k]! >= 0) ident[identityOf[k]!] = null;
        }
        k++;
        break;
      }
    }
    if (k !== expected) return this.viaRecord(bytes, start, end, offset, tooLong, ascii);
    this.accept(offset);
  }

  /** A line the fast path does not take: csv.ts makes its record, which is then judged like any other. */
  private viaRecord(
    bytes: Buffer,
    start: number,
    end: number,
    offset: number,
    tooLong: number,
    ascii: boolean,
  ): void {
    const { pending, visit } = this.records;
    visit(bytes, start, end, offset, tooLong, ascii);
    const record = pending.items.pop();
    if (!record) return;
    if (record.error) {
      const row = this.nextRow(offset);
      const known = this.identityObject(record.partial);
      this.errors.push({
        index: row,
        reason: record.error.reason,
        message: record.error.message,
        ...(known ? { known } : {}),
      });
      return;
    }
    const inputs = this.inputs;
    for (let f = 0; f < inputs.length; f++) this.raw[f] = record.values[inputs[f]!];
    for (let i = 0; i < this.plan.identity.length; i++) this.ident[i] = record.values[this.plan.identity[i]!];
    this.accept(offset);
  }

  /** Records the decoded line in `raw` / `ident`: its tensor rows, or the error row its first bad value makes. */
  private accept(offset: number): void {
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
        const raw = this.raw[reads[c]!];
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
    for (let k = 0; k < this.raw.length; k++) this.inputValues[k]![row] = summaryValue(this.raw[k]);
    for (let i = 0; i < this.ident.length; i++) this.identityValues[i]![row] = this.ident[i];
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
