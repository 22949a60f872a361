/**
 * `npm run bench [-- <suite-name>... --quick]`: runs the suites in bench/suites/, writes bench/results.json and
 * regenerates docs/benchmarks.md (./report.ts: suites not run keep their last results). The text between the analysis
 * markers in that file is kept across runs.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { mergeReports, renderBenchmarksDoc, suiteReport, type SuiteReport } from './report.js';
import type { BenchSuite } from './suite.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..');
const all: BenchSuite[] = [];
for (const file of readdirSync(path.join(here, 'suites'))
  .filter((f) => f.endsWith('.ts'))
  .sort()) {
  const mod = (await import(pathToFileURL(path.join(here, 'suites', file)).href)) as { suite?: BenchSuite };
  if (!mod.suite) throw new Error(`bench/suites/${file} must export \`suite: BenchSuite\``);
  all.push(mod.suite);
}

/** A mistaken command line: one line saying what is wrong and what there is, exit 2, nothing run. */
function refuse(problem: string): never {
  process.stderr.write(
    `npm run bench: ${problem}. Usage: npm run bench [-- <suite>... [--quick]]; suites: ` +
      `${all.map((s) => s.name).join(', ')} (none: all of them).\n`,
  );
  process.exit(2);
}

let parsed: { values: { quick?: boolean }; positionals: string[] };
try {
  parsed = parseArgs({ options: { quick: { type: 'boolean' } }, allowPositionals: true });
} catch (err) {
  const message = err instanceof Error ? err.message : String(err);
  // Node's message for an unknown option goes on about positionals; the option's name is what matters.
  const option = /Unknown option '([^']+)'/.exec(message)?.[1];
  refuse(option ? `unknown option ${option}` : message.replace(/\.$/, ''));
}
const { values, positionals } = parsed;
const unknown = positionals.filter((name) => !all.some((s) => s.name === name));
if (unknown.length > 0) refuse(`unknown suite(s) ${unknown.join(', ')}`);
const suites = all.filter((s) => positionals.length === 0 || positionals.includes(s.name));

const command = `npm run bench${positionals.length || values.quick ? ` -- ${[...positionals, ...(values.quick ? ['--quick'] : [])].join(' ')}` : ''}`;
const machine = {
  cpus: os.availableParallelism(),
  cpuModel: os.cpus()[0]?.model ?? 'unknown',
  memoryGiB: Math.round(os.totalmem() / 2 ** 30),
  node: process.version,
  platform: `${os.platform()} ${os.arch()}`,
};
const startedAt = new Date().toISOString();
const current: SuiteReport[] = [];
for (const suite of suites) {
  const workDir = mkdtempSync(path.join(os.tmpdir(), `bench-${suite.name}-`));
  process.stderr.write(`\n== ${suite.name}: ${suite.description}\n`);
  try {
    const results = await suite.run({
      workDir,
      quick: Boolean(values.quick),
      log: (m) => process.stderr.write(`   ${m}\n`),
    });
    current.push(suiteReport(suite, results, { generatedAt: startedAt, command, machine }));
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

const resultsPath = path.join(here, 'results.json');
let previous: unknown;
try {
  previous = JSON.parse(readFileSync(resultsPath, 'utf8'));
} catch {
  previous = undefined; // first run, or a file this version cannot read: only this run's suites are written
}
const report = mergeReports(previous, { generatedAt: startedAt, command, machine, suites: current });
writeFileSync(resultsPath, `${JSON.stringify(report, null, 2)}\n`);

const docPath = path.join(root, 'docs', 'benchmarks.md');
let analysis = '<!-- analysis -->\n<!-- /analysis -->';
try {
  const match = /<!-- analysis -->[\s\S]*<!-- \/analysis -->/.exec(readFileSync(docPath, 'utf8'));
  if (match) analysis = match[0];
} catch {
  // First run: no document yet.
}
writeFileSync(docPath, renderBenchmarksDoc(report, analysis));
process.stderr.write(
  `\nwrote bench/results.json and docs/benchmarks.md (${current.length} suite(s) measured, ${report.suites.length - current.length} kept)\n`,
);
