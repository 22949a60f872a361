/**
 * Worker processes interrupted mid-shard, as Spot reclaims and timeouts do: SIGKILL (no chance to clean up) and
 * SIGTERM (stop in time, leave a consistent checkpoint, exit as interrupted). The retry must resume after the last
 * checkpointed chunk and end with exactly the rows of an uninterrupted run: none lost, none twice.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import type { ShardMarker } from '../../src/runs/types.js';
import { CHECKPOINT_CLOCK_ENV, CHUNK_RECORDS_ENV, INTERRUPTED_EXIT_CODE } from '../../src/worker/env.js';
import {
  breastCancerInput,
  breastCancerSpec,
  errorLines,
  expectSameOutput,
  filesUnder,
  planWorkerRun,
  readCheckpointFile,
  readMarker,
  startWorker,
  tempDir,
  waitFor,
  type PlannedRun,
} from './helpers.js';
import { HOLD_UNTIL_KILLED_MS, HOLD_UNTIL_STOPPED_MS, manualClockUrl } from './manual-clock.js';

const RECORDS = 30_000;
/** Small chunks and batches: many checkpoints, so the interruption lands between two of them. */
const WORKER_ENV = { [CHUNK_RECORDS_ENV]: '1500' };

let tmp: { dir: string; cleanup: () => void };
let inputDir: string;
let uninterrupted: ShardMarker;

const spec = (out: string) => breastCancerSpec(inputDir, path.join(tmp.dir, out), { batchSize: 250 });

async function finish(planned: PlannedRun, attempt: number): Promise<ShardMarker> {
  const worker = startWorker(planned.runUri, WORKER_ENV, attempt);
  const exit = await worker.exited;
  expectIn(exit, worker.output()).toMatchObject({ code: 0, signal: null });
  // One worker process, one model load, however many chunks and checkpoints.
  expect(worker.output().match(/"message":"model loaded"/g)).toHaveLength(1);
  return readMarker(planned);
}

/**
 * Starts a worker and waits until it has checkpointed at least `chunks` chunks (while still running). From that
 * checkpoint on, each of the worker's checkpoint-clock reads (one per batch) holds it for `holdMs`
 * (test/worker/manual-clock.ts): on a fast machine it could otherwise finish the shard between the test seeing the
 * checkpoint and the signal.
 */
async function startAndWaitForChunks(
  planned: PlannedRun,
  chunks: number,
  options: { holdMs: number; wrapper?: readonly string[]; ipc?: boolean },
) {
  const clock = {
    // Never written: the clock shows 0, so no chunk closes by time; only the hold matters.
    file: path.join(tmp.dir, 'clock-never-set.txt'),
    hold: { checkpoints: [fileURLToPath(planned.layout.checkpointUri(0))], chunks, ms: options.holdMs },
  };
  const env = { ...WORKER_ENV, [CHECKPOINT_CLOCK_ENV]: manualClockUrl(clock) };
  const worker = startWorker(planned.runUri, env, 1, options.wrapper, { ipc: options.ipc ?? false });
  const checkpoint = await waitFor(
    async () => {
      const cp = await readCheckpointFile(planned);
      return cp && cp.chunks.length >= chunks ? cp : undefined;
    },
    { timeoutMs: 60_000, until: worker.exited },
  );
  expectIn(
    checkpoint,
    `no checkpoint with ${chunks} chunks while the worker ran:\n${worker.output()}`,
  ).toBeDefined();
  return worker;
}

/** Every file the checkpoint names exists as recorded, and its counts add up. */
async function expectConsistentCheckpoint(planned: PlannedRun): Promise<void> {
  const cp = await readCheckpointFile(planned);
  expect(cp).toBeDefined();
  expect(cp!.records).toBe(cp!.chunks.reduce((n, c) => n + c.records, 0));
  expect(cp!.predictions).toBe(cp!.chunks.reduce((n, c) => n + c.predictions, 0));
  expect(cp!.errors).toBe(cp!.chunks.reduce((n, c) => n + c.errors, 0));
  cp!.chunks.forEach((c, i) => expect(c.index).toBe(i));
  for (const chunk of cp!.chunks) {
    for (const file of [chunk.output, chunk.errorsPiece]) {
      if (!file) continue;
      const info = await planned.store.tryHead(file.uri);
      expectIn(info?.etag, file.uri).toBe(file.etag);
    }
  }
}

/** The staging folder holds exactly the marker's files: no part left over from an interrupted attempt. */
function expectNoStrayParts(planned: PlannedRun, marker: ShardMarker): void {
  // Workers write to the run's staging folder; Finalize moves the files into the partition (docs/adr/0014 §9).
  const partition = fileURLToPath(planned.layout.stagingUri);
  expect(filesUnder(partition)).toEqual(
    marker.outputs.map((o) => path.relative(partition, fileURLToPath(o.uri))),
  );
}

beforeAll(async () => {
  tmp = tempDir('interrupt-');
  inputDir = path.join(tmp.dir, 'in');
  await breastCancerInput(inputDir, RECORDS, 2, 3_000);
  const planned = await planWorkerRun(spec('whole'));
  uninterrupted = await finish(planned, 1);
  expect(uninterrupted.records).toBe(RECORDS);
  expect(uninterrupted.outputs.length).toBeGreaterThan(5);
});
afterAll(() => tmp.cleanup());

describe('a worker killed with SIGKILL mid-shard', () => {
  it('is resumed by the retry after its last checkpoint, and the output is exact', async () => {
    const planned = await planWorkerRun(spec('sigkill'));
    const worker = await startAndWaitForChunks(planned, 2, { holdMs: HOLD_UNTIL_KILLED_MS });
    worker.child.kill('SIGKILL');
    const exit = await worker.exited;
    expect(exit.signal).toBe('SIGKILL');
    await expectConsistentCheckpoint(planned);
    const before = (await readCheckpointFile(planned))!;
    expect(before.records).toBeLessThan(RECORDS);

    const marker = await finish(planned, 2);
    expect(marker.attempt).toBe(2);
    expect(marker.resume?.resumedChunks).toBe(before.chunks.length);
    expect(marker.resume?.resumedRecords).toBe(before.records);
    expect(marker.records).toBe(RECORDS);
    expect(marker.errorsByReason).toEqual(uninterrupted.errorsByReason);
    expect(await expectSameOutput(uninterrupted, marker)).toEqual({
      rows: uninterrupted.predictions,
      differences: 0,
    });
    expect(errorLines(marker)).toEqual(errorLines(uninterrupted));
    expectNoStrayParts(planned, marker);
  });
});

/**
 * SIGTERM, then the checks every interrupted attempt must pass: stopped within the deadline, exited with 143 (not 0:
 * Batch must not count the attempt as a success), a consistent checkpoint and no marker; then the retry resumes and
 * its output is exactly the uninterrupted run's. `terminate` sends the signal; it returns when it was sent.
 */
async function expectInterruptedThenExactRetry(
  planned: PlannedRun,
  worker: ReturnType<typeof startWorker>,
  terminate: () => void,
  stopLine: RegExp = /SIGTERM: stopping after the batches in flight/,
): Promise<void> {
  terminate();
  const exit = await worker.exited;
  // Stopped in time: by its own orderly path, before the backstop (which exits at STOP_DEADLINE_MS and says so).
  // The order of what the worker reports, not a time measured from here.
  expect(worker.output()).not.toMatch(/stop deadline reached/);
  // An explicit exit status after writing the checkpoint: 128 + SIGTERM, what a shell shows for a death by SIGTERM.
  expectIn(exit, worker.output()).toMatchObject({ code: INTERRUPTED_EXIT_CODE, signal: null });
  expect(INTERRUPTED_EXIT_CODE).toBe(143);
  expect(worker.output()).toMatch(stopLine);
  expect(worker.output()).toMatch(/shard interrupted; a retry resumes after the last checkpoint/);
  await expectConsistentCheckpoint(planned);
  const before = (await readCheckpointFile(planned))!;
  expect(before.records).toBeGreaterThan(0);
  expect(before.records).toBeLessThan(RECORDS);
  expect(await planned.store.tryHead(planned.layout.markerUri(0))).toBeUndefined();

  const marker = await finish(planned, 2);
  expect(marker.resume).toMatchObject({ attempts: 2, resumedRecords: before.records });
  expect(marker.records).toBe(RECORDS);
  expect(await expectSameOutput(uninterrupted, marker)).toEqual({
    rows: uninterrupted.predictions,
    differences: 0,
  });
  expect(errorLines(marker)).toEqual(errorLines(uninterrupted));
  expectNoStrayParts(planned, marker);
}

describe('a worker sent SIGTERM mid-shard', () => {
  it('stops within the deadline with a consistent checkpoint, exits 143, and the retry is exact', async () => {
    const planned = await planWorkerRun(spec('sigterm'));
    const worker = await startAndWaitForChunks(planned, 2, { holdMs: HOLD_UNTIL_STOPPED_MS });
    await expectInterruptedThenExactRetry(planned, worker, () => worker.child.kill('SIGTERM'));
  });
});

describe('a worker whose local run is gone (its IPC channel closed, as when the CLI is SIGKILLed)', () => {
  it('stops as on SIGTERM: a consistent checkpoint, exit 143, and the retry is exact', async () => {
    const planned = await planWorkerRun(spec('disconnect'));
    const worker = await startAndWaitForChunks(planned, 2, { holdMs: HOLD_UNTIL_STOPPED_MS, ipc: true });
    await expectInterruptedThenExactRetry(
      planned,
      worker,
      () => worker.child.disconnect(),
      /the local run is gone \(IPC channel closed\): stopping after the batches in flight/,
    );
  });
});

/**
 * In a container node is PID 1 (the image's ENTRYPOINT runs node directly), and Linux ignores a signal PID 1 sends
 * itself when its action is the default: a worker that re-raised SIGTERM to end "by the signal" exited 0 there.
 * `unshare --pid --fork` gives the worker a PID namespace of its own, where it is PID 1, as in the container. Root may
 * make one directly; an unprivileged user makes it inside a user namespace that maps it to root (`--map-root-user`).
 */
const PID_NAMESPACE_COMMANDS = [
  ['unshare', '--pid', '--fork'],
  ['unshare', '--user', '--map-root-user', '--pid', '--fork'],
];
const pidNamespace = ((): { command: string[] } | { command: undefined; reason: string } => {
  const reasons: string[] = [];
  for (const command of PID_NAMESPACE_COMMANDS) {
    const probe = spawnSync(command[0]!, [...command.slice(1), 'sh', '-c', 'echo $$'], { encoding: 'utf8' });
    if (probe.status === 0 && probe.stdout.trim() === '1') return { command };
    reasons.push(
      `${command.join(' ')}: ${probe.error?.message ?? `status ${probe.status}, ${probe.stderr.trim()}`}`,
    );
  }
  return { command: undefined, reason: `no PID namespace can be made here (${reasons.join('; ')})` };
})();
/**
 * Skipped only on a developer's machine that allows no namespace at all; under CI=true it runs and fails with the
 * reason, so CI never passes without it (and .ci/run rejects any skip not listed in test/skips.json).
 */
const itInPidNamespace = pidNamespace.command || process.env.CI ? it : it.skip;

/** The pid (in this namespace) of the one child of `parent`. */
function childOf(parent: number): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may contain spaces, so read after its closing parenthesis.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent) return Number(entry);
    } catch {
      // The process ended while being read.
    }
  }
  return undefined;
}

describe('a worker that is PID 1 (as in a container) sent SIGTERM mid-shard', () => {
  itInPidNamespace(
    'exits non-zero (143), not 0, with a consistent checkpoint, and the retry is exact',
    async () => {
      if (!pidNamespace.command) throw new Error(pidNamespace.reason);
      const planned = await planWorkerRun(spec('sigterm-pid1'));
      const worker = await startAndWaitForChunks(planned, 2, {
        holdMs: HOLD_UNTIL_STOPPED_MS,
        wrapper: pidNamespace.command,
      });
      const node = childOf(worker.child.pid!);
      expectIn(node, 'the worker process under unshare').toBeDefined();
      // The worker is PID 1 of its namespace: NSpid lists its pid here, then in its own namespace.
      const nspid = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${node}/status`, 'utf8'))?.[1]?.split(/\s+/);
      expect(nspid).toEqual([String(node), '1']);
      // Sent from outside its namespace to its init, as the container runtime does; unshare passes the exit status on.
      await expectInterruptedThenExactRetry(planned, worker, () => process.kill(node!, 'SIGTERM'));
    },
  );
});
