/**
 * `npm run chaos`: fault and hostile-input checks that must keep holding (docs/reliability.md): the malformed-spec
 * suite, then the worker-kill loop (chaos/worker-kills.ts), the CLI-kill loop (chaos/cli-kills.ts), the S3 fault loop
 * (chaos/s3-faults.ts), whole-run poison input (chaos/poison-runs.ts) and the concurrency loop (chaos/concurrency.ts).
 * Prints one line per failure and a summary; exits 1 when any guarantee does not hold. CHAOS_SEED replays the seeded
 * loops; CHAOS_KILL_RUNS / CHAOS_RECORDS size the worker-kill loop, CHAOS_CLI_KILL_RUNS / CHAOS_CLI_RECORDS the
 * CLI-kill loop, CHAOS_S3_RUNS (runs per fault rate) / CHAOS_S3_RECORDS the S3 loop. Loops are picked by name
 * (ALL_LOOPS below).
 */
import { KNOWN_GAPS } from './malformed-specs.js';
import { validateMalformedSpecs } from './validate-specs.js';
import { summarizeKills, workerKillLoop } from './worker-kills.js';
import { cliKillLoop, summarizeCliKills } from './cli-kills.js';
import { concurrencyLoop } from './concurrency.js';
import { poisonRuns } from './poison-runs.js';
import { s3FaultLoop, summarizeS3Faults } from './s3-faults.js';

// `npm run chaos -- <loop> ...` (or CHAOS_LOOPS=<loop>,...) runs only those loops: specs, worker-kills, cli-kills,
// s3, poison, concurrency. Neither runs them all.
const ALL_LOOPS = ['specs', 'worker-kills', 'cli-kills', 's3', 'poison', 'concurrency'];
const asked = [
  ...process.argv.slice(2),
  ...(process.env.CHAOS_LOOPS ?? '').split(',').map((l) => l.trim()),
].filter((l) => l !== '');
const unknown = asked.filter((l) => !ALL_LOOPS.includes(l));
if (unknown.length > 0) {
  process.stderr.write(
    `npm run chaos: unknown loop(s) ${unknown.join(', ')}. Choose among ${ALL_LOOPS.join(', ')} ` +
      '(as arguments after --, or CHAOS_LOOPS=a,b); none runs them all.\n',
  );
  process.exit(2);
}
const LOOPS = new Set(asked.length > 0 ? asked : ALL_LOOPS);
const started = Date.now();

const outcomes = LOOPS.has('specs') ? await validateMalformedSpecs() : [];
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
process.stdout.write(`seed ${seed} (CHAOS_SEED=${seed} replays it)\n`);
const kills = !LOOPS.has('worker-kills')
  ? undefined
  : await workerKillLoop({
      runs: Number(process.env.CHAOS_KILL_RUNS ?? 24),
      records: Number(process.env.CHAOS_RECORDS ?? 20_000),
      chunkRecords: 1000,
      seed,
      progress: (line) => process.stdout.write(`  ${line}\n`),
    });
for (const o of kills?.outcomes ?? []) {
  if (o.exact) continue;
  failed++;
  process.stdout.write(`FAIL worker-kill run ${o.run} (${o.mode}, seed ${seed}): ${o.problems.join('; ')}\n`);
}
// The CLI-kill loop (chaos/cli-kills.ts): `batch-infer run` killed and rerun or resumed.
const cliKills = !LOOPS.has('cli-kills')
  ? undefined
  : await cliKillLoop({
      runs: Number(process.env.CHAOS_CLI_KILL_RUNS ?? 12),
      records: Number(process.env.CHAOS_CLI_RECORDS ?? 4000),
      seed,
      progress: (line) => process.stdout.write(`  ${line}\n`),
    });
for (const o of cliKills?.outcomes ?? []) {
  if (o.exact) continue;
  failed++;
  process.stdout.write(`FAIL CLI-kill run ${o.run} (${o.signal}, seed ${seed}): ${o.problems.join('; ')}\n`);
}

const s3 = !LOOPS.has('s3')
  ? undefined
  : await s3FaultLoop({
      seed,
      runsPerRate: Number(process.env.CHAOS_S3_RUNS ?? 2),
      records: Number(process.env.CHAOS_S3_RECORDS ?? 1500),
      progress: (line) => process.stdout.write(`  ${line}\n`),
    });
for (const o of s3?.outcomes ?? []) {
  if (o.problems.length === 0) continue;
  failed++;
  process.stdout.write(
    `FAIL S3 fault run ${o.name} (rate ${o.rate}, seed ${seed}): ${o.problems.join('; ')}\n`,
  );
}

const poison = !LOOPS.has('poison')
  ? undefined
  : await poisonRuns({ progress: (line) => process.stdout.write(`  ${line}\n`) });
for (const o of poison ?? []) {
  if (o.problems.length === 0) continue;
  failed++;
  process.stdout.write(`FAIL poison run "${o.name}": ${o.problems.join('; ')}\n`);
}

const concurrency = !LOOPS.has('concurrency')
  ? undefined
  : await concurrencyLoop({ progress: (line) => process.stdout.write(`  ${line}\n`) });
for (const o of concurrency ?? []) {
  if (o.problems.length === 0) continue;
  failed++;
  process.stdout.write(`FAIL concurrency ${o.check}: ${o.problems.join('; ')}\n`);
}

const summary = {
  date: new Date().toISOString(),
  loops: [...LOOPS],
  minutes: Math.round((Date.now() - started) / 6000) / 10,
  ...(kills ? { workerKills: summarizeKills(kills) } : {}),
  ...(cliKills ? { cliKills: summarizeCliKills(cliKills) } : {}),
  ...(s3 ? { s3Faults: summarizeS3Faults(s3) } : {}),
  ...(poison
    ? {
        poisonRuns: poison.map((o) => ({
          case: o.name,
          status: o.status,
          handled: o.handled,
          records: o.records,
          predictions: o.predictions,
          errors: o.errors,
          errorsByReason: o.errorsByReason,
        })),
      }
    : {}),
  ...(concurrency
    ? {
        concurrency: concurrency.map((o) => ({
          check: o.check,
          held: o.problems.length === 0,
          runs: o.runs,
        })),
      }
    : {}),
  ...(LOOPS.has('specs')
    ? {
        malformedSpecs: {
          total: outcomes.length,
          rejectedExit2: rejected.length,
          namingTheField: precise.length,
          schemaDetectable: schemaCases.length,
          knownGapsAccepted: outcomes.filter((o) => isGap(o.spec.name) && o.exitCode === 0).length,
          needPreflight: preflightCases.length,
          needPreflightRejectedToday: preflightCases.filter((o) => o.exitCode === 2).length,
        },
      }
    : {}),
};
process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
process.exitCode = failed > 0 ? 1 : 0;
