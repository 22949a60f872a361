/**
 * The stop deadline's backstop: a worker sent SIGTERM whose last writes hang (its object store stops answering)
 * cannot finish its checkpoint in time, so the backstop ends it at STOP_DEADLINE_MS, with the interrupted exit
 * status (143, not 0) and the checkpoint of its last finished chunk, which the retry resumes after.
 *
 * The output goes to a real S3-compatible server (s3rver) through a loopback proxy that the test can make stop
 * answering: requests after that are held open and never forwarded, as with an unreachable endpoint.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import type { ShardMarker } from '../../src/runs/types.js';
import { LocalObjectStore, RoutingObjectStore, type ObjectStore } from '../../src/storage/index.js';
import { createS3Client, S3ObjectStore } from '../../src/storage/s3.js';
import { CHUNK_RECORDS_ENV, INTERRUPTED_EXIT_CODE, STOP_DEADLINE_MS } from '../../src/worker/env.js';
import { startS3Server, useS3TestEnv, type S3TestServer } from '../support/s3-server.js';
import {
  breastCancerInput,
  breastCancerSpec,
  parquetOf,
  planWorkerRun,
  readCheckpointFile,
  readMarker,
  runShard,
  sql,
  startWorker,
  tempDir,
  waitFor,
  type PlannedRun,
} from './helpers.js';

/**
 * Enough for the shard to run well past its second checkpoint: the test must see that checkpoint and signal the
 * worker before it finishes, and under a full suite's load its polls of the store can lag (12,000 records once
 * finished unseen).
 */
const RECORDS = 30_000;

/** Forwards requests to `target` until `stall()`; from then on, new requests are held open and never answered. */
async function stallingProxy(target: string): Promise<{
  endpoint: string;
  stall(): void;
  stalled(): number;
  close(): Promise<void>;
}> {
  const upstream = new URL(target);
  let stalling = false;
  const held: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    if (stalling) {
      held.push(res);
      req.resume();
      return;
    }
    const forward = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stall: () => {
      stalling = true;
    },
    stalled: () => held.length,
    close: async () => {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let tmp: { dir: string; cleanup: () => void };
let server: S3TestServer;
let restoreEnv: () => void;
let proxy: Awaited<ReturnType<typeof stallingProxy>>;
let store: ObjectStore;
let inputDir: string;
let uninterrupted: ShardMarker;

beforeAll(async () => {
  tmp = tempDir('backstop-');
  inputDir = path.join(tmp.dir, 'in');
  await breastCancerInput(inputDir, RECORDS, 2, 2_500);
  server = await startS3Server();
  restoreEnv = useS3TestEnv(server.endpoint);
  await server.createBucket('lake');
  proxy = await stallingProxy(server.endpoint);
  const client = createS3Client({ endpoint: server.endpoint });
  store = new RoutingObjectStore({ file: () => new LocalObjectStore(), s3: () => new S3ObjectStore(client) });
  uninterrupted = await runShard(
    await planWorkerRun(breastCancerSpec(inputDir, path.join(tmp.dir, 'whole'), { batchSize: 250 })),
    { chunkRecords: 1500 },
  );
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await server?.stop();
  restoreEnv?.();
  tmp?.cleanup();
});

/** The worker's JSON log lines in its output (other lines, such as Node's warnings, left out). */
function logLines(output: string): Record<string, unknown>[] {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('a worker sent SIGTERM whose writes then hang', () => {
  it('is ended by the backstop at the stop deadline with 143 and a consistent checkpoint; the retry is exact', async () => {
    const spec = breastCancerSpec(inputDir, '/unused', { batchSize: 250 });
    const planned: PlannedRun = await planWorkerRun(
      { ...spec, output: { ...spec.output, uri: 's3://lake/out/' } },
      'run-backstop',
      store,
    );
    const env = { [CHUNK_RECORDS_ENV]: '1500' };
    // The worker reaches S3 through the proxy only.
    const worker = startWorker(planned.runUri, { ...env, BATCH_INFER_S3_ENDPOINT: proxy.endpoint }, 1);
    const checkpoint = await waitFor(
      async () => {
        const cp = await readCheckpointFile(planned);
        return cp && cp.chunks.length >= 2 ? cp : undefined;
      },
      { timeoutMs: 60_000, until: worker.exited },
    );
    expectIn(checkpoint, worker.output()).toBeDefined();

    proxy.stall();
    worker.child.kill('SIGTERM');
    const exit = await worker.exited;
    // Its writes never come back: only the backstop ends it, at the deadline, and not with 0. The orderly path
    // never finished (no "shard interrupted" line), and the backstop fired no earlier than the deadline by the
    // worker's own clock (its timer can only be late; 1 ms for the timer's millisecond rounding).
    expect(proxy.stalled()).toBeGreaterThan(0);
    expectIn(exit, worker.output()).toMatchObject({ code: INTERRUPTED_EXIT_CODE, signal: null });
    expect(worker.output()).toMatch(/SIGTERM: stopping after the batches in flight/);
    expect(worker.output()).not.toMatch(/shard interrupted; a retry resumes/);
    const backstop = logLines(worker.output()).filter(
      (l) => l.message === 'stop deadline reached: exiting as interrupted',
    );
    expectIn(backstop, worker.output()).toHaveLength(1);
    expect(backstop[0]!.deadlineMs).toBe(STOP_DEADLINE_MS);
    expect(backstop[0]!.elapsedMs).toBeGreaterThanOrEqual(STOP_DEADLINE_MS - 1);
    // Every line carries the run id: `batch-infer logs <runId>` finds a deployed run's worker lines by it.
    const runIds = new Set(logLines(worker.output()).map((l) => l.runId));
    expectIn([...runIds], worker.output()).toEqual(['run-backstop']);

    // The checkpoint names only files that exist as recorded; no marker.
    const before = (await readCheckpointFile(planned))!;
    expect(before.chunks.length).toBeGreaterThanOrEqual(2);
    expect(before.records).toBe(before.chunks.reduce((n, c) => n + c.records, 0));
    for (const chunk of before.chunks) {
      for (const file of [chunk.output, chunk.errorsPiece]) {
        if (file) expectIn((await store.tryHead(file.uri))?.etag, file.uri).toBe(file.etag);
      }
    }
    expect(await store.tryHead(planned.layout.markerUri(0))).toBeUndefined();

    // The retry, with S3 reachable, resumes after the checkpoint and writes exactly the uninterrupted rows.
    const retry = startWorker(planned.runUri, env, 2);
    expectIn(await retry.exited, retry.output()).toMatchObject({ code: 0, signal: null });
    const marker = await readMarker(planned);
    expect(marker.records).toBe(RECORDS);
    expect(marker.resume).toMatchObject({ attempts: 2, resumedRecords: before.records });
    const local = path.join(tmp.dir, 'downloaded');
    mkdirSync(local, { recursive: true });
    const files: string[] = [];
    for (const [k, output] of marker.outputs.entries()) {
      const file = path.join(local, `part-${k}.parquet`);
      writeFileSync(file, await store.get(output.uri));
      files.push(`'${file}'`);
    }
    const columns = 'patient_id, diagnosis, label, score, _shard, _source, _offset';
    const [diff] = await sql<{ n: bigint; left_only: bigint; right_only: bigint }>(`
      WITH s AS (SELECT ${columns} FROM read_parquet([${files.join(', ')}])),
           l AS (SELECT ${columns} FROM ${parquetOf(uninterrupted)})
      SELECT (SELECT count(*) FROM s) AS n,
             (SELECT count(*) FROM (SELECT * FROM s EXCEPT ALL SELECT * FROM l)) AS left_only,
             (SELECT count(*) FROM (SELECT * FROM l EXCEPT ALL SELECT * FROM s)) AS right_only`);
    expect([Number(diff!.n), Number(diff!.left_only), Number(diff!.right_only)]).toEqual([
      uninterrupted.predictions,
      0,
      0,
    ]);
  }, 120_000);
});
