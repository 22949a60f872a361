import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import type { PublishedRun } from '../../src/catalog/catalog.js';
import { formatTable, LocalCatalog, queryCatalog, quoteString } from '../../src/catalog/local.js';
import { runLayout } from '../../src/runs/layout.js';
import { LocalObjectStore, RoutingObjectStore } from '../../src/storage/index.js';
import { createS3Client, S3ObjectStore } from '../../src/storage/s3.js';
import { startS3Server, useS3TestEnv, type S3TestServer } from '../support/s3-server.js';
import { tempDir } from '../results/run-fixture.js';

let dir: string;
let dbPath: string;
beforeEach(async () => {
  // A quote in the directory name proves file paths are escaped inside the view's SQL.
  dir = path.join(await tempDir(), "it's here");
  await mkdir(dir, { recursive: true });
  dbPath = path.join(dir, 'catalog.duckdb');
});
afterEach(async () => {
  await rm(path.dirname(dir), { recursive: true, force: true });
});

/** Writes one Parquet file through DuckDB from a SELECT. */
async function copyTo(fileUri: string, select: string): Promise<void> {
  const file = fileURLToPath(fileUri);
  await mkdir(path.dirname(file), { recursive: true });
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    await conn.run(`COPY (${select}) TO ${quoteString(file)} (FORMAT parquet)`);
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

function runOf(table: string, runId: string, runDate: string, files: string[]): PublishedRun {
  const layout = runLayout(`${pathToFileURL(path.join(dir, 'out')).href}/`, runId, runDate);
  return {
    table,
    runId,
    runDate,
    outputUri: layout.outputUri,
    partitionUri: layout.partitionUri,
    files: files.map((name) => `${layout.partitionUri}${name}`),
    columns: [
      { name: 'label', type: 'string' },
      { name: 'score', type: 'float' },
    ],
    model: { name: 'churn', version: 3, sha256: 'c'.repeat(64) },
    records: 2,
    predictions: 2,
    errors: 0,
    manifestUri: `${layout.runUri}manifest.json`,
    finishedAt: '2024-05-06T12:34:56.000Z',
  };
}

describe('LocalCatalog', () => {
  it('publishes runs into _runs and a view over exactly their files, with hive columns', async () => {
    const first = runOf('scores', 'run-a', '2024-05-06', ['part-00000-0000.parquet']);
    const second = runOf('scores', 'run-b', '2024-05-07', [
      'part-00000-0000.parquet',
      'part-00001-0000.parquet',
    ]);
    await copyTo(first.files[0]!, "SELECT 'x' AS label, 0.5::FLOAT AS score");
    // The later run wrote an extra column: union_by_name fills it with NULL for older files.
    await copyTo(second.files[0]!, "SELECT 'y' AS label, 0.25::FLOAT AS score, 7 AS extra");
    await copyTo(second.files[1]!, "SELECT 'z' AS label, 1::FLOAT AS score, 8 AS extra");
    // A stray file in a published partition that no marker listed: must not show.
    await copyTo(
      `${second.partitionUri}part-00002-0000.parquet`,
      "SELECT 'stray' AS label, 0::FLOAT AS score",
    );

    const catalog = new LocalCatalog({ path: dbPath });
    await catalog.publishRun(first);
    await catalog.publishRun(second);
    await catalog.close();

    const rows = await queryCatalog(dbPath, 'SELECT * FROM scores ORDER BY label');
    // Data columns (unioned by name), then the partition columns.
    expect(rows.columns).toEqual(['label', 'score', 'extra', 'run_date', 'run_id']);
    expect(rows.rows).toEqual([
      ['x', 0.5, null, '2024-05-06', 'run-a'],
      ['y', 0.25, 7, '2024-05-07', 'run-b'],
      ['z', 1, 8, '2024-05-07', 'run-b'],
    ]);

    const runs = await queryCatalog(
      dbPath,
      `SELECT table_name, run_id, run_date, status, model_name, model_version, model_sha256, records, predictions,
              errors, manifest_uri, output_uri, partition_uri, files, finished_at, typeof(published_at) AS published
       FROM _runs ORDER BY run_id`,
    );
    expect(runs.rows[1]).toEqual([
      'scores',
      'run-b',
      '2024-05-07',
      'SUCCEEDED',
      'churn',
      3,
      'c'.repeat(64),
      2,
      2,
      0,
      second.manifestUri,
      second.outputUri,
      second.partitionUri,
      second.files,
      '2024-05-06T12:34:56.000Z',
      'TIMESTAMP',
    ]);
  });

  it('is idempotent: publishing the same run again changes nothing', async () => {
    const run = runOf('scores', 'run-a', '2024-05-06', ['part-00000-0000.parquet']);
    await copyTo(run.files[0]!, "SELECT 'x' AS label, 0.5::FLOAT AS score");
    const catalog = new LocalCatalog({ path: dbPath });
    await catalog.publishRun(run);
    await catalog.publishRun(run);
    // Even with other content: a published run is immutable.
    await catalog.publishRun({ ...run, records: 99 });
    const counts = await queryCatalog(
      dbPath,
      'SELECT (SELECT count(*) FROM _runs) AS runs, (SELECT max(records) FROM _runs) AS records, (SELECT count(*) FROM scores) AS rows',
    );
    expect(counts.rows).toEqual([[1, 2, 1]]);
  });

  it('serialises concurrent publishes and quotes reserved table names', async () => {
    const a = runOf('select', 'run-a', '2024-05-06', ['part-00000-0000.parquet']);
    const b = runOf('select', 'run-b', '2024-05-06', ['part-00000-0000.parquet']);
    await copyTo(a.files[0]!, "SELECT 'a' AS label");
    await copyTo(b.files[0]!, "SELECT 'b' AS label");
    const catalog = new LocalCatalog({ path: dbPath });
    await Promise.all([catalog.publishRun(a), catalog.publishRun(b)]);
    const rows = await queryCatalog(dbPath, 'SELECT run_id, label FROM "select" ORDER BY run_id');
    expect(rows.rows).toEqual([
      ['run-a', 'a'],
      ['run-b', 'b'],
    ]);
  });

  it('records a run without files but creates no view until a file exists', async () => {
    const catalog = new LocalCatalog({ path: dbPath });
    await catalog.publishRun(runOf('empty_job', 'run-a', '2024-05-06', []));
    expect((await queryCatalog(dbPath, 'SELECT run_id, files FROM _runs')).rows).toEqual([['run-a', []]]);
    await expect(queryCatalog(dbPath, 'SELECT * FROM empty_job')).rejects.toThrow(/empty_job/);
  });

  it('leaves a run whose files are gone out of the view, says so, and keeps its _runs row', async () => {
    const first = runOf('scores', 'run-a', '2024-05-06', ['part-00000-0000.parquet']);
    const second = runOf('scores', 'run-b', '2024-05-07', [
      'part-00000-0000.parquet',
      'part-00001-0000.parquet',
    ]);
    const third = runOf('scores', 'run-c', '2024-05-08', ['part-00000-0000.parquet']);
    await copyTo(first.files[0]!, "SELECT 'a' AS label, 0.5::FLOAT AS score");
    await copyTo(second.files[0]!, "SELECT 'b0' AS label, 0.25::FLOAT AS score");
    await copyTo(second.files[1]!, "SELECT 'b1' AS label, 0.75::FLOAT AS score");
    await copyTo(third.files[0]!, "SELECT 'c' AS label, 1::FLOAT AS score");
    const warnings: string[] = [];
    const catalog = new LocalCatalog({ path: dbPath, warn: (message) => warnings.push(message) });
    await catalog.publishRun(first);
    await catalog.publishRun(second);

    // The user cleans up: run-a's only file and one of run-b's two go.
    await rm(fileURLToPath(first.files[0]!));
    await rm(fileURLToPath(second.files[1]!));
    // The view made before still names them: a query says which file is gone and what to do.
    await expect(queryCatalog(dbPath, 'SELECT * FROM scores')).rejects.toThrow(
      /A file that the catalogue's view reads is gone: .*part-0000[01]-0000\.parquet\. Restore it, or run the job again/,
    );

    await catalog.publishRun(third);
    await catalog.close();
    // run-b is left out whole: no run shows part of its rows.
    const rows = await queryCatalog(dbPath, 'SELECT run_id, label FROM scores ORDER BY label');
    expect(rows.rows).toEqual([['run-c', 'c']]);
    const runs = await queryCatalog(dbPath, 'SELECT run_id FROM _runs ORDER BY run_id');
    expect(runs.rows).toEqual([['run-a'], ['run-b'], ['run-c']]);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toContain('run run-a of scores is left out of the view scores: its file is gone (');
    expect(warnings[1]).toContain(
      'run run-b of scores is left out of the view scores: 1 of its 2 files are gone (',
    );
    expect(warnings[1]).toContain(fileURLToPath(second.files[1]!));
  });

  it('drops the view when every file of the job is gone', async () => {
    const first = runOf('scores', 'run-a', '2024-05-06', ['part-00000-0000.parquet']);
    await copyTo(first.files[0]!, "SELECT 'a' AS label, 0.5::FLOAT AS score");
    const warnings: string[] = [];
    const catalog = new LocalCatalog({ path: dbPath, warn: (message) => warnings.push(message) });
    await catalog.publishRun(first);
    await rm(fileURLToPath(first.files[0]!));
    await catalog.publishRun(runOf('scores', 'run-b', '2024-05-07', []));
    await expect(queryCatalog(dbPath, 'SELECT * FROM scores')).rejects.toThrow(/scores/);
    await expect(queryCatalog(dbPath, 'SELECT * FROM scores')).rejects.not.toThrow(/No files found/);
    expect(warnings).toEqual([expect.stringContaining('run run-a of scores is left out')]);
  });

  it('refuses S3 locations, files outside the partition and bad table names', async () => {
    const catalog = new LocalCatalog({ path: dbPath });
    const run = runOf('scores', 'run-a', '2024-05-06', ['part-00000-0000.parquet']);
    await expect(
      catalog.publishRun({
        ...run,
        files: ['s3://bucket/out/run_date=2024-05-06/run_id=run-a/part.parquet'],
      }),
    ).rejects.toThrow(
      /opened without an object store, so it cannot read s3:\/\/.*LocalCatalog\(\{ path, store \}\)/,
    );
    await expect(
      catalog.publishRun({ ...run, files: [`${run.outputUri}elsewhere/part.parquet`] }),
    ).rejects.toThrow(/not inside the run's partition/);
    await expect(catalog.publishRun({ ...run, table: 'Bad-Name' })).rejects.toThrow(/table names are/);
    await catalog.close();
    await expect(catalog.publishRun(run)).rejects.toThrow(/closed/);
  });
});

describe('LocalCatalog with S3 output', () => {
  let server: S3TestServer;
  let restoreEnv: () => void;
  beforeAll(async () => {
    server = await startS3Server();
    restoreEnv = useS3TestEnv(server.endpoint);
    await server.createBucket('lake');
  });
  afterAll(async () => {
    restoreEnv();
    await server.stop();
  });

  it('publishes a run whose files are in S3 from a local copy, keeping the hive columns', async () => {
    const store = new RoutingObjectStore({
      file: () => new LocalObjectStore(),
      s3: () => new S3ObjectStore(createS3Client({ endpoint: server.endpoint })),
    });
    // Real Parquet bytes, made locally and uploaded.
    const local = runOf('scores', 'run-s3', '2024-05-06', ['part-00000-0000.parquet']);
    await copyTo(local.files[0]!, "SELECT 'x' AS label, 0.5::FLOAT AS score UNION ALL SELECT 'y', 0.25");
    const layout = runLayout('s3://lake/predictions/scores/', 'run-s3', '2024-05-06');
    const file = `${layout.partitionUri}part-00000-0000.parquet`;
    await store.put(file, await readFile(fileURLToPath(local.files[0]!)));
    const run: PublishedRun = {
      ...local,
      outputUri: layout.outputUri,
      partitionUri: layout.partitionUri,
      files: [file],
      manifestUri: `${layout.runUri}manifest.json`,
    };

    const catalog = new LocalCatalog({ path: dbPath, store });
    await catalog.publishRun(run);
    await catalog.close();

    const rows = await queryCatalog(
      dbPath,
      'SELECT label, score, run_date, run_id FROM scores ORDER BY label',
    );
    expect(rows.rows).toEqual([
      ['x', 0.5, '2024-05-06', 'run-s3'],
      ['y', 0.25, '2024-05-06', 'run-s3'],
    ]);
    // The catalogue records where the data is, not the copy.
    expect((await queryCatalog(dbPath, 'SELECT files FROM _runs')).rows).toEqual([[[file]]]);
    // A file that is not in S3 fails the publish and leaves the catalogue as it was.
    const missing = runLayout('s3://lake/predictions/scores/', 'run-gone', '2024-05-07');
    const catalog2 = new LocalCatalog({ path: dbPath, store });
    await expect(
      catalog2.publishRun({
        ...run,
        runId: 'run-gone',
        runDate: '2024-05-07',
        partitionUri: missing.partitionUri,
        files: [`${missing.partitionUri}part-00000-0000.parquet`],
      }),
    ).rejects.toThrow(/part-00000-0000\.parquet/);
    expect((await queryCatalog(dbPath, 'SELECT run_id FROM _runs')).rows).toEqual([['run-s3']]);
  });
});

describe('queryCatalog', () => {
  it('returns plain values and refuses writes', async () => {
    await new LocalCatalog({ path: dbPath }).publishRun(runOf('empty_job', 'run-a', '2024-05-06', []));
    const result = await queryCatalog(
      dbPath,
      `SELECT 9007199254740993::BIGINT AS big, 42::BIGINT AS small, DATE '2024-01-02' AS d,
              TIMESTAMP '2024-01-02 03:04:05' AS ts, 0.1::FLOAT AS f, [0.1::FLOAT, 0.2::FLOAT] AS fl,
              {'a': 1::BIGINT} AS s, NULL AS n, '\\xAA'::BLOB AS b, true AS t, 1.5::DOUBLE AS dbl`,
    );
    expect(result.columns).toEqual(['big', 'small', 'd', 'ts', 'f', 'fl', 's', 'n', 'b', 't', 'dbl']);
    expect(result.rows).toEqual([
      [
        '9007199254740993',
        42,
        '2024-01-02',
        '2024-01-02T03:04:05.000Z',
        0.1,
        [0.1, 0.2],
        { a: 1 },
        null,
        '0xaa',
        true,
        1.5,
      ],
    ]);
    await expect(queryCatalog(dbPath, 'CREATE TABLE t (a INT)')).rejects.toThrow(/read-only/);
  });

  it('says when there is no catalogue yet', async () => {
    await expect(queryCatalog(path.join(dir, 'missing.duckdb'), 'SELECT 1')).rejects.toThrow(
      /No catalogue at .*missing\.duckdb/,
    );
  });
});

describe('formatTable', () => {
  it('aligns columns, right-aligns numbers and shows NULL', () => {
    const text = formatTable({
      columns: ['label', 'score', 'tags'],
      rows: [
        ['cat', 0.5, ['a', 'b']],
        ['a much longer label', 12, null],
        ['two\nlines', null, { k: 1 }],
      ],
    });
    expect(text).toBe(
      [
        'label               | score | tags',
        '--------------------+-------+----------',
        'cat                 |   0.5 | ["a","b"]',
        'a much longer label |    12 | NULL',
        'two\\nlines          |  NULL | {"k":1}',
        '(3 rows)',
      ].join('\n'),
    );
  });

  it('cuts long cells and handles empty results', () => {
    const text = formatTable({ columns: ['v'], rows: [['x'.repeat(100)]] });
    expect(text.split('\n')[2]).toBe(`${'x'.repeat(59)}…`);
    expect(formatTable({ columns: ['a', 'b'], rows: [] })).toBe('a | b\n--+--\n(0 rows)');
  });
});
