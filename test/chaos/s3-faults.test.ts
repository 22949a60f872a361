/**
 * The short version of `npm run chaos`'s S3 fault loop (chaos/s3-faults.ts): a local run with input and output in
 * S3 (s3rver) through a proxy failing 30 % of the requests (500, 503 SlowDown, resets, cut bodies, slow answers)
 * publishes exactly a clean run's rows; a run whose every Parquet write fails fails naming the S3 error and leaves
 * nothing published or visible. The seed is printed with any failure.
 */
import { describe, expect, it } from '@jest/globals';
import { s3FaultLoop } from '../../chaos/s3-faults.js';
import { expectIn } from '../support/expect-in.js';

const SEED = Number(process.env.CHAOS_SEED ?? 4711);

describe('S3 faults under whole local runs (chaos, short)', () => {
  it('completes exactly at 30 % faults, and fails clearly with nothing published when retries are exhausted', async () => {
    const result = await s3FaultLoop({ rates: [0.3], records: 400, seed: SEED });
    expect(result.outcomes.map((o) => [o.rate, o.expect])).toEqual([
      [0.3, 'exact'],
      [1, 'exhausted'],
    ]);
    for (const o of result.outcomes) {
      expectIn(o.problems, `seed ${SEED}, ${o.name} at ${o.rate}`).toEqual([]);
    }
    const [faulty, exhausted] = result.outcomes;
    // Faults were really injected, of every kind, and the exhausted run failed on S3 (not on something else).
    expectIn(faulty!.byKind, `seed ${SEED}`).toEqual({
      'internal-error': expect.any(Number),
      'slow-down': expect.any(Number),
      reset: expect.any(Number),
      'truncated-body': expect.any(Number),
      slow: expect.any(Number),
    });
    expectIn(faulty!.faults, `seed ${SEED}: faults injected`).toBeGreaterThan(10);
    expectIn(exhausted!.cause, 'the exhausted run').toMatch(
      /S3StoreError: S3 \w+ s3:\/\/lake\/out\/.*\.parquet(\.staged)? failed/,
    );
  }, 900_000);
});
