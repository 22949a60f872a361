/**
 * Streaming Parquet writer on DuckDB: rows appended batch by batch, encoded and compressed by DuckDB in its own
 * threads (`finish`). What the worker uses: measured 3-4x less JavaScript time per row than hyparquet-writer for
 * prediction chunks, with the encoding itself off the JavaScript thread and none of its garbage. DuckDB writes the
 * same Parquet types as `encodeParquet` (every column OPTIONAL; lists as the 3-level LIST) and values are checked
 * the same way.
 *
 * Its own module because it loads DuckDB's native binding, which the Lambda bundles must not carry.
 */
import type {
  DuckDBAppender,
  DuckDBConnection,
  DuckDBDataChunk,
  DuckDBInstance,
  DuckDBType,
  DuckDBValue,
} from '@duckdb/node-api';
import { duckDb } from './duckdb-library.js';
import { fillVector, VECTOR_ROWS, type VectorLayout } from './duckdb-columns.js';
import {
  checkList,
  DEFAULT_ROW_GROUP_SIZE,
  describe,
  elementTypeOf,
  expectedText,
  INVALID,
  ParquetEncodeError,
  SCALAR_TYPES,
  type OutputColumnType,
  type ScalarType,
} from './parquet-write.js';

/** A column of a chunk writer: its name and declared type. */
export interface ColumnSpec {
  readonly name: string;
  readonly type: OutputColumnType;
  /**
   * For a string column: every value it can hold, when known up front (labels from a labels file, the source
   * objects of a shard). The column is then held as a DuckDB ENUM (a small integer per row instead of a string
   * copied into native memory per row) and written as an ordinary string column. A value outside the list is a
   * ParquetEncodeError.
   */
  readonly categories?: readonly string[];
  /**
   * For a bigint column whose values are JavaScript numbers that are safe integers (byte offsets, row indexes): they
   * are staged as DOUBLE (exact below 2^53) and written as INT64, which spares a BigInt per value.
   */
  readonly safeIntegers?: boolean;
}

export interface ChunkWriterOptions {
  /** Rows per row group. @default DEFAULT_ROW_GROUP_SIZE */
  readonly rowGroupSize?: number;
}

/** The output types a chunk writer takes: the scalar ones and lists of them. */
const WRITABLE_SCALARS: ReadonlySet<string> = new Set(SCALAR_TYPES);

function isWritable(type: OutputColumnType): boolean {
  return elementTypeOf(type) !== undefined || WRITABLE_SCALARS.has(type);
}

/** The DuckDB type of a writable output type (once DuckDB is loaded). */
function duckType(type: OutputColumnType): DuckDBType {
  const { VARCHAR, FLOAT, DOUBLE, INTEGER, BIGINT, BOOLEAN, LIST } = duckDb().api;
  const scalars: Record<ScalarType, DuckDBType> = {
    string: VARCHAR,
    float: FLOAT,
    double: DOUBLE,
    int: INTEGER,
    bigint: BIGINT,
    boolean: BOOLEAN,
  };
  const element = elementTypeOf(type);
  return element !== undefined ? LIST(scalars[element]) : scalars[type as ScalarType];
}

let database: Promise<DuckDBInstance> | undefined;
/**
 * Data chunks kept for reuse, by their column types (ParquetChunkWriter.dataChunk), most recently used last. A few:
 * a shard's writers share one set of types (a challenger's writer another), but the types change from shard to shard
 * (the ENUM of a shard's source objects), and a worker host runs many shards.
 */
const sharedChunks = new Map<string, DuckDBDataChunk>();
const SHARED_CHUNKS = 4;
let tableCounter = 0;

/**
 * One in-memory DuckDB per process for all chunk writers (each writer has its own connection and table) and the
 * worker's Parquet input reads (parquet-native.ts). Threads: what `configureParquetWriter` set, else DuckDB's default
 * (one per core).
 */
export function writerDatabase(): Promise<DuckDBInstance> {
  // In a `then`: a failure to load DuckDB becomes this promise's rejection, where the callers handle it.
  database ??= Promise.resolve().then(() =>
    duckDb().api.DuckDBInstance.create(':memory:', {
      ...(writerThreads ? { threads: String(writerThreads) } : {}),
      // Order of rows is part of the output contract (input order within a shard).
      preserve_insertion_order: 'true',
    }),
  );
  return database;
}

let writerThreads: number | undefined;

/** Loads DuckDB and creates the writers' database now (in the background), so the first chunk does not wait. */
export function warmParquetWriter(): void {
  writerDatabase().catch(() => {
    // The first ParquetChunkWriter.create reports the error, where it can be handled.
    database = undefined;
  });
}

/** Sets DuckDB's thread count for chunk writers; only effective before the first writer is created. */
export function configureParquetWriter(options: { readonly threads?: number }): void {
  writerThreads = options.threads;
}

/**
 * Accumulates rows of one Parquet file in DuckDB and writes the file on `finish`. Values are checked against the
 * declared types exactly as `encodeParquet` checks them (ParquetEncodeError naming column, row and value).
 */
export class ParquetChunkWriter {
  private rowCount = 0;
  private closed = false;
  private readonly types: readonly DuckDBType[];
  private readonly typesKey: string;
  /** How each column's vector is filled in bulk (duckdb-columns.ts); undefined: by node-api, value by value. */
  private readonly layouts: readonly (VectorLayout | undefined)[];

  private constructor(
    private readonly columns: readonly ColumnSpec[],
    private readonly connection: DuckDBConnection,
    private readonly table: string,
    private readonly appender: DuckDBAppender,
    private readonly rowGroupSize: number,
  ) {
    this.types = columns.map((c) => tableType(c));
    this.typesKey = this.types.map((t) => t.toString()).join('\u0000');
    this.layouts = columns.map((c) => vectorLayout(c));
  }

  static async create(
    columns: readonly ColumnSpec[],
    options: ChunkWriterOptions = {},
  ): Promise<ParquetChunkWriter> {
    checkColumnSpecs(columns);
    const rowGroupSize = options.rowGroupSize ?? DEFAULT_ROW_GROUP_SIZE;
    if (!Number.isInteger(rowGroupSize) || rowGroupSize < 1) {
      throw new ParquetEncodeError(`rowGroupSize must be a positive integer, got ${rowGroupSize}`);
    }
    const db = await writerDatabase();
    const connection = await db.connect();
    const table = `chunk_${process.pid}_${++tableCounter}`;
    try {
      const ddl = columns.map((c) => `${quoteIdentifier(c.name)} ${tableType(c).toString()}`).join(', ');
      await connection.run(`CREATE TABLE ${table} (${ddl})`);
      const appender = await connection.createAppender(table);
      return new ParquetChunkWriter(columns, connection, table, appender, rowGroupSize);
    } catch (err) {
      connection.closeSync();
      throw err;
    }
  }

  /** Rows appended so far. */
  get rows(): number {
    return this.rowCount;
  }

  /**
   * Appends `rows` rows: `values[c]` holds column c's values (one per row; typed arrays are fine for numeric
   * columns). Synchronous: the values are copied into DuckDB's vectors before it returns.
   */
  append(values: readonly ArrayLike<unknown>[], rows: number): void {
    if (this.closed) throw new ParquetEncodeError('append after finish');
    if (values.length !== this.columns.length) {
      throw new ParquetEncodeError(`expected ${this.columns.length} columns, got ${values.length}`);
    }
    values.forEach((v, c) => {
      if (v.length < rows) {
        throw new ParquetEncodeError(
          `column "${this.columns[c]!.name}" has ${v.length} values for ${rows} rows`,
        );
      }
    });
    for (let from = 0; from < rows; from += VECTOR_ROWS) {
      const n = Math.min(VECTOR_ROWS, rows - from);
      const chunk = this.dataChunk(n);
      this.columns.forEach((column, c) => {
        const layout = this.layouts[c];
        if (!layout) {
          chunk.setColumnValues(c, listValues(column, values[c]!, from, n, this.rowCount + from));
          return;
        }
        const vector = duckDb().bindings.data_chunk_get_vector(chunk.chunk, c);
        const refused = fillVector(vector, layout, values[c]!, from, n, isStagedAsDouble(column));
        if (refused) {
          throw refusedError(column, refused.value, this.rowCount + from + refused.row, refused.notAMember);
        }
      });
      this.appender.appendDataChunk(chunk);
    }
    this.rowCount += rows;
  }

  /**
   * A data chunk of the writer's column types, emptied and sized for `rows` rows: one per set of types in the
   * process, not one per append. A chunk's native memory is freed only when its JavaScript object is collected, and
   * these objects are too small for V8 to collect them soon: a chunk per 2,048 rows grew the worker's RSS by about
   * 1.5 MiB per 25,000 rows written (docs/adr/0019, 2026-12-07 afternoon). The appender copies a chunk's rows, and
   * `append` fills and appends a chunk without yielding, so writers can share one.
   */
  private dataChunk(rows: number): DuckDBDataChunk {
    let chunk = sharedChunks.get(this.typesKey);
    if (chunk) {
      chunk.reset();
      sharedChunks.delete(this.typesKey);
    } else {
      chunk = duckDb().api.DuckDBDataChunk.create(this.types);
      if (sharedChunks.size >= SHARED_CHUNKS) sharedChunks.delete(sharedChunks.keys().next().value!);
    }
    sharedChunks.set(this.typesKey, chunk);
    chunk.rowCount = rows;
    return chunk;
  }

  /** Writes the rows to a Parquet file at `file` (a local path) and releases the table. */
  async finish(file: string): Promise<void> {
    if (this.closed) throw new ParquetEncodeError('finish called twice');
    this.closed = true;
    try {
      this.appender.closeSync();
      // Staged types become the declared ones in the file: ENUM a plain string, DOUBLE-staged integers INT64.
      const select = this.columns
        .map((c) => {
          const name = quoteIdentifier(c.name);
          if (isCategorical(c)) return `CAST(${name} AS VARCHAR) AS ${name}`;
          if (isStagedAsDouble(c)) return `CAST(${name} AS BIGINT) AS ${name}`;
          return name;
        })
        .join(', ');
      await this.connection.run(
        `COPY (SELECT ${select} FROM ${this.table}) TO ${quoteString(file)} ` +
          `(FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE ${this.rowGroupSize})`,
      );
    } finally {
      await this.connection.run(`DROP TABLE IF EXISTS ${this.table}`).catch(() => undefined);
      this.connection.closeSync();
    }
  }

  /** Drops the rows without writing anything. */
  async abort(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      this.appender.closeSync();
    } catch {
      // The appender may already be unusable (that can be why we abort); the table is dropped regardless.
    }
    await this.connection.run(`DROP TABLE IF EXISTS ${this.table}`).catch(() => undefined);
    this.connection.closeSync();
  }
}

function isStagedAsDouble(column: ColumnSpec): boolean {
  return column.type === 'bigint' && column.safeIntegers === true;
}

function isCategorical(column: ColumnSpec): boolean {
  return column.type === 'string' && column.categories !== undefined && column.categories.length > 0;
}

/** A categorical column's ENUM members: distinct (as ENUM needs), in the order of first appearance. */
function categoryMembers(column: ColumnSpec): string[] {
  return [...new Set(column.categories)];
}

/** The column's type in the staging table (an ENUM for a categorical string column). */
function tableType(column: ColumnSpec): DuckDBType {
  const { ENUM, DOUBLE } = duckDb().api;
  if (isCategorical(column)) return ENUM(categoryMembers(column));
  return isStagedAsDouble(column) ? DOUBLE : duckType(column.type);
}

function checkColumnSpecs(columns: readonly ColumnSpec[]): void {
  if (columns.length === 0) throw new ParquetEncodeError('a Parquet file needs at least one column');
  const names = new Set<string>();
  for (const column of columns) {
    if (column.name === '') throw new ParquetEncodeError('column names must not be empty');
    if (names.has(column.name)) throw new ParquetEncodeError(`column "${column.name}" appears twice`);
    if (!isWritable(column.type)) {
      throw new ParquetEncodeError(`column "${column.name}" has unknown type ${String(column.type)}`);
    }
    names.add(column.name);
  }
}

/** How a column's vector is filled in bulk, or undefined for a list column (node-api sets it value by value). */
function vectorLayout(column: ColumnSpec): VectorLayout | undefined {
  if (isCategorical(column)) {
    return { kind: 'enum', codes: new Map(categoryMembers(column).map((c, k) => [c, k])) };
  }
  if (isStagedAsDouble(column)) return { kind: 'float64' };
  switch (column.type) {
    case 'string':
      return { kind: 'varchar' };
    case 'float':
      return { kind: 'float32' };
    case 'double':
      return { kind: 'float64' };
    case 'int':
      return { kind: 'int32' };
    case 'bigint':
      return { kind: 'bigint64' };
    case 'boolean':
      return { kind: 'bool' };
    default:
      return undefined;
  }
}

/** The error for a value a column refuses (row numbered within the file). */
function refusedError(column: ColumnSpec, v: unknown, row: number, notAMember: boolean): ParquetEncodeError {
  const staged = isStagedAsDouble(column);
  const where = `column "${column.name}" (${staged ? 'bigint, safe integers' : column.type}) row ${row}`;
  const problem = staged
    ? `expected a safe integer, got ${describe(v)}`
    : notAMember
      ? `${describe(v)} is not one of its declared categories`
      : `expected ${expectedText(column.type, v)}, got ${describe(v)}`;
  return new ParquetEncodeError(`${where}: ${problem}`);
}

/**
 * Rows [from, from + n) of a list column as DuckDB values, checked like `dataFor` (other columns are filled in bulk:
 * duckdb-columns.ts). `base` numbers rows in errors.
 */
function listValues(
  column: ColumnSpec,
  values: ArrayLike<unknown>,
  from: number,
  n: number,
  base: number,
): DuckDBValue[] {
  const element = elementTypeOf(column.type)!;
  const { listValue } = duckDb().api;
  const out = new Array<DuckDBValue>(n);
  for (let i = 0; i < n; i++) {
    const v = values[from + i];
    if (v === null || v === undefined) {
      out[i] = null;
      continue;
    }
    const checked = checkList(element, v);
    if (checked === INVALID) throw refusedError(column, v, base + i, false);
    out[i] = listValue(checked as DuckDBValue[]);
  }
  return out;
}

export function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function quoteString(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}
