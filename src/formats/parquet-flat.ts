/**
 * A row group's flat columns (top-level, not repeated, no children: what a tabular model reads), decoded page by page
 * with hyparquet's own page functions but without its list assembly.
 *
 * hyparquet's reader puts every page through `assembleLists`, the general Dremel assembly of nested lists, even for a
 * flat column; for an OPTIONAL column (DuckDB, Spark and pandas write every column OPTIONAL) without nulls it first
 * makes a definition level per value. Profiled on the demo's rows as Parquet (31 columns, 200,000 records), that
 * assembly was 1.15 s of the 1.98 s spent decoding columns, more than the pipeline spent on anything else. For a flat
 * column the assembly is a copy: value i is the next decoded value where its definition level is the maximum, and
 * null elsewhere. Decoding (decompression, encodings, dictionaries, type conversion) stays hyparquet's, through the
 * same functions its reader calls, so the values are the ones `parquetRead` returns (test/formats/parquet-flat.test.ts
 * compares them on every type and encoding the tests write).
 */
import type { AsyncBuffer, Compressors, FileMetaData } from 'hyparquet';
import { parquetSchema } from 'hyparquet';
import { parquetHeader } from 'hyparquet/src/column.js';
import { convert, convertWithDictionary, DEFAULT_PARSERS } from 'hyparquet/src/convert.js';
import { decompressPage, readDataPage, readDataPageV2 } from 'hyparquet/src/datapage.js';
import { readPlain } from 'hyparquet/src/plain.js';
import { getMaxDefinitionLevel, getTreePath, isFlatColumn } from 'hyparquet/src/schema.js';
import { readRleBitPackedHybrid } from 'hyparquet/src/encoding.js';
import type { ColumnDecoder, DataPageHeader, DecodedArray, Encoding } from 'hyparquet/src/types.js';

/**
 * A column of numbers (DOUBLE, FLOAT, INT32, exact as doubles, without a date or time type), held unboxed:
 * as an array of values, a column of a row group was a heap number per value that lived as long as the group, and
 * garbage collection took 0.7 s of the 3.8 s a 200,000-row shard of the demo took.
 */
export class NumericColumn {
  constructor(
    readonly values: Float64Array,
    /** 1 where the value is missing; undefined when none is. */
    readonly nulls: Uint8Array | undefined,
  ) {}

  /** Row `r`'s value, null when missing (what the array form holds). */
  at(r: number): number | null {
    return this.nulls !== undefined && this.nulls[r] === 1 ? null : this.values[r]!;
  }
}

/** A column of a row group: its values (null for a missing one), or a NumericColumn. */
export type FlatColumn = unknown[] | NumericColumn;

/** Row `r` of `column`, null when missing. */
export function valueAt(column: FlatColumn, r: number): unknown {
  return column instanceof NumericColumn ? column.at(r) : (column[r] ?? null);
}

/**
 * Each of `names` in row group `group`, as one column of the group's rows; undefined when one of them is not a flat
 * column (the caller reads the group with `parquetRead`).
 */
export async function readFlatColumns(
  file: AsyncBuffer,
  metadata: FileMetaData,
  group: number,
  names: readonly string[],
  compressors: Compressors,
): Promise<FlatColumn[] | undefined> {
  const rowGroup = metadata.row_groups[group]!;
  const rows = Number(rowGroup.num_rows);
  const schema = parquetSchema(metadata);
  const decoders: { readonly decoder: ColumnDecoder; readonly start: number; readonly end: number }[] = [];
  for (const name of names) {
    const chunk = rowGroup.columns.find((c) => c.meta_data?.path_in_schema.join('.') === name);
    const meta = chunk?.meta_data;
    if (!meta) return undefined;
    const schemaPath = getTreePath(schema, meta.path_in_schema);
    if (!isFlatColumn(schemaPath)) return undefined;
    // As hyparquet's reader builds it (rowgroup.js), from the chunk's metadata.
    const decoder: ColumnDecoder = {
      pathInSchema: meta.path_in_schema,
      element: schemaPath[schemaPath.length - 1]!.element,
      schemaPath,
      type: meta.type,
      codec: meta.codec,
      parsers: DEFAULT_PARSERS,
      compressors,
    };
    // Polars writes dictionary_page_offset 0 for "none": the chunk starts at its first data page then.
    const start = Number(meta.dictionary_page_offset || meta.data_page_offset);
    decoders.push({ decoder, start, end: start + Number(meta.total_compressed_size) });
  }
  // One read for the group's chunks when they lie close together (the usual case: a tabular model reads most of a
  // file's columns), as hyparquet's reader merges them: on S3, a request per column chunk would be 30 per group.
  const from = Math.min(...decoders.map((d) => d.start));
  const to = Math.max(...decoders.map((d) => d.end));
  const wanted = decoders.reduce((n, d) => n + d.end - d.start, 0);
  if (to - from <= 2 * wanted) {
    const bytes = new Uint8Array(await file.slice(from, to));
    return decoders.map(({ decoder, start, end }) =>
      decodeFlatChunk(bytes.subarray(start - from, end - from), decoder, rows),
    );
  }
  return Promise.all(
    decoders.map(async ({ decoder, start, end }) =>
      decodeFlatChunk(new Uint8Array(await file.slice(start, end)), decoder, rows),
    ),
  );
}

/** A data page as hyparquet's readDataPage gives it, or as readFlatDataPage does (values converted). */
type FlatPage =
  | {
      readonly definitionLevels: ArrayLike<number> | undefined;
      readonly dataPage: DecodedArray;
      readonly encoding: Encoding;
    }
  | { readonly definitionLevels: Uint8Array | undefined; readonly values: DecodedArray };

/**
 * A v1 data page of a flat column, for the common encodings (PLAIN, and dictionary indexes): its definition levels in
 * a Uint8Array (hyparquet reads them into an array of numbers, one per row, even when none is null: 0.34 s per 200,000
 * demo rows), and its values converted as hyparquet converts them. Undefined for anything else (hyparquet's own
 * readDataPage then reads it).
 */
function readFlatDataPage(
  page: Uint8Array,
  daph: DataPageHeader,
  decoder: ColumnDecoder,
  maxDefinition: number,
  dictionary: DecodedArray | undefined,
): FlatPage | undefined {
  const dictionaryEncoded = daph.encoding === 'PLAIN_DICTIONARY' || daph.encoding === 'RLE_DICTIONARY';
  if (daph.encoding !== 'PLAIN' && !(dictionaryEncoded && dictionary && decoder.type !== 'BOOLEAN'))
    return undefined;
  if (maxDefinition > 1 || (maxDefinition === 1 && daph.definition_level_encoding !== 'RLE'))
    return undefined;
  const view = new DataView(page.buffer, page.byteOffset, page.byteLength);
  const reader = { view, offset: 0 };
  let levels: Uint8Array | undefined;
  let nulls = 0;
  if (maxDefinition === 1) {
    levels = new Uint8Array(daph.num_values);
    readRleBitPackedHybrid(reader, 1, levels);
    for (let i = 0; i < levels.length; i++) nulls += 1 - levels[i]!;
  }
  const count = daph.num_values - nulls;
  let values: DecodedArray;
  if (daph.encoding === 'PLAIN') {
    values = convert(readPlain(reader, decoder.type, count, decoder.element.type_length), decoder);
  } else {
    const width = view.getUint8(reader.offset++);
    const indexes = new Uint32Array(count);
    if (width) readRleBitPackedHybrid(reader, width, indexes, view.byteLength - reader.offset);
    const source = dictionary!;
    // Dictionary values stay in their typed array's type (numbers unboxed), as hyparquet's dereference keeps them.
    const out: DecodedArray = ArrayBuffer.isView(source)
      ? new (source.constructor as new (n: number) => typeof source)(count)
      : new Array<unknown>(count);
    for (let i = 0; i < count; i++) (out as unknown[])[i] = source[indexes[i]!];
    values = out;
  }
  return { definitionLevels: nulls > 0 ? levels : undefined, values };
}

/** Physical types whose values hyparquet converts to JavaScript numbers (with a type below, or none). */
const NUMERIC_TYPES = new Set(['DOUBLE', 'FLOAT', 'INT32']);
/** Converted and logical types that keep them numbers (not dates, times or bigints). */
const NUMERIC_CONVERSIONS = new Set(['INT_8', 'INT_16', 'INT_32', 'UINT_8', 'UINT_16', 'UINT_32', 'DECIMAL']);
const NUMERIC_LOGICAL = new Set(['INTEGER', 'DECIMAL']);

/** Whether every value of the column is a number, so that it can be held in a Float64Array. */
function isNumeric(decoder: ColumnDecoder): boolean {
  const { converted_type: converted, logical_type: logical } = decoder.element;
  return (
    NUMERIC_TYPES.has(decoder.type) &&
    (converted === undefined || NUMERIC_CONVERSIONS.has(converted)) &&
    (logical === undefined || NUMERIC_LOGICAL.has(logical.type))
  );
}

/** The `rows` values of one flat column chunk. */
function decodeFlatChunk(chunk: Uint8Array, decoder: ColumnDecoder, rows: number): FlatColumn {
  const reader = { view: new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength), offset: 0 };
  const numeric = isNumeric(decoder);
  const out: Float64Array | unknown[] = numeric ? new Float64Array(rows) : new Array<unknown>(rows);
  let nulls: Uint8Array | undefined;
  const maxDefinition = getMaxDefinitionLevel(decoder.schemaPath);
  let dictionary: DecodedArray | undefined;
  let row = 0;
  while (row < rows && reader.offset < reader.view.byteLength - 1) {
    const header = parquetHeader(reader);
    const bytes = chunk.subarray(reader.offset, reader.offset + header.compressed_page_size);
    reader.offset += header.compressed_page_size;
    let page: FlatPage;
    if (header.type === 'DICTIONARY_PAGE') {
      const plain = decompressPage(
        bytes,
        Number(header.uncompressed_page_size),
        decoder.codec,
        decoder.compressors,
      );
      const view = { view: new DataView(plain.buffer, plain.byteOffset, plain.byteLength), offset: 0 };
      const count = header.dictionary_page_header?.num_values ?? 0;
      dictionary = convert(readPlain(view, decoder.type, count, decoder.element.type_length), decoder);
      continue;
    } else if (header.type === 'DATA_PAGE') {
      const daph = header.data_page_header;
      if (!daph) throw new Error('parquet data page header is undefined');
      const plain = decompressPage(
        bytes,
        Number(header.uncompressed_page_size),
        decoder.codec,
        decoder.compressors,
      );
      page = readFlatDataPage(plain, daph, decoder, maxDefinition, dictionary) ?? {
        ...readDataPage(plain, daph, decoder),
        encoding: daph.encoding,
      };
    } else if (header.type === 'DATA_PAGE_V2') {
      const daph2 = header.data_page_header_v2;
      if (!daph2) throw new Error('parquet data page header v2 is undefined');
      page = { ...readDataPageV2(bytes, header, decoder), encoding: daph2.encoding };
    } else {
      // Index pages and the like carry no values.
      continue;
    }
    const values =
      'values' in page
        ? page.values
        : convertWithDictionary(page.dataPage, dictionary, page.encoding, decoder);
    const levels = page.definitionLevels;
    if (!levels || levels.length === 0) {
      // No nulls in the page (hyparquet drops the levels then): one value per row.
      for (let v = 0; v < values.length && row < rows; v++) out[row++] = values[v];
    } else {
      let v = 0;
      for (let i = 0; i < levels.length && row < rows; i++) {
        if (levels[i] === maxDefinition) out[row++] = values[v++];
        else if (numeric) (nulls ??= new Uint8Array(rows))[row++] = 1;
        else out[row++] = null;
      }
    }
  }
  if (row !== rows)
    throw new Error(`parquet column ${decoder.pathInSchema.join('.')}: ${row} of ${rows} values`);
  return out instanceof Float64Array ? new NumericColumn(out, nulls) : out;
}
