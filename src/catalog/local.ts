/**
 * The offline catalogue: an embedded DuckDB database file.
 *
 * - `_runs`: one row per published run (what, when, which model, where its manifest and files are).
 * - One VIEW per job, named after the job, over exactly the prediction files (Parquet, JSON Lines or CSV, by
 *   extension) of its published runs, with the partition columns `run_date` (DATE) and `run_id` (VARCHAR) taken
 *   from the Hive-style paths. It is recreated
 *   on every publish, so a run becomes visible only once it passed validation, and a failed run's stray files in
 *   the output prefix never show.
 *
 * The database is opened for each publish and closed right after, so `batch-infer query` (a read-only connection,
 * possibly in another process) is not locked out between runs.
 *
 * Runs whose output is in S3 (`s3://`) are published from a local copy (ADR 0014): DuckDB's httpfs extension is
 * downloaded on first use, which an offline laptop cannot do, so at publish the run's files are copied through the
 * ObjectStore to `<database>.files/s3/<bucket>/<key>` (the Hive path is kept, so `run_date`/`run_id` still come from
 * it) and the view reads those copies. `_runs.files` keeps the S3 URIs: the copy is a cache of them.
 */
import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type * as DuckDb from '@duckdb/node-api';
import type { DuckDBConnection, DuckDBType, DuckDBTypeId, JS } from '@duckdb/node-api';
import type { Catalog, PublishedRun } from './catalog.js';
import type { ObjectStore } from '../storage/object-store.js';
import { duckDb } from '../formats/duckdb-library.js';
import { lazyModule, type LazyModule } from '../runtime/lazy-module.js';
import { parseUri } from '../storage/uri.js';

/**
 * DuckDB, loaded by the first publish or query: about 0.1 s of loading (required, not imported: duckdb-library.ts)
 * that the CLI's other commands, and a local run until its end, do without (`LocalCatalog.preload` starts it early).
 */
const duckdb: LazyModule<typeof DuckDb> = lazyModule(() => Promise.resolve().then(() => duckDb().api));

/** Job names are spec identifiers; checked again here because they become SQL identifiers. */
const TABLE_NAME = /^[a-z][a-z0-9_]*$/;

export interface LocalCatalogOptions {
  /** Path of the DuckDB database file; created (with its directory) on first publish. */
  readonly path: string;
  /**
   * Reads `s3://` prediction files at publish, to copy them next to the database (see above).
   * @default none: publishing a run whose files are in S3 fails with a message saying so
   */
  readonly store?: ObjectStore;
  /**
   * Told about runs left out of a job's view because their files are gone (deleted by hand, or by a lifecycle
   * rule), one message each.
   * @default written to standard error
   */
  readonly warn?: (message: string) => void;
}

export class LocalCatalog implements Catalog {
  readonly path: string;
  private readonly store: ObjectStore | undefined;
  private readonly warn: (message: string) => void;
  /** Publishes of this instance run one after another: DuckDB allows one writer per file. */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(options: LocalCatalogOptions) {
    this.path = path.resolve(options.path);
    this.store = options.store;
    this.warn = options.warn ?? ((message) => process.stderr.write(`${message}\n`));
  }

  /** Where the local copies of a catalogue's S3 files live. */
  get s3CacheDir(): string {
    return `${this.path}.files`;
  }

  async publishRun(run: PublishedRun): Promise<void> {
    if (this.closed) throw new Error(`LocalCatalog ${this.path} is closed`);
    checkRun(run, this.store !== undefined);
    const task = this.queue.then(() => publishingExclusively(this.path, () => this.publish(run)));
    this.queue = task.catch(() => undefined);
    return task;
  }

  /** Starts loading DuckDB now (a local run does while its workers run), so publishing does not wait for it. */
  preload(): void {
    duckdb.preload();
  }

  /** Waits for publishes in flight. The database is not held open between publishes, so nothing else to do. */
  async close(): Promise<void> {
    this.closed = true;
    await this.queue;
  }

  /**
   * Copies the run's `s3://` files to the cache folder, before the database is touched, so a failed download leaves
   * the catalogue as it was. Each is written under a temporary name and renamed, so a killed publish never leaves a
   * half file that a later view would read.
   */
  private async copyS3Files(run: PublishedRun): Promise<void> {
    const remote = run.files.filter((f) => f.startsWith('s3://'));
    if (remote.length === 0) return;
    if (!this.store) throw new Error(s3Unsupported(remote[0]!));
    for (const uri of remote) {
      const target = cachedPath(uri, this.s3CacheDir);
      await mkdir(path.dirname(target), { recursive: true });
      const temp = `${target}.${process.pid}.tmp`;
      await writeFile(temp, await this.store.get(uri));
      await rename(temp, target);
    }
  }

  private async publish(run: PublishedRun): Promise<void> {
    await mkdir(path.dirname(this.path), { recursive: true });
    await this.copyS3Files(run);
    const { LIST, VARCHAR, listValue } = await duckdb.load();
    await withConnection(this.path, false, async (conn) => {
      await conn.run(RUNS_DDL);
      for (const ddl of RUNS_COST_DDL) await conn.run(ddl);
      await conn.run('BEGIN TRANSACTION');
      try {
        const existing = await conn.runAndReadAll(
          `SELECT count(*) FROM ${RUNS_TABLE} WHERE table_name = $1 AND run_id = $2`,
          [run.table, run.runId],
        );
        if (Number(existing.getRowsJS()[0]?.[0] ?? 0) > 0) {
          // Already published: idempotent, and the view already includes it.
          await conn.run('COMMIT');
          return;
        }
        await conn.run(
          `INSERT INTO ${RUNS_TABLE} (table_name, run_id, run_date, status, model_name, model_version,
             model_sha256, records, predictions, errors, manifest_uri, output_uri, partition_uri, files, columns,
             finished_at, published_at)
           VALUES ($table_name, $run_id, $run_date::DATE, 'SUCCEEDED', $model_name, $model_version, $model_sha256,
             $records, $predictions, $errors, $manifest_uri, $output_uri, $partition_uri, $files, $columns,
             $finished_at::TIMESTAMP, $published_at::TIMESTAMP)`,
          {
            table_name: run.table,
            run_id: run.runId,
            run_date: run.runDate,
            model_name: run.model.name,
            model_version: run.model.version ?? null,
            model_sha256: run.model.sha256,
            records: run.records,
            predictions: run.predictions,
            errors: run.errors,
            manifest_uri: run.manifestUri,
            output_uri: run.outputUri,
            partition_uri: run.partitionUri,
            files: listValue([...run.files]),
            columns: JSON.stringify(run.columns),
            finished_at: toUtcTimestamp(run.finishedAt),
            published_at: toUtcTimestamp(new Date().toISOString()),
          },
          // An empty list has no element type to infer; say it.
          { files: LIST(VARCHAR) },
        );
        await recordRunCost(conn, run);
        const leftOut = await recreateView(conn, run.table, this.s3CacheDir);
        await conn.run('COMMIT');
        for (const gone of leftOut) this.warn(leftOutMessage(run.table, gone));
      } catch (err) {
        await conn.run('ROLLBACK').catch(() => undefined);
        throw err;
      }
    });
  }
}

const RUNS_TABLE = quoteIdentifier('_runs');

const RUNS_DDL = `CREATE TABLE IF NOT EXISTS ${RUNS_TABLE} (
  table_name VARCHAR NOT NULL,
  run_id VARCHAR NOT NULL,
  run_date DATE NOT NULL,
  status VARCHAR NOT NULL,
  model_name VARCHAR NOT NULL,
  model_version INTEGER,
  model_sha256 VARCHAR NOT NULL,
  records BIGINT NOT NULL,
  predictions BIGINT NOT NULL,
  errors BIGINT NOT NULL,
  manifest_uri VARCHAR NOT NULL,
  output_uri VARCHAR NOT NULL,
  partition_uri VARCHAR NOT NULL,
  files VARCHAR[] NOT NULL,
  columns VARCHAR NOT NULL,
  finished_at TIMESTAMP NOT NULL,
  published_at TIMESTAMP NOT NULL,
  PRIMARY KEY (table_name, run_id)
)`;

/** The run's cost columns (src/cost), added to catalogues made before they existed. */
const RUNS_COST_DDL = [
  `ALTER TABLE ${RUNS_TABLE} ADD COLUMN IF NOT EXISTS cost DOUBLE`,
  `ALTER TABLE ${RUNS_TABLE} ADD COLUMN IF NOT EXISTS cost_currency VARCHAR`,
];

async function recordRunCost(conn: DuckDBConnection, run: PublishedRun): Promise<void> {
  if (run.cost === undefined) return;
  await conn.run(
    `UPDATE ${RUNS_TABLE} SET cost = $cost, cost_currency = $currency WHERE table_name = $table AND run_id = $run_id`,
    { cost: run.cost, currency: run.costCurrency ?? null, table: run.table, run_id: run.runId },
  );
}

/** A published run whose files are no longer all there. */
interface LeftOutRun {
  readonly runId: string;
  readonly missing: number;
  readonly files: number;
  /** The first missing file, as the view would have read it. */
  readonly example: string;
}

/**
 * Points the job's view at every file of its published runs whose files are all still there, and returns the runs
 * it left out. Output files can be deleted after a run (by hand, or by an S3 lifecycle rule in the deployed
 * product), and DuckDB fails a whole `read_parquet` when one file of its list is gone: leaving such a run out, whole
 * so that no run shows half its rows, keeps every other run queryable, as Glue and Athena do when objects under a
 * partition are deleted. The run keeps its `_runs` row. A job with no file left has no view: `read_parquet` needs at
 * least one file.
 */
async function recreateView(
  conn: DuckDBConnection,
  table: string,
  s3CacheDir: string,
): Promise<LeftOutRun[]> {
  const result = await conn.runAndReadAll(
    `SELECT run_id, f FROM (SELECT run_date, run_id, unnest(files) AS f FROM ${RUNS_TABLE} WHERE table_name = $1)
     ORDER BY run_date, run_id, f`,
    [table],
  );
  const byRun = new Map<string, string[]>();
  for (const [runId, uri] of result.getRowsJS()) {
    if (typeof runId !== 'string' || typeof uri !== 'string')
      throw new Error(`Corrupt catalogue: a file of table ${table} is not a string`);
    const file = uri.startsWith('s3://') ? cachedPath(uri, s3CacheDir) : fileUriToPath(uri);
    byRun.set(runId, [...(byRun.get(runId) ?? []), file]);
  }
  const files: string[] = [];
  const leftOut: LeftOutRun[] = [];
  for (const [runId, runFiles] of byRun) {
    const missing = runFiles.filter((file) => !existsSync(file));
    if (missing.length === 0) files.push(...runFiles);
    else leftOut.push({ runId, missing: missing.length, files: runFiles.length, example: missing[0]! });
  }
  if (files.length === 0) {
    // Every file is gone (or none was written): a view over nothing would fail each query that names it.
    await conn.run(`DROP VIEW IF EXISTS ${quoteIdentifier(table)}`);
    return leftOut;
  }
  // One reader per file format (runs of a job may differ in output.format), unioned by column name. DDL takes no
  // parameters, so file lists are inlined as properly escaped string literals.
  const hive = `hive_partitioning = true, union_by_name = true, hive_types = {'run_date': DATE, 'run_id': VARCHAR}`;
  const byFormat = new Map<string, string[]>();
  for (const file of files) {
    const format = /\.(jsonl|csv)$/i.exec(file)?.[1]?.toLowerCase() ?? 'parquet';
    byFormat.set(format, [...(byFormat.get(format) ?? []), file]);
  }
  const selects = [...byFormat].map(([format, list]) => {
    const literal = `[${list.map(quoteString).join(', ')}]`;
    if (format === 'jsonl')
      return `SELECT * FROM read_json(${literal}, format = 'newline_delimited', ${hive})`;
    // allow_quoted_nulls off: the writer spells a missing value as an empty field and the empty string as "".
    if (format === 'csv') {
      return `SELECT * FROM read_csv(${literal}, header = true, allow_quoted_nulls = false, ${hive})`;
    }
    return `SELECT * FROM read_parquet(${literal}, ${hive})`;
  });
  await conn.run(
    `CREATE OR REPLACE VIEW ${quoteIdentifier(table)} AS ${selects.join(' UNION ALL BY NAME ')}`,
  );
  return leftOut;
}

function leftOutMessage(table: string, run: LeftOutRun): string {
  const count =
    run.missing < run.files
      ? `${run.missing} of its ${run.files} files are`
      : run.files === 1
        ? 'its file is'
        : `its ${run.files} files are`;
  return (
    `Catalogue: run ${run.runId} of ${table} is left out of the view ${table}: ${count} gone (${run.example}). ` +
    `Its row in _runs stays; restore the files and the job's next published run brings it back.`
  );
}

function checkRun(run: PublishedRun, canReadS3: boolean): void {
  if (!TABLE_NAME.test(run.table)) {
    throw new Error(`Cannot publish to table "${run.table}": table names are [a-z][a-z0-9_]* (the job name)`);
  }
  for (const uri of [run.outputUri, run.partitionUri, ...run.files]) {
    if (uri.startsWith('s3://')) {
      if (!canReadS3) throw new Error(s3Unsupported(uri));
      parseUri(uri);
    } else fileUriToPath(uri);
  }
  // Hive columns come from the path, so a file outside the run's partition would be labelled with another run.
  for (const file of run.files) {
    if (!file.startsWith(run.partitionUri)) {
      throw new Error(`Cannot publish ${file}: it is not inside the run's partition ${run.partitionUri}`);
    }
  }
}

function fileUriToPath(uri: string): string {
  if (uri.startsWith('s3://')) throw new Error(s3Unsupported(uri));
  const parsed = parseUri(uri);
  return parsed.key;
}

function s3Unsupported(uri: string): string {
  return (
    `The local catalogue was opened without an object store, so it cannot read ${uri}: ` +
    'create it with `new LocalCatalog({ path, store })` to publish runs whose output is in S3'
  );
}

/** `s3://bucket/a/b.parquet` -> `<cache>/s3/bucket/a/b.parquet`: the key's Hive folders are kept. */
function cachedPath(uri: string, s3CacheDir: string): string {
  const { bucket, key } = parseUri(uri);
  const parts = key.split('/');
  if (!bucket || parts.some((p) => p === '..' || p === '.' || p === '')) {
    throw new Error(`Cannot cache ${uri}: its key has an empty, "." or ".." segment`);
  }
  return path.join(s3CacheDir, 's3', bucket, ...parts);
}

function toUtcTimestamp(iso: string): string {
  const ms = Date.parse(iso);
  if (!Number.isFinite(ms)) throw new Error(`Not a timestamp: ${iso}`);
  // TIMESTAMP has no zone: store UTC wall time, without the "Z" that a plain TIMESTAMP cast may reject.
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
}

/** `"name"` with embedded quotes doubled: safe for any identifier, and keeps case. */
export function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** `'text'` with embedded quotes doubled. */
export function quoteString(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

async function withConnection<T>(
  file: string,
  readOnly: boolean,
  fn: (conn: DuckDBConnection) => Promise<T>,
): Promise<T> {
  const { DuckDBInstance } = await duckdb.load();
  const instance = await DuckDBInstance.create(file, readOnly ? { access_mode: 'READ_ONLY' } : {});
  try {
    const conn = await instance.connect();
    try {
      return await fn(conn);
    } finally {
      conn.closeSync();
    }
  } finally {
    instance.closeSync();
  }
}

export interface QueryResult {
  readonly columns: string[];
  readonly rows: unknown[][];
}

/**
 * Runs SQL against the catalogue over a read-only connection (`batch-infer query`). Values come back as plain
 * JSON-friendly data: BIGINTs as numbers when exactly representable (else decimal strings), DATEs as
 * `YYYY-MM-DD`, timestamps as ISO strings, FLOATs as the shortest decimal that reads back as the same float,
 * BLOBs as `0x` hex.
 */
export async function queryCatalog(dbPath: string, sql: string): Promise<QueryResult> {
  const file = path.resolve(dbPath);
  if (!existsSync(file)) {
    throw new Error(`No catalogue at ${file}: it is created when the first run is published`);
  }
  const { DuckDBTypeId: typeIds } = await duckdb.load();
  return withConnection(file, true, async (conn) => {
    const reader = await conn.runAndReadAll(sql).catch((err: unknown) => {
      throw explainQueryError(err);
    });
    const columns = reader.columnNames();
    const types = reader.columnTypes();
    const rows = reader.getRowsJS().map((row) => row.map((value, i) => plainValue(value, types[i], typeIds)));
    return { columns, rows };
  });
}

/**
 * A view reads the files its runs had when it was last recreated; DuckDB's own words for one deleted since then
 * name neither the cause nor the way out.
 */
function explainQueryError(err: unknown): unknown {
  const message = err instanceof Error ? err.message : String(err);
  const gone = /No files found that match the pattern "([^"]+)"/.exec(message);
  if (!gone) return err;
  return new Error(
    `A file that the catalogue's view reads is gone: ${gone[1]}. Restore it, or run the job again: its publish ` +
      `rebuilds the view without the runs whose files are gone (they keep their rows in _runs).`,
    { cause: err },
  );
}

/** Converts a value read by DuckDB into plain data, guided by its column type where it matters. */
function plainValue(value: JS, type: DuckDBType | undefined, typeIds: typeof DuckDBTypeId): unknown {
  if (value === null) return null;
  if (typeof value === 'bigint') {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(value)
      : value.toString();
  }
  if (typeof value === 'number') return type?.typeId === typeIds.FLOAT ? shortestFloat32(value) : value;
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) return String(value);
    const iso = value.toISOString();
    return type?.typeId === typeIds.DATE ? iso.slice(0, 10) : iso;
  }
  if (value instanceof Uint8Array) return `0x${Buffer.from(value).toString('hex')}`;
  if (Array.isArray(value)) {
    const element =
      type?.typeId === typeIds.LIST || type?.typeId === typeIds.ARRAY ? type.valueType : undefined;
    return value.map((v) => plainValue(v, element, typeIds));
  }
  if (typeof value === 'object') {
    const struct = type?.typeId === typeIds.STRUCT ? type : undefined;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const index = struct ? struct.entryNames.indexOf(k) : -1;
      out[k] = plainValue(v, index >= 0 ? struct?.entryTypes[index] : undefined, typeIds);
    }
    return out;
  }
  return value;
}

/** 0.1f reads as 0.10000000149011612 in a double; print it as 0.1, which converts back to the same float. */
function shortestFloat32(value: number): number {
  if (!Number.isFinite(value)) return value;
  for (let digits = 1; digits <= 9; digits++) {
    const candidate = Number(value.toPrecision(digits));
    if (Math.fround(candidate) === value) return candidate;
  }
  return value;
}

/** Longest cell shown by `formatTable`; longer values are cut with an ellipsis. */
const MAX_CELL = 60;

/**
 * Renders a result as an aligned text table for a terminal: a header, a rule, one line per row (numbers
 * right-aligned, NULL for missing values) and a row count.
 */
export function formatTable(result: QueryResult): string {
  const header = result.columns;
  const cells = result.rows.map((row) => header.map((_, i) => cellText(row[i])));
  const numeric = header.map((_, i) =>
    result.rows.every((row) => typeof row[i] === 'number' || row[i] === null || row[i] === undefined),
  );
  const widths = header.map((name, i) => Math.max(width(name), ...cells.map((row) => width(row[i] ?? ''))));
  const line = (values: readonly string[], alignNumbers: boolean): string =>
    values
      .map((v, i) => {
        const pad = ' '.repeat(Math.max(0, (widths[i] ?? 0) - width(v)));
        return alignNumbers && numeric[i] ? pad + v : v + pad;
      })
      .join(' | ')
      .trimEnd();
  const out = [line(header, false), widths.map((w) => '-'.repeat(w)).join('-+-')];
  for (const row of cells) out.push(line(row, true));
  const n = result.rows.length;
  out.push(`(${n} ${n === 1 ? 'row' : 'rows'})`);
  return out.join('\n');
}

function cellText(value: unknown): string {
  let text: string;
  if (value === null || value === undefined) text = 'NULL';
  else if (typeof value === 'string') text = value;
  else if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    text = String(value);
  } else text = JSON.stringify(value);
  // One line per row: control characters would break the alignment.
  text = text.replace(/\r?\n/g, '\\n').replace(/\t/g, '\\t');
  return width(text) > MAX_CELL ? `${[...text].slice(0, MAX_CELL - 1).join('')}…` : text;
}

/** Display width in code points (close enough for a terminal table; wide CJK glyphs are not measured). */
function width(text: string): number {
  return [...text].length;
}

/**
 * Publishes into one catalogue file, one at a time, whoever asks (issue 17, concurrency loop): DuckDB allows one
 * writer per file, and two LocalCatalog instances of one file in a process (two runs finishing at once) used to
 * open it together and fail one run at Finalize ("Could not read enough bytes from file"). In a process, publishes
 * of a path queue behind each other; across processes (two `batch-infer run` at once), DuckDB's file lock refuses
 * the second, which waits and retries while the lock is held, up to `lockWaitMs`.
 */
const publishQueues = new Map<string, Promise<unknown>>();

/** How long a publish waits for another process's lock on the catalogue file. */
export const CATALOG_LOCK_WAIT_MS = 120_000;

export async function publishingExclusively<T>(
  file: string,
  publish: () => Promise<T>,
  options: { readonly lockWaitMs?: number; readonly sleep?: (ms: number) => Promise<void> } = {},
): Promise<T> {
  const key = path.resolve(file);
  const previous = publishQueues.get(key) ?? Promise.resolve();
  const task = previous.then(() => retryWhileLocked(key, publish, options));
  const settled = task.catch(() => undefined);
  publishQueues.set(key, settled);
  void settled.then(() => {
    if (publishQueues.get(key) === settled) publishQueues.delete(key);
  });
  return task;
}

/** DuckDB's refusal when another process holds the file: "Could not set lock on file ... Conflicting lock". */
export function isCatalogLocked(err: unknown): boolean {
  return /Could not set lock on file|Conflicting lock is held/i.test(String(err));
}

async function retryWhileLocked<T>(
  file: string,
  publish: () => Promise<T>,
  options: { readonly lockWaitMs?: number; readonly sleep?: (ms: number) => Promise<void> },
): Promise<T> {
  const budget = options.lockWaitMs ?? CATALOG_LOCK_WAIT_MS;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let waited = 0;
  for (let delay = 100; ; delay = Math.min(delay * 2, 5_000)) {
    try {
      return await publish();
    } catch (err) {
      if (!isCatalogLocked(err)) throw err;
      if (waited >= budget) {
        throw new Error(
          `the local catalogue ${file} stayed locked by another process for ${Math.round(waited / 1000)} s ` +
            `(${String(err)}); rerun the same run id once the other run has published, to publish this one`,
          { cause: err },
        );
      }
      await sleep(delay);
      waited += delay;
    }
  }
}
