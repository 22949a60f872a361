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
import {
  csvLineDecoder,
  CSV_TYPES,
  NOT_OF_TYPE,
  DECIMAL_OUTCOME,
  parseDecimalInto,
  parsedDecimalEnd,
  parseTyped,
  selectColumns,
  type CsvColumnType,
  type CsvHeader,
} from './csv.js';
import { DEFAULT_MAX_LINE_BYTES, LineSplitter, type LineVisitor } from './lines.js';
import type { SourceRecord } from './records.js';
import { ColumnarRows, type ColumnarBlock, type ColumnarPlan } from './columnar-rows.js';

export {
  blockBuffers,
  inputColumnsOf,
  type ColumnarBlock,
  type ColumnarErrorRow,
  type ColumnarPlan,
} from './columnar-rows.js';

const QUOTE = 0x22;
const COMMA = 0x2c;

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
export class ColumnarBlockBuilder extends ColumnarRows {
  private readonly expected: number;
  /** Per header field: its input column index, or -1. */
  private readonly featureOf: Int32Array;
  /** Per header field: its identity column index, or -1. */
  private readonly identityOf: Int32Array;
  private readonly identityTypes: (CsvColumnType | undefined)[];
  private readonly records: { readonly pending: { items: SourceRecord[] }; readonly visit: LineVisitor };

  /** Receives each owned line of the object: give it to a LineSplitter (or visitLines). */
  readonly visit: LineVisitor;

  constructor(
    plan: ColumnarPlan,
    private readonly uri: string,
    private readonly header: CsvHeader,
  ) {
    super(plan);
    const inputs = this.inputs;
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
    this.visit = (bytes, start, end, offset, tooLong, ascii) =>
      this.line(bytes, start, end, offset, tooLong, ascii);
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
    const { featureOf, identityOf, raw, rawNumber, rawIsNumber, ident, expected } = this;
    let k = 0;
    let p = start;
    for (;;) {
      const f = k < expected ? featureOf[k]! : -1;
      const id = k < expected ? identityOf[k]! : -1;
      let q = p;
      if (f >= 0 && id < 0) {
        const outcome = parseDecimalInto(bytes, p, end, rawNumber, f);
        if (outcome === DECIMAL_OUTCOME.other)
          return this.viaRecord(bytes, start, end, offset, tooLong, ascii);
        if (outcome === DECIMAL_OUTCOME.number) rawIsNumber[f] = 1;
        else {
          raw[f] = null;
          rawIsNumber[f] = 0;
        }
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
          if (f >= 0) {
            raw[f] = value;
            rawIsNumber[f] = 0;
          }
        }
      }
      k++;
      if (q >= end) break;
      p = q + 1;
      // A trailing comma is one more (empty) field.
      if (p === end) {
        if (k < expected) {
          if (featureOf[k]! >= 0) {
            raw[featureOf[k]!] = null;
            rawIsNumber[featureOf[k]!] = 0;
          }
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
    if (record.error) return this.reject(offset, record.error.reason, record.error.message, record.partial);
    const inputs = this.inputs;
    this.rawIsNumber.fill(0);
    for (let f = 0; f < inputs.length; f++) this.raw[f] = record.values[inputs[f]!];
    for (let i = 0; i < this.plan.identity.length; i++) this.ident[i] = record.values[this.plan.identity[i]!];
    this.accept(offset);
  }
}
