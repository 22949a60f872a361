/**
 * The first N records of an input, as input objects of the same format: what a dry run (`validate --sample N`,
 * `run --dry-run N`) and a canary (`run.canary`) run through the real worker path.
 *
 * - csv / jsonl: the head of the first object (the CSV header and the next N lines, or the first N JSON lines),
 *   written as `sample.<csv|jsonl>` under the given folder. Lines are cut at `\n`: a CSV record with a quoted
 *   newline in the head is cut too, and shows as an error row of the sample.
 * - parquet: the first N rows of the first object, rewritten with that object's own schema as `sample.parquet`.
 * - files: the first N objects themselves (one object is one record), named where they are: nothing is copied.
 */
import { parquetMetadataAsync } from 'hyparquet';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { readParquet, storeAsyncBuffer } from '../formats/parquet-read.js';
import type { InputObject } from '../runs/types.js';
import type { JobSpec } from '../spec/schema.js';
import type { ObjectStore } from '../storage/object-store.js';
import { joinUri } from '../storage/uri.js';

/** Bytes read from the head of a line input: enough for N ordinary lines. */
export const SAMPLE_HEAD_BYTES = 4 << 20;

/** The sample could not be made (a Parquet schema the writer cannot reproduce, for instance). */
export class SampleError extends Error {
  override readonly name = 'SampleError';
}

/**
 * Writes (or, for `files`, picks) the first `records` records of `objects` (in input order) and returns the input
 * objects that hold them. `folderUri` ends with `/`; only csv, jsonl and parquet samples are written there.
 */
export async function sampleInput(
  store: ObjectStore,
  format: JobSpec['input']['format'],
  objects: readonly InputObject[],
  records: number,
  folderUri: string,
): Promise<InputObject[]> {
  const [first] = objects;
  if (!first || records < 1) return [];
  switch (format) {
    case 'files':
      return objects.slice(0, records).map((o) => ({ ...o }));
    case 'parquet':
      return [await sampleParquet(store, first, records, joinUri(folderUri, 'sample.parquet'))];
    case 'csv':
    case 'jsonl':
      return [await sampleLines(store, format, first, records, joinUri(folderUri, `sample.${format}`))];
  }
}

async function sampleLines(
  store: ObjectStore,
  format: 'csv' | 'jsonl',
  object: InputObject,
  records: number,
  uri: string,
): Promise<InputObject> {
  const head = new TextDecoder().decode(
    await store.get(object.uri, { start: 0, end: Math.min(object.size, SAMPLE_HEAD_BYTES) }),
  );
  const lines = head.split('\n').filter((l) => l.trim() !== '');
  // A head that ends mid-line (the object is larger than the head) would give a cut record: drop it.
  if (object.size > SAMPLE_HEAD_BYTES && !head.endsWith('\n')) lines.pop();
  const keep = lines.slice(0, records + (format === 'csv' ? 1 : 0));
  return written(store, uri, `${keep.join('\n')}\n`);
}

async function sampleParquet(
  store: ObjectStore,
  object: InputObject,
  records: number,
  uri: string,
): Promise<InputObject> {
  const file = storeAsyncBuffer(store, object.uri, object.size);
  const metadata = await parquetMetadataAsync(file);
  const rows: Record<string, unknown>[] = [];
  const range = { uri: object.uri, etag: object.etag, size: object.size, start: 0, end: object.size };
  for await (const batch of readParquet(store, range, { batchSize: Math.min(records, 1024) })) {
    for (const record of batch) {
      if (rows.length >= records) break;
      // A Parquet record always has values (only a line that does not parse has none).
      if (record.values) rows.push({ ...record.values });
    }
    if (rows.length >= records) break;
  }
  const top = metadata.schema[0];
  const names: string[] = [];
  // Top-level column names in schema order: the children of the root, skipping nested elements.
  let index = 1;
  for (let child = 0; child < (top?.num_children ?? 0); child++) {
    const element = metadata.schema[index]!;
    names.push(element.name);
    index = skipElement(metadata.schema, index);
  }
  let bytes: ArrayBuffer;
  try {
    bytes = parquetWriteBuffer({
      columnData: names.map((name) => ({ name, data: rows.map((r) => r[name] ?? null) })),
      schema: metadata.schema,
      rowGroupSize: Math.max(1, rows.length),
    });
  } catch (err) {
    throw new SampleError(
      `could not rewrite the first ${records} rows of ${object.uri} as a sample (${
        err instanceof Error ? err.message : String(err)
      }); run on a small input instead`,
    );
  }
  return written(store, uri, new Uint8Array(bytes));
}

/** The index after schema element `index` and all its descendants. */
function skipElement(schema: readonly { readonly num_children?: number }[], index: number): number {
  let next = index + 1;
  for (let c = 0; c < (schema[index]?.num_children ?? 0); c++) next = skipElement(schema, next);
  return next;
}

async function written(store: ObjectStore, uri: string, body: string | Uint8Array): Promise<InputObject> {
  const info = await store.put(uri, body);
  return { uri, size: info.size, etag: info.etag };
}
