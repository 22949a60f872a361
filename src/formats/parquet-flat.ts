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
import type { ColumnDecoder, DecodedArray, Encoding } from 'hyparquet/src/types.js';

/**
 * Each of `names` in row group `group`, as one array of the group's rows (null for a missing value); undefined when
 * one of them is not a flat column (the caller reads the group with `parquetRead`).
 */
export async function readFlatColumns(
  file: AsyncBuffer,
  metadata: FileMetaData,
  group: number,
  names: readonly string[],
  compressors: Compressors,
): Promise<unknown[][] | undefined> {
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
  return Promise.all(
    decoders.map(async ({ decoder, start, end }) =>
      decodeFlatChunk(await file.slice(start, end), decoder, rows),
    ),
  );
}

/** The `rows` values of one flat column chunk. */
function decodeFlatChunk(buffer: ArrayBuffer, decoder: ColumnDecoder, rows: number): unknown[] {
  const reader = { view: new DataView(buffer), offset: 0 };
  const out = new Array<unknown>(rows);
  const maxDefinition = getMaxDefinitionLevel(decoder.schemaPath);
  let dictionary: DecodedArray | undefined;
  let row = 0;
  while (row < rows && reader.offset < reader.view.byteLength - 1) {
    const header = parquetHeader(reader);
    const bytes = new Uint8Array(buffer, reader.offset, header.compressed_page_size);
    reader.offset += header.compressed_page_size;
    let page: { definitionLevels: number[] | undefined; dataPage: DecodedArray; encoding: Encoding };
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
      page = { ...readDataPage(plain, daph, decoder), encoding: daph.encoding };
    } else if (header.type === 'DATA_PAGE_V2') {
      const daph2 = header.data_page_header_v2;
      if (!daph2) throw new Error('parquet data page header v2 is undefined');
      page = { ...readDataPageV2(bytes, header, decoder), encoding: daph2.encoding };
    } else {
      // Index pages and the like carry no values.
      continue;
    }
    const values = convertWithDictionary(page.dataPage, dictionary, page.encoding, decoder);
    const levels = page.definitionLevels;
    if (!levels || levels.length === 0) {
      // No nulls in the page (hyparquet drops the levels then): one value per row.
      for (let v = 0; v < values.length && row < rows; v++) out[row++] = values[v];
    } else {
      let v = 0;
      for (let i = 0; i < levels.length && row < rows; i++) {
        out[row++] = levels[i] === maxDefinition ? values[v++] : null;
      }
    }
  }
  if (row !== rows)
    throw new Error(`parquet column ${decoder.pathInSchema.join('.')}: ${row} of ${rows} values`);
  return out;
}
