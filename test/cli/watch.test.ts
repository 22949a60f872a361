import { describe, expect, it } from '@jest/globals';
import { watchCommand } from '../../src/cli/commands/status.js';
import type { CommandContext } from '../../src/cli/context.js';
import type { OperateBackend, RunStatusReport } from '../../src/operate/backend.js';
import { runStatusSchema } from '../../src/operate/backend.js';

function report(status: RunStatusReport['status'], succeeded: number): RunStatusReport {
  return {
    backend: 'local',
    runId: 'r1',
    pipeline: 'job',
    status,
    startedAt: '2026-12-01T00:00:00.000Z',
    durationMs: 1000,
    progress: {
      planned: true,
      shards: 4,
      round: 1,
      roundShards: 2,
      succeeded,
      running: 1,
      failed: 1,
      failedShardIds: [3],
      pending: 0,
      recordsPlanned: 400,
      recordsExact: true,
      recordsDone: succeeded * 100,
      predictions: succeeded * 100,
      errors: 2,
      errorsByReason: { INVALID_VALUE: 2 },
      shardFailuresByReason: { 'exit code 1': 1 },
      manifestUri: 'file:///out/_runs/r1/manifest.json',
    },
    recordsPerSecond: 100,
    outputUri: 'file:///out/',
  };
}

/** A backend that replays statuses, one per poll. */
function replay(statuses: RunStatusReport[]): OperateBackend {
  let i = 0;
  return {
    kind: 'local',
    status: async () => statuses[Math.min(i++, statuses.length - 1)]!,
    runs: async () => ({ backend: 'local', runs: [] }),
    cancel: async () => ({ runId: 'r1', status: 'CANCELLED', cancelled: true }),
    logs: async () => ({ lines: [], cursor: '' }),
  };
}

function context(tty: boolean) {
  const out: string[] = [];
  const err: string[] = [];
  const ctx: CommandContext = {
    io: {
      stdout: { write: (t: string) => out.push(t), isTTY: tty },
      stderr: { write: (t: string) => err.push(t), isTTY: tty },
      env: { NO_COLOR: '1' },
      cwd: '/',
    },
    exit: () => undefined,
    interrupted: new AbortController().signal,
  };
  return { ctx, out, err };
}

describe('watch', () => {
  it('without a TTY prints one progress line per poll on stderr and the final status on stdout', async () => {
    const { ctx, out, err } = context(false);
    const code = await watchCommand(
      'r1',
      replay([report('RUNNING', 1), report('RUNNING', 2), report('FAILED', 3)]),
      { interval: '0.001', json: true },
      ctx,
    );
    expect(code).toBe(1);
    expect(err).toEqual([
      'r1 RUNNING round 1 · shards 1/4 · 1 running · 1 failed · records 100/400 · errors 2\n',
      'r1 RUNNING round 1 · shards 2/4 · 1 running · 1 failed · records 200/400 · errors 2\n',
    ]);
    expect(out).toHaveLength(1);
    expect(runStatusSchema.parse(JSON.parse(out[0]!))).toMatchObject({ status: 'FAILED' });
  });

  it('on a TTY redraws the block in place (cursor up and clear) and exits 0 on SUCCEEDED', async () => {
    const { ctx, out, err } = context(true);
    const code = await watchCommand(
      'r1',
      replay([report('RUNNING', 1), report('RUNNING', 2), report('SUCCEEDED', 4)]),
      { interval: '0.001' },
      ctx,
    );
    expect(code).toBe(0);
    const lines = err[0]!.split('\n').length - 1;
    expect(lines).toBe(5); // header, shards, records, errors, shard failures
    expect(err[1]).toBe(`\x1b[${lines}A\x1b[0J`);
    expect(err[2]).toMatch(/shards\s+2\/4 succeeded · 1 running · 0 pending · 1 failed \(3\)/);
    expect(err[2]).toMatch(/errors\s+2 \(INVALID_VALUE 2\)/);
    expect(err[2]).toMatch(/shard failures\s+exit code 1: 1/);
    expect(out.join('')).toMatch(/^Run r1 SUCCEEDED · job/);
  });

  it('stops following at Ctrl-C with exit 130; the run goes on', async () => {
    const { ctx, err } = context(false);
    const interrupt = new AbortController();
    interrupt.abort('SIGINT');
    const code = await watchCommand(
      'r1',
      replay([report('RUNNING', 1)]),
      { interval: '60' },
      { ...ctx, interrupted: interrupt.signal },
    );
    expect(code).toBe(130);
    expect(err.at(-1)).toMatch(/watch interrupted; the run goes on/);
  });
});
