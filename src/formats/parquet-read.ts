/**
 * Parquet input, read with hyparquet over ranged requests: the footer first, then one row group at a time, only the
 * requested columns. Memory is bounded by one row group, whatever the file size.
 *
 * Values are what hyparquet decodes, unchanged, with one exception (null below):
 * - INT64 columns come back as `bigint` (even when small); INT32, FLOAT, DOUBLE as `number`; BOOLEAN as `boolean`;
 *   strings as `string`; lists as arrays; DECIMAL as `number`; DATE and TIMESTAMP as `Date`; unannotated
 *   BYTE_ARRAY as a UTF-8 string. Tensor building is the place that narrows these, and it must accept bigint.
 * - A null value is `null`. hyparquet reports a null LIST as `undefined`; it is turned into `null` so that a missing
 *   value has one spelling whatever the column type.
 */
import zlib from 'node:zlib';
import { parquetMetadataAsync, parquetReadObjects, parquetSchema } from 'hyparquet';
import type { AsyncBuffer, CompressionCodec, Compressors, FileMetaData } from 'hyparquet';
import { InputError } from '../spec/errors.js';
import { NotFoundError, ObjectChangedError, type ObjectStore } from '../storage/object-store.js';
import type { InputRange } from '../runs/types.js';
import type { RangeReader, SourceRecord } from './records.js';

/** Most footers fit in one request of this size; a larger one costs a second request, not a failure. */
const FOOTER_FETCH = 64 * 1024;

/**
 * hyparquet decodes SNAPPY itself; GZIP and BROTLI come from node:zlib, and ZSTD too on Node versions whose zlib has
 * it (22.15 and later). LZ4, LZ4_RAW and LZO would need the hyparquet-compressors package.
 */
const zstdDecompressSync = (zlib as { zstdDecompressSync?: (input: Uint8Array) => Buffer })
  .zstdDecompressSync;
const compressors: Compressors = {
  GZIP: (input) => zlib.gunzipSync(input),
  BROTLI: (input) => zlib.brotliDecompressSync(input),
  ...(zstdDecompressSync ? { ZSTD: (input: Uint8Array) => zstdDecompressSync(input) } : {}),
};

/** Compression codecs this reader can decode. */
export const READABLE_CODECS: ReadonlySet<CompressionCodec> = new Set<CompressionCodec>([
  'UNCOMPRESSED',
  'SNAPPY',
  ...(Object.keys(compressors) as CompressionCodec[]),
]);

export interface ParquetLayout {
  /** Total rows in the file. */
  readonly rows: number;
  /** Row groups in file order: rows and compressed bytes of each (what the planner splits by). */
  readonly rowGroups: { readonly rows: number; readonly bytes: number }[];
  /** Top-level column names, in schema order. */
  readonly columns: string[];
  /** Compression codecs used by the file's column chunks; see READABLE_CODECS. */
  readonly codecs: CompressionCodec[];
}

/** An object as hyparquet's AsyncBuffer: each slice is one ranged GET. */
export function storeAsyncBuffer(store: ObjectStore, uri: string, size: number): AsyncBuffer {
  return {
    byteLength: size,
    async slice(start: number, end?: number): Promise<ArrayBuffer> {
      const bytes = await store.get(uri, { start, end: end ?? size });
      if (
        bytes.byteOffset === 0 &&
        bytes.byteLength === bytes.buffer.byteLength &&
        bytes.buffer instanceof ArrayBuffer
      ) {
        return bytes.buffer;
      }
      return bytes.slice().buffer;
    },
  };
}

async function readFooter(file: AsyncBuffer, uri: string): Promise<FileMetaData> {
  try {
    return await parquetMetadataAsync(file, { initialFetchSize: FOOTER_FETCH });
  } catch (err) {
    // A file that is gone or was replaced since planning is not a malformed file: say what happened.
    if (err instanceof NotFoundError || err instanceof ObjectChangedError) throw err;
    const reason = err instanceof Error ? err.message : String(err);
    throw new InputError(`${uri} is not a readable Parquet file: ${reason}`);
  }
}

function topLevelColumns(metadata: FileMetaData): string[] {
  return parquetSchema(metadata).children.map((child) => child.element.name);
}

function groupBytes(metadata: FileMetaData, index: number): number {
  const group = metadata.row_groups[index]!;
  // total_compressed_size is optional in the format (older writers leave it out); the chunks always say.
  if (group.total_compressed_size !== undefined) return Number(group.total_compressed_size);
  let bytes = 0;
  for (const chunk of group.columns) bytes += Number(chunk.meta_data?.total_compressed_size ?? 0n);
  return bytes;
}

/** Row counts, sizes and columns of a Parquet object, from its footer alone. */
export async function parquetLayout(store: ObjectStore, uri: string, size: number): Promise<ParquetLayout> {
  const metadata = await readFooter(storeAsyncBuffer(store, uri, size), uri);
  return {
    rows: Number(metadata.num_rows),
    rowGroups: metadata.row_groups.map((group, index) => ({
      rows: Number(group.num_rows),
      bytes: groupBytes(metadata, index),
    })),
    columns: topLevelColumns(metadata),
    codecs: [
      ...new Set(
        metadata.row_groups.flatMap((g) => g.columns.map((c) => c.meta_data?.codec ?? 'UNCOMPRESSED')),
      ),
    ],
  };
}

/** Fails before any data is read when a chunk to be read is compressed with a codec this build cannot decode. */
function assertReadableCodecs(
  uri: string,
  metadata: FileMetaData,
  groupStart: number,
  groupEnd: number,
  columns: readonly string[] | undefined,
): void {
  for (let g = groupStart; g < groupEnd; g++) {
    for (const chunk of metadata.row_groups[g]!.columns) {
      const meta = chunk.meta_data;
      if (!meta || READABLE_CODECS.has(meta.codec)) continue;
      const column = meta.path_in_schema[0] ?? '?';
      if (columns && !columns.includes(column)) continue;
      throw new InputError(
        `${uri}: column "${column}" is compressed with ${meta.codec}, which this reader cannot decode ` +
          `(it reads ${[...READABLE_CODECS].join(', ')}); rewrite the file with SNAPPY`,
      );
    }
  }
}

/** A range of a Parquet object, opened: its footer read and the plan's row groups checked against it. */
export interface OpenParquetRange {
  readonly file: AsyncBuffer;
  readonly metadata: FileMetaData;
  /** The columns to read, without repeats; undefined: all. */
  readonly columns: string[] | undefined;
  readonly groupStart: number;
  readonly groupEnd: number;
  /** The file row number of the first row of `groupStart`. */
  readonly rowStart: number;
}

/**
 * Reads the footer of `range`'s object and checks the range against it: the requested columns exist, the row
 * groups are those the plan recorded, and their codecs can be decoded. Fails with an InputError that says which.
 */
export async function openParquetRange(
  store: ObjectStore,
  range: InputRange,
  requested: readonly string[] | undefined,
): Promise<OpenParquetRange> {
  const file = storeAsyncBuffer(store, range.uri, range.size);
  const metadata = await readFooter(file, range.uri);
  const groups = metadata.row_groups;
  const available = topLevelColumns(metadata);
  let columns: string[] | undefined;
  if (requested) {
    const missing = requested.filter((c) => !available.includes(c));
    if (missing.length > 0) {
      throw new InputError(
        `${range.uri} has no column ${missing.map((c) => `"${c}"`).join(', ')}; it has: ${available.join(', ')}`,
      );
    }
    columns = [...new Set(requested)];
  }
  const groupStart = range.rowGroupStart ?? 0;
  const groupEnd = range.rowGroupEnd ?? groups.length;
  if (groupEnd > groups.length || groupStart > groupEnd) {
    throw new InputError(
      `${range.uri} has ${groups.length} row groups; the plan asks for groups [${groupStart}, ${groupEnd}): ` +
        'the file changed after planning',
    );
  }
  let rowStart = 0;
  for (let g = 0; g < groupStart; g++) rowStart += Number(groups[g]!.num_rows);
  if (range.rowStart !== undefined && range.rowStart !== rowStart) {
    throw new InputError(
      `${range.uri}: row group ${groupStart} starts at row ${rowStart}, the plan says ${range.rowStart}: ` +
        'the file changed after planning',
    );
  }
  assertReadableCodecs(range.uri, metadata, groupStart, groupEnd, columns);
  return { file, metadata, columns, groupStart, groupEnd, rowStart };
}

/** The codecs hyparquet is given (see READABLE_CODECS). */
export const PARQUET_COMPRESSORS: Compressors = compressors;

export const readParquet: RangeReader = async function* (store, range, options) {
  const opened = await openParquetRange(store, range, options.columns);
  const { file, metadata, columns, groupStart, groupEnd } = opened;
  const groups = metadata.row_groups;
  let rowStart = opened.rowStart;

  let batch: SourceRecord[] = [];
  for (let g = groupStart; g < groupEnd; g++) {
    const rows = Number(groups[g]!.num_rows);
    // One group per call: hyparquet fetches only that group's column chunks, and only this group is in memory.
    const objects = await parquetReadObjects({
      file,
      metadata,
      columns,
      rowStart,
      rowEnd: rowStart + rows,
      compressors,
    });
    for (let k = 0; k < objects.length; k++) {
      const values = objects[k] as Record<string, unknown>;
      for (const key in values) if (values[key] === undefined) values[key] = null;
      batch.push({ source: range.uri, offset: rowStart + k, values });
      if (batch.length >= options.batchSize) {
        yield batch;
        batch = [];
      }
    }
    rowStart += rows;
  }
  if (batch.length > 0) yield batch;
};
