/** validation.stopEarly: the rule (certain / confident), and Reconcile stopping the rounds with a stop record. */
import { afterEach, describe, expect, it } from '@jest/globals';
import { EARLY_STOP_MIN_RECORDS, earlyStopDecision, wilsonLowerBound } from '../../src/results/early-stop.js';
import { reconcileRun } from '../../src/results/reconcile.js';
import { readRunStop } from '../../src/runs/stop.js';
import { makeMarker, makeRun, writeMarker, type RunFixture } from './run-fixture.js';

let fx: RunFixture | undefined;
afterEach(async () => {
  await fx?.cleanup();
  fx = undefined;
});

describe('wilsonLowerBound', () => {
  it('is 0 without errors, below the observed rate, and closer to it with more records', () => {
    expect(wilsonLowerBound(0, 5000)).toBeCloseTo(0, 12);
    const small = wilsonLowerBound(10, 100);
    const large = wilsonLowerBound(1000, 10_000);
    expect(small).toBeLessThan(0.1);
    expect(large).toBeLessThan(0.1);
    expect(large).toBeGreaterThan(small);
    // z = 3.09, 50 of 1000: (0.05 + z²/2000 - z·sqrt(0.05·0.95/1000 + z²/4e6)) / (1 + z²/1000) = 0.03264
    expect(wilsonLowerBound(50, 1000)).toBeCloseTo(0.03264, 4);
  });
});

describe('earlyStopDecision', () => {
  const max = 0.01;

  it('stops for certain when the errors seen already exceed maxErrorRate of all planned records (exact count)', () => {
    const decision = earlyStopDecision(
      { records: 100, errors: 20, plannedRecords: 1000, plannedExact: true },
      max,
    );
    expect(decision).toMatchObject({ stop: true, rule: 'certain' });
    if (decision.stop) expect(decision.message).toMatch(/whatever the remaining shards do/);
    // 10 errors are exactly maxErrorRate of 1000: the rest could still all succeed.
    expect(
      earlyStopDecision({ records: 100, errors: 10, plannedRecords: 1000, plannedExact: true }, max),
    ).toEqual({ stop: false });
  });

  it('never stops on an estimate below the minimum records, however bad', () => {
    expect(
      earlyStopDecision(
        { records: EARLY_STOP_MIN_RECORDS - 1, errors: 500, plannedRecords: 10 ** 7, plannedExact: false },
        max,
      ),
    ).toEqual({ stop: false });
  });

  it('stops when the 99.9% lower bound is above maxErrorRate, not when only the observed rate is', () => {
    const planned = { plannedRecords: 10 ** 6, plannedExact: false };
    // 5% observed over 2000 records: the bound is ~3.7%, well above 1%.
    expect(earlyStopDecision({ records: 2000, errors: 100, ...planned }, max)).toMatchObject({
      stop: true,
      rule: 'confident',
    });
    // 1.25% observed over 2000 records: above the bar, but not surely (the bound is ~0.7%).
    expect(earlyStopDecision({ records: 2000, errors: 25, ...planned }, max)).toEqual({ stop: false });
  });
});

describe('Reconcile with validation.stopEarly', () => {
  async function roundZeroWithErrors(stopEarly: boolean): Promise<RunFixture> {
    const f = await makeRun({
      shardCount: 3,
      recordsPerShard: 1500,
      maxRounds: 2,
      spec: { validation: { maxErrorRate: 0.01, ...(stopEarly && { stopEarly: true }) } },
    });
    for (const id of [0, 1]) await writeMarker(f, makeMarker(f.layout, id, { records: 1500, errors: 150 }));
    return f;
  }

  it('submits no further round, records why and leaves a stop record for Finalize', async () => {
    fx = await roundZeroWithErrors(true);
    const state = await reconcileRun(fx.state, { store: fx.store });
    expect(state).toMatchObject({ next: 'finalize', round: 0 });
    const stop = await readRunStop(fx.store, fx.state.runUri);
    expect(stop).toMatchObject({ code: 'ErrorRateAboveMax', round: 0 });
    expect(stop?.message).toMatch(/300 error rows in the 3000 records .* of the run's 4500 records/);
  });

  it('retries the missing shard as before without stopEarly', async () => {
    fx = await roundZeroWithErrors(false);
    const state = await reconcileRun(fx.state, { store: fx.store });
    expect(state).toMatchObject({ next: 'infer', round: 1, pending: 1 });
    expect(await readRunStop(fx.store, fx.state.runUri)).toBeUndefined();
  });
});
