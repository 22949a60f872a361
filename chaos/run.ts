/**
 * `npm run chaos`: hostile-input checks that must keep holding (docs/reliability.md). Today: the malformed-spec
 * suite. Prints one line per failure and a summary; exits 1 when any guarantee does not hold.
 */
import { KNOWN_GAPS } from './malformed-specs.js';
import { validateMalformedSpecs } from './validate-specs.js';

const outcomes = await validateMalformedSpecs();
const rejected = outcomes.filter((o) => o.exitCode === 2);
const precise = rejected.filter((o) => o.namesField);
const isGap = (name: string): boolean => KNOWN_GAPS.some((gap) => name.endsWith(gap));
const schemaCases = outcomes.filter((o) => !o.spec.needsPreflight && !isGap(o.spec.name));
const preflightCases = outcomes.filter((o) => o.spec.needsPreflight);
let failed = 0;
for (const o of schemaCases) {
  if (o.exitCode !== 2 || !o.namesField) {
    failed++;
    process.stdout.write(
      `FAIL ${o.spec.name}: exit ${o.exitCode}: ${o.message.slice(0, 300).replace(/\n/g, ' ')}\n`,
    );
  }
}
const summary = {
  date: new Date().toISOString(),
  malformedSpecs: {
    total: outcomes.length,
    rejectedExit2: rejected.length,
    namingTheField: precise.length,
    schemaDetectable: schemaCases.length,
    knownGapsAccepted: outcomes.filter((o) => isGap(o.spec.name) && o.exitCode === 0).length,
    needPreflight: preflightCases.length,
    needPreflightRejectedToday: preflightCases.filter((o) => o.exitCode === 2).length,
  },
};
process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
process.exitCode = failed > 0 ? 1 : 0;
