import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { runListSchema } from '../../src/operate/backend.js';
import { LocalBackend, UnknownRunError } from '../../src/operate/local-backend.js';
import { effectiveStatus, type LocalRunRecord } from '../../src/operate/local-records.js';
import { LocalObjectStore } from '../../src/storage/local.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'operate-unit-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function record(runId: string, change: Partial<LocalRunRecord> = {}): LocalRunRecord {
  return {
    version: 1,
    runId,
    pipeline: 'job',
    specFile: '/x/job.yaml',
    outputUri: `file://${dir}/out/`,
    status: 'RUNNING',
    startedAt: '2026-12-01T00:00:00.000Z',
    logDir: path.join(dir, 'logs', runId),
    pid: 4242,
    ...change,
  };
}

describe('local runs', () => {
  it('a RUNNING record whose process is gone is ABORTED; a live one stays RUNNING', () => {
    expect(effectiveStatus(record('a'), () => false)).toBe('ABORTED');
    expect(effectiveStatus(record('a'), () => true)).toBe('RUNNING');
    expect(effectiveStatus(record('a', { status: 'FAILED' }), () => false)).toBe('FAILED');
  });

  it('cancel marks the record, then sends SIGTERM to the run process; the run writes CANCELLED itself', async () => {
    const signals: [number, string][] = [];
    const backend = new LocalBackend({
      stateDir: dir,
      store: new LocalObjectStore(),
      alive: () => true,
      kill: (pid, signal) => {
        // The mark must be there before the signal, or the run would record ABORTED.
        expect(backend.records.read('a')?.cancelRequestedAt).toBeDefined();
        signals.push([pid, signal]);
      },
    });
    backend.records.write(record('a'));
    expect(await backend.cancel('a')).toEqual({ runId: 'a', status: 'CANCELLED', cancelled: true });
    expect(signals).toEqual([[4242, 'SIGTERM']]);
    expect(backend.records.read('a')?.status).toBe('RUNNING');
  });

  it('cancel of a run whose process is gone records CANCELLED itself; of an ended run changes nothing', async () => {
    const backend = new LocalBackend({
      stateDir: dir,
      store: new LocalObjectStore(),
      alive: () => false,
      kill: () => {
        const err = new Error('no such process') as NodeJS.ErrnoException;
        err.code = 'ESRCH';
        throw err;
      },
      now: () => new Date('2026-12-02T00:00:00.000Z'),
    });
    backend.records.write(record('a'));
    backend.records.write(record('b', { status: 'SUCCEEDED' }));
    await backend.cancel('a');
    expect(backend.records.read('a')).toMatchObject({
      status: 'CANCELLED',
      finishedAt: '2026-12-02T00:00:00.000Z',
    });
    expect(await backend.cancel('b')).toEqual({ runId: 'b', status: 'SUCCEEDED', cancelled: false });
  });

  it('runs: newest first, filtered by pipeline, status, since and limit; a Plan failure shows its reason', async () => {
    const backend = new LocalBackend({ stateDir: dir, store: new LocalObjectStore(), alive: () => false });
    backend.records.write(record('old', { status: 'SUCCEEDED', startedAt: '2026-11-01T00:00:00.000Z' }));
    backend.records.write(
      record('plan', {
        status: 'FAILED',
        startedAt: '2026-12-03T00:00:00.000Z',
        error: 'PlanFailed',
        cause: 'Invalid job spec:\n  - input.uri: does not exist',
      }),
    );
    backend.records.write(record('other', { pipeline: 'other', startedAt: '2026-12-02T00:00:00.000Z' }));
    const all = runListSchema.parse(await backend.runs({}));
    expect(all.runs.map((r) => r.runId)).toEqual(['plan', 'other', 'old']);
    expect(all.runs[0]!.failure).toBe('PlanFailed: Invalid job spec: - input.uri: does not exist');
    expect(all.runs[1]!.status).toBe('ABORTED');
    expect((await backend.runs({ pipeline: 'job' })).runs.map((r) => r.runId)).toEqual(['plan', 'old']);
    expect((await backend.runs({ status: 'succeeded' })).runs.map((r) => r.runId)).toEqual(['old']);
    expect((await backend.runs({ since: new Date('2026-12-01') })).runs).toHaveLength(2);
    expect((await backend.runs({ limit: 1 })).runs.map((r) => r.runId)).toEqual(['plan']);
  });

  it("runs: a failed run shows its first error's reason, and --json carries it as error {code, message, shard, log}", async () => {
    const backend = new LocalBackend({ stateDir: dir, store: new LocalObjectStore(), alive: () => false });
    const firstError = {
      code: 'PreflightError',
      message: 'model.inputs[0].tensor "featurez" is not an input of the model; did you mean "features"?',
      shard: 0,
      log: '/state/logs/r/infer-0.log',
    };
    backend.records.write(
      record('failed', {
        status: 'FAILED',
        error: 'ShardsFailed',
        cause:
          '1 of 1 shards failed, more than validation.maxFailedShards (0): shard 0: no completion marker',
        firstError,
      }),
    );
    const list = runListSchema.parse(await backend.runs({}));
    expect(list.runs[0]).toMatchObject({ error: firstError });
    expect(list.runs[0]!.failure).toBe(
      'ShardsFailed: PreflightError in shard 0: model.inputs[0].tensor "featurez" is not an input of the model; ' +
        'did you mean "features"? (log /state/logs/r/infer-0.log)',
    );
  });

  it('an unknown run id is an UnknownRunError naming the state directory and the command that lists runs', async () => {
    const backend = new LocalBackend({ stateDir: dir, store: new LocalObjectStore() });
    await expect(backend.status('nope')).rejects.toThrow(UnknownRunError);
    await expect(backend.status('nope')).rejects.toThrow(
      /No local run "nope" in .*batch-infer runs --state-dir/,
    );
  });
});
