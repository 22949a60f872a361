/**
 * The shape of a sample of input data, for `init`: its format and its columns with what their values look like (a
 * CSV header, a Parquet schema, the keys of JSON lines, or a folder of images or text files, read as `files`
 * records). Only the first object and its first records are read, through the same record readers a run uses.
 */
import path from 'node:path';
import { parquetLayout, readRange } from '../formats/index.js';
import type { InputRange } from '../runs/types.js';
import type { InputFormat } from '../spec/schema.js';
import { NotFoundError, type ObjectInfo, type ObjectStore } from '../storage/object-store.js';
import { asPrefix, normalizeUri } from '../storage/uri.js';
import { CliError } from './errors.js';

export type ColumnKind = 'number' | 'string' | 'bytes' | 'array' | 'other' | 'empty';

export interface SampleColumn {
  readonly name: string;
  readonly kind: ColumnKind;
}

export interface SampleShape {
  readonly format: InputFormat;
  /** What `input.uri` should say: the sample file, or the folder (ending in `/`). */
  readonly uri: string;
  /** The object the columns were read from. */
  readonly objectUri: string;
  readonly columns: readonly SampleColumn[];
  /** For a `files` input: what the files hold. */
  readonly files?: 'image' | 'text';
  /** Records read for the column kinds. */
  readonly records: number;
}

const TABULAR: Record<string, InputFormat> = {
  '.csv': 'csv',
  '.parquet': 'parquet',
  '.jsonl': 'jsonl',
  '.ndjson': 'jsonl',
};
const IMAGE = new Set(['.png', '.jpg', '.jpeg', '.webp', '.gif', '.tif', '.tiff', '.avif']);
const TEXT = new Set(['.txt', '.md', '.text', '.html', '.htm']);
/** Records read to judge each column's kind. */
const SAMPLE_RECORDS = 100;

function extensionOf(uri: string): string {
  const name = uri.slice(uri.lastIndexOf('/') + 1).toLowerCase();
  if (name.endsWith('.tar.gz')) return '.tar.gz';
  return path.extname(name);
}

/** Reads the sample at `arg` (a file, a folder, or a URI of either). */
export async function readSampleShape(store: ObjectStore, arg: string, cwd: string): Promise<SampleShape> {
  const uri = normalizeUri(arg, cwd);
  let info: ObjectInfo | undefined;
  try {
    info = await store.head(uri);
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
  }
  if (info && info.size >= 0 && !uri.endsWith('/')) {
    const format = TABULAR[extensionOf(uri)];
    if (!format) {
      throw new CliError(
        `sample ${arg} is not CSV, Parquet or JSON lines (by its extension: .csv, .parquet, .jsonl); for images ` +
          'or text files give the folder that holds them',
      );
    }
    return tabularShape(store, format, info, uri, arg);
  }
  // A folder (or prefix): what its objects are.
  const prefix = asPrefix(uri);
  const objects: ObjectInfo[] = [];
  for await (const object of store.list(prefix)) {
    if (
      object.size > 0 &&
      !object.uri
        .slice(prefix.length)
        .split('/')
        .some((s) => s.startsWith('.'))
    ) {
      objects.push(object);
    }
    if (objects.length >= 1000) break;
  }
  if (objects.length === 0) {
    throw new CliError(
      `sample ${arg} does not exist or is an empty folder; give a CSV, Parquet or JSON lines file, or a folder of ` +
        'them, of images or of text files',
    );
  }
  const byKind = (test: (ext: string) => boolean) => objects.filter((o) => test(extensionOf(o.uri)));
  const tabular = byKind((ext) => ext in TABULAR);
  const images = byKind((ext) => IMAGE.has(ext));
  const texts = byKind((ext) => TEXT.has(ext));
  const largest = Math.max(tabular.length, images.length, texts.length);
  if (largest === 0) {
    const seen = [...new Set(objects.map((o) => extensionOf(o.uri) || '(no extension)'))].slice(0, 8);
    throw new CliError(
      `sample folder ${arg} holds no CSV, Parquet, JSON lines, image or text files (it has ${seen.join(', ')})`,
    );
  }
  if (tabular.length === largest) {
    const first = tabular[0]!;
    const format = TABULAR[extensionOf(first.uri)]!;
    const others = tabular.filter((o) => TABULAR[extensionOf(o.uri)] !== format);
    if (others.length > 0) {
      throw new CliError(
        `sample folder ${arg} mixes input formats (${first.uri} is ${format}, ${others[0]!.uri} is not); a run reads ` +
          'one format: give a folder of one',
      );
    }
    return { ...(await tabularShape(store, format, first, first.uri, arg)), uri: prefix };
  }
  return {
    format: 'files',
    uri: prefix,
    objectUri: (images.length === largest ? images : texts)[0]!.uri,
    columns: [
      { name: 'uri', kind: 'string' },
      { name: 'name', kind: 'string' },
      { name: 'size', kind: 'number' },
      { name: 'content', kind: 'bytes' },
    ],
    files: images.length === largest ? 'image' : 'text',
    records: 0,
  };
}

async function tabularShape(
  store: ObjectStore,
  format: InputFormat,
  info: ObjectInfo,
  uri: string,
  arg: string,
): Promise<SampleShape> {
  const range: InputRange = { uri, etag: info.etag, size: info.size, start: 0, end: info.size };
  let names: string[] | undefined;
  const records: Record<string, unknown>[] = [];
  let decoded = 0;
  let firstError: string | undefined;
  try {
    let read: InputRange = range;
    if (format === 'parquet') {
      const layout = await parquetLayout(store, uri, info.size);
      names = layout.columns;
      read = { ...range, rowGroupStart: 0, rowGroupEnd: Math.min(1, layout.rowGroups.length), rowStart: 0 };
    }
    for await (const batch of readRange(store, format, read, { batchSize: SAMPLE_RECORDS })) {
      for (const record of batch) {
        if (record.values) {
          records.push(record.values);
          decoded++;
        } else {
          firstError ??= record.error.message;
          if (record.partial) records.push(record.partial);
        }
      }
      if (records.length >= SAMPLE_RECORDS) break;
    }
  } catch (err) {
    throw new CliError(`sample ${arg} cannot be read as ${format}: ${(err as Error).message.split('\n')[0]}`);
  }
  // Only broken records (partial fields at most): the sample is not what it says it is.
  if (decoded === 0 && firstError !== undefined) {
    throw new CliError(`sample ${arg} cannot be read as ${format}: ${firstError.split('\n')[0]}`);
  }
  if (!names) {
    const seen = new Set<string>();
    for (const record of records) for (const key of Object.keys(record)) seen.add(key);
    names = [...seen];
  }
  if (names.length === 0) {
    throw new CliError(
      `sample ${arg} has no columns (no ${format === 'csv' ? 'header' : 'records'} to read)`,
    );
  }
  return {
    format,
    uri,
    objectUri: uri,
    columns: names.map((name) => ({ name, kind: kindOf(records.map((r) => r[name])) })),
    records: records.length,
  };
}

function kindOf(values: readonly unknown[]): ColumnKind {
  const present = values.filter((v) => v !== null && v !== undefined && v !== '');
  if (present.length === 0) return 'empty';
  const kinds = new Set(
    present.map((v): ColumnKind => {
      if (typeof v === 'number' || typeof v === 'bigint') return 'number';
      if (typeof v === 'string') return v.trim() !== '' && Number.isFinite(Number(v)) ? 'number' : 'string';
      if (v instanceof Uint8Array) return 'bytes';
      if (Array.isArray(v) || ArrayBuffer.isView(v)) return 'array';
      return 'other';
    }),
  );
  if (kinds.size === 1) return [...kinds][0]!;
  return kinds.has('string') ? 'string' : 'other';
}
