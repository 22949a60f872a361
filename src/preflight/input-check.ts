/**
 * The input's real shape against the columns the job reads: the CSV header, the Parquet schema, or the keys of a
 * sample of JSON lines, against `model.inputs[].from` (columns, array, text, image), `input.id` and
 * `output.passthrough`. A `files` input has the fixed fields of files.ts.
 *
 * Only a few objects are sampled (the first, the last and one in the middle): Plan checks every Parquet footer it
 * reads anyway (plan-run.ts), and a column that is missing in some line-format objects only shows up as error rows.
 */
import { readCsvHeader } from '../formats/csv.js';
import { parquetLayout } from '../formats/parquet-read.js';
import type { InputObject } from '../runs/types.js';
import { inputColumnsOf } from '../spec/model-io.js';
import type { JobSpec } from '../spec/schema.js';
import { readOptionsOf, type ObjectStore } from '../storage/object-store.js';
import { pinObjects } from '../storage/pinned.js';
import { didYouMean, listNames, type Problem } from './problems.js';

/** The fields of a `files` record (formats/files.ts). */
export const FILE_RECORD_FIELDS = ['uri', 'name', 'size', 'content'] as const;
/** Objects sampled for their columns. */
const SAMPLED_OBJECTS = 3;
/** Bytes read from the start of a JSON lines object for its keys, and lines parsed at most. */
const JSONL_SAMPLE_BYTES = 256 << 10;
const JSONL_SAMPLE_LINES = 200;

/** Each column the spec reads, with the first field that reads it. */
export function columnsReadBy(spec: JobSpec): Map<string, string> {
  const fields = new Map<string, string>();
  const add = (column: string, field: string): void => {
    if (!fields.has(column)) fields.set(column, field);
  };
  spec.model.inputs.forEach((input, i) => {
    const from = input.from as Record<string, unknown>;
    const kind =
      'columns' in from ? 'columns' : 'array' in from ? 'array' : 'text' in from ? 'text' : 'image';
    inputColumnsOf(input).forEach((column, j) =>
      add(
        column,
        kind === 'columns' ? `model.inputs[${i}].from.columns[${j}]` : `model.inputs[${i}].from.${kind}`,
      ),
    );
  });
  if (spec.input.id) add(spec.input.id, 'input.id');
  spec.output.passthrough.forEach((column, i) => add(column, `output.passthrough[${i}]`));
  return fields;
}

/** The columns of one input object, as its format declares them (or, for JSON lines, as the sample shows). */
export async function columnsOfObject(
  store: ObjectStore,
  format: JobSpec['input']['format'],
  object: InputObject,
): Promise<string[]> {
  switch (format) {
    case 'files':
      return [...FILE_RECORD_FIELDS];
    case 'csv':
      return readCsvHeader(pinObjects(store, [object]), object.uri);
    case 'parquet':
      return (await parquetLayout(pinObjects(store, [object]), object.uri, object.size)).columns;
    case 'jsonl': {
      const end = Math.min(object.size, JSONL_SAMPLE_BYTES);
      const bytes =
        end > 0 ? await store.get(object.uri, { start: 0, end }, readOptionsOf(object)) : new Uint8Array();
      const lines = new TextDecoder().decode(bytes).split('\n');
      if (end < object.size) lines.pop(); // the last line may be cut by the sample
      const keys = new Set<string>();
      let parsed = 0;
      for (const line of lines) {
        if (parsed >= JSONL_SAMPLE_LINES) break;
        if (line.trim() === '') continue;
        try {
          const value: unknown = JSON.parse(line);
          if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
            for (const k of Object.keys(value)) keys.add(k);
            parsed++;
          }
        } catch {
          // An undecodable line becomes an error row at run time; it says nothing about the columns.
        }
      }
      return [...keys];
    }
  }
}

/** Problems with the columns the spec reads, from a sample of the listed input objects. */
export async function checkInputColumns(
  store: ObjectStore,
  spec: JobSpec,
  objects: readonly InputObject[],
): Promise<Problem[]> {
  const reads = columnsReadBy(spec);
  if (objects.length === 0 || reads.size === 0) return [];
  const picks = [...new Set([0, Math.floor(objects.length / 2), objects.length - 1])]
    .slice(0, SAMPLED_OBJECTS)
    .map((i) => objects[i]!);
  const problems: Problem[] = [];
  const reported = new Set<string>();
  for (const object of picks) {
    let columns: string[];
    try {
      columns = await columnsOfObject(store, spec.input.format, object);
    } catch (err) {
      problems.push({
        code: 'InputUnreadable',
        field: 'input.uri',
        value: object.uri,
        found: `it could not be read as ${spec.input.format}: ${err instanceof Error ? err.message : String(err)}`,
        fix: `check input.format (${spec.input.format}) and the file`,
      });
      continue;
    }
    // A JSON lines sample with no object at all says nothing about the columns.
    if (spec.input.format === 'jsonl' && columns.length === 0) continue;
    const have = new Set(columns);
    for (const [column, field] of reads) {
      if (have.has(column) || reported.has(column)) continue;
      reported.add(column);
      const near = didYouMean(column, columns);
      const what =
        spec.input.format === 'csv'
          ? 'header'
          : spec.input.format === 'parquet'
            ? 'schema'
            : spec.input.format === 'files'
              ? 'record (a files input)'
              : `first ${JSONL_SAMPLE_LINES} records`;
      problems.push({
        code: 'MissingColumn',
        field,
        value: JSON.stringify(column),
        found: `${object.uri} has no column "${column}"; its ${what} has ${listNames(columns)}`,
        fix: near ? `did you mean "${near}"? set ${field}: ${near}` : `name one of its columns`,
      });
    }
  }
  return problems;
}
