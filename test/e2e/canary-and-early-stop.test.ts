/**
 * Issue 10 item 5, end to end on the local mode (the synthesized state machine, real worker processes): `run.canary`
 * runs shard 0's first records before round 0 and stops a run whose canary fails; `validation.stopEarly` stops the
 * retry rounds once the error rate is surely above the bar. Both end FAILED with the reason as the first error.
 */
import '../../src/runtime/polyfills.js';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { makeDemoInput } from '../../examples/breast-cancer/demo.js';
import type { LocalRunOutcome } from '../../src/local/run-local.js';
import { WORKER_ENV } from '../../src/runs/tasks.js';
import { expectIn } from '../support/expect-in.js';
import { writeExampleJob, runExampleJob, manifestOf } from '../support/local-e2e.js';
import { taskFaultOptions } from '../support/worker-tasks.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'e2e-explain-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The shipped job over `input`, writing to `<dir>/<name>-out`, with overrides. */
const writeJob = (name: string, input: string, overrides: Record<string, unknown>): string =>
  writeExampleJob(dir, name, { input, out: path.join(dir, `${name}-out`) }, overrides);

const run = (specFile: string): Promise<LocalRunOutcome> =>
  runExampleJob(specFile, dir, path.join(dir, 'catalog.duckdb'));

describe('run.canary', () => {
  it('runs the first records of shard 0 as a job of one, then the run as usual', async () => {
    const input = path.join(dir, 'clean');
    await makeDemoInput({ dir: input, records: 600, files: 2, badRecordEvery: 0 });
    const outcome = await run(
      writeJob('canary_ok', input, { run: { shards: { targetRecords: 300 }, canary: { records: 25 } } }),
    );

    expectIn(outcome, 'canary run').toMatchObject({ status: 'SUCCEEDED' });
    // The canary first (a single job), then round 0 over every shard.
    expect(outcome.rounds.map((r) => [r.state, r.shards])).toEqual([
      ['Infer canary', 1],
      ['Infer shards', 2],
    ]);
    const runDir = path.join(dir, 'canary_ok-out', '_runs', outcome.runId);
    const canaryMarker = JSON.parse(
      readFileSync(path.join(runDir, 'canary', '_runs', outcome.runId, 'shards', '0.json'), 'utf8'),
    ) as { records: number; predictions: number };
    expect(canaryMarker).toMatchObject({ records: 25, predictions: 25 });
    // The canary's rows stay in its own folder: the run's counts are the input's, once.
    expect(outcome.result).toMatchObject({ records: 600, predictions: 600 });
  }, 180_000);

  it("stops a run whose canary fails, before any round, with the canary's reason", async () => {
    const input = path.join(dir, 'poisoned');
    // Every second record is broken: the canary's error rate is far above maxErrorRate (0.01).
    await makeDemoInput({ dir: input, records: 600, files: 2, badRecordEvery: 2 });
    const outcome = await run(
      writeJob('canary_bad', input, { run: { shards: { targetRecords: 300 }, canary: { records: 20 } } }),
    );

    expect(outcome.status).toBe('FAILED');
    expect(outcome.rounds.map((r) => r.state)).toEqual(['Infer canary']);
    expect(outcome.result?.error).toMatchObject({ code: 'CanaryFailed', shard: 0 });
    expect(outcome.result?.error?.message).toMatch(
      /^the canary \(the first 20 records of shard 0\) failed: 10 of its 20 records are error rows, above validation\.maxErrorRate 0\.01; first: record D\d+ (MISSING|INVALID)_VALUE/,
    );
    const manifest = manifestOf(outcome);
    expect(manifest.error).toEqual(outcome.result?.error);
    expect(manifest.message.split('\n')[0]).toMatch(/^first error: CanaryFailed in shard 0: the canary/);
    // Round 0 never ran: no prediction was written for the run.
    const partition = path.join(dir, 'canary_bad-out', `run_date=${manifest.runDate}`);
    expect(existsSync(partition) ? readdirSync(partition) : []).toEqual([]);
  }, 180_000);
});

describe('validation.stopEarly', () => {
  it('submits no retry round once the error rate is surely above maxErrorRate, and fails with that reason', async () => {
    const input = path.join(dir, 'noisy');
    await makeDemoInput({ dir: input, records: 2400, files: 2, badRecordEvery: 2 });
    // Shard 1's worker fails in every round (a lost host: exit 1, retryable), so Reconcile would retry it.
    const saved = process.env.NODE_OPTIONS;
    process.env.NODE_OPTIONS = taskFaultOptions(path.join(dir, 'shard-1-keeps-failing.mjs'), {
      when: `env.${WORKER_ENV.round} !== undefined && (env.${WORKER_ENV.round} !== '0' || env.${WORKER_ENV.arrayIndex} === '1')`,
      action: 'fail',
      message: 'injected: the host of shard 1 is lost',
    });
    let outcome: LocalRunOutcome;
    try {
      outcome = await run(
        writeJob('stop_early', input, {
          run: { shards: { targetRecords: 1200 }, maxRounds: 2 },
          validation: { maxErrorRate: 0.01, stopEarly: true },
        }),
      );
    } finally {
      if (saved === undefined) delete process.env.NODE_OPTIONS;
      else process.env.NODE_OPTIONS = saved;
    }

    expect(outcome.status).toBe('FAILED');
    // Round 0 only: shard 1 was missing and retryable, but the 50% error rate of shard 0 stopped the rounds.
    expect(outcome.rounds.map((r) => r.round)).toEqual([0]);
    expect(outcome.result?.error).toMatchObject({ code: 'ErrorRateAboveMax' });
    expect(outcome.result?.error?.message).toMatch(
      /^validation\.stopEarly: 600 error rows in the 1200 records of the completed shards \(50\.0%\); the error rate is at least 4\d\.\d+% \(99\.9% one-sided Wilson bound\)/,
    );
    const reconcile0 = JSON.parse(
      readFileSync(
        path.join(dir, 'stop_early-out', '_runs', outcome.runId, 'rounds', '0.reconcile.json'),
        'utf8',
      ),
    ) as { next: string; stoppedEarly?: string };
    expect(reconcile0).toMatchObject({
      next: 'finalize',
      stoppedEarly: expect.stringMatching(/^validation\.stopEarly/),
    });
  }, 180_000);
});
