/**
 * The short version of `npm run chaos`'s CLI-kill loop (chaos/cli-kills.ts): `batch-infer run` killed once with each
 * of SIGKILL, SIGTERM and SIGINT at a point of the run that its files show (never after a delay), then rerun with the
 * same --run-id or resumed, until it succeeds; each run must end with exactly the clean run's rows and counts, and
 * nothing stale under its output prefix. The kill points come from the seed, printed with any failure.
 */
import { describe, expect, it } from '@jest/globals';
import { CLI_SIGNALS, cliKillLoop } from '../../chaos/cli-kills.js';
import { expectIn } from '../support/expect-in.js';

const SEED = Number(process.env.CHAOS_SEED ?? 2026);

describe('the CLI killed at points of a run, then rerun (chaos, short)', () => {
  it('every signal ends, after a rerun, in exactly the rows of a clean run and nothing stale', async () => {
    const result = await cliKillLoop({
      runs: CLI_SIGNALS.length,
      records: 1200,
      shards: 3,
      chunkRecords: 200,
      maxKills: 1,
      // Points every run reaches before it ends: a plan, a checkpoint, a marker (the first, by the seed's draw).
      points: ['planned', 'checkpoint', 'marker'],
      seed: SEED,
    });
    expect(result.outcomes.map((o) => o.signal)).toEqual(CLI_SIGNALS);
    for (const o of result.outcomes) {
      expectIn(o.problems, `seed ${SEED}, run ${o.run} (${o.signal} at ${o.points.join(', ')})`).toEqual([]);
      // The signal landed on a running CLI, which the next invocation completed.
      expectIn({ kills: o.kills, invocations: o.invocations }, `seed ${SEED}, run ${o.run}`).toEqual({
        kills: 1,
        invocations: 2,
      });
    }
    expect(result.clean.records).toBe(1200);
  }, 600_000);
});
