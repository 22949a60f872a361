/**
 * The run report as Finalize writes it: one HTML file per run, for succeeded and failed runs, rebuilt from the run's
 * files alone. (What a browser makes of it: report-browser.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { manifestSchema } from '../../src/results/manifest.js';
import { renderRunReport, reportUriOf, writeRunReportSafely } from '../../src/report/run-report.js';
import { renderChart, throughputChart } from '../../src/report/charts.js';
import { getJson } from '../../src/storage/object-store.js';
import { expectIn } from '../support/expect-in.js';
import { makeReportRuns, type ReportRuns } from './report-fixture.js';

let runs: ReportRuns;
beforeAll(async () => {
  runs = await makeReportRuns();
});
afterAll(async () => {
  await runs.cleanup();
});

async function storedReport(fx: ReportRuns['first']): Promise<string> {
  return new TextDecoder().decode(await fx.store.get(reportUriOf(fx.layout.runUri)));
}

/** The `data-chart` ids of the figures in a report, in order. */
function chartIds(html: string): string[] {
  return [...html.matchAll(/<figure class="chart" data-chart="([^"]+)"/g)].map((m) => m[1]!);
}

describe('the run report written by Finalize', () => {
  it('is written next to the manifest for a succeeded run, with every chart as inline SVG', async () => {
    const html = await storedReport(runs.second);
    const manifest = manifestSchema.parse(await getJson(runs.second.store, runs.second.layout.manifestUri));
    expect(manifest.status).toBe('SUCCEEDED');
    expectIn(chartIds(html), html.slice(0, 2000)).toEqual([
      'errors-by-reason',
      'distribution-label',
      'distribution-score',
      'drift',
      'shard-durations',
      'throughput',
      'stage-timings',
    ]);
    // One <svg> per figure, drawn at write time: no script, no external reference of any kind.
    expect(html.match(/<svg /g)?.length).toBe(7);
    expect(html).not.toMatch(/<script|<link |<img |@import|url\(|src=|href=/i);
    expect(html).toContain(`default-src 'none'`);
    expect(html).toContain('data-status="SUCCEEDED"');
    // The comparison is against the first run, named.
    expect(html).toContain('previous run run-0001');
    // Lineage and counts.
    expect(html).toContain('v1.2.4');
    expect(html).toContain('a'.repeat(64));
    expect(html).toContain('176 records = 160 predictions + 16 errors');
  });

  it('shows example error rows per reason, escaped', async () => {
    const html = await storedReport(runs.second);
    const examples = html.slice(html.indexOf('class="error-examples"'));
    expect(examples).toContain('s3://input-bucket/data/part-0.jsonl');
    expect(examples).toContain('column &quot;b&quot; is missing');
    // A message holding markup is shown as text.
    expect(examples).toContain('&lt;b&gt;x0&lt;/b&gt;');
    expect(examples).not.toContain('<b>x0</b>');
    // Three examples per reason at most (the run has eight of each).
    expect(examples.match(/<tr><td>INVALID_VALUE<\/td>/g)?.length).toBe(3);
    expect(examples.match(/<tr><td>MISSING_VALUE<\/td>/g)?.length).toBe(3);
  });

  it('says a first run has no history, and draws this run only', async () => {
    const html = await storedReport(runs.first);
    expect(html).toContain('first succeeded run of the job (no history)');
    expect(html).toContain('Fewer than 3 earlier succeeded runs: nothing to compare with yet.');
    expect(chartIds(html)).toEqual([
      'distribution-label',
      'distribution-score',
      'shard-durations',
      'throughput',
      'stage-timings',
    ]);
    expect(html).not.toContain('previous run run-');
  });

  it('is written for a failed run, with the failed shard and the failed check', async () => {
    const html = await storedReport(runs.failed);
    expect(html).toContain('data-status="FAILED"');
    expect(html).toContain('ShardsFailed');
    expectIn(html, 'failed shard row').toMatch(
      /<tr class="fail"><td>2<\/td><td>40<\/td><td colspan="4">FAILED: /,
    );
    expect(html).toMatch(/<tr class="fail"><td>FAILED<\/td>/);
  });

  it("shows the run's cost: total, by Spot / On-Demand, round and instance type, and the price table", async () => {
    const html = await storedReport(runs.second);
    const manifest = manifestSchema.parse(await getJson(runs.second.store, runs.second.layout.manifestUri));
    const cost = manifest.cost!;
    // The fixture's markers name no instance: each is priced as the dearest default GPU type, On-Demand.
    expect(cost.total).toBeCloseTo((cost.shardSeconds / 3600) * 1.212, 9);
    expect(cost.shardSeconds).toBeGreaterThan(0);
    const section = html.slice(html.indexOf('<section id="cost">'));
    expectIn(section.slice(0, section.indexOf('</section>')), 'cost section').toMatch(
      new RegExp(
        `data-cost="${cost.total}" data-currency="USD"><strong>\\$${cost.total.toFixed(2)}</strong>`,
      ),
    );
    expect(section).toContain('<td>round 0: first round (Spot, then On-Demand)</td>');
    expect(section).toContain('<td>unknown</td>');
    expect(section).toContain('priced as g5.2xlarge');
    expect(section).toContain('Amazon EC2 On-Demand Linux prices, us-east-1');
  });

  it('is rebuilt from the run files alone, identical to what Finalize wrote', async () => {
    for (const fx of [runs.first, runs.second, runs.failed]) {
      expect(await renderRunReport(fx.store, fx.layout.runUri)).toBe(await storedReport(fx));
    }
  });

  it('is not written, and Finalize is not failed, when the run has no manifest', async () => {
    const result = await writeRunReportSafely(runs.first.store, `${runs.first.layout.outputUri}_runs/nope/`);
    expect(result).toEqual({ error: expect.stringContaining('has no manifest') });
  });
});

describe('charts', () => {
  it('refuse to load anything while rendering', async () => {
    await expect(
      renderChart({ data: { url: 'https://example.com/data.json' }, mark: 'bar', encoding: {} }),
    ).rejects.toThrow(/loads nothing/);
  });

  it('plot throughput in UTC, whatever the machine time zone', async () => {
    const chart = throughputChart([
      {
        shardId: 0,
        records: 10,
        startedAt: '2024-05-06T10:00:00.000Z',
        finishedAt: '2024-05-06T10:01:00.000Z',
      } as never,
    ])!;
    const svg = await renderChart(chart.spec);
    expect(svg).toContain('10:00:30');
  });
});
