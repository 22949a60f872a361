/**
 * The short version of `npm run chaos`'s malformed-spec suite: every malformed spec the schema can detect is
 * rejected by `batch-infer validate` with exit 2 and a message naming the field, those found by checking the spec
 * against the model or data (preflight) too; the known gaps are still gaps.
 */
import { describe, expect, it } from '@jest/globals';
import { KNOWN_GAPS, MALFORMED_SPECS } from '../../chaos/malformed-specs.js';
import { validateMalformedSpecs, type SpecOutcome } from '../../chaos/validate-specs.js';
import { expectIn } from '../support/expect-in.js';

describe('malformed job specs (chaos suite)', () => {
  it('rejects each with exit 2 naming the field (preflight cases included), except the listed gaps', async () => {
    expect(MALFORMED_SPECS.length).toBeGreaterThanOrEqual(60);
    const outcomes: SpecOutcome[] = await validateMalformedSpecs();
    const gap = (o: SpecOutcome): boolean => KNOWN_GAPS.some((g) => o.spec.name.endsWith(g));
    for (const o of outcomes) {
      if (gap(o)) {
        expectIn(o.exitCode, `${o.spec.name} is listed as a gap; remove it from KNOWN_GAPS`).toBe(0);
        continue;
      }
      expectIn(o.exitCode, `${o.spec.name}: ${o.message}`).toBe(2);
      expectIn(o.namesField, `${o.spec.name} should name ${o.spec.field}: ${o.message}`).toBe(true);
    }
  }, 120_000);
});
