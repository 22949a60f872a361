/**
 * CSV (RFC 4180): a header line, then one record per line; fields separated by commas, optionally enclosed in
 * double quotes, with "" standing for a quote inside a quoted field.
 *
 * Values stay strings: numbers are converted when tensors are built, so an id such as "00123" survives. An empty
 * unquoted field is null (missing); an empty quoted field ("") is the empty string.
 *
 * Not supported: line breaks inside quoted fields. Ranges are split at line starts without looking at quotes (that
 * is what makes a CSV file splittable), so a quoted line break would cut a row in two. Rather than decode the halves
 * as if they were rows, quoting is strict: a quoted field left open at the end of the line, or a quote inside an
 * unquoted field (what the second half of such a row looks like), makes the line a DECODE_ERROR.
 */
import { InputError } from '../spec/errors.js';
import type { ObjectStore } from '../storage/object-store.js';
import type { RangeReader, SourceRecord } from './records.js';
import { lineSnippet, readFirstLine, readLineBatches, type Line } from './lines.js';

const QUOTE = 0x22;
const COMMA = 0x2c;

export type CsvParse =
  | { readonly fields: (string | null)[]; readonly error?: undefined }
  | { readonly fields?: undefined; readonly error: string };

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
            error: `field ${field}: quoted field not closed on this line (quoted line breaks are not supported)`,
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
        return { error: `field ${field}: unexpected character after closing quote (expected a comma)` };
      }
      i += 1;
    } else {
      const comma = line.indexOf(',', i);
      const stop = comma < 0 ? n : comma;
      const raw = line.slice(i, stop);
      if (raw.includes('"')) {
        return {
          error: `field ${field}: quote inside an unquoted field (quote the whole field and double the quote)`,
        };
      }
      fields.push(raw === '' ? null : raw);
      if (comma < 0) break;
      i = comma + 1;
    }
  }
  return { fields };
}

interface CsvHeader {
  readonly names: string[];
  /** Offset of the header line, which is never a record. */
  readonly offset: number;
}

async function loadHeader(store: ObjectStore, uri: string, size: number): Promise<CsvHeader | undefined> {
  const line = await readFirstLine(store, uri, size);
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

export const readCsv: RangeReader = async function* (store, range, options) {
  if (range.end <= range.start) return;
  // The header always comes from the start of the object, whichever range this is.
  const header = await loadHeader(store, range.uri, range.size);
  if (!header) return;
  const { names } = header;
  const selected = selectColumns(range.uri, names, options.columns);
  const expected = names.length;
  // Plain assignment of "__proto__" would set the prototype instead of a value.
  const defineSafely = selected.some((k) => names[k] === '__proto__');

  let batch: SourceRecord[] = [];
  for await (const lines of readLineBatches(store, range)) {
    for (const line of lines) {
      const { offset } = line;
      if (offset === header.offset) continue;
      let record: SourceRecord;
      if (line.tooLong !== undefined) {
        record = decodeError(range.uri, offset, `line is ${line.tooLong} bytes, over the line length limit`);
      } else {
        const parsed = parseCsvLine(line.text);
        if (parsed.error !== undefined) {
          record = decodeError(
            range.uri,
            offset,
            `bad CSV quoting: ${parsed.error}; line starts ${lineSnippet(line.text)}`,
          );
        } else if (parsed.fields.length !== expected) {
          record = decodeError(
            range.uri,
            offset,
            `expected ${expected} fields (as in the header), got ${parsed.fields.length}; line starts ${lineSnippet(line.text)}`,
          );
        } else {
          const values: Record<string, string | null> = {};
          for (const k of selected) {
            if (defineSafely) {
              Object.defineProperty(values, names[k]!, {
                value: parsed.fields[k],
                enumerable: true,
                writable: true,
                configurable: true,
              });
            } else {
              values[names[k]!] = parsed.fields[k]!;
            }
          }
          record = { source: range.uri, offset, values };
        }
      }
      batch.push(record);
      if (batch.length >= options.batchSize) {
        yield batch;
        batch = [];
      }
    }
  }
  if (batch.length > 0) yield batch;
};

/** Indexes of the columns to decode; a requested column missing from the header is an input error. */
function selectColumns(
  uri: string,
  names: readonly string[],
  columns: readonly string[] | undefined,
): number[] {
  if (!columns) return names.map((_, k) => k);
  const missing = columns.filter((c) => !names.includes(c));
  if (missing.length > 0) {
    throw new InputError(
      `${uri} has no column ${missing.map((c) => `"${c}"`).join(', ')}; its header has: ${names.join(', ')}`,
    );
  }
  return [...new Set(columns)].map((c) => names.indexOf(c));
}

function decodeError(source: string, offset: number, message: string): SourceRecord {
  return { source, offset, error: { reason: 'DECODE_ERROR', message } };
}
