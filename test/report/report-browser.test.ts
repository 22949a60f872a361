/**
 * The run report as a person sees it: opened from its file in headless Chromium (Debian's `chromium` package, which
 * .ci/run installs), driven by playwright-core. For a succeeded run, a failed run and a job's first run: the page
 * renders (a screenshot that is not blank), every chart is an SVG with the marks and labels it should have, the
 * console stays free of errors, and nothing but the file itself is requested.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chromium, type Browser } from 'playwright-core';
import sharp from 'sharp';
import { z } from 'zod';
import { reportUriOf } from '../../src/report/run-report.js';
import { NUMERIC_DISPLAY_BUCKETS } from '../../src/report/charts.js';
import { expectIn } from '../support/expect-in.js';
import { makeReportRuns, type ReportRuns } from './report-fixture.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// Without Chromium the test is skipped on a developer machine (listed in test/skips.json); under CI=true it runs
// and fails, so CI can never pass without it.
const itInChromium = existsSync(CHROMIUM) || process.env.CI ? it : it.skip;

let runs: ReportRuns | undefined;
let browser: Browser | undefined;
beforeAll(async () => {
  if (!existsSync(CHROMIUM) && !process.env.CI) return;
  runs = await makeReportRuns();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-sync',
    ],
  });
});
afterAll(async () => {
  await browser?.close();
  await runs?.cleanup();
});

const chartSeenSchema = z.object({
  id: z.string(),
  width: z.number(),
  height: z.number(),
  /** Bars (rect marks), points (symbol marks) and rules drawn as data, legends excluded. */
  bars: z.number(),
  points: z.number(),
  rules: z.number(),
  /** Every text in the chart: axis titles, tick labels, legend labels. */
  texts: z.array(z.string()),
});
type ChartSeen = z.infer<typeof chartSeenSchema>;

/** Run in the page (plain JavaScript: this project's TypeScript has no DOM types); parsed with chartSeenSchema. */
const READ_CHARTS = `[...document.querySelectorAll('figure[data-chart]')].map((f) => {
  const svg = f.querySelector('svg');
  const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
  const count = (selector) => (svg ? svg.querySelectorAll(selector).length : 0);
  return {
    id: f.getAttribute('data-chart') || '',
    width: box.width,
    height: box.height,
    bars: count('g.mark-rect.role-mark > path'),
    points: count('g.mark-symbol.role-mark > path'),
    rules: count('g.mark-rule.role-mark > line'),
    texts: svg ? [...svg.querySelectorAll('text')].map((t) => t.textContent || '') : [],
  };
})`;

interface PageSeen {
  readonly status: string | null;
  readonly charts: ChartSeen[];
  readonly consoleErrors: string[];
  readonly requests: string[];
  /** Share of the screenshot's pixels that are not the page background. */
  readonly inkShare: number;
  readonly screenshot: string;
}

async function open(fx: ReportRuns['first']): Promise<PageSeen> {
  const file = fileURLToPath(reportUriOf(fx.layout.runUri));
  const page = await browser!.newPage({ viewport: { width: 1200, height: 900 } });
  const consoleErrors: string[] = [];
  const requests: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => consoleErrors.push(error.message));
  page.on('request', (request) => requests.push(request.url()));
  try {
    await page.goto(`file://${file}`, { waitUntil: 'load' });
    const png = await page.screenshot({ fullPage: true });
    // REPORT_SCREENSHOT_DIR keeps the screenshots for a person to look at; otherwise they go with the fixture.
    const screenshot = path.join(process.env.REPORT_SCREENSHOT_DIR ?? fx.dir, `${fx.layout.runId}.png`);
    await writeFile(screenshot, png);
    const charts = z.array(chartSeenSchema).parse(await page.evaluate(READ_CHARTS));
    const status = await page.getAttribute('[data-status]', 'data-status');
    return { status, charts, consoleErrors, requests, inkShare: await inkShare(png), screenshot };
  } finally {
    await page.close();
  }
}

/** Share of pixels that differ from the page's background (#fafafa) by more than a little. */
async function inkShare(png: Buffer): Promise<number> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let ink = 0;
  for (let i = 0; i < data.length; i += info.channels) {
    const d = Math.abs(data[i]! - 250) + Math.abs(data[i + 1]! - 250) + Math.abs(data[i + 2]! - 250);
    if (d > 30) ink++;
  }
  return ink / (info.width * info.height);
}

function chart(seen: PageSeen, id: string): ChartSeen {
  const found = seen.charts.find((c) => c.id === id);
  if (!found)
    throw new Error(`no chart ${id} in the report; charts: ${seen.charts.map((c) => c.id).join(', ')}`);
  return found;
}

/** What every report must satisfy in a browser. */
function expectSoundPage(seen: PageSeen, fileUrl: string): void {
  const context = `screenshot ${seen.screenshot}`;
  expectIn(seen.consoleErrors, context).toEqual([]);
  // The file itself, and nothing else.
  expectIn(seen.requests, context).toEqual([fileUrl]);
  // Not blank: text, tables and charts cover a real part of the page (a blank page is 0).
  expectIn(seen.inkShare, context).toBeGreaterThan(0.02);
  for (const c of seen.charts) {
    expectIn(c, context).toMatchObject({ width: expect.any(Number), height: expect.any(Number) });
    expectIn(c.width * c.height, `${c.id}: ${context}`).toBeGreaterThan(100 * 60);
  }
}

describe('the run report in headless Chromium', () => {
  itInChromium(
    'shows a succeeded run: every chart drawn with its marks and labels, nothing loaded',
    async () => {
      const fx = runs!.second;
      const seen = await open(fx);
      expectSoundPage(seen, reportUriOf(fx.layout.runUri));
      expect(seen.status).toBe('SUCCEEDED');
      expect(seen.charts.map((c) => c.id)).toEqual([
        'errors-by-reason',
        'distribution-label',
        'distribution-score',
        'drift',
        'shard-durations',
        'throughput',
        'stage-timings',
      ]);

      const errors = chart(seen, 'errors-by-reason');
      expect(errors.bars).toBe(2);
      expect(errors.texts).toEqual(expect.arrayContaining(['INVALID_VALUE', 'MISSING_VALUE']));

      // Labels of this run (cat, fish) and of the previous run (dog, bird): a bar per label and run.
      const labels = chart(seen, 'distribution-label');
      expect(labels.bars).toBe(8);
      expectIn(labels.texts, JSON.stringify(labels.texts)).toEqual(
        expect.arrayContaining(['cat', 'fish', 'dog', 'bird', 'this run', 'previous run run-0001', 'label']),
      );
      const scores = chart(seen, 'distribution-score');
      expect(scores.bars).toBe(2 * NUMERIC_DISPLAY_BUCKETS);
      expect(scores.texts).toEqual(
        expect.arrayContaining(['score', 'share of rows', 'previous run run-0001']),
      );

      const drift = chart(seen, 'drift');
      expect(drift.bars).toBe(2);
      expect(drift.rules).toBe(1);
      expect(drift.texts).toEqual(expect.arrayContaining(['label', 'score', 'PSI']));

      // Four shards, one of them a straggler.
      const durations = chart(seen, 'shard-durations');
      expect(durations.bars).toBe(4);
      expect(durations.texts).toEqual(expect.arrayContaining(['straggler', 'seconds']));
      // A point at the start and one per shard finishing.
      expect(chart(seen, 'throughput').points).toBe(5);
      const stages = chart(seen, 'stage-timings');
      expect(stages.bars).toBe(4);
      expect(stages.texts).toEqual(expect.arrayContaining(['read', 'decode', 'infer', 'write']));
    },
  );

  itInChromium('shows a failed run: its verdict, and charts of the shards that completed', async () => {
    const fx = runs!.failed;
    const seen = await open(fx);
    expectSoundPage(seen, reportUriOf(fx.layout.runUri));
    expect(seen.status).toBe('FAILED');
    expect(chart(seen, 'shard-durations').bars).toBe(2);
    expect(chart(seen, 'throughput').points).toBe(3);
  });

  itInChromium('shows a first run: this run only, no comparison', async () => {
    const fx = runs!.first;
    const seen = await open(fx);
    expectSoundPage(seen, reportUriOf(fx.layout.runUri));
    expect(seen.status).toBe('SUCCEEDED');
    expect(seen.charts.map((c) => c.id)).not.toContain('drift');
    const labels = chart(seen, 'distribution-label');
    expect(labels.bars).toBe(3);
    expect(labels.texts).not.toContain('previous run run-0001');
    expect(chart(seen, 'distribution-score').bars).toBe(NUMERIC_DISPLAY_BUCKETS);
  });
});
