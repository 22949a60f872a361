/**
 * What `npm run bench` keeps: bench/results.json and docs/benchmarks.md. A run of some suites
 * (`npm run bench -- worker-tabular`) replaces those suites' results and keeps the others', each suite carrying the
 * date, command and machine it was measured with, so the document never mixes runs without saying so.
 */
import { ratioOf, targetMet, type BenchResult } from './suite.js';

export interface MachineInfo {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly node: string;
  readonly platform: string;
}

export interface SuiteReport {
  readonly suite: string;
  readonly description: string;
  readonly results: readonly (BenchResult & { ratio?: number; met?: boolean })[];
  /** When, by which command and on what machine this suite was measured. */
  readonly generatedAt: string;
  readonly command: string;
  readonly machine: MachineInfo;
}

export interface BenchReport {
  readonly generatedAt: string;
  readonly command: string;
  readonly machine: MachineInfo;
  readonly suites: readonly SuiteReport[];
}

/** A suite's results as the run reports them (ratio and target computed). */
export function suiteReport(
  suite: { readonly name: string; readonly description: string },
  results: readonly BenchResult[],
  run: { readonly generatedAt: string; readonly command: string; readonly machine: MachineInfo },
): SuiteReport {
  return {
    suite: suite.name,
    description: suite.description,
    results: results.map((r) => ({ ...r, ratio: ratioOf(r), met: targetMet(r) })),
    ...run,
  };
}

/**
 * The new report: this run's suites, then the previous report's other suites unchanged, in suite-name order. A
 * previous suite without its own date (results.json before suites carried one) takes its file's.
 */
export function mergeReports(previous: unknown, current: BenchReport): BenchReport {
  const ran = new Set(current.suites.map((s) => s.suite));
  const kept: SuiteReport[] = [];
  if (isReport(previous)) {
    for (const s of previous.suites) {
      if (ran.has(s.suite)) continue;
      kept.push({
        ...s,
        results: s.results.map((r) => ({ ...r, ratio: ratioOf(r), met: targetMet(r) })),
        generatedAt: s.generatedAt ?? previous.generatedAt,
        command: s.command ?? previous.command,
        machine: s.machine ?? previous.machine,
      });
    }
  }
  const suites = [...current.suites, ...kept].sort((a, b) => a.suite.localeCompare(b.suite));
  return { ...current, suites };
}

type StoredReport = Omit<BenchReport, 'suites'> & {
  readonly suites: readonly (Omit<SuiteReport, 'generatedAt' | 'command' | 'machine'> &
    Partial<SuiteReport>)[];
};

function isReport(value: unknown): value is StoredReport {
  if (typeof value !== 'object' || value === null) return false;
  const r = value as Partial<StoredReport>;
  return (
    typeof r.generatedAt === 'string' &&
    typeof r.command === 'string' &&
    typeof r.machine === 'object' &&
    Array.isArray(r.suites) &&
    r.suites.every((s: unknown) => {
      const suite = s as { suite?: unknown; results?: unknown } | null;
      return typeof suite?.suite === 'string' && Array.isArray(suite.results);
    })
  );
}

function machineText(m: MachineInfo): string {
  return `${m.cpus} cores, ${m.cpuModel}, ${m.memoryGiB} GiB, Node ${m.node}, ${m.platform}`;
}

const num = (n: number): string =>
  Math.abs(n) >= 100 ? Math.round(n).toLocaleString('en-US') : n.toPrecision(3).replace(/\.?0+$/, '');

/** docs/benchmarks.md: a table per suite with the run that measured it, then the kept analysis text. */
export function renderBenchmarksDoc(report: BenchReport, analysis: string): string {
  const lines = [
    '# Benchmarks',
    '',
    `Produced by \`npm run bench\` (latest: \`${report.command}\` on ${report.generatedAt.slice(0, 10)}, ` +
      `${machineText(report.machine)}). Raw numbers: \`bench/results.json\`. Each suite says when and how it was ` +
      'last measured; a run of some suites keeps the others.',
    '',
    'Every ratio compares two measurements taken in the same run; > 1 means the subject beats the baseline.',
    '',
  ];
  for (const s of report.suites) {
    lines.push(`## ${s.suite}`, '', s.description, '');
    const sameMachine = machineText(s.machine) === machineText(report.machine);
    lines.push(
      `Measured on ${s.generatedAt.slice(0, 10)} by \`${s.command}\`` +
        `${sameMachine ? '' : ` (${machineText(s.machine)})`}.`,
      '',
    );
    lines.push(
      '| case | metric | value | baseline | ratio | target | met | notes |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const r of s.results) {
      const target = r.target
        ? [
            // A ratio target such as 1 / 1.5 is shown to two decimals, like the ratios themselves.
            r.target.ratio !== undefined ? `≥ ${Number(r.target.ratio.toFixed(2))}x` : '',
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
  return lines.join('\n');
}
