import { describe, expect, it } from '@jest/globals';
import { mergeReports, renderBenchmarksDoc, suiteReport, type BenchReport } from '../../bench/report.js';

const machine = { cpus: 2, cpuModel: 'EPYC', memoryGiB: 24, node: 'v20', platform: 'linux x64' };
const older = { generatedAt: '2026-12-03T10:00:00.000Z', command: 'npm run bench', machine };
const newer = { generatedAt: '2026-12-06T15:00:00.000Z', command: 'npm run bench -- b', machine };
const result = (value: number) => ({
  name: 'case',
  metric: 'records/s',
  value,
  baseline: { name: 'raw', value: 100 },
  higherIsBetter: true,
  target: { ratio: 0.5 },
});

describe('bench report', () => {
  it('keeps the suites a partial run did not measure, each with the run that measured it', () => {
    // A results.json written before suites carried their own date: the file's applies to them.
    const previous = {
      ...older,
      suites: [
        { suite: 'a', description: 'A', results: [result(40)] },
        { suite: 'b', description: 'B', results: [result(10)] },
      ],
    };
    const current: BenchReport = {
      ...newer,
      suites: [suiteReport({ name: 'b', description: 'B' }, [result(90)], newer)],
    };
    const merged = mergeReports(previous, current);
    expect(merged.suites.map((s) => [s.suite, s.generatedAt, s.results[0]?.value])).toEqual([
      ['a', older.generatedAt, 40],
      ['b', newer.generatedAt, 90],
    ]);
    const doc = renderBenchmarksDoc(merged, '<!-- analysis -->\nkept\n<!-- /analysis -->');
    expect(doc).toContain('## a\n\nA\n\nMeasured on 2026-12-03 by `npm run bench`.');
    expect(doc).toContain('## b\n\nB\n\nMeasured on 2026-12-06 by `npm run bench -- b`.');
    expect(doc).toContain('| case | records/s | 90 | raw: 100 | 0.90x | ≥ 0.5x | yes |  |');
    expect(doc).toContain('| case | records/s | 40 | raw: 100 | 0.40x | ≥ 0.5x | **no** |  |');
    expect(doc).toMatch(/## Analysis\n\n<!-- analysis -->\nkept\n<!-- \/analysis -->\n$/);
  });

  it('shows a ratio target to two decimals (1 / 1.5 as 0.67x)', () => {
    const report: BenchReport = {
      ...newer,
      suites: [
        suiteReport({ name: 'c', description: 'C' }, [{ ...result(70), target: { ratio: 1 / 1.5 } }], newer),
      ],
    };
    expect(renderBenchmarksDoc(report, '')).toContain(
      '| case | records/s | 70 | raw: 100 | 0.70x | ≥ 0.67x | yes |  |',
    );
  });

  it('writes only this run when the previous results cannot be read', () => {
    const current: BenchReport = {
      ...newer,
      suites: [suiteReport({ name: 'b', description: 'B' }, [result(90)], newer)],
    };
    expect(mergeReports({ suites: 'not a list' }, current).suites.map((s) => s.suite)).toEqual(['b']);
    expect(mergeReports(undefined, current).suites.map((s) => s.suite)).toEqual(['b']);
  });
});
