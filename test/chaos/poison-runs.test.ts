/**
 * The short version of `npm run chaos`'s whole-run poison input (chaos/poison-runs.ts): Parquet with wrong column
 * types (strings, an INT64/DOUBLE mix, BOOLEAN), a `files` input with corrupt and 0-byte images, and a CSV folder
 * with a 0-byte and a header-only file, each through a whole local run. Every record is either a prediction equal to
 * a clean run's or an error row with a reason, counts reconcile, or the run fails clearly with nothing published.
 */
import { describe, expect, it } from '@jest/globals';
import { POISON_RUN_CASES, poisonRuns } from '../../chaos/poison-runs.js';
import { expectIn } from '../support/expect-in.js';

describe('poison input through whole local runs (chaos, short)', () => {
  it('isolates every bad record with a reason, or fails clearly; never drops or alters one', async () => {
    const outcomes = await poisonRuns();
    expect(outcomes.map((o) => o.name)).toEqual(POISON_RUN_CASES.map((c) => c.name));
    for (const o of outcomes) expectIn(o.problems, o.name).toEqual([]);
    // What each case does today (a change of behaviour shows here, and must still pass the checks above).
    expect(outcomes.map((o) => [o.handled, o.errorsByReason])).toEqual([
      ['isolated', { INVALID_VALUE: 81, MISSING_VALUE: 78 }],
      ['isolated', {}],
      ['isolated', { INVALID_VALUE: 569 }],
      ['isolated', { DECODE_ERROR: 7 }],
      ['isolated', {}],
    ]);
  }, 900_000);
});
