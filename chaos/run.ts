/**
 * `npm run chaos`: fault and hostile-input checks that must keep holding (docs/reliability.md): the malformed-spec
 * suite, then the worker-kill loop (chaos/worker-kills.ts). Prints one line per failure and a summary; exits 1 when
 * any guarantee does not hold. CHAOS_SEED replays a kill loop; CHAOS_KILL_RUNS / CHAOS_RECORDS size it.
 */
import { KNOWN_GAPS } from './malformed-specs.js';
import { validateMalformedSpecs } from './validate-specs.js';
import { summarizeKills, workerKillLoop } from './worker-kills.js';
import { cliKillLoop, summarizeCliKills } from './cli-kills.js';

// `npm run chaos -- <part> ...` runs only those parts (specs, worker-kills, cli-kills); no argument runs them all.
const parts = process.argv.slice(2);
const selected = (part: string): boolean => parts.length === 0 || parts.includes(part);

const outcomes = selected('specs') ? await validateMalformedSpecs() : [];
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
const seed = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000);
if (selected('worker-kills')) {
  process.stdout.write(`worker-kill loop: seed ${seed} (CHAOS_SEED=${seed} replays it)\n`);
}
const kills = selected('worker-kills')
  ? await workerKillLoop({
      runs: Number(process.env.CHAOS_KILL_RUNS ?? 24),
      records: Number(process.env.CHAOS_RECORDS ?? 20_000),
      chunkRecords: 1000,
      seed,
      progress: (line) => process.stdout.write(`  ${line}\n`),
    })
  : undefined;
for (const o of kills?.outcomes ?? []) {
  if (o.exact) continue;
  failed++;
  process.stdout.write(`FAIL worker-kill run ${o.run} (${o.mode}, seed ${seed}): ${o.problems.join('; ')}\n`);
}
// The CLI-kill loop (chaos/cli-kills.ts): `batch-infer run` killed and rerun or resumed.
let cliKills: Record<string, unknown> | undefined;
if (selected('cli-kills')) {
  process.stdout.write(`CLI-kill loop: seed ${seed} (CHAOS_SEED=${seed} replays it)\n`);
  const result = await cliKillLoop({
    runs: Number(process.env.CHAOS_CLI_KILL_RUNS ?? 12),
    records: Number(process.env.CHAOS_CLI_RECORDS ?? 4000),
    seed,
    progress: (line) => process.stdout.write(`  ${line}\n`),
  });
  for (const o of result.outcomes) {
    if (o.exact) continue;
    failed++;
    process.stdout.write(
      `FAIL CLI-kill run ${o.run} (${o.signal}, seed ${seed}): ${o.problems.join('; ')}\n`,
    );
  }
  cliKills = summarizeCliKills(result);
}
const summary = {
  date: new Date().toISOString(),
  ...(cliKills && { cliKills }),
  ...(kills && { workerKills: summarizeKills(kills) }),
  ...(selected('specs') && {
    malformedSpecs: {
      total: outcomes.length,
      rejectedExit2: rejected.length,
      namingTheField: precise.length,
      schemaDetectable: schemaCases.length,
      knownGapsAccepted: outcomes.filter((o) => isGap(o.spec.name) && o.exitCode === 0).length,
      needPreflight: preflightCases.length,
      needPreflightRejectedToday: preflightCases.filter((o) => o.exitCode === 2).length,
    },
  }),
};
process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
process.exitCode = failed > 0 ? 1 : 0;
