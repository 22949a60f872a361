/**
 * Parquet input as columnar blocks for tabular models (docs/adr/0019-tabular-data-path.md). Each row group of the
 * range is read column by column (flat columns by parquet-flat.ts, others as hyparquet's reader decodes them; never
 * the row objects the record reader builds), and its rows go through ColumnarRows: the values the record reader would have put in each
 * record (hyparquet's, null for a missing one), judged by the record path's own function, in file row order, with
 * the file row number as the record's offset. So the tensors, error rows and summaries are the record path's.
 */
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { parquetRead, type AsyncBuffer, type FileMetaData } from 'hyparquet';
import type { InputRange } from '../runs/types.js';
import type { ObjectStore } from '../storage/object-store.js';
import { ColumnarRows, inputColumnsOf, type ColumnarBlock, type ColumnarPlan } from './columnar-rows.js';
import { NumericColumn, readFlatColumns, valueAt, type FlatColumn } from './parquet-flat.js';
import type { NativeParquetReader } from './parquet-native.js';
import { openParquetRange, PARQUET_COMPRESSORS } from './parquet-read.js';

/** Rows per block at most: a large row group is handed over in pieces, so memory stays that of one group. */
const BLOCK_ROWS = 65_536;

class ParquetRows extends ColumnarRows {
  /** For each input column, then each identity column: its index in the group's column list. */
  private readonly inputAt: number[];
  private readonly identityAt: number[];

  constructor(plan: ColumnarPlan, columns: readonly string[]) {
    super(plan);
    this.inputAt = this.inputs.map((c) => columns.indexOf(c));
    this.identityAt = plan.identity.map((c) => columns.indexOf(c));
  }

  /** Row `r` of a group whose columns are `data` (in the order given to the constructor); `offset` its row number. */
  add(data: readonly FlatColumn[], r: number, offset: number): void {
    const { raw, ident } = this;
    this.rawIsNumber.fill(0);
    for (let f = 0; f < raw.length; f++) raw[f] = valueAt(data[this.inputAt[f]!]!, r);
    for (let i = 0; i < ident.length; i++) ident[i] = valueAt(data[this.identityAt[i]!]!, r);
    this.accept(offset);
  }

  /**
   * Rows [from, to) of a group, the first one numbered `offset`: as `add` adds each, but a row whose input values are
   * all present finite numbers goes into the block from the columns directly (every input column numeric, every
   * tensor a float one); any other row, and every row of another group, through `add`.
   */
  addRows(data: readonly FlatColumn[], from: number, to: number, offset: number): void {
    const inputs = this.inputAt.map((at) => data[at]);
    if (!this.floatEntriesOnly || !inputs.every((c) => c instanceof NumericColumn)) {
      for (let r = from; r < to; r++) this.add(data, r, offset + r - from);
      return;
    }
    // Which rows are plain, a column at a time; then each run of plain rows in one go and the others one by one.
    const values = inputs.map((c) => c.values);
    const plain = new Uint8Array(to - from).fill(1);
    for (const column of values) {
      for (let r = from; r < to; r++) if (!Number.isFinite(column[r]!)) plain[r - from] = 0;
    }
    for (const c of inputs) {
      const nulls = c.nulls;
      if (nulls) for (let r = from; r < to; r++) if (nulls[r] === 1) plain[r - from] = 0;
    }
    const identity = this.identityAt.map((at) => data[at]!);
    for (let r = from; r < to;) {
      if (plain[r - from] === 0) {
        this.add(data, r, offset + r - from);
        r++;
        continue;
      }
      let end = r + 1;
      while (end < to && plain[end - from] === 1) end++;
      this.acceptNumberRows(offset + r - from, values, r, end, identity);
      r = end;
    }
  }
}

/** Parquet files read by a native reader (parquet-native.ts) instead of hyparquet. */
export interface NativeParquetOptions {
  readonly reader: NativeParquetReader;
  /**
   * A new local path for a copy of an object that is not a local file, downloaded (pinned) for the reader when the
   * range is the whole object: its bytes are all read anyway, and one sequential download costs less than hyparquet's
   * decoding. The copy is removed when the range is read. @default none: such objects are read through hyparquet
   */
  readonly stagePath?: () => string;
}

/**
 * The rows of `range` as columnar blocks of at most BLOCK_ROWS rows, in file row order. A file whose columns the
 * native reader can read is read by it: a local file in place, with its ETag checked against the pin before and
 * after; another object (S3) from a pinned copy in `stageDir` when the range is the whole object. Anything else
 * through hyparquet.
 */
export async function* readParquetColumnar(
  store: ObjectStore,
  range: InputRange,
  plan: ColumnarPlan,
  native?: NativeParquetOptions,
  /** Told which reader reads the range, once it is known. */
  onReader?: (reader: 'duckdb' | 'hyparquet') => void,
): AsyncGenerator<ColumnarBlock, void, undefined> {
  const wanted = [...new Set([...plan.identity, ...inputColumnsOf(plan)])];
  const { file, metadata, columns, groupStart, groupEnd, rowStart } = await openParquetRange(
    store,
    range,
    wanted,
  );
  const names = columns ?? wanted;
  const rows = new ParquetRows(plan, names);
  const local = range.uri.startsWith('file://');
  const whole = groupStart === 0 && groupEnd === metadata.row_groups.length;
  /** The first row not yet taken: DuckDB's read may stop at a row hyparquet goes on from. */
  let from = rowStart;
  if (native && (local || (whole && native.stagePath)) && native.reader.canRead(metadata, names)) {
    let rowEnd = rowStart;
    for (let g = groupStart; g < groupEnd; g++) rowEnd += Number(metadata.row_groups[g]!.num_rows);
    const copy = local ? undefined : await stageCopy(store, range, native.stagePath!());
    let done = false;
    try {
      if (local) await checkPin(store, range);
      onReader?.('duckdb');
      const path = copy ?? fileURLToPath(range.uri);
      for await (const part of native.reader.read(path, names, rowStart, rowEnd)) {
        for (let r = 0; r < part.rows;) {
          const upto = Math.min(part.rows, r + BLOCK_ROWS - rows.count);
          rows.addRows(part.data, r, upto, part.offset + r);
          r = upto;
          if (rows.count >= BLOCK_ROWS) yield rows.take();
        }
        from = part.offset + part.rows;
      }
      // A file replaced while DuckDB read it (it reads by path, unpinned) fails the shard, as a pinned read would.
      if (local) await checkPin(store, range);
      done = true;
    } catch (err) {
      // DuckDB refuses a string that is not valid UTF-8, where hyparquet (and the record path) decode it with
      // replacement characters: the rest of the range is read as the record path reads it.
      if (!isInvalidUtf8(err)) throw err;
    } finally {
      if (copy) await rm(copy, { force: true });
    }
    if (done) {
      if (rows.count > 0) yield rows.take();
      return;
    }
  }
  onReader?.('hyparquet');
  let groupRow = rowStart;
  for (let g = groupStart; g < groupEnd; g++) {
    const n = Number(metadata.row_groups[g]!.num_rows);
    if (groupRow + n <= from) {
      groupRow += n;
      continue;
    }
    const data =
      (await readFlatColumns(file, metadata, g, names, PARQUET_COMPRESSORS)) ??
      (await readGroup(file, metadata, g, names, groupRow, n));
    for (let r = Math.max(0, from - groupRow); r < n;) {
      const upto = Math.min(n, r + BLOCK_ROWS - rows.count);
      rows.addRows(data, r, upto, groupRow + r);
      r = upto;
      if (rows.count >= BLOCK_ROWS) yield rows.take();
    }
    groupRow += n;
  }
  if (rows.count > 0) yield rows.take();
}

/** The object downloaded to `file` through the pinned store (a replaced object fails with ObjectChangedError). */
async function stageCopy(store: ObjectStore, range: InputRange, file: string): Promise<string> {
  try {
    await pipeline(await store.getStream(range.uri), createWriteStream(file));
  } catch (err) {
    await rm(file, { force: true });
    throw err;
  }
  return file;
}

/** DuckDB's error for a string value that is not valid UTF-8 (its Parquet reader checks every one). */
function isInvalidUtf8(err: unknown): boolean {
  // Not `instanceof Error`: the native binding's errors may come from another realm (a test runner's sandbox).
  const message = (err as { message?: unknown } | null)?.message;
  return typeof message === 'string' && message.includes('Invalid string encoding found in Parquet file');
}

/**
 * Fails with ObjectChangedError when the object is no longer the one the plan pinned: a one-byte read through the
 * pinned store, which checks the ETag as every read of the range does.
 */
async function checkPin(store: ObjectStore, range: InputRange): Promise<void> {
  await store.get(range.uri, { start: 0, end: 1 });
}

/** Row group `g` (`n` rows from file row `groupRow`) through hyparquet's reader: for columns that are not flat. */
async function readGroup(
  file: AsyncBuffer,
  metadata: FileMetaData,
  g: number,
  names: readonly string[],
  groupRow: number,
  n: number,
): Promise<FlatColumn[]> {
  const data = names.map(() => new Array<unknown>(n));
  const at = new Map(names.map((name, k) => [name, data[k]!]));
  // One group per call, as the record reader does: only that group's column chunks are fetched and held.
  await parquetRead({
    file,
    metadata,
    columns: [...names],
    rowStart: groupRow,
    rowEnd: groupRow + n,
    compressors: PARQUET_COMPRESSORS,
    onChunk: ({ columnName, columnData, rowStart: chunkStart }) => {
      const into = at.get(columnName);
      if (!into) return;
      const from = chunkStart - groupRow;
      const count = Math.min(columnData.length, n - from);
      for (let i = Math.max(0, -from); i < count; i++) into[from + i] = columnData[i];
    },
  });
  return data;
}
