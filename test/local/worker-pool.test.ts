/**
 * The local stand-in for AWS Batch, with real worker processes on real shards: a child that dies by a signal, or
 * that was stopped by SIGTERM and exited 143 after its checkpoint, is what Batch reports as "Host EC2 ...
 * terminated" and is retried (the retry resumes the shard); a child that exits non-zero otherwise is not retried;
 * stopping the pool retries nothing.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { LocalWorkerPool } from '../../src/local/worker-pool.js';
import { WORKER_ENV } from '../../src/runs/tasks.js';
import { DETERMINISTIC_EXIT_CODE, WORKER_RETRY } from '../../src/runs/worker-retry.js';
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
  /** Resolves when the pool reports the attempt's end. */
  readonly ended: Promise<void>;
  hasEnded: boolean;
  /** Set once the test's signal was sent to the attempt while it was still running. */
  signalled?: NodeJS.Signals;
}

function pool(attempts: Attempt[], onStart?: (a: Attempt) => void): LocalWorkerPool {
  const endOf = new Map<Attempt, () => void>();
  return new LocalWorkerPool({
    concurrency: 1,
    logDir: path.join(tmp.dir, 'logs'),
    environment: {
      [WORKER_ENV.executionProviders]: 'cpu',
      [WORKER_ENV.threads]: '1',
      [CHUNK_RECORDS_ENV]: '1000',
    },
    onAttemptStart: ({ index, attempt, pid }) => {
      let end = (): void => {};
      const ended = new Promise<void>((resolve) => (end = resolve));
      const a: Attempt = { index, attempt, pid, ended, hasEnded: false };
      endOf.set(a, end);
      attempts.push(a);
      onStart?.(a);
    },
    onAttemptEnd: ({ index, attempt, code, signal }) => {
      const a = attempts.find((x) => x.index === index && x.attempt === attempt);
      if (!a) return;
      Object.assign(a, { code, signal, hasEnded: true });
      endOf.get(a)?.();
    },
  });
}

/** Whether `pid` is a live (not zombie) child of this process: a pid is only signalled while it is still ours. */
function isRunningChild(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return state !== 'Z' && Number(ppid) === process.pid;
  } catch {
    return false;
  }
}

/** The live child processes of this process. */
function childPids(): Set<number> {
  const pids = readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((pid) => isRunningChild(pid));
  return new Set(pids);
}

/**
 * Sends `signal` to attempt `a` once `ready` says so, unless the attempt ended first: polling stops when it ends,
 * and the signal goes only to a running child of this process (never to an exited one, or a reused pid). The test
 * then asserts `a.signalled`, so an attempt that finished before it could be stopped fails the test by name.
 */
function signalWhen(a: Attempt, ready: () => Promise<boolean>, signal: NodeJS.Signals): void {
  void (async () => {
    await waitFor(async () => ((await ready()) ? true : undefined), { timeoutMs: 60_000, until: a.ended });
    if (a.hasEnded || !isRunningChild(a.pid!)) return;
    process.kill(a.pid!, signal);
    a.signalled = signal;
  })();
}

const checkpointed =
  (planned: PlannedRun, moreThan = 0) =>
  async (): Promise<boolean> =>
    ((await readCheckpointFile(planned))?.chunks.length ?? 0) > moreThan;

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
      signalWhen(a, checkpointed(planned), 'SIGKILL');
    });
    const result = await p.runJob(job(planned));
    expect(attempts[0]!.signalled).toBe('SIGKILL');
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
      signalWhen(a, checkpointed(planned), 'SIGTERM');
    });
    const result = await p.runJob(job(planned));
    expect(attempts[0]!.signalled).toBe('SIGTERM');
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
        signalWhen(a, checkpointed(planned, before), 'SIGTERM');
      })();
    });
    const result = await p.runJob(job(planned));
    expect(attempts.map((a) => a.signalled)).toEqual(Array(WORKER_RETRY.attempts).fill('SIGTERM'));
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
    // Two array children for a one-shard plan: child 1 has no shard, a failure no retry can fix (exit 78).
    const result = await pool(attempts).runJob(job(planned, 2));
    expect(result.failed).toHaveLength(1);
    expect(result.failed[0]).toMatchObject({
      index: 1,
      attempts: 1,
      exitCode: DETERMINISTIC_EXIT_CODE,
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
    let stopped = false;
    const p = pool(attempts, (a) => {
      // killAll signals through the pool's own child handles, which never signal an exited child.
      void waitFor(async () => ((await checkpointed(planned)()) ? true : undefined), {
        timeoutMs: 60_000,
        until: a.ended,
      }).then((ready) => {
        if (!ready || a.hasEnded) return;
        p.killAll('SIGTERM');
        stopped = true;
      });
    });
    const result = await p.runJob(job(planned));
    expect(stopped).toBe(true);
    expect(attempts).toHaveLength(1);
    expect(result.failed[0]).toMatchObject({ attempts: 1, exitCode: INTERRUPTED_EXIT_CODE, signal: null });
    expect((await readCheckpointFile(planned))?.chunks.length).toBeGreaterThan(0);
    expect(await planned.store.tryHead(planned.layout.markerUri(0))).toBeUndefined();
  });

  it('runs the first children in the processes prestart booted, and ends an unused one at close', async () => {
    const planned = await planWorkerRun(
      breastCancerSpec(inputDir, path.join(tmp.dir, 'prestart'), {
        batchSize: 250,
        shards: { targetRecords: 7_000 },
      }),
      'prestart',
    );
    expect(planned.plan.shardCount).toBe(3);
    const before = childPids();
    const attempts: Attempt[] = [];
    const p = new LocalWorkerPool({
      concurrency: 2,
      logDir: path.join(tmp.dir, 'logs-prestart'),
      environment: { [WORKER_ENV.executionProviders]: 'cpu', [WORKER_ENV.threads]: '1' },
      onAttemptStart: ({ index, attempt, pid }) =>
        attempts.push({ index, attempt, pid, ended: Promise.resolve(), hasEnded: false }),
    });
    try {
      p.prestart(3);
      // Prestarting again tops up to the count asked for; it starts no more than that.
      p.prestart(3);
      const booted = [...childPids()].filter((pid) => !before.has(pid));
      expect(booted).toHaveLength(3);
      const result = await p.runJob({ ...job(planned, 3), jobName: 'prestart' });
      expect(result.failed).toEqual([]);
      // Every attempt ran in a process started before the job: none was started for it.
      expect(attempts).toHaveLength(3);
      for (const a of attempts) expect(booted).toContain(a.pid);
    } finally {
      await p.close();
    }
    // All of them have exited, the one a child may not have used included.
    expect([...childPids()].filter((pid) => !before.has(pid))).toEqual([]);
  });

  it("says when a worker slot has no child left to start, while the job's other children still run", async () => {
    const planned = await planWorkerRun(
      breastCancerSpec(inputDir, path.join(tmp.dir, 'slots'), {
        batchSize: 250,
        shards: { targetRecords: 7_000 },
      }),
      'slots',
    );
    expect(planned.plan.shardCount).toBe(3);
    const events: string[] = [];
    const slots = new LocalWorkerPool({
      concurrency: 2,
      logDir: path.join(tmp.dir, 'logs-slots'),
      environment: { [WORKER_ENV.executionProviders]: 'cpu', [WORKER_ENV.threads]: '1' },
      onAttemptStart: ({ index }) => events.push(`start ${index}`),
      onAttemptEnd: ({ index }) => events.push(`end ${index}`),
      onSlotFree: () => events.push('free'),
      onLastChildStarted: () => events.push('last started'),
    });
    try {
      const result = await slots.runJob({ ...job(planned, 3), jobName: 'slots' });
      expect(result.failed).toEqual([]);
    } finally {
      await slots.close();
    }
    // One per slot; the first while a child of the job was still running (fewer than 3 had ended).
    expect(events.filter((e) => e === 'free')).toHaveLength(2);
    expect(events.slice(0, events.indexOf('free')).filter((e) => e.startsWith('end')).length).toBeLessThan(3);
    expect(events.at(-1)).toBe('free');
    // Once, as the last child's first attempt starts (the others started before it), while another still runs.
    const last = events.indexOf('last started');
    expect(events.filter((e) => e === 'last started')).toHaveLength(1);
    expect(
      events
        .slice(0, last)
        .filter((e) => e.startsWith('start'))
        .sort(),
    ).toEqual(['start 0', 'start 1']);
    expect(events.slice(last).filter((e) => e.startsWith('start'))).toEqual(['start 2']);
    expect(events.slice(0, last).filter((e) => e.startsWith('end')).length).toBeLessThan(2);
  });
});
