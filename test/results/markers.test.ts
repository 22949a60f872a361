/**
 * Reconcile and Finalize over hand-built marker sets: missing, duplicated and corrupt markers, markers whose files
 * are missing, resized or claimed twice, stray files in the partition, failed Batch children mapped to shards, and
 * the single output file. Everything goes through real storage (LocalObjectStore, and s3rver for the single file)
 * and the real DuckDB catalogue.
 */
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdir, readFile } from 'node:fs/promises';
import { DuckDBInstance } from '@duckdb/node-api';
import { fileURLToPath } from 'node:url';
import { LocalCatalog, queryCatalog } from '../../src/catalog/local.js';
import { encodeChunk } from '../../src/formats/output.js';
import type { OutputColumn } from '../../src/formats/parquet-write.js';
import { finalizeRun } from '../../src/results/finalize.js';
import { AwsBatchJobInspector } from '../../src/results/aws-job-inspector.js';
import type { BatchJobInspector } from '../../src/results/job-inspector.js';
import { manifestSchema, type Manifest } from '../../src/results/manifest.js';
import { reconcileRecordSchema, reconcileRun, type ReconcileRecord } from '../../src/results/reconcile.js';
import { reconcileRecordUri } from '../../src/results/run-files.js';
import { assembleSingleFile } from '../../src/results/single-file.js';
import { runLayout } from '../../src/runs/layout.js';
import type { ShardMarker } from '../../src/runs/types.js';
import { getJson, putJson } from '../../src/storage/object-store.js';
import { S3ObjectStore, createS3Client } from '../../src/storage/s3.js';
import { startS3Server, useS3TestEnv, type S3TestServer } from '../support/s3-server.js';
import { BatchClient } from '@aws-sdk/client-batch';
import { Readable } from 'node:stream';
import { writeScores } from './parquet-fixture.js';
import { makeMarker, makeRun, writeMarker, type RunFixture, type RunFixtureOptions } from './run-fixture.js';

const NOW = (): Date => new Date('2024-05-06T12:00:00.000Z');

let fixtures: RunFixture[] = [];
afterEach(async () => {
  await Promise.all(fixtures.map((f) => f.cleanup()));
  fixtures = [];
});

async function run(options: RunFixtureOptions): Promise<RunFixture> {
  const fx = await makeRun(options);
  fixtures.push(fx);
  return fx;
}

async function readManifest(fx: RunFixture): Promise<Manifest> {
  return manifestSchema.parse(await getJson(fx.store, fx.layout.manifestUri));
}

async function readRecord(fx: RunFixture, round: number): Promise<ReconcileRecord> {
  return reconcileRecordSchema.parse(await getJson(fx.store, reconcileRecordUri(fx.layout, round)));
}

/** A shard's real Parquet output (3 rows) and its marker, consistent with storage. */
async function completeShard(fx: RunFixture, id: number, chunk = 0): Promise<ShardMarker> {
  const marker = makeMarker(fx.layout, id);
  const uri = fx.layout.partUri(id, chunk);
  await writeScores(
    uri,
    [0, 1, 2].map((i) => ({ label: `s${id}-${i}`, score: i / 4 })),
  );
  return (await writeMarker(fx, { ...marker, outputs: [{ ...marker.outputs[0]!, uri }] }))!;
}

const localCause = (children: object[]): { Error: string; Cause: string } => ({
  Error: 'States.TaskFailed',
  Cause: JSON.stringify({
    JobName: 'infer',
    Status: 'FAILED',
    StatusReason: 'Array Child Job failed',
    ArrayProperties: { Size: 8, StatusSummary: { FAILED: children.length } },
    FailedChildren: children,
  }),
});

describe('Finalize over missing, duplicated and corrupt markers', () => {
  /** Shards 0 and 6 are good; every other shard is broken in its own way (see the comments). */
  async function brokenRun(maxFailedShards: number): Promise<RunFixture> {
    const fx = await run({ shardCount: 8, spec: { validation: { maxFailedShards, maxErrorRate: 1 } } });
    const good0 = await completeShard(fx, 0);
    // 1: no marker at all, but a file from an attempt that died before writing it.
    await writeScores(fx.layout.partUri(1, 0), [{ label: 'half-done', score: 0 }]);
    // 2: a truncated marker.
    await writeScores(fx.layout.partUri(2, 0), [{ label: 'torn', score: 0 }]);
    await writeMarker(fx, '{"version": 1, "runId": "run-0001", "shardId": 2, "rec', 2);
    // 3: a marker that claims shard 0's file as its own.
    await writeMarker(fx, { ...makeMarker(fx.layout, 3), outputs: good0.outputs }, undefined, {
      files: 'as-is',
    });
    // 4: a marker whose output file does not exist.
    await writeMarker(fx, makeMarker(fx.layout, 4), undefined, { files: 'as-is' });
    // 5: a marker whose file was rewritten with other content after it completed.
    const m5 = await completeShard(fx, 5);
    await writeScores(fx.layout.partUri(5, 0), [{ label: 'rewritten', score: 1 }]);
    // 6: good, plus marker files that are not canonical shard names (a copy, a zero-padded duplicate).
    const good6 = await completeShard(fx, 6);
    await fx.store.put(`${fx.layout.markersPrefixUri}06.json`, JSON.stringify({ ...good6, records: 300 }));
    await fx.store.put(`${fx.layout.markersPrefixUri}6.json.bak`, JSON.stringify(good6));
    // ...and a stale chunk of shard 6 from an earlier attempt that wrote more chunks.
    await writeScores(fx.layout.partUri(6, 1), [{ label: 'stale', score: 0 }]);
    // 7: counts that do not add up.
    await writeScores(fx.layout.partUri(7, 0), [{ label: 'x', score: 0 }]);
    await writeMarker(fx, { ...makeMarker(fx.layout, 7), records: 5 });
    expect(m5.shardId).toBe(5);
    return fx;
  }

  it('accepts exactly the consistent shards, names every problem, removes strays and publishes the rest', async () => {
    const fx = await brokenRun(6);
    const dbPath = path.join(fx.dir, 'catalog.duckdb');

    const result = await finalizeRun(fx.state, {
      store: fx.store,
      catalog: new LocalCatalog({ path: dbPath }),
      now: NOW,
    });

    expect(result).toMatchObject({
      status: 'SUCCEEDED',
      records: 6,
      predictions: 6,
      errors: 0,
      failedShards: 6,
    });
    const manifest = await readManifest(fx);
    expect(manifest.counts.completedShards).toBe(2);
    expect(manifest.counts.failedShards.ids).toEqual([1, 2, 3, 4, 5, 7]);
    const problems = Object.fromEntries(
      manifest.counts.failedShards.details.map((d) => [d.shardId, d.problem]),
    );
    expect(problems[1]).toBe('no completion marker');
    expect(problems[2]).toMatch(/^marker is not valid JSON/);
    expect(problems[3]).toBe(
      `corrupt marker: output file ${fx.layout.partUri(0, 0)} is not named part-00003-*: it is not shard 3's file`,
    );
    expect(problems[4]).toBe(`corrupt marker: output file ${fx.layout.partUri(4, 0)} does not exist`);
    expect(problems[5]).toMatch(
      /^corrupt marker: output file .*part-00005-0000\.parquet\.staged has (\d+ bytes, the marker says \d+|ETag \w+, the marker says \w+: it was rewritten after the shard completed)$/,
    );
    expect(problems[7]).toBe('corrupt marker: records (5) != predictions (3) + errors (0) in shard 7');
    // Per run: the totals are exactly the accepted shards' (3 + 3), and the partition holds exactly their files.
    expect(manifest.outputs.files.map((f) => f.shardId)).toEqual([0, 6]);
    expect(manifest.outputs.strayFilesRemoved).toEqual({
      count: 5,
      uris: [1, 2, 5, 7]
        .map((id) => fx.layout.partUri(id, 0))
        .concat(fx.layout.partUri(6, 1))
        .sort(),
    });
    const left: string[] = [];
    for await (const info of fx.store.list(fx.layout.partitionUri)) left.push(info.uri);
    // Published: moved out of the staging folder into the partition (docs/adr/0014 §9).
    expect(left).toEqual([0, 6].map((id) => fx.layout.publishedUriOf(fx.layout.partUri(id, 0))));
    const rows = await queryCatalog(dbPath, 'SELECT count(*), count(DISTINCT label) FROM churn_scores');
    expect(rows.rows).toEqual([[6, 6]]);
  });

  it('fails with ShardsFailed over the limit, and then deletes and publishes nothing', async () => {
    const fx = await brokenRun(0);
    const dbPath = path.join(fx.dir, 'catalog.duckdb');
    const result = await finalizeRun(fx.state, {
      store: fx.store,
      catalog: new LocalCatalog({ path: dbPath }),
      now: NOW,
    });
    expect(result).toMatchObject({ status: 'FAILED', reason: 'ShardsFailed', failedShards: 6 });
    expect((await readManifest(fx)).outputs.strayFilesRemoved).toBeUndefined();
    expect(await fx.store.tryHead(fx.layout.partUri(1, 0))).toBeDefined();
    await expect(queryCatalog(dbPath, 'SELECT 1')).rejects.toThrow(/No catalogue/);
  });

  it('Reconcile retries the shards whose markers do not match their files', async () => {
    const fx = await brokenRun(0);
    const next = await reconcileRun(fx.state, { store: fx.store, now: NOW });
    expect(next).toMatchObject({ round: 1, pending: 6, next: 'infer' });
    const record = await readRecord(fx, 0);
    expect(record.missing).toEqual([1, 2, 3, 4, 5, 7]);
    expect(record.invalid.map((i) => i.shardId)).toEqual([2, 3, 4, 5, 7]);
    expect(record.unexpected.map((u) => u.slice(fx.layout.markersPrefixUri.length)).sort()).toEqual([
      '06.json',
      '6.json.bak',
    ]);
  });
});

describe('a file claimed by a shard it is not named for', () => {
  it("stays its owner's: the lower shard that claims a higher shard's file is the one retried", async () => {
    const fx = await run({ shardCount: 4 });
    await completeShard(fx, 1);
    const owner = await completeShard(fx, 3);
    // Shard 0's marker names shard 3's file (size and ETag as stored: only the name gives it away). Markers are
    // checked in shard order, so without the name check shard 0 would keep the file and shard 3 would be retried.
    await writeMarker(fx, { ...makeMarker(fx.layout, 0), outputs: owner.outputs }, undefined, {
      files: 'as-is',
    });
    // Shard 2's marker names shard 1's errors file as its own.
    const errors = await fx.store.put(fx.layout.errorsUri(1), '{"reason":"DECODE_ERROR"}\n');
    await writeMarker(
      fx,
      {
        ...makeMarker(fx.layout, 2, { records: 3, errors: 1 }),
        errorsFile: { uri: fx.layout.errorsUri(1), rows: 1, bytes: errors.size, etag: errors.etag },
      },
      undefined,
    );

    const state = await reconcileRun(fx.state, { store: fx.store, now: NOW });
    expect(state).toMatchObject({ next: 'infer', pending: 2 });
    const record = await readRecord(fx, 0);
    expect(record.missing).toEqual([0, 2]);
    expect(record.invalid).toEqual([
      {
        shardId: 0,
        problem: `corrupt marker: output file ${fx.layout.partUri(3, 0)} is not named part-00000-*: it is not shard 0's file`,
      },
      {
        shardId: 2,
        problem: `corrupt marker: errors file ${fx.layout.errorsUri(1)} is not named part-00002.jsonl: it is not shard 2's file`,
      },
    ]);
  });
});

describe('the declared schema against what was written', () => {
  it('fails validation when a file stores another type than its marker (and the declared schema) says', async () => {
    const fx = await run({ shardCount: 2 });
    await completeShard(fx, 0);
    // Shard 1's file stores score as DOUBLE, while its marker (like the spec) says FLOAT.
    const uri = fx.layout.partUri(1, 0);
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    await mkdir(path.dirname(fileURLToPath(uri)), { recursive: true });
    await conn.run(
      `COPY (SELECT 's1-' || i AS label, i / 4 AS score FROM range(3) t(i)) TO '${fileURLToPath(uri)}' (FORMAT parquet)`,
    );
    conn.closeSync();
    db.closeSync();
    const marker = makeMarker(fx.layout, 1);
    await writeMarker(fx, { ...marker, outputs: [{ ...marker.outputs[0]!, uri }] });
    const dbPath = path.join(fx.dir, 'catalog.duckdb');

    const result = await finalizeRun(fx.state, {
      store: fx.store,
      catalog: new LocalCatalog({ path: dbPath }),
      now: NOW,
    });

    expect(result).toMatchObject({ status: 'FAILED', reason: 'ValidationFailed', failedShards: 0 });
    expect(result.message).toBe(
      `written files do not match their markers: ${uri} stores "score" as DOUBLE; shard 1's marker reports FLOAT`,
    );
    const check = (await readManifest(fx)).validation.checks.find((c) => c.name === 'writtenSchema');
    expect(check).toMatchObject({ passed: false, actual: 1 });
    // The manifest says that the check samples files rather than reading every one.
    expect(check?.description).toMatch(
      /^a sample of the written files \(the first output file of the first and of the last accepted shard, at most 2 files; the others are not read\)/,
    );
    await expect(queryCatalog(dbPath, 'SELECT 1')).rejects.toThrow(/No catalogue/);
  });
});

describe('the last error of a shard that keeps failing', () => {
  it('is mapped from array index to shard in every round and reported with exit code, reason and log', async () => {
    const fx = await run({ shardCount: 8, maxRounds: 2 });
    for (const id of [0, 2, 3, 5, 7]) await completeShard(fx, id);

    // Round 0: children 1, 4 and 6 fail (child 3 failed after writing its marker: not a failed shard).
    let state = await reconcileRun(
      {
        ...fx.state,
        inferError: localCause([
          {
            index: 1,
            attempts: 3,
            exitCode: 1,
            statusReason: 'Essential container in task exited',
            logFile: '/logs/r0-1.log',
          },
          { index: 3, attempts: 1, exitCode: 143, statusReason: 'Killed', logFile: '/logs/r0-3.log' },
          {
            index: 4,
            attempts: 3,
            exitCode: 137,
            statusReason: 'OutOfMemoryError',
            logFile: '/logs/r0-4.log',
          },
          { index: 6, attempts: 1, exitCode: 2, statusReason: 'bad input', logFile: '/logs/r0-6.log' },
        ]),
      },
      { store: fx.store, now: NOW },
    );
    expect(state).toMatchObject({ round: 1, pending: 3 });
    expect((await readRecord(fx, 0)).shardErrors?.map((e) => [e.shardId, e.arrayIndex, e.exitCode])).toEqual([
      [1, 1, 1],
      [4, 4, 137],
      [6, 6, 2],
    ]);

    // Round 1 ran [1, 4, 6] as indices 0..2: shard 4 completes; index 0 (shard 1) and index 2 (shard 6) fail.
    await completeShard(fx, 4);
    state = await reconcileRun(
      {
        ...state,
        inferError: localCause([
          {
            index: 0,
            attempts: 3,
            exitCode: 1,
            statusReason: 'Essential container in task exited',
            logFile: '/logs/r1-0.log',
          },
          {
            index: 2,
            attempts: 2,
            exitCode: 137,
            statusReason: 'OutOfMemoryError: Container killed',
            logFile: '/logs/r1-2.log',
          },
        ]),
      },
      { store: fx.store, now: NOW },
    );
    expect(state).toMatchObject({ round: 2, pending: 2 });
    expect((await readRecord(fx, 1)).shardErrors?.map((e) => [e.shardId, e.arrayIndex])).toEqual([
      [1, 0],
      [6, 2],
    ]);

    // Round 2 ran [1, 6]: only shard 6's child failed; shard 1 just wrote no marker (e.g. a timeout).
    state = await reconcileRun(
      {
        ...state,
        inferError: localCause([
          {
            index: 1,
            attempts: 3,
            exitCode: 139,
            statusReason: 'Segmentation fault',
            logFile: '/logs/r2-1.log',
          },
        ]),
      },
      { store: fx.store, now: NOW },
    );
    expect(state).toMatchObject({ round: 2, pending: 2, next: 'finalize' });

    await finalizeRun(state, {
      store: fx.store,
      catalog: new LocalCatalog({ path: path.join(fx.dir, 'c.duckdb') }),
      now: NOW,
    });
    const details = (await readManifest(fx)).counts.failedShards.details;
    expect(details).toEqual([
      {
        shardId: 1,
        problem: 'no completion marker',
        lastRound: 2,
        lastError:
          'no marker after round 2; Batch: States.TaskFailed: FAILED (Array Child Job failed); children: 1 FAILED',
      },
      {
        shardId: 6,
        problem: 'no completion marker',
        lastRound: 2,
        lastError:
          'no marker after round 2; Batch job failed: exit code 139; Segmentation fault; 3 attempts; log /logs/r2-1.log',
        exitCode: 139,
        statusReason: 'Segmentation fault',
        logStream: '/logs/r2-1.log',
      },
    ]);
  });

  it("maps a single (non-array) job to the round's only shard, and asks AWS Batch for array children", async () => {
    const fx = await run({ shardCount: 8, maxRounds: 3 });
    for (const id of [0, 1, 3, 4, 6]) await completeShard(fx, id);
    const arrayFailure = JSON.parse(
      await readFile(new URL('../fixtures/batch/sfn-array-failure.json', import.meta.url), 'utf8'),
    ) as { inferError: unknown };
    const exchanges = (
      JSON.parse(
        await readFile(new URL('../fixtures/batch/array-job-failed.json', import.meta.url), 'utf8'),
      ) as {
        exchanges: { response: { status: number; headers: Record<string, string>; body: unknown } }[];
      }
    ).exchanges;
    let next = 0;
    const client = new BatchClient({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
      maxAttempts: 3,
      requestHandler: {
        handle: async () => {
          const { response } = exchanges[next++]!;
          return {
            response: {
              statusCode: response.status,
              headers: response.headers,
              body: Readable.from([Buffer.from(JSON.stringify(response.body))]),
            },
          };
        },
        updateHttpClientConfig: () => undefined,
        httpHandlerConfigs: () => ({}),
      },
    });
    const inspector: BatchJobInspector = new AwsBatchJobInspector(client);

    // Round 0: the recorded array job's children 2, 5 and 7 failed.
    const state = await reconcileRun(
      { ...fx.state, inferError: arrayFailure.inferError },
      { store: fx.store, inspector },
    );
    expect(next).toBe(exchanges.length);
    expect((await readRecord(fx, 0)).shardErrors?.map((e) => [e.shardId, e.exitCode, e.logStream])).toEqual([
      [2, 1, 'batch-infer-worker/default/1b2c-attempt1'],
      [5, 137, 'batch-infer-worker/default/5e6f-attempt3'],
      [7, undefined, 'batch-infer-worker/default/7a8b-attempt2'],
    ]);

    // Rounds 1 and 2 complete all but shard 7; round 2 ran it alone, as a single job.
    await completeShard(fx, 2);
    await completeShard(fx, 5);
    const r1 = await reconcileRun(state, { store: fx.store, inspector });
    expect(r1).toMatchObject({ round: 2, pending: 1 });
    const single = JSON.parse(
      await readFile(new URL('../fixtures/batch/sfn-single-failure.json', import.meta.url), 'utf8'),
    ) as { inferError: unknown };
    await reconcileRun({ ...r1, inferError: single.inferError }, { store: fx.store, inspector });
    expect((await readRecord(fx, 2)).shardErrors).toEqual([
      {
        shardId: 7,
        jobId: '9c0d7e6f-1a2b-4c3d-8e9f-0a1b2c3d4e5f',
        exitCode: 139,
        statusReason: 'Essential container in task exited',
        logStream: 'batch-infer-worker/default/9c0d-attempt1',
        attempts: 1,
      },
    ]);
  });

  it('records why the children could not be inspected, and reconciles anyway', async () => {
    const fx = await run({ shardCount: 2 });
    await completeShard(fx, 0);
    const denied: BatchJobInspector = {
      failedJobs: () =>
        Promise.reject(new Error('AccessDeniedException: not authorized to perform batch:ListJobs')),
    };
    const next = await reconcileRun(
      { ...fx.state, inferError: localCause([]) },
      { store: fx.store, inspector: denied },
    );
    expect(next).toMatchObject({ round: 1, pending: 1, next: 'infer' });
    const record = await readRecord(fx, 0);
    expect(record.inspectError).toBe('AccessDeniedException: not authorized to perform batch:ListJobs');
    expect(record.shardErrors).toBeUndefined();
  });
});

describe('output formats and the single output file', () => {
  const columns = (id: number, rows: number): OutputColumn[] => [
    { name: 'label', type: 'string', values: Array.from({ length: rows }, (_, i) => `s${id},r${i}`) },
    { name: 'score', type: 'float', values: Array.from({ length: rows }, (_, i) => i / 4) },
  ];

  async function textRun(format: 'jsonl' | 'csv', singleFile: boolean): Promise<RunFixture> {
    const fx = await run({ shardCount: 3, output: { format, singleFile } });
    for (const id of [2, 0, 1]) {
      // Shard 1 writes two chunks; each part is what the worker writes with encodeChunk.
      const chunks = id === 1 ? [2, 1] : [3];
      const outputs = [];
      for (const [chunk, rows] of chunks.entries()) {
        const encoded = encodeChunk(format, columns(id * 10 + chunk, rows));
        const uri = fx.layout.partUri(id, chunk, encoded.extension);
        const info = await fx.store.put(uri, encoded.body);
        outputs.push({ uri, rows, bytes: info.size, etag: info.etag });
      }
      await writeMarker(fx, { ...makeMarker(fx.layout, id), outputs });
    }
    return fx;
  }

  it('assembles one CSV file in shard and chunk order with the header once, and catalogues the CSV parts', async () => {
    const fx = await textRun('csv', true);
    const dbPath = path.join(fx.dir, 'catalog.duckdb');
    const result = await finalizeRun(fx.state, {
      store: fx.store,
      catalog: new LocalCatalog({ path: dbPath }),
      now: NOW,
    });
    expect(result).toMatchObject({ status: 'SUCCEEDED', records: 9, predictions: 9 });
    const manifest = await readManifest(fx);
    const single = manifest.outputs.singleFile!;
    expect(single.uri).toBe(fx.layout.singleFileUri('csv'));
    expect(single.uri).toMatch(/\/_single\/run-0001\.csv$/);
    const text = await readFile(fileURLToPath(single.uri), 'utf8');
    const expected = [
      'label,score',
      ...[0, 10, 11, 20].flatMap((k) => {
        const rows = k === 10 ? 2 : k === 11 ? 1 : 3;
        return Array.from({ length: rows }, (_, i) => `"s${k},r${i}",${i / 4}`);
      }),
    ];
    expect(text).toBe(`${expected.join('\n')}\n`);
    expect(single).toMatchObject({ rows: 9, bytes: Buffer.byteLength(text) });
    expect(manifest.outputs.format).toBe('csv');
    const rows = await queryCatalog(dbPath, 'SELECT label, score FROM churn_scores ORDER BY label');
    expect(rows.rows).toHaveLength(9);
    expect(rows.rows[0]).toEqual(['s0,r0', 0]);
  });

  it('assembles one JSON Lines file and catalogues the JSON Lines parts', async () => {
    const fx = await textRun('jsonl', true);
    const dbPath = path.join(fx.dir, 'catalog.duckdb');
    await finalizeRun(fx.state, { store: fx.store, catalog: new LocalCatalog({ path: dbPath }), now: NOW });
    const single = (await readManifest(fx)).outputs.singleFile!;
    const lines = (await readFile(fileURLToPath(single.uri), 'utf8')).trimEnd().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { label: string }).label)).toEqual([
      's0,r0',
      's0,r1',
      's0,r2',
      's10,r0',
      's10,r1',
      's11,r0',
      's20,r0',
      's20,r1',
      's20,r2',
    ]);
    const rows = await queryCatalog(dbPath, 'SELECT count(*), sum(score) FROM churn_scores');
    // Scores i/4 per chunk: 3 rows (0.75) + 2 rows (0.25) + 1 row (0) + 3 rows (0.75).
    expect(rows.rows).toEqual([[9, 1.75]]);
  });

  it('writes no single file unless asked', async () => {
    const fx = await textRun('jsonl', false);
    await finalizeRun(fx.state, {
      store: fx.store,
      catalog: new LocalCatalog({ path: path.join(fx.dir, 'c.duckdb') }),
      now: NOW,
    });
    expect((await readManifest(fx)).outputs.singleFile).toBeUndefined();
    expect(await fx.store.tryHead(fx.layout.singleFileUri('jsonl'))).toBeUndefined();
  });

  it('records the code version: $BATCH_INFER_CODE_VERSION, else the package version', async () => {
    const fx = await textRun('jsonl', false);
    const deps = {
      store: fx.store,
      catalog: new LocalCatalog({ path: path.join(fx.dir, 'c.duckdb') }),
      now: NOW,
    };
    const saved = process.env.BATCH_INFER_CODE_VERSION;
    try {
      delete process.env.BATCH_INFER_CODE_VERSION;
      await finalizeRun(fx.state, deps);
      const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as {
        version: string;
      };
      expect((await readManifest(fx)).codeVersion).toBe(`batch-infer@${pkg.version}`);
      process.env.BATCH_INFER_CODE_VERSION = 'git-3f2a1bc image-sha256:abc';
      await finalizeRun(fx.state, deps);
      expect((await readManifest(fx)).codeVersion).toBe('git-3f2a1bc image-sha256:abc');
    } finally {
      if (saved === undefined) delete process.env.BATCH_INFER_CODE_VERSION;
      else process.env.BATCH_INFER_CODE_VERSION = saved;
    }
  });
});

describe('single file on the loopback S3 server', () => {
  let server: S3TestServer;
  let restore: () => void;
  beforeAll(async () => {
    server = await startS3Server();
    restore = useS3TestEnv(server.endpoint);
    await server.createBucket('preds');
  }, 30_000);
  afterAll(async () => {
    await server?.stop();
    restore?.();
  });

  it('assembles CSV parts stored in S3 (s3rver has no UploadPartCopy: the streamed copy)', async () => {
    const client = createS3Client({ endpoint: server.endpoint });
    try {
      const store = new S3ObjectStore(client);
      const layout = runLayout('s3://preds/churn/', 'run-7', '2024-05-06');
      const markers: ShardMarker[] = [];
      for (const id of [1, 0]) {
        const encoded = encodeChunk('csv', [{ name: 'v', type: 'int', values: [id, id + 1] }]);
        const uri = layout.partUri(id, 0, 'csv');
        const info = await store.put(uri, encoded.body);
        markers.push({
          ...makeMarker(layout, id),
          outputs: [{ uri, rows: 2, bytes: info.size, etag: info.etag }],
        });
      }
      const single = await assembleSingleFile(store, layout, 'csv', markers);
      expect(single).toMatchObject({ uri: 's3://preds/churn/_single/run-7.csv', rows: 4 });
      expect(Buffer.from(await store.get(single.uri)).toString()).toBe('v\n0\n1\n1\n2\n');
      await putJson(store, 's3://preds/unused.json', {});
    } finally {
      client.destroy();
    }
  });
});
