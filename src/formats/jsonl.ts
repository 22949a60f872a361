/**
 * JSON Lines: one JSON object per line. A line that is not valid JSON, or is valid JSON but not an object, becomes
 * an UndecodableRecord; the lines around it still come through.
 */
import type { DecodedRecord, RangeReader, SourceRecord, UndecodableRecord } from './records.js';
import { batchesOfVisited, lineSnippet, type Line, type LineVisitor } from './lines.js';

export const readJsonl: RangeReader = async function* (store, range, options) {
  const pending = { items: [] as SourceRecord[] };
  const source = range.uri;
  // Byte spans rather than Line objects: an ASCII line is decoded as latin1 (the same text, decoded faster).
  const visit: LineVisitor = (bytes, start, end, offset, tooLong, ascii) => {
    const text = tooLong > 0 ? '' : bytes.toString(ascii ? 'latin1' : 'utf8', start, end);
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

function undecodable(source: string, offset: number, message: string): UndecodableRecord {
  return { source, offset, error: { reason: 'DECODE_ERROR', message } };
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}
