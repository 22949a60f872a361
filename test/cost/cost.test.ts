/**
 * The price table, a run's cost from its markers, the estimate before a run and the spend cap's decision: pure
 * functions over markers and shard records, with hand-computed expectations.
 */
import { describe, expect, it } from '@jest/globals';
import { runCost, shardCost } from '../../src/cost/cost.js';
import { describeEstimate, estimateRunCost, speedOfMarkers } from '../../src/cost/estimate.js';
import { detectInstance, lifecycleOfComputeEnvironment } from '../../src/cost/instance.js';
import {
  DEFAULT_PRICE_TABLE,
  formatMoney,
  hourlyPrice,
  priceTableOf,
  referenceInstanceType,
  SPOT_SHARE_OF_ON_DEMAND,
} from '../../src/cost/prices.js';
import { checkSpendCap, SPEND_CAP_ERROR, spendCapErrorOf } from '../../src/cost/spend-cap.js';
import type { ShardMarker } from '../../src/runs/types.js';
import { parseJobSpec } from '../../src/spec/load.js';
import { expectIn } from '../support/expect-in.js';

type CostMarker = Pick<ShardMarker, 'seconds' | 'timings' | 'instance' | 'round' | 'records'>;

const timings = (totalMs: number): ShardMarker['timings'] => ({
  readMs: 0,
  decodeMs: 0,
  inferMs: 0,
  writeMs: 0,
  totalMs,
});

function marker(
  seconds: number,
  type: string,
  lifecycle: 'spot' | 'on-demand' | 'local' | 'unknown',
  round = 0,
  records = 1000,
): CostMarker {
  return {
    seconds,
    timings: timings(seconds * 1000),
    instance: { type, lifecycle, source: 'env' },
    round,
    records,
  };
}

function specWith(run: Record<string, unknown>) {
  return parseJobSpec({
    name: 'cost_job',
    input: { uri: 's3://in-bucket/data/', format: 'jsonl' },
    model: {
      uri: 's3://model-bucket/m.onnx',
      inputs: [{ tensor: 'x', from: { columns: ['a'] } }],
      outputs: [{ tensor: 'y' }],
    },
    output: { uri: 's3://out-bucket/preds/' },
    run,
  });
}

describe('the price table', () => {
  it('prices Spot at its own price, else SPOT_SHARE_OF_ON_DEMAND of On-Demand', () => {
    expect(hourlyPrice(DEFAULT_PRICE_TABLE, 'g5.xlarge', 'on-demand')).toBe(1.006);
    expect(hourlyPrice(DEFAULT_PRICE_TABLE, 'g5.xlarge', 'spot')).toBeCloseTo(
      1.006 * SPOT_SHARE_OF_ON_DEMAND,
      10,
    );
    const table = priceTableOf({ 'g5.xlarge': { onDemand: 2, spot: 0.5 } });
    expect(hourlyPrice(table, 'g5.xlarge', 'spot')).toBe(0.5);
    expect(hourlyPrice(table, 'g5.xlarge', 'unknown')).toBe(2);
    expect(table.source).toContain('overridden for g5.xlarge');
  });

  it('prices every default GPU and CPU type, and the local machine at 0', () => {
    for (const type of [
      'g6.xlarge',
      'g6.2xlarge',
      'g5.2xlarge',
      'g4dn.xlarge',
      'g4dn.2xlarge',
      'c6i.large',
      'm7i.2xlarge',
    ]) {
      expectIn(hourlyPrice(DEFAULT_PRICE_TABLE, type, 'on-demand'), type).toBeGreaterThan(0);
    }
    expect(hourlyPrice(DEFAULT_PRICE_TABLE, 'local', 'local')).toBe(0);
    expect(DEFAULT_PRICE_TABLE.asOf).toMatch(/^\d{4}-\d{2}-\d{2}$/);
  });

  it('uses the dearest default type of the compute as the reference', () => {
    expect(referenceInstanceType(DEFAULT_PRICE_TABLE, 'gpu', false)).toBe('g5.2xlarge');
    expect(referenceInstanceType(DEFAULT_PRICE_TABLE, 'cpu', false)).toBe('m7i.2xlarge');
    expect(referenceInstanceType(DEFAULT_PRICE_TABLE, 'gpu', true)).toBe('local');
  });

  it('formats money with enough digits for small amounts', () => {
    expect(formatMoney(12.345, 'USD')).toBe('$12.35');
    expect(formatMoney(0.00421, 'USD')).toBe('$0.0042');
    expect(formatMoney(3, 'EUR')).toBe('3.00 EUR');
  });

  it('refuses a price override that names no instance type', () => {
    expect(() => specWith({ prices: { g5: { onDemand: 1 } } })).toThrow(/instance type such as "g6.xlarge"/);
    expect(() => specWith({ prices: { 'g5.xlarge': { onDemand: -1 } } })).toThrow(/price per hour/);
    expect(() => specWith({ maxCost: 0 })).toThrow(/positive amount/);
  });
});

describe('a run cost', () => {
  it('sums shard seconds times the hourly price, by lifecycle, round and type', () => {
    const cost = runCost(
      [
        marker(3600, 'g5.xlarge', 'spot', 0),
        marker(1800, 'g6.xlarge', 'on-demand', 1),
        marker(7200, 'g6.xlarge', 'on-demand', 1),
      ],
      DEFAULT_PRICE_TABLE,
      'gpu',
    );
    const spot = 1.006 * SPOT_SHARE_OF_ON_DEMAND;
    expect(cost.total).toBeCloseTo(spot + 0.8048 * 2.5, 10);
    expect(cost.shardSeconds).toBe(12600);
    expect(cost.byLifecycle.spot).toEqual({ shards: 1, seconds: 3600, cost: expect.closeTo(spot, 10) });
    expect(cost.byLifecycle['on-demand']?.cost).toBeCloseTo(0.8048 * 2.5, 10);
    expect(cost.byRound.map((r) => [r.round, r.queue, r.shards])).toEqual([
      [0, 'first', 1],
      [1, 'on-demand', 2],
    ]);
    expect(Object.keys(cost.byInstanceType).sort()).toEqual(['g5.xlarge', 'g6.xlarge']);
    expect(cost.assumed).toBeUndefined();
    expect(cost.currency).toBe('USD');
  });

  it('prices an unknown instance at the reference type, On-Demand, and says so', () => {
    const cost = runCost([marker(3600, 'unknown', 'unknown')], DEFAULT_PRICE_TABLE, 'gpu');
    expect(cost.total).toBeCloseTo(1.212, 10);
    expect(cost.assumed).toEqual({ shards: 1, referenceType: 'g5.2xlarge' });
  });

  it('reads the seconds of a marker written before `seconds` from its total timing', () => {
    const old = { timings: timings(7_200_000), round: 0 };
    expect(shardCost(old, DEFAULT_PRICE_TABLE, 'cpu')).toMatchObject({ seconds: 7200, assumed: true });
  });

  it('costs nothing for a local run at the default local price, and what the override says otherwise', () => {
    expect(runCost([marker(100, 'local', 'local')], DEFAULT_PRICE_TABLE, 'gpu').total).toBe(0);
    const table = priceTableOf({ local: { onDemand: 36 } });
    expect(runCost([marker(100, 'local', 'local')], table, 'gpu').total).toBeCloseTo(1, 10);
  });
});

describe('the estimate', () => {
  it('multiplies records, measured seconds per record and the Spot and On-Demand prices', () => {
    const estimate = estimateRunCost({
      spec: specWith({ maxCost: 10 }),
      records: 1_000_000,
      recordsExact: true,
      shards: 4,
      local: false,
      speed: { secondsPerRecord: 0.0036, source: 'history', runIds: ['a', 'b'], records: 5000 },
    });
    // 1e6 × 0.0036 s = 3600 s = 1 hour of g5.2xlarge.
    expect(estimate.computeSeconds).toBeCloseTo(3600, 6);
    expect(estimate.instanceType).toBe('g5.2xlarge');
    expect(estimate.cost).toBeCloseTo(1.212 * SPOT_SHARE_OF_ON_DEMAND, 10);
    expect(estimate.onDemandCost).toBeCloseTo(1.212, 10);
    const text = describeEstimate(estimate).join('\n');
    expect(text).toContain('1,000,000 records in 4 shards');
    expect(text).toContain('3.60 ms per record (measured in the last 2 succeeded run(s))');
    expect(text).toContain('every shard On-Demand: $1.21');
    expect(text).toContain('spend cap    $10.00');
  });

  it('says what to do when no run has been measured yet', () => {
    const estimate = estimateRunCost({
      spec: specWith({}),
      records: 10,
      recordsExact: false,
      shards: 1,
      local: true,
    });
    expect(estimate.cost).toBeUndefined();
    expect(estimate.speedSource).toBe('none');
    expect(describeEstimate(estimate).join('\n')).toMatch(
      /cost +unknown: no succeeded run of cost_job .*--dry-run/,
    );
  });

  it('measures seconds per record over completed shards', () => {
    expect(
      speedOfMarkers([marker(10, 'local', 'local', 0, 100), marker(30, 'local', 'local', 0, 100)]),
    ).toEqual({
      secondsPerRecord: 0.2,
      source: 'this-run',
      records: 200,
    });
    expect(speedOfMarkers([])).toBeUndefined();
  });
});

describe('the spend cap', () => {
  const plan = (run: Record<string, unknown>) => ({ runId: 'r1', spec: specWith(run) });

  it('stops the retry round when spent plus the retry estimate passes run.maxCost', () => {
    // Spent: 1 h of g5.xlarge Spot. Retry: 1000 records at 3.6 s each = 1 h of g5.2xlarge On-Demand.
    const markers = [marker(3600, 'g5.xlarge', 'spot', 0, 1000)] as ShardMarker[];
    const spent = 1.006 * SPOT_SHARE_OF_ON_DEMAND;
    const under = checkSpendCap({
      plan: plan({ maxCost: spent + 1.212 + 0.01 }),
      markers,
      retry: [{ records: 1000 }],
      round: 0,
      local: false,
    });
    expect(under).toMatchObject({ stopped: false, speedSource: 'this-run' });
    expect(under!.remaining).toBeCloseTo(1.212, 10);
    const over = checkSpendCap({
      plan: plan({ maxCost: spent + 1.212 - 0.01 }),
      markers,
      retry: [{ records: 1000 }],
      round: 0,
      local: false,
    });
    expect(over).toMatchObject({ stopped: true });
    expect(over!.message).toMatch(
      /^run\.maxCost \$\d+\.\d\d reached after round 0: spent \$0\.40\d*, and retrying 1 shard \(1000 records\)/,
    );
  });

  it('weighs what was spent alone when nothing measured the speed', () => {
    const check = checkSpendCap({
      plan: plan({ maxCost: 1 }),
      markers: [],
      retry: [{ records: 5 }],
      round: 0,
      local: false,
    });
    expect(check).toMatchObject({ stopped: false, spent: 0, speedSource: 'none' });
    expect(check!.remaining).toBeUndefined();
  });

  it('uses the history when no shard of the run completed', () => {
    const check = checkSpendCap({
      plan: plan({ maxCost: 1 }),
      markers: [],
      retry: [{ records: 1000 }],
      round: 0,
      local: false,
      history: { secondsPerRecord: 3.6, source: 'history', records: 10 },
    });
    expect(check).toMatchObject({ stopped: true, speedSource: 'history' });
  });

  it('is absent without run.maxCost, and its stop becomes the run error', () => {
    expect(checkSpendCap({ plan: plan({}), markers: [], retry: [], round: 0, local: true })).toBeUndefined();
    const record = {
      maxCost: 1,
      currency: 'USD',
      spent: 2,
      speedSource: 'none' as const,
      stopped: true,
      message: 'm',
    };
    expect(spendCapErrorOf([{ round: 0 }, { round: 1, spendCap: record }])).toEqual({
      code: SPEND_CAP_ERROR,
      message: 'm',
    });
    expect(spendCapErrorOf([{ round: 0, spendCap: { ...record, stopped: false } }])).toBeUndefined();
  });
});

describe('the instance a worker runs on', () => {
  it('is local outside Batch, and what the environment says when it says', async () => {
    expect(await detectInstance({})).toEqual({ type: 'local', lifecycle: 'local', source: 'local' });
    expect(
      await detectInstance({
        BATCH_INFER_INSTANCE_TYPE: 'g6.xlarge',
        AWS_BATCH_CE_NAME: 'GpuSpotComputeEnvironment-ab',
      }),
    ).toEqual({ type: 'g6.xlarge', lifecycle: 'spot', source: 'env' });
  });

  it('asks the instance metadata service (IMDSv2) in Batch', async () => {
    const calls: string[] = [];
    const fetch = async (url: string, init: { method: string; headers: Record<string, string> }) => {
      calls.push(`${init.method} ${url} ${JSON.stringify(init.headers)}`);
      const body = url.endsWith('/api/token')
        ? 'tok'
        : url.endsWith('instance-type')
          ? 'g4dn.xlarge'
          : 'spot';
      return { ok: true, status: 200, text: async () => body };
    };
    expect(await detectInstance({ AWS_BATCH_JOB_ID: 'j' }, { fetch })).toEqual({
      type: 'g4dn.xlarge',
      lifecycle: 'spot',
      source: 'imds',
    });
    expect(calls[0]).toContain('PUT http://169.254.169.254/latest/api/token');
    expect(calls[1]).toContain('"X-aws-ec2-metadata-token":"tok"');
  });

  it('falls back to the compute environment name when the metadata service does not answer', async () => {
    const fetch = async (): Promise<never> => {
      throw new Error('timeout');
    };
    expect(
      await detectInstance(
        { AWS_BATCH_JOB_ID: 'j', AWS_BATCH_CE_NAME: 'CpuOnDemandComputeEnvironment-x' },
        { fetch },
      ),
    ).toEqual({ type: 'unknown', lifecycle: 'on-demand', source: 'unknown' });
    expect(lifecycleOfComputeEnvironment('CpuComputeEnvironment-x')).toBe('unknown');
  });
});
