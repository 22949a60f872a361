/**
 * The short version of `npm run chaos`'s worker-kill loop (chaos/worker-kills.ts): one run of each mode (SIGKILL at
 * a random moment, SIGKILL right after a checkpoint, SIGTERM mid-chunk, SIGTERM during startup), each resumed and
 * compared with an uninterrupted run. The seed is printed with any failure.
 */
import { describe, expect, it } from '@jest/globals';
import { KILL_MODES, workerKillLoop } from '../../chaos/worker-kills.js';
import { expectIn } from '../support/expect-in.js';

const SEED = Number(process.env.CHAOS_SEED ?? 1717);

describe('workers killed at random points (chaos, short)', () => {
  it('every mode resumes to exactly the rows, errors and counts of a clean run', async () => {
    const result = await workerKillLoop({
      runs: KILL_MODES.length,
      records: 2000,
      seed: SEED,
      chunkRecords: 250,
      maxDelayMs: 2500,
    });
    expect(result.outcomes.map((o) => o.mode)).toEqual(KILL_MODES);
    for (const o of result.outcomes) {
      expectIn(o.problems, `seed ${SEED}, run ${o.run} (${o.mode})`).toEqual([]);
    }
    // The checkpoint-driven modes always land a signal on a running worker (the input spans 8 chunks).
    const landed = result.outcomes.filter(
      (o) => o.mode.includes('checkpoint') || o.mode.includes('mid-chunk'),
    );
    expectIn(
      landed.map((o) => o.kills),
      `seed ${SEED}`,
    ).toEqual([1, 1]);
    expect(result.clean.records).toBe(2000);
  }, 480_000);
});
