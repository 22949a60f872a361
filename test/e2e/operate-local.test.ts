/**
 * The local backend end to end, as a user runs it: the package bin in child processes, real local runs of the
 * shipped example. start (detached) -> watch -> status -> runs; cancel mid-run; logs; Ctrl-C -> ABORTED (130) ->
 * run --resume. Every --json output is parsed with the schema the backends share.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { z } from 'zod';
import { costEstimateSchema } from '../../src/cost/estimate.js';
import { cancelResultSchema, logsSchema, runListSchema, runStatusSchema } from '../../src/operate/backend.js';
import { expectIn } from '../support/expect-in.js';
import { taskFaultOptions } from '../support/worker-tasks.js';
import { WORKER_ENV } from '../../src/runs/tasks.js';

const repo = path.resolve(fileURLToPath(import.meta.url), '../../..');
const bin = path.join(repo, 'bin/batch-infer.js');
let dir: string;
let state: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'operate-'));
  state = path.join(dir, 'state');
  cpSync(path.join(repo, 'examples/breast-cancer'), path.join(dir, 'example'), {
    recursive: true,
    filter: (src) => !/(generated|[\\/]out)$/.test(src),
  });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(...args: string[]) {
  return cliWithEnv({}, ...args);
}

function cliWithEnv(env: Record<string, string>, ...args: string[]) {
  return spawnSync(process.execPath, [bin, ...args, '--state-dir', state], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 300_000,
    env: { ...process.env, ...env },
  });
}

/**
 * NODE_OPTIONS that hold every worker task (the ones with Batch's environment) before it starts, until its process
 * is signalled: a run started with it cannot finish before the test cancels it, however slow or fast the machine.
 */
function holdWorkers(): Record<string, string> {
  return {
    NODE_OPTIONS: taskFaultOptions(path.join(dir, 'hold-workers.mjs'), {
      when: `env.${WORKER_ENV.arrayIndex} !== undefined`,
      action: 'hold',
    }),
  };
}

function json<T>(schema: z.ZodType<T>, result: ReturnType<typeof cli>): T {
  expectIn(result.status, result.stderr).toBe(0);
  const lines = result.stdout.trim().split('\n');
  expectIn(lines, result.stdout).toHaveLength(1);
  return schema.parse(JSON.parse(lines[0]!));
}

/**
 * Polls the run's status until `done` holds (a count of polls, not a clock, bounds it). A run started in another
 * process may not have written its record yet: "no local run" is polled again, like any state not reached.
 */
async function pollStatus(runId: string, done: (s: z.infer<typeof runStatusSchema>) => boolean) {
  for (let i = 0; i < 200; i++) {
    const result = cli('status', runId, '--json');
    const notYet = result.status !== 0 && /^No local run /.test(result.stderr);
    if (!notYet) {
      const s = json(runStatusSchema, result);
      if (done(s)) return s;
    }
    await sleep(200);
  }
  throw new Error(`run ${runId} never reached the expected state`);
}

/** Whole local runs in child processes: slow on a shared 2-core machine; the bound is generous, not asserted. */
const RUN_TIMEOUT_MS = 900_000;

const runDir = (runId: string) => path.join(dir, 'example/out/_runs', runId);

describe('local backend', () => {
  it(
    'start returns at once; watch follows the run to SUCCEEDED and exits 0; status and runs agree',
    () => {
      const started = json(
        z.strictObject({
          runId: z.string(),
          status: z.literal('STARTING'),
          pid: z.number(),
          logFile: z.string(),
          // The price before the start (src/cost): this job has no history yet, so no seconds per record.
          estimate: costEstimateSchema.optional(),
        }),
        cli('start', 'example/job.yaml', '--run-id', 'ok-1', '--workers', '1', '--json'),
      );
      expect(started.runId).toBe('ok-1');
      const watched = cli('watch', 'ok-1', '--json', '--interval', '0.5');
      const final = json(runStatusSchema, watched);
      expect(final).toMatchObject({ runId: 'ok-1', status: 'SUCCEEDED', pipeline: 'breast_cancer' });
      expect(final.progress).toMatchObject({
        planned: true,
        shards: 3,
        succeeded: 3,
        failed: 0,
        recordsDone: 569,
      });
      // Not a TTY: progress lines go to stderr, one object to stdout. The run can be over before watch's first poll
      // (three small shards in one worker process), so there may be no line; the line itself is tested against a
      // scripted backend in test/cli/watch.test.ts. Whatever went to stderr is progress lines of this run.
      for (const line of watched.stderr.split('\n').filter(Boolean)) {
        expect(line).toMatch(/^ok-1 (STARTING|RUNNING) round 0 · shards \d+\/\d+ · /);
      }

      const status = json(runStatusSchema, cli('status', 'ok-1', '--json'));
      expect(status.progress.predictions).toBe(569);
      const text = cli('status', 'ok-1');
      expect(text.stdout).toMatch(/shards\s+3\/3 succeeded/);
    },
    RUN_TIMEOUT_MS,
  );

  it(
    'cancel mid-run stops it, records CANCELLED, and publishes nothing',
    async () => {
      json(
        z.object({ runId: z.string() }),
        cliWithEnv(
          holdWorkers(),
          'start',
          'example/job.yaml',
          '--run-id',
          'cancel-1',
          '--workers',
          '1',
          '--json',
        ),
      );
      // Planned, and its workers held: the run is mid-way and cannot reach Finalize on its own.
      await pollStatus('cancel-1', (s) => s.progress.planned);
      const cancelled = json(cancelResultSchema, cli('cancel', 'cancel-1', '--json'));
      expect(cancelled).toEqual({ runId: 'cancel-1', status: 'CANCELLED', cancelled: true });
      const after = await pollStatus('cancel-1', (s) => s.finishedAt !== undefined);
      expect(after).toMatchObject({ status: 'CANCELLED', error: 'Cancelled' });
      expect(existsSync(path.join(runDir('cancel-1'), 'manifest.json'))).toBe(false);
      const published = cli('query', `select count(*) as n from _runs where run_id = 'cancel-1'`);
      expectIn(published.status, published.stderr).toBe(0);
      expect(published.stdout).toMatch(/^\s*0\s*$/m);
      // Cancelling again says it had ended.
      expect(json(cancelResultSchema, cli('cancel', 'cancel-1', '--json'))).toMatchObject({
        cancelled: false,
      });
    },
    RUN_TIMEOUT_MS,
  );

  it(
    'Ctrl-C ends a foreground run ABORTED with exit 130, pointing at files that exist; run --resume finishes it',
    async () => {
      const child = spawn(
        process.execPath,
        [bin, 'run', 'example/job.yaml', '--run-id', 'abort-1', '--workers', '1', '--state-dir', state],
        // Workers held (see holdWorkers): the run is still going when Ctrl-C comes, however fast the machine.
        { cwd: dir, env: { ...process.env, NO_COLOR: '1', ...holdWorkers() } },
      );
      let stdout = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      await pollStatus('abort-1', (s) => s.progress.planned);
      child.kill('SIGINT');
      expectIn(await exited, stdout).toBe(130);
      expect(stdout).toMatch(/Run abort-1 ABORTED/);
      const files = /run files\s+(\S+)/.exec(stdout)?.[1];
      expectIn(files, stdout).toBeDefined();
      expect(existsSync(files!)).toBe(true);
      expect(stdout).toMatch(/batch-infer run --resume abort-1/);
      expect(json(runStatusSchema, cli('status', 'abort-1', '--json')).status).toBe('ABORTED');

      const resumed = json(
        z.object({ runId: z.literal('abort-1'), status: z.literal('SUCCEEDED'), records: z.number() }),
        cli('run', '--resume', 'abort-1', '--json'),
      );
      expect(resumed.records).toBe(569);
    },
    RUN_TIMEOUT_MS,
  );

  it(
    'runs lists every run newest first, Plan failures and cancelled runs included, and filters',
    () => {
      const failed = cli(
        'run',
        'example/job.yaml',
        '--run-id',
        'planfail-1',
        '--input',
        path.join(dir, 'missing/'),
        '--json',
      );
      expect(failed.status).toBe(1);
      const all = json(runListSchema, cli('runs', '--json'));
      expect(all.runs.map((r) => r.runId)).toEqual(['planfail-1', 'abort-1', 'cancel-1', 'ok-1']);
      const planFailure = all.runs[0]!;
      expect(planFailure).toMatchObject({ status: 'FAILED' });
      expect(planFailure.failure).toMatch(/^PlanFailed: /);
      expect(all.runs.find((r) => r.runId === 'ok-1')).toMatchObject({
        records: 569,
        modelVersion: 'breast-cancer-mlp:1',
      });

      const cancelled = json(runListSchema, cli('runs', 'breast_cancer', '--status', 'CANCELLED', '--json'));
      expect(cancelled.runs.map((r) => r.runId)).toEqual(['cancel-1']);
      expect(json(runListSchema, cli('runs', '--limit', '2', '--json')).runs).toHaveLength(2);
      expect(json(runListSchema, cli('runs', '--since', '2999-01-01', '--json')).runs).toHaveLength(0);
      expect(json(runListSchema, cli('runs', 'other_job', '--json')).runs).toHaveLength(0);
      const bad = cli('runs', '--since', 'yesterday-ish');
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(/--since must be a date/);
    },
    RUN_TIMEOUT_MS,
  );

  it(
    "logs prints the workers' lines by shard; --shard picks one; an unknown run is one line, exit 2",
    () => {
      const all = json(logsSchema, cli('logs', 'ok-1', '--json'));
      const shards = new Set(all.lines.flatMap((l) => (l.shard === undefined ? [] : [l.shard])));
      expect([...shards].sort()).toEqual([0, 1, 2]);
      const one = json(logsSchema, cli('logs', 'ok-1', '--shard', '1', '--json'));
      expect(one.lines.length).toBeGreaterThan(0);
      expect(one.lines.every((l) => l.shard === 1)).toBe(true);
      expect(one.lines.some((l) => /shard complete/.test(l.message))).toBe(true);
      const text = cli('logs', 'ok-1', '--shard', '1');
      expect(text.stdout).toMatch(/^\[shard 1 attempt 1\] /m);
      const unknown = cli('status', 'no-such-run');
      expect(unknown.status).toBe(2);
      expect(unknown.stderr.trim().split('\n')).toHaveLength(1);
      expect(unknown.stderr).toMatch(/No local run "no-such-run".*batch-infer runs/);
      expect(readdirSync(path.join(state, 'runs'))).toContain('ok-1.json');
    },
    RUN_TIMEOUT_MS,
  );
});
