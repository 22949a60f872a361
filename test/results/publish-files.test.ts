/**
 * A run's prediction files are staged until Finalize publishes them (docs/adr/0014 §9), on the local store and on S3
 * (s3rver): a run stopped after its workers wrote their files and before Finalize leaves nothing that a reader
 * globbing the output prefix finds, and a Finalize killed in the middle of moving the files, then run again,
 * publishes every file exactly once.
 */
import '../../src/runtime/polyfills.js';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DuckDBInstance } from '@duckdb/node-api';
import { LocalCatalog, queryCatalog, quoteString } from '../../src/catalog/local.js';
import { finalizeRun } from '../../src/results/finalize.js';
import { writeShardList } from '../../src/results/shard-list.js';
import { runLayout, type RunLayout } from '../../src/runs/layout.js';
import type { RunState } from '../../src/runs/tasks.js';
import { planSchema, type Shard, type ShardMarker } from '../../src/runs/types.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import { moveObject, putJson, type ObjectInfo, type ObjectStore } from '../../src/storage/object-store.js';
import { createObjectStore } from '../../src/storage/index.js';
import { expectIn } from '../support/expect-in.js';
import { startS3Server, useS3TestEnv, type S3TestServer } from '../support/s3-server.js';
import { makeSpec, SHA } from './run-fixture.js';

const SHARDS = 4;
const ROWS = 5;
const RUN_ID = 'run-staged';
const RUN_DATE = '2024-05-06';
const NOW = () => new Date('2024-05-06T12:00:00.000Z');

let dir: string;
let server: S3TestServer;
let restoreEnv: () => void;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'publish-files-'));
  server = await startS3Server();
  restoreEnv = useS3TestEnv(server.endpoint);
  await server.createBucket('lake');
}, 60_000);
afterAll(async () => {
  restoreEnv();
  await server.stop();
  await rm(dir, { recursive: true, force: true });
});

/** The bytes of a Parquet file of `rows` rows (label, score), written by DuckDB. */
async function parquetBytes(shardId: number, chunk: number, rows: number): Promise<Uint8Array> {
  const file = path.join(dir, `tmp-${shardId}-${chunk}-${Math.random().toString(16).slice(2)}.parquet`);
  const values = Array.from(
    { length: rows },
    (_, i) => `(${quoteString(`s${shardId}-c${chunk}-r${i}`)}, ${i / 4}::FLOAT)`,
  ).join(', ');
  const db = await DuckDBInstance.create(':memory:');
  try {
    const conn = await db.connect();
    await conn.run(
      `COPY (SELECT * FROM (VALUES ${values}) AS t(label, score)) TO ${quoteString(file)} (FORMAT parquet)`,
    );
    conn.closeSync();
  } finally {
    db.closeSync();
  }
  const bytes = await readFile(file);
  await rm(file, { force: true });
  return bytes;
}

/**
 * A run whose workers all finished (two chunks per shard, markers written) and whose Finalize has not run: the
 * files where the workers put them, through the store under test. Returns the run state Finalize is given.
 */
async function workersDone(
  store: ObjectStore,
  outputUri: string,
): Promise<{ layout: RunLayout; state: RunState }> {
  const layout = runLayout(outputUri, RUN_ID, RUN_DATE);
  const shards: Shard[] = Array.from({ length: SHARDS }, (_, id) => ({
    id,
    ranges: [{ uri: `s3://in/part-${id}.jsonl`, etag: `e${id}`, size: 100, start: 0, end: 100 }],
    bytes: 100,
    records: 2 * ROWS,
    recordsExact: true,
  }));
  const plan = planSchema.parse({
    version: 1,
    runId: RUN_ID,
    runDate: RUN_DATE,
    createdAt: `${RUN_DATE}T10:00:00.000Z`,
    spec: makeSpec(outputUri),
    model: { source: 'uri', artifactUri: 's3://m/model.onnx', etag: 'm', size: 1, sha256: SHA, files: {} },
    input: {
      objects: SHARDS,
      bytes: 100 * SHARDS,
      snapshotSha256: 'b'.repeat(64),
      snapshotUri: `${layout.runUri}input-snapshot.jsonl`,
    },
    shardCount: SHARDS,
    maxRounds: 1,
  });
  await putJson(store, layout.planUri, plan);
  await writeShardList(store, layout, shards);
  for (let id = 0; id < SHARDS; id++) {
    const outputs = [];
    for (let chunk = 0; chunk < 2; chunk++) {
      const uri = layout.partUri(id, chunk);
      const info = await store.put(uri, await parquetBytes(id, chunk, ROWS));
      outputs.push({ uri, rows: ROWS, bytes: info.size, etag: info.etag });
    }
    const marker: ShardMarker = {
      version: 1,
      runId: RUN_ID,
      shardId: id,
      round: 0,
      attempt: 1,
      records: 2 * ROWS,
      predictions: 2 * ROWS,
      errors: 0,
      errorsByReason: {},
      outputs,
      columns: { label: 'STRING', score: 'FLOAT' },
      timings: { readMs: 1, decodeMs: 1, inferMs: 1, writeMs: 1, totalMs: 4 },
      executionProvider: 'cpu',
      batchSize: 5,
      startedAt: `${RUN_DATE}T10:00:00.000Z`,
      finishedAt: `${RUN_DATE}T10:00:30.000Z`,
    };
    await putJson(store, layout.markerUri(id), marker);
  }
  const state: RunState = {
    runId: RUN_ID,
    runUri: layout.runUri,
    shardCount: SHARDS,
    round: 0,
    maxRounds: 1,
    pending: 0,
    compute: 'cpu',
    next: 'finalize',
  };
  return { layout, state };
}

class KilledMidMove extends Error {
  override readonly name = 'KilledMidMove';
}

/**
 * The store as a Finalize that dies during its `kill`-th move sees it: the moves before it complete, that one leaves
 * both copies (S3's CopyObject done, its DeleteObject never sent), and nothing after it happens (moves already under
 * way included: the process is gone).
 */
function dyingDuringMove(inner: ObjectStore, kill: number): ObjectStore {
  let started = 0;
  let dead = false;
  const earlier: Promise<unknown>[] = [];
  let die = (): void => undefined;
  const death = new Promise<void>((resolve) => (die = resolve));
  const alive = <T>(f: () => Promise<T>): Promise<T> =>
    dead ? Promise.reject(new KilledMidMove('the process is gone')) : f();
  return {
    head: (u) => alive(() => inner.head(u)),
    tryHead: (u) => alive(() => inner.tryHead(u)),
    get: (u, r, o) => alive(() => inner.get(u, r, o)),
    getStream: (u, r, o) => alive(() => inner.getStream(u, r, o)),
    put: (u, b, o) => alive(() => inner.put(u, b, o)),
    putStream: (u, b, o) => alive(() => inner.putStream(u, b, o)),
    list: (u) => {
      if (dead) throw new KilledMidMove('the process is gone');
      return inner.list(u);
    },
    delete: (u) => alive(() => inner.delete(u)),
    move: (from, to) =>
      alive(async (): Promise<ObjectInfo> => {
        const n = ++started;
        if (n < kill) {
          const moving = moveObject(inner, from, to);
          earlier.push(moving);
          return moving;
        }
        // Moves after it never run; they fail with the process, not before (Finalize must not go on meanwhile).
        if (n > kill) {
          await death;
          throw new KilledMidMove(`move ${n} never ran`);
        }
        // The moves started before this one finish first, so what the kill leaves is exactly known.
        await Promise.allSettled(earlier);
        await inner.put(to, await inner.get(from));
        dead = true;
        die();
        throw new KilledMidMove(`killed during move ${n} (${from})`);
      }),
  };
}

/** Every key under the output prefix, relative to it. */
async function keysUnder(store: ObjectStore, outputUri: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const info of store.list(outputUri)) keys.push(info.uri.slice(outputUri.length));
  return keys.sort();
}

/**
 * What a reader globbing the prefix sees: the keys a `<out>/**\/*.parquet` glob matches (as DuckDB's, Athena's or
 * Spark's), read into a local mirror and counted by DuckDB with hive_partitioning (run_id from the path).
 */
async function globRead(
  store: ObjectStore,
  outputUri: string,
): Promise<{ files: string[]; rows: number; distinctLabels: number; runIds: string[] }> {
  const mirror = await mkdtemp(path.join(dir, 'mirror-'));
  const files = (await keysUnder(store, outputUri)).filter((k) => k.endsWith('.parquet'));
  const local = new LocalObjectStore();
  for (const key of files) {
    await local.put(pathToFileURL(path.join(mirror, key)).href, await store.get(`${outputUri}${key}`));
  }
  if (files.length === 0) return { files, rows: 0, distinctLabels: 0, runIds: [] };
  const db = await DuckDBInstance.create(':memory:');
  try {
    const conn = await db.connect();
    const reader = await conn.runAndReadAll(
      `SELECT count(*)::INTEGER, count(DISTINCT label)::INTEGER, string_agg(DISTINCT run_id, ',') FROM read_parquet(` +
        `${quoteString(path.join(mirror, '**', '*.parquet'))}, hive_partitioning = true)`,
    );
    const [rows, distinct, runIds] = reader.getRows()[0] as [number, number, string];
    conn.closeSync();
    return { files, rows, distinctLabels: distinct, runIds: runIds.split(',') };
  } finally {
    db.closeSync();
  }
}

const stores: { name: string; store: () => ObjectStore; output: (name: string) => string }[] = [
  {
    name: 'local store',
    store: () => new LocalObjectStore(),
    output: (name) => `${pathToFileURL(path.join(dir, name)).href}/`,
  },
  {
    name: 's3rver',
    store: () => createObjectStore({ s3Endpoint: server.endpoint }),
    output: (name) => `s3://lake/${name}/`,
  },
];

describe.each(stores)('staged prediction files ($name)', ({ name, store: makeStore, output }) => {
  it('a run stopped before Finalize leaves no file that a glob over the output prefix returns', async () => {
    const store = makeStore();
    const outputUri = output('stopped');
    await workersDone(store, outputUri);
    const keys = await keysUnder(store, outputUri);
    // The workers' files are there, staged: 2 chunks of each shard.
    expectIn(keys, name).toEqual(
      expect.arrayContaining([`_staging/run_id=${RUN_ID}/part-00000-0000.parquet.staged`]),
    );
    expectIn(
      keys.filter((k) => k.startsWith('_staging/')),
      name,
    ).toHaveLength(2 * SHARDS);
    expectIn(await globRead(store, outputUri), name).toEqual({
      files: [],
      rows: 0,
      distinctLabels: 0,
      runIds: [],
    });
    // With DuckDB's own glob over the local prefix too (it descends into `_` and `.` folders).
    if (outputUri.startsWith('file:')) {
      const db = await DuckDBInstance.create(':memory:');
      const conn = await db.connect();
      const glob = await conn.runAndReadAll(
        `SELECT count(*)::INTEGER FROM glob(${quoteString(path.join(dir, 'stopped', '**', '*.parquet'))})`,
      );
      expect(glob.getRows()[0]).toEqual([0]);
      conn.closeSync();
      db.closeSync();
    }
  });

  it('a staged file that is gone counts only when its published key has the size the marker recorded', async () => {
    const store = makeStore();
    const outputUri = output('tampered');
    const { layout, state } = await workersDone(store, outputUri);
    const staged = layout.partUri(2, 1);
    // Something other than Finalize put a different file under the published key, and the staged one is gone.
    await store.put(layout.publishedUriOf(staged), 'not the staged bytes');
    await store.delete(staged);
    const dbPath = path.join(dir, `catalog-tampered-${name.replace(/\W/g, '')}`, 'catalog.duckdb');
    const result = await finalizeRun(state, {
      store,
      catalog: new LocalCatalog({ path: dbPath, store }),
      now: NOW,
      codeVersion: 't',
    });
    expectIn(result, name).toMatchObject({ status: 'FAILED', failedShards: 1 });
    expect(result.message).toContain(`output file ${staged} does not exist`);
    // Nothing of the failed run was published; its staged files stay where they were.
    expect((await keysUnder(store, outputUri)).filter((k) => k.startsWith('run_date='))).toEqual([
      `run_date=${RUN_DATE}/run_id=${RUN_ID}/part-00002-0001.parquet`,
    ]);
  });

  it.each([1, 3, 8])(
    'a Finalize killed during move %i of 8, then run again, publishes every file exactly once',
    async (killAt) => {
      const store = makeStore();
      const outputUri = output(`killed-${killAt}`);
      const { layout, state } = await workersDone(store, outputUri);
      const dbPath = path.join(dir, `catalog-${name.replace(/\W/g, '')}-${killAt}`, 'catalog.duckdb');
      const catalog = () => new LocalCatalog({ path: dbPath, store });

      await expect(
        finalizeRun(state, {
          store: dyingDuringMove(store, killAt),
          catalog: catalog(),
          now: NOW,
          codeVersion: 't',
        }),
      ).rejects.toThrow(KilledMidMove);
      // Killed: part of the run is in the partition, the rest still staged; nothing was catalogued.
      const between = await keysUnder(store, outputUri);
      expectIn(
        between.filter((k) => k.startsWith('run_date=')),
        `${name}, kill at ${killAt}`,
      ).toHaveLength(killAt);

      const result = await finalizeRun(state, { store, catalog: catalog(), now: NOW, codeVersion: 't' });
      expectIn(result, `${name}, kill at ${killAt}`).toMatchObject({
        status: 'SUCCEEDED',
        records: 2 * ROWS * SHARDS,
        predictions: 2 * ROWS * SHARDS,
      });
      const keys = await keysUnder(store, outputUri);
      expectIn(
        keys.filter((k) => !k.startsWith('_runs/')),
        `${name}, kill at ${killAt}`,
      ).toEqual(
        Array.from({ length: SHARDS }, (_, id) =>
          [0, 1].map((c) => `run_date=${RUN_DATE}/run_id=${RUN_ID}/part-0000${id}-000${c}.parquet`),
        ).flat(),
      );
      expectIn(await globRead(store, outputUri), `${name}, kill at ${killAt}`).toMatchObject({
        rows: 2 * ROWS * SHARDS,
        distinctLabels: 2 * ROWS * SHARDS,
        runIds: [RUN_ID],
      });
      const table = await queryCatalog(
        dbPath,
        'SELECT count(*)::INTEGER AS n, count(DISTINCT label)::INTEGER AS d FROM churn_scores',
      );
      expect(table.rows[0]).toEqual([2 * ROWS * SHARDS, 2 * ROWS * SHARDS]);
      // The manifest names the published files, where a reader finds them.
      const manifest = JSON.parse(new TextDecoder().decode(await store.get(layout.manifestUri))) as {
        outputs: { files: { uri: string }[] };
      };
      expect(manifest.outputs.files.map((f) => f.uri).every((u) => u.startsWith(layout.partitionUri))).toBe(
        true,
      );

      // A third Finalize changes nothing.
      const again = await finalizeRun(state, { store, catalog: catalog(), now: NOW, codeVersion: 't' });
      expect(again.status).toBe('SUCCEEDED');
      expect(await keysUnder(store, outputUri)).toEqual(keys);
    },
    60_000,
  );
});
