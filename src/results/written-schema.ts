/**
 * What was really written: the columns (and, for Parquet, the types) of output files, read from the files
 * themselves. Finalize compares them with what the markers report (which validateRun compares with the declared
 * `output.schema`), so the declared schema is checked against the data, not only against the workers' word.
 *
 * Reading costs one ranged GET or two per file (a Parquet footer, or the first line of a jsonl/csv file), so
 * Finalize samples the first and the last accepted shard's first file rather than all of them.
 */
import { parquetMetadataAsync, parquetSchema, type SchemaTree } from 'hyparquet';
import { parseCsvLine } from '../formats/csv.js';
import { storeAsyncBuffer } from '../formats/parquet-read.js';
import type { OutputFile, ShardMarker } from '../runs/types.js';
import type { ObjectStore } from '../storage/object-store.js';
import { canonicalColumnType } from './column-types.js';
import type { ValidationCheck } from './validate.js';

export type OutputFormat = 'parquet' | 'jsonl' | 'csv';

/** Bytes read from the start of a jsonl/csv file for its first line. */
const FIRST_LINE_PROBE = 256 * 1024;

/**
 * Column name -> type as stored, for Parquet (`STRING`, `FLOAT`, `LIST<FLOAT>`, ...); column name -> undefined for
 * text formats, which carry names only.
 */
export async function readWrittenColumns(
  store: ObjectStore,
  file: OutputFile,
  format: OutputFormat,
): Promise<Map<string, string | undefined>> {
  if (format === 'parquet') {
    const metadata = await parquetMetadataAsync(storeAsyncBuffer(store, file.uri, file.bytes));
    return new Map(
      parquetSchema(metadata).children.map((child) => [child.element.name, parquetTypeOf(child)]),
    );
  }
  const head = Buffer.from(
    await store.get(file.uri, { start: 0, end: Math.min(file.bytes, FIRST_LINE_PROBE) }),
  );
  const newline = head.indexOf(0x0a);
  const line = head
    .subarray(0, newline < 0 ? head.length : newline)
    .toString('utf8')
    .replace(/\r$/, '');
  if (format === 'csv') {
    const parsed = parseCsvLine(line);
    if (parsed.error !== undefined)
      throw new Error(`the header line of ${file.uri} is not CSV: ${parsed.error}`);
    return new Map(parsed.fields.map((name) => [name ?? '', undefined]));
  }
  const record = JSON.parse(line) as unknown;
  if (typeof record !== 'object' || record === null || Array.isArray(record)) {
    throw new Error(`the first line of ${file.uri} is not a JSON object`);
  }
  return new Map(Object.keys(record).map((name) => [name, undefined]));
}

/** A Parquet column's type in the writer vocabulary that column-types.ts reads. */
function parquetTypeOf(tree: SchemaTree): string {
  const el = tree.element;
  if (el.converted_type === 'LIST' || el.logical_type?.type === 'LIST') {
    // 3-level list: <name> (LIST) / repeated group / element; a 2-level list repeats the element directly.
    const repeated = tree.children[0];
    const element = repeated && repeated.children.length > 0 ? repeated.children[0] : repeated;
    return `LIST<${element ? parquetTypeOf(element) : 'UNKNOWN'}>`;
  }
  if (el.type === 'BYTE_ARRAY') {
    return el.converted_type === 'UTF8' || el.logical_type?.type === 'STRING' ? 'STRING' : 'BYTE_ARRAY';
  }
  return el.type ?? 'GROUP';
}

/**
 * What the manifest says the check covers. It samples: reading every file's footer would cost a request per file
 * (tens of thousands in a large run), so only the first output file of the first and of the last accepted shard is
 * read; every other file is trusted on its marker's word (whose columns validateRun checks against output.schema).
 */
export const WRITTEN_SCHEMA_DESCRIPTION =
  'a sample of the written files (the first output file of the first and of the last accepted shard, at most 2 ' +
  'files; the others are not read) holds the columns and types their markers report';

/**
 * Checks sampled files against their markers: the same column names, and for Parquet the same types (compared in
 * the spec vocabulary, so `UTF8` and `STRING` agree).
 */
export async function checkWrittenSchema(
  store: ObjectStore,
  format: OutputFormat,
  accepted: readonly ShardMarker[],
): Promise<ValidationCheck> {
  const writers = accepted.filter((m) => m.outputs.length > 0 && m.predictions > 0);
  const samples = [...new Set([writers[0], writers[writers.length - 1]])].filter(
    (m): m is ShardMarker => m !== undefined,
  );
  const problems: string[] = [];
  for (const marker of samples) {
    const file = marker.outputs[0]!;
    let written: Map<string, string | undefined>;
    try {
      written = await readWrittenColumns(store, file, format);
    } catch (err) {
      problems.push(
        `${file.uri} cannot be read as ${format}: ${err instanceof Error ? err.message : String(err)}`,
      );
      continue;
    }
    const reported = Object.keys(marker.columns);
    const missing = reported.filter((c) => !written.has(c));
    const extra = [...written.keys()].filter((c) => !(c in marker.columns));
    if (missing.length > 0 || extra.length > 0) {
      problems.push(
        `${file.uri} has columns ${[...written.keys()].join(', ')}; shard ${marker.shardId}'s marker reports ` +
          `${reported.join(', ')}`,
      );
      continue;
    }
    for (const [column, type] of written) {
      const declared = marker.columns[column]!;
      if (type === undefined) continue;
      const a = canonicalColumnType(type) ?? type.toLowerCase();
      const b = canonicalColumnType(declared) ?? declared.toLowerCase();
      if (a !== b) {
        problems.push(
          `${file.uri} stores "${column}" as ${type}; shard ${marker.shardId}'s marker reports ${declared}`,
        );
      }
    }
  }
  const passed = problems.length === 0;
  return {
    name: 'writtenSchema',
    description: WRITTEN_SCHEMA_DESCRIPTION,
    threshold: 0,
    actual: problems.length,
    passed,
    ...(!passed && {
      message: `written files do not match their markers: ${problems.slice(0, 3).join('; ')}`,
    }),
  };
}
