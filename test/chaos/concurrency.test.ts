/**
 * The short version of `npm run chaos`'s concurrency loop (chaos/concurrency.ts), which is short already: one run
 * id started twice at once (one runs, the other is refused; the id stays usable, no second copy published), a
 * changed spec under an old run id (refused naming the changed fields), and three pipelines at once into the
 * neighbouring prefixes out/a, out/ab and out/a-b (no cross-talk in the catalogue, listings or counts).
 */
import { describe, expect, it } from '@jest/globals';
import { CONCURRENCY_CHECKS, concurrencyLoop } from '../../chaos/concurrency.js';
import { expectIn } from '../support/expect-in.js';

describe('concurrent local runs (chaos)', () => {
  it('one run per id, changed specs refused, neighbouring prefixes kept apart', async () => {
    const outcomes = await concurrencyLoop();
    expect(outcomes.map((o) => o.check)).toEqual(CONCURRENCY_CHECKS);
    for (const o of outcomes) expectIn(o.problems, `${o.check}: ${o.runs.join(' | ')}`).toEqual([]);
    const [twice] = outcomes;
    // The two runs at once, then the rerun: exactly one of the two was refused, naming the running id.
    expectIn(
      twice!.runs.filter((r) => /already running/.test(r)),
      twice!.runs.join(' | '),
    ).toHaveLength(1);
  }, 900_000);
});
