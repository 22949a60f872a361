/**
 * JSON Lines: one JSON object per line. A line that is not valid JSON, or is valid JSON but not an object, becomes
 * an UndecodableRecord; the lines around it still come through.
 */
import { isUtf8 } from 'node:buffer';
import type { DecodedRecord, RangeReader, SourceRecord, UndecodableRecord } from './records.js';
import { batchesOfVisited, lineSnippet, type Line, type LineVisitor } from './lines.js';

export const readJsonl: RangeReader = async function* (store, range, options) {
  const pending = { items: [] as SourceRecord[] };
  const source = range.uri;
  // Byte spans rather than Line objects: an ASCII line is decoded as latin1 (the same text, decoded faster).
  const visit: LineVisitor = (bytes, start, end, offset, tooLong, ascii) => {
    const text = tooLong > 0 ? '' : bytes.toString(ascii ? 'latin1' : 'utf8', start, end);
    if (!ascii && tooLong === 0 && !isUtf8(bytes.subarray(start, end))) {
      // Never U+FFFD in place of the bytes (issue 17): the record is an error row, with its id when readable.
      pending.items.push(
        undecodable(
          source,
          offset,
          `line holds bytes that are not UTF-8 text; line starts ${lineSnippet(text)}. Save the file as UTF-8`,
          readableMembers(text),
        ),
      );
      return;
    }
    const record = decodeJsonLine(source, tooLong > 0 ? { offset, text, tooLong } : { offset, text });
    if (record) pending.items.push(record);
  };
  yield* batchesOfVisited(store, range, pending, visit, options.batchSize);
};

/** One line as a record; undefined for a whitespace-only line (not a record, like an empty one). */
export function decodeJsonLine(source: string, line: Line): SourceRecord | undefined {
  const { offset, text } = line;
  if (line.tooLong !== undefined) {
    return undecodable(source, offset, `line is ${line.tooLong} bytes, over the line length limit`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    if (text.trim() === '') return undefined;
    const reason = err instanceof Error ? err.message : String(err);
    return undecodable(
      source,
      offset,
      `invalid JSON: ${truncate(reason, 100)}; line starts ${lineSnippet(text)}`,
      readableMembers(text),
    );
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    const kind = value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
    return undecodable(
      source,
      offset,
      `line is ${kind}, not a JSON object; line starts ${lineSnippet(text)}`,
    );
  }
  const record: DecodedRecord = { source, offset, values: value as Record<string, unknown> };
  return record;
}

function undecodable(
  source: string,
  offset: number,
  message: string,
  partial?: Record<string, unknown>,
): UndecodableRecord {
  return { source, offset, error: { reason: 'DECODE_ERROR', message }, ...(partial && { partial }) };
}

const STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const LITERAL = /true|false|null/y;
const SPACE = /[ \t\r\n]*/y;

/**
 * The top-level members of a broken JSON object line that were complete before the break, scalar values only (so
 * a DECODE_ERROR row can still carry the record's id, issue 17). Nested values are skipped over when they close;
 * the scan stops at the first thing that is not valid JSON. Undefined when no member was readable.
 */
export function readableMembers(text: string): Record<string, unknown> | undefined {
  let i = 0;
  const at = (re: RegExp): string | undefined => {
    re.lastIndex = i;
    const m = re.exec(text);
    if (!m) return undefined;
    i = re.lastIndex;
    return m[0];
  };
  const out: Record<string, unknown> = {};
  let any = false;
  at(SPACE);
  if (text[i] !== '{') return undefined;
  i++;
  for (;;) {
    at(SPACE);
    const key = at(STRING);
    if (key === undefined) break;
    at(SPACE);
    if (text[i] !== ':') break;
    i++;
    at(SPACE);
    let value: unknown;
    let scalar = true;
    const c = text[i];
    if (c === '"') {
      const literal = at(STRING);
      if (literal === undefined) break;
      value = JSON.parse(literal);
    } else if (c === '{' || c === '[') {
      const end = closingOf(text, i);
      if (end < 0) break;
      i = end + 1;
      scalar = false;
    } else {
      const literal = at(NUMBER) ?? at(LITERAL);
      if (literal === undefined) break;
      value = JSON.parse(literal);
    }
    at(SPACE);
    // A member counts once its value is followed by what JSON allows there.
    if (text[i] !== ',' && text[i] !== '}') break;
    if (scalar) {
      Object.defineProperty(out, JSON.parse(key) as string, {
        value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
      any = true;
    }
    if (text[i] === '}') break;
    i++;
  }
  return any ? out : undefined;
}

/** Index of the bracket closing the one at `open` (strings skipped), or -1. */
function closingOf(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      STRING.lastIndex = i;
      if (!STRING.exec(text)) return -1;
      i = STRING.lastIndex - 1;
    } else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}
