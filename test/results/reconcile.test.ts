import { afterEach, describe, expect, it } from '@jest/globals';
import { reconcileRecordUri } from '../../src/results/run-files.js';
import {
  reconcileRecordSchema,
  reconcileRun,
  summarizeInferError,
  type ReconcileRecord,
} from '../../src/results/reconcile.js';
import { runStateSchema } from '../../src/runs/tasks.js';
import { roundSchema } from '../../src/runs/types.js';
import { RunStateError } from '../../src/spec/errors.js';
import { getJson, putJson } from '../../src/storage/object-store.js';
import { makeMarker, makeRun, writeMarker, type RunFixture } from './run-fixture.js';

const NOW = () => new Date('2024-05-06T11:00:00.000Z');

/** What a Batch `.sync` task failure looks like in Step Functions: Cause is the job description as JSON text. */
const BATCH_FAILURE = {
  Error: 'States.TaskFailed',
  Cause: JSON.stringify({
    ArrayProperties: { Size: 6, StatusSummary: { FAILED: 2, SUCCEEDED: 4 } },
    Attempts: [
      {
        Container: {
          ExitCode: 137,
          LogStreamName: 'batch-infer/default/0123',
          Reason: 'OutOfMemoryError: Container killed due to memory usage',
        },
        StatusReason: 'Essential container in task exited',
      },
    ],
    JobId: '4c1f-job',
    JobName: 'infer-run-0001-r0',
    Status: 'FAILED',
    StatusReason: 'Array Child Job failed',
  }),
};

let fx: RunFixture | undefined;
afterEach(async () => {
  await fx?.cleanup();
  fx = undefined;
});

async function readRecord(f: RunFixture, round: number): Promise<ReconcileRecord> {
  return reconcileRecordSchema.parse(await getJson(f.store, reconcileRecordUri(f.layout, round)));
}

describe('reconcileRun', () => {
  it('goes to finalize when every shard has a valid marker', async () => {
    fx = await makeRun({ shardCount: 3 });
    for (let id = 0; id < 3; id++) await writeMarker(fx, makeMarker(fx.layout, id));

    const next = await reconcileRun(fx.state, { store: fx.store, now: NOW });

    expect(next).toEqual({ ...fx.state, pending: 0, next: 'finalize' });
    expect(await fx.store.tryHead(fx.layout.roundUri(1))).toBeUndefined();
    const record = await readRecord(fx, 0);
    expect(record).toMatchObject({
      round: 0,
      attempted: 3,
      completed: 3,
      missing: [],
      invalid: [],
      next: 'finalize',
    });
    expect(record.reconciledAt).toBe('2024-05-06T11:00:00.000Z');
  });

  it('schedules the next round for missing and invalid markers, ascending', async () => {
    fx = await makeRun({ shardCount: 8 });
    await writeMarker(fx, makeMarker(fx.layout, 0));
    await writeMarker(fx, makeMarker(fx.layout, 2));
    await writeMarker(fx, '{"version": 1, "runId": "run-0001", "shardId"', 3); // truncated JSON
    await writeMarker(fx, { ...makeMarker(fx.layout, 5), shardId: 4 }, 5); // names another shard
    await writeMarker(fx, { ...makeMarker(fx.layout, 6), runId: 'other-run' }); // another run's marker
    await writeMarker(fx, { ...makeMarker(fx.layout, 7), records: -1 }); // fails the schema
    // Keys that are not a shard of this run: ignored, never counted as shard 1.
    await fx.store.put(`${fx.layout.markersPrefixUri}01.json`, JSON.stringify(makeMarker(fx.layout, 1)));
    await fx.store.put(`${fx.layout.markersPrefixUri}42.json`, '{}');
    await fx.store.put(`${fx.layout.markersPrefixUri}notes.txt`, 'hello');

    const next = await reconcileRun(fx.state, { store: fx.store, now: NOW });

    expect(next).toEqual({ ...fx.state, round: 1, pending: 6, next: 'infer' });
    const round = roundSchema.parse(await getJson(fx.store, fx.layout.roundUri(1)));
    expect(round).toEqual({ round: 1, shardIds: [1, 3, 4, 5, 6, 7] });

    const record = await readRecord(fx, 0);
    expect(record.missing).toEqual([1, 3, 4, 5, 6, 7]);
    expect(record.completed).toBe(2);
    expect(record.next).toBe('infer');
    expect(record.nextRound).toBe(1);
    expect(record.invalid.map((i) => i.shardId)).toEqual([3, 5, 6, 7]);
    const problems = Object.fromEntries(record.invalid.map((i) => [i.shardId, i.problem]));
    expect(problems[3]).toMatch(/not valid JSON/);
    expect(problems[5]).toMatch(/names shard 4/);
    expect(problems[6]).toMatch(/belongs to run "other-run"/);
    expect(problems[7]).toMatch(/marker schema: records/);
    expect(record.unexpectedCount).toBe(3);
    expect(record.unexpected.every((u) => /(01\.json|42\.json|notes\.txt)$/.test(u))).toBe(true);
  });

  it('checks the whole run in later rounds, and writes round r+1 from round r', async () => {
    fx = await makeRun({ shardCount: 5, maxRounds: 3 });
    for (const id of [0, 1, 3]) await writeMarker(fx, makeMarker(fx.layout, id));
    await putJson(fx.store, fx.layout.roundUri(1), { round: 1, shardIds: [2, 4] });

    const next = await reconcileRun({ ...fx.state, round: 1, pending: 2 }, { store: fx.store });

    expect(next).toMatchObject({ round: 2, pending: 2, next: 'infer' });
    expect(roundSchema.parse(await getJson(fx.store, fx.layout.roundUri(2)))).toEqual({
      round: 2,
      shardIds: [2, 4],
    });
    expect((await readRecord(fx, 1)).attempted).toBe(2);
  });

  it('goes to finalize with the missing count once the rounds are used up', async () => {
    fx = await makeRun({ shardCount: 4, maxRounds: 2 });
    await writeMarker(fx, makeMarker(fx.layout, 1));

    const next = await reconcileRun({ ...fx.state, round: 2, pending: 3 }, { store: fx.store });

    expect(next).toEqual({ ...fx.state, round: 2, pending: 3, next: 'finalize' });
    expect(await fx.store.tryHead(fx.layout.roundUri(3))).toBeUndefined();
    const record = await readRecord(fx, 2);
    expect(record).toMatchObject({ missing: [0, 2, 3], next: 'finalize' });
    expect(record.nextRound).toBeUndefined();
  });

  it('does not retry when maxRounds is 0', async () => {
    fx = await makeRun({ shardCount: 2, maxRounds: 0 });
    const next = await reconcileRun(fx.state, { store: fx.store });
    expect(next).toMatchObject({ round: 0, pending: 2, next: 'finalize' });
  });

  it('records a summary of the Batch error and strips inferError from the state', async () => {
    fx = await makeRun({ shardCount: 2 });
    await writeMarker(fx, makeMarker(fx.layout, 0));

    const next = await reconcileRun({ ...fx.state, inferError: BATCH_FAILURE }, { store: fx.store });

    expect(Object.keys(next)).not.toContain('inferError');
    expect(runStateSchema.strict().safeParse(next).success).toBe(true);
    expect((await readRecord(fx, 0)).inferError).toEqual({
      error: 'States.TaskFailed',
      status: 'FAILED',
      statusReason: 'Array Child Job failed',
      jobId: '4c1f-job',
      jobName: 'infer-run-0001-r0',
      arrayStatusSummary: { FAILED: 2, SUCCEEDED: 4 },
      exitCode: 137,
      containerReason: 'OutOfMemoryError: Container killed due to memory usage',
      logStreamName: 'batch-infer/default/0123',
    });
  });

  it('refuses a state that does not match its plan', async () => {
    fx = await makeRun({ shardCount: 2 });
    await expect(reconcileRun({ ...fx.state, shardCount: 3 }, { store: fx.store })).rejects.toThrow(
      RunStateError,
    );
    await expect(reconcileRun({ ...fx.state, runId: 'nope' }, { store: fx.store })).rejects.toThrow(
      RunStateError,
    );
  });
});

describe('summarizeInferError', () => {
  it('keeps an unparseable cause as text, truncated', () => {
    const summary = summarizeInferError({ Error: 'States.Timeout', Cause: `not json ${'x'.repeat(5000)}` });
    expect(summary.error).toBe('States.Timeout');
    expect(summary.cause?.startsWith('not json x')).toBe(true);
    expect(summary.cause?.length).toBeLessThan(2100);
  });

  it('reads camelCase job descriptions and odd values', () => {
    expect(
      summarizeInferError({
        error: 'X',
        cause: { status: 'FAILED', statusReason: 'Job attempt duration exceeded' },
      }),
    ).toEqual({ error: 'X', status: 'FAILED', statusReason: 'Job attempt duration exceeded' });
    expect(summarizeInferError('boom')).toEqual({ error: 'boom' });
    expect(summarizeInferError(42)).toEqual({ error: '42' });
  });
});
