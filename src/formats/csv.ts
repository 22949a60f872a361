/**
 * CSV (RFC 4180): a header line, then one record per line; fields separated by commas, optionally enclosed in
 * double quotes, with "" standing for a quote inside a quoted field.
 *
 * Values stay strings: numbers are converted when tensors are built, so an id such as "00123" survives. An empty
 * unquoted field is null (missing); an empty quoted field ("") is the empty string.
 *
 * Typed columns (`types`: the id and passthrough columns output.schema declares as int, bigint, float, double or
 * boolean) are converted from their text here: an empty field (quoted or not) is null, and a value that is not of
 * the type makes the record an INVALID_VALUE error row naming the column and the value (see CSV_TYPE_SPELLINGS).
 *
 * A line break inside a quoted field is part of the field: the record is one record, however many lines it spans
 * (lines.ts reads quote-aware; QuotedLines there says what happens when such a record crosses a shard boundary).
 * Quoting is strict: a quoted field still open at the end of the object, or a quote inside an unquoted field, makes
 * the record a DECODE_ERROR.
 *
 * Text must be UTF-8: a record holding bytes that are not is a DECODE_ERROR (never text with U+FFFD in place of
 * the bytes). A DECODE_ERROR keeps, in `partial`, the values of the fields that could be read before the problem,
 * so its error row still carries the record's id (csvPartial).
 */
import { isUtf8 } from 'node:buffer';
import { InputError } from '../spec/errors.js';
import type { ObjectStore } from '../storage/object-store.js';
import type { InputRange } from '../runs/types.js';
import type { RangeReader, ReadOptions, SourceRecord } from './records.js';
import { boundText } from '../runtime/bounded-text.js';
import { batchesOfVisited, lineSnippet, readFirstLine, type Line, type LineVisitor } from './lines.js';

const QUOTE = 0x22;
const COMMA = 0x2c;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const LOWER_E = 0x65;
const UPPER_E = 0x45;

export type CsvParse =
  | { readonly fields: (string | null)[]; readonly error?: undefined }
  | {
      readonly fields?: undefined;
      readonly error: string;
      /** The fields before the one that could not be parsed. */
      readonly before: (string | null)[];
    };

/** Splits one line into fields. */
export function parseCsvLine(line: string): CsvParse {
  // Most lines have no quotes at all; split is several times faster than scanning.
  if (line.indexOf('"') < 0) {
    const raw = line.split(',');
    const fields: (string | null)[] = new Array<string | null>(raw.length);
    for (let k = 0; k < raw.length; k++) {
      const f = raw[k]!;
      fields[k] = f === '' ? null : f;
    }
    return { fields };
  }
  const fields: (string | null)[] = [];
  const n = line.length;
  let i = 0;
  for (;;) {
    const field = fields.length + 1;
    if (line.charCodeAt(i) === QUOTE) {
      let value = '';
      let j = i + 1;
      for (;;) {
        const q = line.indexOf('"', j);
        if (q < 0) {
          return {
            error: `field ${field}: quoted field not closed before the end of the file`,
            before: fields,
          };
        }
        value += line.slice(j, q);
        if (line.charCodeAt(q + 1) === QUOTE) {
          value += '"';
          j = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      fields.push(value);
      if (i === n) break;
      if (line.charCodeAt(i) !== COMMA) {
        return {
          error: `field ${field}: unexpected character after closing quote (expected a comma)`,
          before: fields,
        };
      }
      i += 1;
    } else {
      const comma = line.indexOf(',', i);
      const stop = comma < 0 ? n : comma;
      const raw = line.slice(i, stop);
      if (raw.includes('"')) {
        return {
          error: `field ${field}: quote inside an unquoted field (quote the whole field and double the quote)`,
          before: fields,
        };
      }
      fields.push(raw === '' ? null : raw);
      if (comma < 0) break;
      i = comma + 1;
    }
  }
  return { fields };
}

export interface CsvHeader {
  readonly names: string[];
  /** Offset of the header line, which is never a record. */
  readonly offset: number;
}

/** The header of a CSV object (names and where the header line is); undefined for an empty object. */
export async function loadHeader(
  store: ObjectStore,
  uri: string,
  size: number,
): Promise<CsvHeader | undefined> {
  const line = await readFirstLine(store, uri, size, CSV_LINES);
  if (!line) return undefined;
  return { names: headerNames(uri, line), offset: line.offset };
}

function headerNames(uri: string, line: Line): string[] {
  if (line.tooLong !== undefined) throw new InputError(`CSV header of ${uri} is ${line.tooLong} bytes long`);
  const parsed = parseCsvLine(line.text);
  if (parsed.error !== undefined)
    throw new InputError(`CSV header of ${uri} cannot be parsed: ${parsed.error}`);
  const names = parsed.fields.map((f) => f ?? '');
  const seen = new Set<string>();
  names.forEach((name, k) => {
    if (name === '') throw new InputError(`CSV header of ${uri} has an empty column name (column ${k + 1})`);
    if (seen.has(name)) throw new InputError(`CSV header of ${uri} names column "${name}" twice`);
    seen.add(name);
  });
  return names;
}

/** Column names from the header line of a CSV object. Throws InputError for an empty object or a bad header. */
export async function readCsvHeader(store: ObjectStore, uri: string): Promise<string[]> {
  const { size } = await store.head(uri);
  const header = await loadHeader(store, uri, size);
  if (!header) throw new InputError(`${uri} has no header line: a CSV input starts with its column names`);
  return header.names;
}

/** Options of the CSV reader: the common ones, plus which columns may be returned as numbers. */
export interface CsvReadOptions extends ReadOptions {
  /**
   * Columns that are only ever used as numbers (tensor inputs). Their fields come back as the number `Number` would
   * give when the field is a plain decimal (`-12`, `3.25`, `1e-3`), parsed straight from the bytes without making a
   * string; any other spelling (spaces, hex, a quote...) comes back as the string, for the tensor builder to judge
   * exactly as before. Never list an id or passthrough column here: "00123" must stay text.
   */
  readonly numeric?: readonly string[];
  /**
   * Columns converted from text to a type (for id and passthrough columns, from output.schema): see parseTyped.
   * `string` (or a type not listed) leaves the text as it is.
   */
  readonly types?: Readonly<Record<string, string>>;
}

/** The column types a CSV field is converted to (`CsvReadOptions.types`). */
export type CsvColumnType = 'int' | 'bigint' | 'float' | 'double' | 'boolean';
export const CSV_TYPES: ReadonlySet<string> = new Set<CsvColumnType>([
  'int',
  'bigint',
  'float',
  'double',
  'boolean',
]);

/** What each type accepts, for the error messages (and the docs). */
export const CSV_TYPE_SPELLINGS: Readonly<Record<CsvColumnType, string>> = {
  int: 'an integer from -2147483648 to 2147483647',
  bigint: 'an integer from -9223372036854775808 to 9223372036854775807',
  float: 'a finite decimal number within float range',
  double: 'a finite decimal number',
  boolean: 'true/false, t/f, yes/no or 1/0',
};

const INTEGER = /^[+-]?\d+$/;
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const TRUE = new Set(['true', 't', 'yes', '1']);
const FALSE = new Set(['false', 'f', 'no', '0']);
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
/** Marks a field that is not of its type (a symbol: no text or value can be it). */
export const NOT_OF_TYPE = Symbol('not of type');

/**
 * A CSV field's text as `type`: surrounding spaces are ignored, empty text is null. int, float and double become
 * numbers, bigint a bigint (exact beyond 2^53), boolean a boolean; NOT_OF_TYPE when the text is not of the type.
 */
export function parseTyped(text: string, type: CsvColumnType): unknown {
  const t = text.trim();
  if (t === '') return null;
  switch (type) {
    case 'int': {
      if (!INTEGER.test(t)) return NOT_OF_TYPE;
      const n = Number(t);
      return n >= -(2 ** 31) && n < 2 ** 31 ? n : NOT_OF_TYPE;
    }
    case 'bigint': {
      if (!INTEGER.test(t)) return NOT_OF_TYPE;
      const n = BigInt(t);
      return n >= INT64_MIN && n <= INT64_MAX ? n : NOT_OF_TYPE;
    }
    case 'float':
    case 'double': {
      if (!DECIMAL.test(t)) return NOT_OF_TYPE;
      const n = Number(t);
      const finite = type === 'float' ? Number.isFinite(Math.fround(n)) : Number.isFinite(n);
      return finite ? n : NOT_OF_TYPE;
    }
    case 'boolean': {
      const lower = t.toLowerCase();
      return TRUE.has(lower) ? true : FALSE.has(lower) ? false : NOT_OF_TYPE;
    }
  }
}

/** Converts the typed fields in place; returns the problem with the first one that is not of its type. */
function convertTyped(
  fields: unknown[],
  typed: readonly { readonly slot: number; readonly name: string; readonly type: CsvColumnType }[],
): string | undefined {
  let problem: string | undefined;
  for (const { slot, name, type } of typed) {
    const raw = fields[slot];
    if (typeof raw !== 'string') continue;
    const value = parseTyped(raw, type);
    if (value === NOT_OF_TYPE) {
      problem ??=
        `column "${name}" value ${lineSnippet(raw, 40)} is not ${type === 'int' ? 'an' : 'a'} ${type} ` +
        `(${CSV_TYPE_SPELLINGS[type]}), the type output.schema declares`;
      continue; // left as text: the error row may still carry the record's other values
    }
    fields[slot] = value;
  }
  return problem;
}

/** CSV lines are split quote-aware: a quoted line break does not end a record. */
export const CSV_LINES = { quotes: true } as const;

const SKIP = 0;
const TEXT = 1;
const NUMBER = 2;

export const readCsv = async function* (
  store: ObjectStore,
  range: InputRange,
  options: CsvReadOptions,
): AsyncGenerator<SourceRecord[], void, undefined> {
  if (range.end <= range.start) return;
  // The header always comes from the start of the object, whichever range this is.
  const header = await loadHeader(store, range.uri, range.size);
  if (!header) return;
  const { pending, visit } = csvLineDecoder(range.uri, header, options);
  yield* batchesOfVisited(store, range, pending, visit, options.batchSize, CSV_LINES);
} satisfies RangeReader;

/**
 * The record decoder of one CSV object: `visit` turns each line (a LineVisitor span) into a SourceRecord pushed onto
 * `pending.items`. readCsv drives it over a range; the columnar decoder (csv-columnar.ts) hands it the lines its own
 * fast path does not take, so both paths make the same records and errors.
 */
export function csvLineDecoder(
  source: string,
  header: CsvHeader,
  options: Omit<CsvReadOptions, 'batchSize'>,
): { readonly pending: { items: SourceRecord[] }; readonly visit: LineVisitor } {
  const { names } = header;
  const selected = selectColumns(source, names, options.columns);
  const expected = names.length;
  const numeric = new Set(options.numeric ?? []);
  // What to do with field k, and where its value goes in the record (the order of `selected`).
  const actions = new Uint8Array(expected);
  const slots = new Int32Array(expected);
  selected.forEach((k, slot) => {
    actions[k] = numeric.has(names[k]!) ? NUMBER : TEXT;
    slots[k] = slot;
  });
  const makeValues = valuesFactory(selected.map((k) => names[k]!));
  const fields = new Array<unknown>(selected.length);
  const typed = selected.flatMap((k, slot) => {
    const type = options.types?.[names[k]!];
    return type !== undefined && CSV_TYPES.has(type)
      ? [{ slot, name: names[k]!, type: type as CsvColumnType }]
      : [];
  });
  /** The record of a line whose fields are in `fields`: typed columns converted, or an INVALID_VALUE error. */
  const finish = (offset: number): SourceRecord => {
    const problem = typed.length > 0 ? convertTyped(fields, typed) : undefined;
    if (problem === undefined) return { source, offset, values: makeValues(fields) };
    return {
      source,
      offset,
      error: { reason: 'INVALID_VALUE', message: problem },
      partial: makeValues(fields),
    };
  };

  const pending = { items: [] as SourceRecord[] };
  const partialOf = csvPartial(names, selected, options.types);
  const slowLine = (text: string, offset: number): SourceRecord => {
    const parsed = parseCsvLine(text);
    if (parsed.error !== undefined) {
      return decodeError(
        source,
        offset,
        `bad CSV quoting: ${parsed.error}; line starts ${lineSnippet(text)}`,
        partialOf(parsed.before),
      );
    }
    if (parsed.fields.length !== expected) {
      return decodeError(
        source,
        offset,
        `expected ${expected} fields (as in the header), got ${parsed.fields.length}; line starts ${lineSnippet(text)}`,
        partialOf(parsed.fields),
      );
    }
    for (let j = 0; j < selected.length; j++) fields[j] = parsed.fields[selected[j]!];
    return finish(offset);
  };

  const visit: LineVisitor = (bytes, start, end, offset, tooLong, ascii) => {
    if (offset === header.offset) return;
    if (tooLong > 0) {
      pending.items.push(decodeError(source, offset, `line is ${tooLong} bytes, over the line length limit`));
      return;
    }
    if (!ascii && !isUtf8(bytes.subarray(start, end))) {
      pending.items.push(notUtf8(source, bytes.toString('utf8', start, end), offset, partialOf));
      return;
    }
    // Fast path: one pass over the bytes, fields split at commas, numbers parsed in place. A quote anywhere sends
    // the line to the string parser, which knows the quoting rules and their error messages.
    let k = 0;
    let p = start;
    for (;;) {
      const action = k < expected ? actions[k]! : SKIP;
      let q = p;
      let value: unknown = null;
      if (action === NUMBER) {
        value = parseDecimal(bytes, p, end);
        q = parsedEnd;
      }
      while (q < end) {
        const c = bytes[q]!;
        if (c === COMMA) break;
        if (c === QUOTE) {
          pending.items.push(slowLine(bytes.toString('utf8', start, end), offset));
          return;
        }
        q++;
      }
      if (action !== SKIP) {
        if (action === TEXT || value === undefined) {
          value = q === p ? null : ascii ? bytes.toString('latin1', p, q) : bytes.toString('utf8', p, q);
        }
        fields[slots[k]!] = value;
      }
      k++;
      if (q >= end) break;
      p = q + 1;
      // A trailing comma is one more (empty) field.
      if (p === end) {
        if (k < expected && actions[k] !== SKIP) fields[slots[k]!] = null;
        k++;
        break;
      }
    }
    if (k !== expected) {
      const text = bytes.toString('utf8', start, end);
      pending.items.push(
        decodeError(
          source,
          offset,
          `expected ${expected} fields (as in the header), got ${k}; line starts ${lineSnippet(text)}`,
          partialOf(text.split(',')),
        ),
      );
      return;
    }
    pending.items.push(finish(offset));
  };
  return { pending, visit };
}

/**
 * The values of an undecodable record as far as they could be read: `fields` are the record's first fields in header
 * order (a line cut short, or split before a problem). Only selected columns, typed ones converted when they are of
 * their type; text holding U+FFFD (bytes that were not UTF-8) is left out. Undefined when nothing was readable.
 */
function csvPartial(
  names: readonly string[],
  selected: readonly number[],
  types: Readonly<Record<string, string>> | undefined,
): (fields: readonly (string | null)[]) => Record<string, unknown> | undefined {
  return (fields) => {
    const known: Record<string, unknown> = {};
    let any = false;
    for (const k of selected) {
      if (k >= fields.length || k >= names.length) continue;
      const raw = fields[k];
      if (raw === undefined || raw === null || raw.includes('\uFFFD')) continue;
      const name = names[k]!;
      const type = types?.[name];
      const value = type !== undefined && CSV_TYPES.has(type) ? parseTyped(raw, type as CsvColumnType) : raw;
      if (value === NOT_OF_TYPE || value === null) continue;
      Object.defineProperty(known, name, { value, enumerable: true, writable: true, configurable: true });
      any = true;
    }
    return any ? known : undefined;
  };
}

/** A record whose bytes are not UTF-8: a DECODE_ERROR naming the first column that holds such bytes. */
function notUtf8(
  source: string,
  text: string,
  offset: number,
  partialOf: (fields: readonly (string | null)[]) => Record<string, unknown> | undefined,
): SourceRecord {
  const parsed = parseCsvLine(text);
  const fields = parsed.fields ?? parsed.before;
  const column = fields.findIndex((f) => f?.includes('\uFFFD'));
  const where = column >= 0 ? `field ${column + 1}` : 'the record';
  return decodeError(
    source,
    offset,
    `${where} holds bytes that are not UTF-8 text: line starts ${lineSnippet(text)}. ` +
      'Save the file as UTF-8',
    partialOf(fields),
  );
}

const POW10 = Array.from({ length: 23 }, (_, e) => 10 ** e);
/** Where parseDecimal stopped: a module variable rather than an object per field, on the hottest path. */
let parsedEnd = 0;

/** Where the last parseDecimal call stopped. */
export function parsedDecimalEnd(): number {
  return parsedEnd;
}

/** parseDecimalInto's outcomes. */
export const DECIMAL_OUTCOME = { number: 0, empty: 1, other: 2 } as const;

/**
 * A plain decimal at bytes[p, end) up to the next comma: `[+-]digits[.digits][(e|E)[+-]digits]` with at most 15
 * significant digits and a decimal exponent within ±22. Those are exactly the numbers for which m * 10^e (or
 * m / 10^-e) with both operands exact doubles is correctly rounded (Clinger's fast path), so the result is the
 * same double `Number(text)` gives. Written to `out[at]` (DECIMAL_OUTCOME.number); DECIMAL_OUTCOME.empty for an empty field,
 * DECIMAL_OUTCOME.other for anything else (then the caller keeps the text). Sets `parsedEnd` to where it stopped.
 * The number goes into a typed array rather than being returned: a double returned from a call that is not inlined
 * is a heap object, one per value of every line (the columnar decoder's hottest path).
 */
export function parseDecimalInto(
  bytes: Buffer,
  p: number,
  end: number,
  out: Float64Array,
  at: number,
): number {
  let i = p;
  let c = i < end ? bytes[i]! : COMMA;
  if (c === COMMA) {
    parsedEnd = i;
    return DECIMAL_OUTCOME.empty;
  }
  let negative = false;
  if (c === MINUS || c === PLUS) {
    negative = c === MINUS;
    c = ++i < end ? bytes[i]! : COMMA;
  }
  let mantissa = 0;
  let significant = 0;
  let digits = 0;
  let scale = 0;
  while (c >= DIGIT_0 && c <= DIGIT_9) {
    if (mantissa !== 0 || c !== DIGIT_0) {
      mantissa = mantissa * 10 + (c - DIGIT_0);
      significant++;
    }
    digits++;
    c = ++i < end ? bytes[i]! : COMMA;
  }
  if (c === DOT) {
    c = ++i < end ? bytes[i]! : COMMA;
    while (c >= DIGIT_0 && c <= DIGIT_9) {
      if (mantissa !== 0 || c !== DIGIT_0) {
        mantissa = mantissa * 10 + (c - DIGIT_0);
        significant++;
      }
      digits++;
      scale--;
      c = ++i < end ? bytes[i]! : COMMA;
    }
  }
  if (digits === 0 || significant > 15) {
    parsedEnd = i;
    return DECIMAL_OUTCOME.other;
  }
  if (c === LOWER_E || c === UPPER_E) {
    c = ++i < end ? bytes[i]! : COMMA;
    let expNegative = false;
    if (c === MINUS || c === PLUS) {
      expNegative = c === MINUS;
      c = ++i < end ? bytes[i]! : COMMA;
    }
    let exponent = 0;
    let expDigits = 0;
    while (c >= DIGIT_0 && c <= DIGIT_9 && expDigits < 5) {
      exponent = exponent * 10 + (c - DIGIT_0);
      expDigits++;
      c = ++i < end ? bytes[i]! : COMMA;
    }
    if (expDigits === 0 || (c >= DIGIT_0 && c <= DIGIT_9)) {
      parsedEnd = i;
      return DECIMAL_OUTCOME.other;
    }
    scale += expNegative ? -exponent : exponent;
  }
  parsedEnd = i;
  if (c !== COMMA) return DECIMAL_OUTCOME.other;
  if (mantissa === 0) {
    out[at] = negative ? -0 : 0;
    return DECIMAL_OUTCOME.number;
  }
  if (scale < -22 || scale > 22) return DECIMAL_OUTCOME.other;
  const value = scale < 0 ? mantissa / POW10[-scale]! : mantissa * POW10[scale]!;
  out[at] = negative ? -value : value;
  return DECIMAL_OUTCOME.number;
}

const parsed = new Float64Array(1);

/** parseDecimalInto returning the value: the number, null for an empty field, undefined for anything else. */
export function parseDecimal(bytes: Buffer, p: number, end: number): number | null | undefined {
  const outcome = parseDecimalInto(bytes, p, end, parsed, 0);
  return outcome === DECIMAL_OUTCOME.number
    ? parsed[0]!
    : outcome === DECIMAL_OUTCOME.empty
      ? null
      : undefined;
}

/**
 * Builds record objects with the given keys, in order. For the common case the function is generated once per
 * header with an object literal, which V8 allocates from one template: several times faster than adding dozens of
 * keys one by one to `{}` per record, which was the largest cost of reading CSV. The keys are embedded with
 * JSON.stringify, which yields a valid string literal for any text, so a column name cannot inject code. A key
 * "__proto__" in a literal would set the prototype instead, so a header with it uses defineProperty.
 */
export function valuesFactory(
  keys: readonly string[],
): (fields: readonly unknown[]) => Record<string, unknown> {
  if (keys.includes('__proto__')) {
    return (fields) => {
      const values: Record<string, unknown> = {};
      keys.forEach((key, j) =>
        Object.defineProperty(values, key, {
          value: fields[j],
          enumerable: true,
          writable: true,
          configurable: true,
        }),
      );
      return values;
    };
  }
  const body = `return {${keys.map((key, j) => `${JSON.stringify(key)}: f[${j}]`).join(', ')}};`;
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- see above: generated once per header, keys escaped.
  return new Function('f', body) as (fields: readonly unknown[]) => Record<string, unknown>;
}

/** Indexes of the columns to decode; a requested column missing from the header is an input error. */
export function selectColumns(
  uri: string,
  names: readonly string[],
  columns: readonly string[] | undefined,
): number[] {
  if (!columns) return names.map((_, k) => k);
  const missing = columns.filter((c) => !names.includes(c));
  if (missing.length > 0) {
    throw new InputError(
      boundText(
        `${uri} has no column ${missing.map((c) => `"${boundText(c, 200)}"`).join(', ')}; its header has: ` +
          names.map((n) => boundText(n, 200)).join(', '),
      ),
    );
  }
  return [...new Set(columns)].map((c) => names.indexOf(c));
}

function decodeError(
  source: string,
  offset: number,
  message: string,
  partial?: Record<string, unknown>,
): SourceRecord {
  return { source, offset, error: { reason: 'DECODE_ERROR', message }, ...(partial && { partial }) };
}
