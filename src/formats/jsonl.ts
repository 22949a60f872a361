/**
 * JSON Lines: one JSON object per line. A line that is not valid JSON, or is valid JSON but not an object, becomes
 * an UndecodableRecord; the lines around it still come through.
 */
import type { DecodedRecord, RangeReader, SourceRecord, UndecodableRecord } from './records.js';
import { lineSnippet, readLineBatches, type Line } from './lines.js';

export const readJsonl: RangeReader = async function* (store, range, options) {
  let batch: SourceRecord[] = [];
  for await (const lines of readLineBatches(store, range)) {
    for (const line of lines) {
      const record = decodeJsonLine(range.uri, line);
      if (!record) continue;
      batch.push(record);
      if (batch.length >= options.batchSize) {
        yield batch;
        batch = [];
      }
    }
  }
  if (batch.length > 0) yield batch;
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
