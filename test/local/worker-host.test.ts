/**
 * Worker hosts (src/worker/host-protocol.ts, src/local/worker-host.ts): the local pool runs several shards of a run
 * in one worker process, one after the other. Each attempt still gets a log of its own, holding its lines only; the
 * later shards of a run take the batch size the first one probed, and its decode and inference threads; a failed task ends its process; a process that
 * died while idle is not given a task; closing the pool ends its idle processes.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { LocalWorkerPool } from '../../src/local/worker-pool.js';
import { WORKER_ENV } from '../../src/runs/tasks.js';
import { DETERMINISTIC_EXIT_CODE } from '../../src/runs/worker-retry.js';
import { DECODE_THREADS_ENV } from '../../src/worker/env.js';
import { expectIn } from '../support/expect-in.js';
import {
  breastCancerInput,
  breastCancerSpec,
  planWorkerRun,
  readMarker,
  tempDir,
  waitFor,
} from '../worker/helpers.js';

let tmp: { dir: string; cleanup: () => void };
let inputDir: string;

interface Attempt {
  readonly index: number;
  readonly attempt: number;
  readonly pid: number;
  code?: number | null;
}

function pool(attempts: Attempt[], logDir = 'logs'): LocalWorkerPool {
  return new LocalWorkerPool({
    concurrency: 1,
    logDir: path.join(tmp.dir, logDir),
    // Two decode threads even for these small shards, so that the host has decode threads to keep.
    environment: {
      [WORKER_ENV.executionProviders]: 'cpu',
      [WORKER_ENV.threads]: '1',
      [DECODE_THREADS_ENV]: '2',
    },
    onAttemptStart: ({ index, attempt, pid }) => attempts.push({ index, attempt, pid }),
    onAttemptEnd: ({ index, attempt, code }) => {
      const a = attempts.find((x) => x.index === index && x.attempt === attempt);
      if (a) a.code = code;
    },
  });
}

/** Whether `pid` is a live (not zombie) process. */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

const logLines = (file: string): Record<string, unknown>[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);

beforeAll(async () => {
  tmp = tempDir('host-');
  inputDir = path.join(tmp.dir, 'in');
  await breastCancerInput(inputDir, 3_000, 1, 1_000);
});
afterAll(() => tmp.cleanup());

describe('worker hosts', () => {
  it('run the shards of a job in one process, each with a log of its own and the first shard’s batch size', async () => {
    const planned = await planWorkerRun(
      breastCancerSpec(inputDir, path.join(tmp.dir, 'out-three'), {
        batchSize: 'auto',
        shards: { targetRecords: 1_000 },
      }),
    );
    expect(planned.plan.shardCount).toBe(3);
    const attempts: Attempt[] = [];
    const p = pool(attempts);
    const result = await p.runJob({
      jobName: 'three',
      arraySize: 3,
      environment: { [WORKER_ENV.runUri]: planned.runUri },
    });
    expectIn(result.failed, 'no child fails').toEqual([]);
    expect(attempts.map((a) => [a.index, a.attempt, a.code])).toEqual([
      [0, 1, 0],
      [1, 1, 0],
      [2, 1, 0],
    ]);
    // One process ran all three.
    const pid = attempts[0]!.pid;
    expect(attempts.map((a) => a.pid)).toEqual([pid, pid, pid]);

    for (const index of [0, 1, 2]) {
      const lines = logLines(path.join(tmp.dir, 'logs', `three-${index}-attempt1.log`));
      // Its own lines only, through its end, and not the host's task-end line.
      expect(new Set(lines.map((l) => l.arrayIndex))).toEqual(new Set([index]));
      expect(lines.at(-1)?.message).toBe('shard complete');
      expect(lines.some((l) => 'batchInferHost' in l)).toBe(false);
    }

    // The inference thread (and model) of shard 0 ran shards 1 and 2 as well.
    const loaded = [0, 1, 2].map((index) =>
      logLines(path.join(tmp.dir, 'logs', `three-${index}-attempt1.log`)).find(
        (l) => l.message === 'model loaded',
      )!,
    );
    expect(loaded.map((l) => l.threadReused)).toEqual([false, true, true]);

    // The decode threads started for shard 0 decoded shards 1 and 2 as well.
    const reading = [0, 1, 2].map((index) =>
      logLines(path.join(tmp.dir, 'logs', `three-${index}-attempt1.log`)).find(
        (l) => l.message === 'reading',
      )!,
    );
    expect(reading.map((l) => [l.decodeThreads, l.decodeThreadsReused])).toEqual([
      [2, false],
      [2, true],
      [2, true],
    ]);

    const markers = await Promise.all([0, 1, 2].map((id) => readMarker(planned, id)));
    expect(markers.reduce((n, m) => n + m.records, 0)).toBe(3_000);
    // Shard 0 probed; 1 and 2 took its choice and say so.
    expect(markers[0]!.batchSizeProbe?.probedBy).toBeUndefined();
    for (const marker of markers.slice(1)) {
      expect(marker.batchSizeProbe?.probedBy).toBe(0);
      expect(marker.batchSize).toBe(markers[0]!.batchSize);
    }

    // The host waits for more work until the pool is closed.
    expect(isAlive(pid)).toBe(true);
    await p.close();
    expect(isAlive(pid)).toBe(false);
  });

  it('end with a failed task: the next attempt runs in a new process', async () => {
    const spec = breastCancerSpec(inputDir, path.join(tmp.dir, 'out-failing'), {
      shards: { targetRecords: 1_500 },
    });
    (spec.model.inputs as { tensor: string }[])[0]!.tensor = 'featurez';
    const planned = await planWorkerRun(spec);
    const attempts: Attempt[] = [];
    const result = await pool(attempts, 'logs-failing').runJob({
      jobName: 'failing',
      arraySize: 2,
      environment: { [WORKER_ENV.runUri]: planned.runUri },
    });
    expect(result.failed.map((f) => f.exitCode)).toEqual([DETERMINISTIC_EXIT_CODE, DETERMINISTIC_EXIT_CODE]);
    expect(attempts).toHaveLength(2);
    expect(attempts[0]!.pid).not.toBe(attempts[1]!.pid);
    expect(isAlive(attempts[0]!.pid)).toBe(false);
    // Each failure's log holds the reason.
    for (const failure of result.failed) expect(failure.logTail).toContain('featurez');
  });

  it('stopped by SIGTERM between tasks, exit at once as interrupted (no shard to stop, no stop deadline)', async () => {
    const planned = await planWorkerRun(
      breastCancerSpec(inputDir, path.join(tmp.dir, 'out-term')),
      'run-term',
    );
    const attempts: Attempt[] = [];
    const p = pool(attempts, 'logs-term');
    expect(
      (await p.runJob({ jobName: 'term', environment: { [WORKER_ENV.runUri]: planned.runUri } })).failed,
    ).toEqual([]);
    const pid = attempts[0]!.pid;
    process.kill(pid, 'SIGTERM');
    // Reaped: this process has seen it exit.
    expect(
      await waitFor(async () => (existsSync(`/proc/${pid}`) ? undefined : true), { timeoutMs: 60_000 }),
    ).toBe(true);
    // Its last words went to the last attempt's log: the immediate exit, not the deadline's backstop.
    const log = readFileSync(path.join(tmp.dir, 'logs-term', 'term-0-attempt1.log'), 'utf8');
    expect(log).toContain('SIGTERM: no task running; exiting as interrupted');
    expect(log).not.toContain('stop deadline reached');
    await p.close();
  });

  it('are not given work once dead: a process killed while idle is replaced', async () => {
    const plannedRun = (name: string) =>
      planWorkerRun(breastCancerSpec(inputDir, path.join(tmp.dir, `out-${name}`)), `run-${name}`);
    const [first, second] = [await plannedRun('idle-1'), await plannedRun('idle-2')];
    const attempts: Attempt[] = [];
    const p = pool(attempts, 'logs-idle');
    const job = (planned: typeof first) => ({
      jobName: planned.plan.runId,
      environment: { [WORKER_ENV.runUri]: planned.runUri },
    });
    expect((await p.runJob(job(first))).failed).toEqual([]);
    const pid = attempts[0]!.pid;
    process.kill(pid, 'SIGKILL');
    // Reaped, not just dead: this process has seen it exit.
    expect(
      await waitFor(async () => (existsSync(`/proc/${pid}`) ? undefined : true), { timeoutMs: 30_000 }),
    ).toBe(true);
    expect((await p.runJob(job(second))).failed).toEqual([]);
    expect(attempts[1]!.pid).not.toBe(pid);
    expect((await readMarker(second)).records).toBe(3_000);
    await p.close();
  });
});
