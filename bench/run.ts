/**
 * `npm run bench [-- <suite-name>... --quick]`: runs the suites in bench/suites/, writes bench/results.json and
 * regenerates docs/benchmarks.md. The text between the analysis markers in that file is kept across runs.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ratioOf, targetMet, type BenchResult, type BenchSuite } from './suite.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..');
const { values, positionals } = parseArgs({
  options: { quick: { type: 'boolean' } },
  allowPositionals: true,
});

const suites: BenchSuite[] = [];
for (const file of readdirSync(path.join(here, 'suites'))
  .filter((f) => f.endsWith('.ts'))
  .sort()) {
  const mod = (await import(pathToFileURL(path.join(here, 'suites', file)).href)) as { suite?: BenchSuite };
  if (!mod.suite) throw new Error(`bench/suites/${file} must export \`suite: BenchSuite\``);
  if (positionals.length === 0 || positionals.includes(mod.suite.name)) suites.push(mod.suite);
}
if (suites.length === 0) throw new Error(`no suite matches ${positionals.join(', ')}`);

const command = `npm run bench${positionals.length || values.quick ? ` -- ${[...positionals, ...(values.quick ? ['--quick'] : [])].join(' ')}` : ''}`;
const machine = {
  cpus: os.availableParallelism(),
  cpuModel: os.cpus()[0]?.model ?? 'unknown',
  memoryGiB: Math.round(os.totalmem() / 2 ** 30),
  node: process.version,
  platform: `${os.platform()} ${os.arch()}`,
};
const report: {
  suite: string;
  description: string;
  results: (BenchResult & { ratio?: number; met?: boolean })[];
}[] = [];
for (const suite of suites) {
  const workDir = mkdtempSync(path.join(os.tmpdir(), `bench-${suite.name}-`));
  process.stderr.write(`\n== ${suite.name}: ${suite.description}\n`);
  try {
    const results = await suite.run({
      workDir,
      quick: Boolean(values.quick),
      log: (m) => process.stderr.write(`   ${m}\n`),
    });
    report.push({
      suite: suite.name,
      description: suite.description,
      results: results.map((r) => ({ ...r, ratio: ratioOf(r), met: targetMet(r) })),
    });
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

const generatedAt = new Date().toISOString();
writeFileSync(
  path.join(here, 'results.json'),
  `${JSON.stringify({ generatedAt, command, machine, suites: report }, null, 2)}\n`,
);

const docPath = path.join(root, 'docs', 'benchmarks.md');
let analysis = '<!-- analysis -->\n<!-- /analysis -->';
try {
  const match = /<!-- analysis -->[\s\S]*<!-- \/analysis -->/.exec(readFileSync(docPath, 'utf8'));
  if (match) analysis = match[0];
} catch {
  // First run: no document yet.
}
const num = (n: number): string =>
  Math.abs(n) >= 100 ? Math.round(n).toLocaleString('en-US') : n.toPrecision(3).replace(/\.?0+$/, '');
const lines = [
  '# Benchmarks',
  '',
  `Produced by \`${command}\` on ${generatedAt.slice(0, 10)} (${machine.cpus} cores, ${machine.cpuModel}, ` +
    `${machine.memoryGiB} GiB, Node ${machine.node}, ${machine.platform}). Raw numbers: \`bench/results.json\`.`,
  '',
  'Every ratio compares two measurements taken in the same run; > 1 means the subject beats the baseline.',
  '',
];
for (const s of report) {
  lines.push(`## ${s.suite}`, '', s.description, '');
  lines.push(
    '| case | metric | value | baseline | ratio | target | met | notes |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  );
  for (const r of s.results) {
    const target = r.target
      ? [
          r.target.ratio !== undefined ? `≥ ${r.target.ratio}x` : '',
          r.target.max !== undefined ? `≤ ${num(r.target.max)}` : '',
          r.target.min !== undefined ? `≥ ${num(r.target.min)}` : '',
        ]
          .filter(Boolean)
          .join(', ')
      : '';
    lines.push(
      `| ${r.name} | ${r.metric} | ${num(r.value)} | ${r.baseline ? `${r.baseline.name}: ${num(r.baseline.value)}` : ''} | ` +
        `${r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}x`} | ${target} | ${r.met === undefined ? '' : r.met ? 'yes' : '**no**'} | ${r.notes ?? ''} |`,
    );
  }
  lines.push('');
}
lines.push('## Analysis', '', analysis, '');
writeFileSync(docPath, lines.join('\n'));
process.stderr.write(`\nwrote bench/results.json and docs/benchmarks.md\n`);
