/**
 * The local stand-in for AWS Batch, with real worker processes on real shards: a child that dies by a signal, or
 * that was stopped by SIGTERM and exited 143 after its checkpoint, is what Batch reports as "Host EC2 ...
 * terminated" and is retried (the retry resumes the shard); a child that exits non-zero otherwise is not retried;
 * stopping the pool retries nothing.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { LocalWorkerPool } from '../../src/local/worker-pool.js';
import { WORKER_ENV } from '../../src/runs/tasks.js';
import { WORKER_RETRY } from '../../src/runs/worker-retry.js';
import { CHUNK_RECORDS_ENV, INTERRUPTED_EXIT_CODE } from '../../src/worker/env.js';
import {
  breastCancerInput,
  breastCancerSpec,
  planWorkerRun,
  readCheckpointFile,
  readMarker,
  tempDir,
  waitFor,
  type PlannedRun,
} from '../worker/helpers.js';

let tmp: { dir: string; cleanup: () => void };
let inputDir: string;

interface Attempt {
  readonly index: number;
  readonly attempt: number;
  pid?: number;
  code?: number | null;
  signal?: string | null;
}

function pool(attempts: Attempt[], onStart?: (a: Attempt) => void): LocalWorkerPool {
  return new LocalWorkerPool({
    concurrency: 1,
    logDir: path.join(tmp.dir, 'logs'),
    environment: {
      [WORKER_ENV.executionProviders]: 'cpu',
      [WORKER_ENV.threads]: '1',
      [CHUNK_RECORDS_ENV]: '1000',
    },
    onAttemptStart: ({ index, attempt, pid }) => {
      const a: Attempt = { index, attempt, pid };
      attempts.push(a);
      onStart?.(a);
    },
    onAttemptEnd: ({ index, attempt, code, signal }) => {
      const a = attempts.find((x) => x.index === index && x.attempt === attempt);
      if (a) Object.assign(a, { code, signal });
    },
  });
}

const job = (planned: PlannedRun, arraySize?: number) => ({
  jobName: `job-${planned.plan.spec.output.uri.length}-${arraySize ?? 0}`,
  ...(arraySize ? { arraySize } : {}),
  environment: { [WORKER_ENV.runUri]: planned.runUri },
});

const spec = (out: string) => breastCancerSpec(inputDir, path.join(tmp.dir, out), { batchSize: 250 });

beforeAll(async () => {
  tmp = tempDir('pool-');
  inputDir = path.join(tmp.dir, 'in');
  await breastCancerInput(inputDir, 20_000, 1, 4_000);
});
afterAll(() => tmp.cleanup());

describe('LocalWorkerPool', () => {
  it('retries a child killed by a signal; the next attempt resumes the shard and completes it', async () => {
    const planned = await planWorkerRun(spec('killed'));
    const attempts: Attempt[] = [];
    const p = pool(attempts, (a) => {
      if (a.attempt !== 1) return;
      // Kill the first attempt once it has checkpointed a chunk (a Spot reclaim mid-shard).
      void waitFor(async () => ((await readCheckpointFile(planned))?.chunks.length ? true : undefined), {
        timeoutMs: 60_000,
      }).then(() => process.kill(a.pid!, 'SIGKILL'));
    });
    const result = await p.runJob(job(planned));
    expect(result.failed).toEqual([]);
    expect(attempts.map((a) => [a.attempt, a.code, a.signal])).toEqual([
      [1, null, 'SIGKILL'],
      [2, 0, null],
    ]);
    const marker = await readMarker(planned);
    expect(marker.attempt).toBe(2);
    expect(marker.resume?.resumedChunks).toBeGreaterThan(0);
    expect(marker.records).toBe(20_000);
  });

  it('retries a child stopped by SIGTERM (it exits 143 after its checkpoint); the retry resumes and completes', async () => {
    const planned = await planWorkerRun(spec('terminated'));
    const attempts: Attempt[] = [];
    const p = pool(attempts, (a) => {
      if (a.attempt !== 1) return;
      void waitFor(async () => ((await readCheckpointFile(planned))?.chunks.length ? true : undefined), {
        timeoutMs: 60_000,
      }).then(() => process.kill(a.pid!, 'SIGTERM'));
    });
    const result = await p.runJob(job(planned));
    expect(result.failed).toEqual([]);
    expect(attempts.map((a) => [a.attempt, a.code, a.signal])).toEqual([
      [1, INTERRUPTED_EXIT_CODE, null],
      [2, 0, null],
    ]);
    const marker = await readMarker(planned);
    expect(marker.attempt).toBe(2);
    expect(marker.resume?.resumedChunks).toBeGreaterThan(0);
    expect(marker.records).toBe(20_000);
  });

  it('reports a child stopped by SIGTERM on every attempt as a host termination, after all attempts', async () => {
    const planned = await planWorkerRun(spec('always-terminated'));
    const attempts: Attempt[] = [];
    const p = pool(attempts, (a) => {
      // Each attempt is stopped once it has checkpointed a chunk of its own (it is running its shard by then).
      void (async () => {
        const before = (await readCheckpointFile(planned))?.chunks.length ?? 0;
        await waitFor(
          async () => (((await readCheckpointFile(planned))?.chunks.length ?? 0) > before ? true : undefined),
          { timeoutMs: 60_000 },
        );
        process.kill(a.pid!, 'SIGTERM');
      })();
    });
    const result = await p.runJob(job(planned));
    expect(attempts.map((a) => a.code)).toEqual(Array(WORKER_RETRY.attempts).fill(INTERRUPTED_EXIT_CODE));
    expect(result.failed[0]).toMatchObject({ attempts: WORKER_RETRY.attempts, exitCode: 143, signal: null });
    expect(result.failed[0]!.statusReason).toMatch(
      /^Host EC2 \(local worker pid \d+\) terminated by SIGTERM \(exit code 143\)\.$/,
    );
  });

  it('reports a child killed on every attempt as Batch does: "Host EC2 ... terminated", after all attempts', async () => {
    const planned = await planWorkerRun(spec('always-killed'));
    const attempts: Attempt[] = [];
    const result = await pool(attempts, (a) => process.kill(a.pid!, 'SIGKILL')).runJob(job(planned));
    expect(attempts).toHaveLength(WORKER_RETRY.attempts);
    expect(result.failed).toHaveLength(1);
    expect(result.failed[0]).toMatchObject({ index: 0, attempts: WORKER_RETRY.attempts, signal: 'SIGKILL' });
    expect(result.failed[0]!.statusReason).toMatch(
      /^Host EC2 \(local worker pid \d+\) terminated by SIGKILL\.$/,
    );
  });

  it('does not retry a child that exits non-zero', async () => {
    const planned = await planWorkerRun(spec('exits'));
    const attempts: Attempt[] = [];
    // Two array children for a one-shard plan: child 1 has no shard and exits 1.
    const result = await pool(attempts).runJob(job(planned, 2));
    expect(result.failed).toHaveLength(1);
    expect(result.failed[0]).toMatchObject({
      index: 1,
      attempts: 1,
      exitCode: 1,
      signal: null,
      statusReason: 'Essential container in task exited',
    });
    expect(result.failed[0]!.logTail).toMatch(/shard 1 does not exist/);
    expect(attempts.filter((a) => a.index === 1)).toHaveLength(1);
    expect((await readMarker(planned)).records).toBe(20_000);
  });

  it('killAll stops the children without retrying them; the interrupted shard keeps its checkpoint', async () => {
    const planned = await planWorkerRun(spec('stopped'));
    const attempts: Attempt[] = [];
    const p = pool(attempts, () => {
      void waitFor(async () => ((await readCheckpointFile(planned))?.chunks.length ? true : undefined), {
        timeoutMs: 60_000,
      }).then(() => p.killAll('SIGTERM'));
    });
    const result = await p.runJob(job(planned));
    expect(attempts).toHaveLength(1);
    expect(result.failed[0]).toMatchObject({ attempts: 1, exitCode: INTERRUPTED_EXIT_CODE, signal: null });
    expect((await readCheckpointFile(planned))?.chunks.length).toBeGreaterThan(0);
    expect(await planned.store.tryHead(planned.layout.markerUri(0))).toBeUndefined();
  });
});
