/**
 * Publishes into one local catalogue file from several places at once (issue 17, found by chaos/concurrency.ts):
 * two LocalCatalog instances of one file in a process (two runs finishing together), and another process holding
 * DuckDB's lock on the file (two `batch-infer run` at once).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type { PublishedRun } from '../../src/catalog/catalog.js';
import {
  isCatalogLocked,
  LocalCatalog,
  publishingExclusively,
  queryCatalog,
  quoteString,
} from '../../src/catalog/local.js';
import { runLayout } from '../../src/runs/layout.js';

const repo = path.resolve(fileURLToPath(import.meta.url), '../../..');
let dir: string;
let dbPath: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'catalog-concurrent-'));
  dbPath = path.join(dir, 'catalog.duckdb');
});
afterEach(() => rm(dir, { recursive: true, force: true }));

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

async function runOf(table: string, runId: string): Promise<PublishedRun> {
  const layout = runLayout(`${pathToFileURL(path.join(dir, table)).href}/`, runId, '2026-12-06');
  const file = `${layout.partitionUri}part-00000-0000.parquet`;
  await copyTo(file, `SELECT ${quoteString(runId)} AS label, 0.5::FLOAT AS score`);
  return {
    table,
    runId,
    runDate: '2026-12-06',
    outputUri: layout.outputUri,
    partitionUri: layout.partitionUri,
    files: [file],
    columns: [
      { name: 'label', type: 'string' },
      { name: 'score', type: 'float' },
    ],
    model: { name: 'm', version: 1, sha256: 'a'.repeat(64) },
    records: 1,
    predictions: 1,
    errors: 0,
    manifestUri: `${layout.runUri}manifest.json`,
    finishedAt: '2026-12-06T17:00:00.000Z',
  };
}

/** Another process holding the catalogue file open for writing until its stdin closes. */
async function holdLock(file: string): Promise<ChildProcess> {
  const script =
    "import { DuckDBInstance } from '@duckdb/node-api';" +
    `const db = await DuckDBInstance.create(${JSON.stringify(file)});` +
    "const conn = await db.connect(); await conn.run('CREATE TABLE IF NOT EXISTS held (x INT)');" +
    "process.stdout.write('held\\n');" +
    "process.stdin.on('end', () => { conn.closeSync(); db.closeSync(); process.exit(0); }); process.stdin.resume();";
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: repo,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the lock holder exited ${code}`)));
  });
  return child;
}

const release = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.stdin!.end();
  });

describe('publishing into one local catalogue from several places', () => {
  it('publishes every run when two catalogue instances of one file publish at once', async () => {
    const runs = await Promise.all([
      runOf('pipe_a', 'r1'),
      runOf('pipe_ab', 'r2'),
      runOf('pipe_a', 'r3'),
      runOf('pipe_ab', 'r4'),
    ]);
    const first = new LocalCatalog({ path: dbPath });
    const second = new LocalCatalog({ path: dbPath });
    await Promise.all(runs.map((run, i) => (i % 2 === 0 ? first : second).publishRun(run)));
    await Promise.all([first.close(), second.close()]);
    const published = await queryCatalog(dbPath, 'SELECT table_name, run_id FROM _runs ORDER BY run_id');
    expect(published.rows).toEqual([
      ['pipe_a', 'r1'],
      ['pipe_ab', 'r2'],
      ['pipe_a', 'r3'],
      ['pipe_ab', 'r4'],
    ]);
    const rows = await queryCatalog(dbPath, 'SELECT label FROM pipe_ab ORDER BY label');
    expect(rows.rows).toEqual([['r2'], ['r4']]);
  });

  it("waits while another process holds the file's lock, then publishes", async () => {
    const holder = await holdLock(dbPath);
    let refusals = 0;
    const opened = await publishingExclusively(
      dbPath,
      async () => {
        const db = await DuckDBInstance.create(dbPath);
        db.closeSync();
        return 'published';
      },
      {
        sleep: async () => {
          refusals++;
          // Released after the first refusal: the next try gets the lock.
          if (refusals === 1) await release(holder);
        },
      },
    ).finally(() => holder.stdin?.end());
    expect(opened).toBe('published');
    expect(refusals).toBe(1);
  });

  it('fails naming the lock and what to do when the other process keeps it past the wait', async () => {
    const holder = await holdLock(dbPath);
    try {
      const error = await publishingExclusively(
        dbPath,
        async () => {
          const db = await DuckDBInstance.create(dbPath);
          db.closeSync();
        },
        { lockWaitMs: 300, sleep: async () => undefined },
      ).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(isCatalogLocked((error as Error).cause)).toBe(true);
      expect((error as Error).message).toMatch(
        /^the local catalogue .*catalog\.duckdb stayed locked by another process .*rerun the same run id once the other run has published/,
      );
    } finally {
      await release(holder);
    }
  });
});
