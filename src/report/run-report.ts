/**
 * The run report: one self-contained HTML file per run (`_runs/<runId>/report.html`), written by Finalize next to
 * the manifest and rebuildable for any past run from its files (run-data.ts). It shows the verdict and why, the
 * counts and their reconciliation per shard, errors by reason with example rows, each output's distribution
 * against the previous run, drift, shard durations, throughput and stage timings, and the run's lineage.
 *
 * Charts are Vega-Lite drawn to inline SVG at write time (charts.ts). The page carries no script and a Content
 * Security Policy that forbids every fetch (`default-src 'none'`), so opening it loads nothing: it reads the same
 * offline, from S3, or attached to a ticket years later.
 */
import { costSection } from './cost-section.js';
import { createLogger } from '../runtime/log.js';
import type { ObjectStore } from '../storage/object-store.js';
import { MAX_ROBUST_Z, MIN_HISTORY, MIN_RELATIVE_CHANGE } from '../results/history-checks.js';
import type { Manifest } from '../results/manifest.js';
import { challengerSection } from './challenger-section.js';
import { errorText } from '../results/run-files.js';
import {
  distributionChart,
  driftChart,
  errorsChart,
  formatNumber,
  renderChart,
  shardDurationsChart,
  stageTimingsChart,
  throughputChart,
  type ChartSpec,
  type DriftBar,
} from './charts.js';
import { loadRunReportData, reportUriOf, type LoadOptions, type RunReportData } from './run-data.js';

export { loadRunReportData, reportUriOf, type RunReportData } from './run-data.js';

/** PSI read as a major shift when the spec sets no threshold of its own. */
export const DEFAULT_DRIFT_THRESHOLD = 0.25;
/** Shards listed in the per-shard table; failed shards first, then completed ones by id. */
export const MAX_SHARD_ROWS = 500;

/** Renders the report of the run at `runUri` from its stored files. */
export async function renderRunReport(
  store: ObjectStore,
  runUri: string,
  options: LoadOptions = {},
): Promise<string> {
  return renderReportHtml(await loadRunReportData(store, runUri, options));
}

/** Renders the run's report and stores it at `<runUri>report.html`; returns its URI. */
export async function writeRunReport(
  store: ObjectStore,
  runUri: string,
  options: LoadOptions = {},
): Promise<string> {
  const html = await renderRunReport(store, runUri, options);
  const uri = reportUriOf(runUri);
  await store.put(uri, html, { contentType: 'text/html; charset=utf-8' });
  return uri;
}

/**
 * For Finalize: writes the report and never throws (a report is a view of the run, never part of its verdict).
 * Returns the report's URI, or why it could not be written.
 */
export async function writeRunReportSafely(
  store: ObjectStore,
  runUri: string,
  loaded: Pick<LoadOptions, 'markers' | 'planned'> = {},
): Promise<{ uri: string } | { error: string }> {
  try {
    return { uri: await writeRunReport(store, runUri, loaded) };
  } catch (err) {
    createLogger({ runUri }).warn('The run report could not be written', { error: err });
    return { error: errorText(err) };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The document

export async function renderReportHtml(data: RunReportData): Promise<string> {
  const { manifest: m } = data;
  const sections = [
    verdictSection(data),
    countsSection(data),
    await errorsSection(data),
    await predictionsSection(data),
    await performanceSection(data),
    historySection(data),
    costSection(m),
    challengerSection(m.challenger),
    lineageSection(m),
    data.gaps.length > 0
      ? section('Not shown', `<ul>${data.gaps.map((g) => `<li>${esc(g)}</li>`).join('')}</ul>`, 'gaps')
      : '',
  ];
  const title = `${m.spec.name} · run ${m.runId} · ${m.status}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>${esc(m.spec.name)} <span class="run-id">run ${esc(m.runId)}</span></h1>
<p class="status status-${m.status.toLowerCase()}" data-status="${m.status}">${m.status}${m.reason ? ` · ${esc(m.reason)}` : ''}</p>
<p class="message">${esc(m.message)}</p>
<p class="meta">run date ${esc(m.runDate)} · planned ${esc(m.timings.plannedAt)} · finalized ${esc(m.timings.finalizedAt)} · wall time ${esc(duration(m.timings.wallMs))}</p>
</header>
<main>
${sections.filter((s) => s !== '').join('\n')}
</main>
</body>
</html>
`;
}

function verdictSection({ manifest: m, previous }: RunReportData): string {
  const rows = m.validation.checks.map(
    (c) =>
      `<tr class="${c.passed ? 'pass' : 'fail'}"><td>${c.passed ? 'passed' : 'FAILED'}</td><td>${esc(c.name)}</td>` +
      `<td>${esc(c.description)}</td><td>${esc(value(c.threshold))}</td><td>${esc(value(c.actual))}</td>` +
      `<td>${esc(c.message ?? '')}</td></tr>`,
  );
  const drift = m.drift
    ? `<p>Drift against run ${esc(m.drift.baselineRunId)}: largest PSI ${formatNumber(m.drift.maxPsi)}.</p>`
    : m.driftError !== undefined
      ? `<p>Drift could not be computed: ${esc(m.driftError)}.</p>`
      : `<p>No drift: ${previous ? 'no column could be compared with the previous run' : 'this is the first succeeded run of the job (no history)'}.</p>`;
  const catalog = m.catalog.published
    ? `<p>Published to table <code>${esc(m.catalog.table)}</code> at ${esc(m.catalog.publishedAt ?? '')}.</p>`
    : `<p>Not published to table <code>${esc(m.catalog.table)}</code>${m.catalog.error ? `: ${esc(m.catalog.error)}` : ''}.</p>`;
  return section(
    'Verdict',
    `<table class="checks"><thead><tr><th>result</th><th>check</th><th>what</th><th>threshold</th><th>actual</th><th>detail</th></tr></thead>` +
      `<tbody>${rows.join('')}</tbody></table>${drift}${catalog}`,
    'verdict',
  );
}

function countsSection({ manifest: m, markers, planned }: RunReportData): string {
  const c = m.counts;
  const reconciled = c.records === c.predictions + c.errors;
  const summary = dl([
    ['shards', `${c.completedShards} of ${c.shards} completed, ${c.failedShards.count} failed`],
    ['records', int(c.records)],
    ['predictions', int(c.predictions)],
    ['errors', `${int(c.errors)} (${percent(c.errorRate)})`],
    [
      'reconciliation',
      `${int(c.records)} records ${reconciled ? '=' : '≠'} ${int(c.predictions)} predictions + ${int(c.errors)} errors`,
    ],
  ]);
  const plannedOf = new Map((planned ?? []).map((p) => [p.id, p]));
  const failedRows = c.failedShards.details.map(
    (f) =>
      `<tr class="fail"><td>${f.shardId}</td><td>${plannedText(plannedOf.get(f.shardId))}</td><td colspan="4">FAILED: ${esc(f.problem)}` +
      `${f.lastError ? `; ${esc(f.lastError)}` : ''}${f.logStream ? ` (log ${esc(f.logStream)})` : ''}</td><td></td></tr>`,
  );
  const shardRows = markers.map((s) => {
    const ok = s.records === s.predictions + s.errors;
    return (
      `<tr class="${ok ? 'pass' : 'fail'}"><td>${s.shardId}</td><td>${plannedText(plannedOf.get(s.shardId))}</td>` +
      `<td>${int(s.records)}</td><td>${int(s.predictions)}</td><td>${int(s.errors)}</td><td>${ok ? '✓' : '✗'}</td>` +
      `<td>${duration(s.timings.totalMs)}${s.resume && s.resume.attempts > 1 ? ` (${s.resume.attempts} attempts)` : ''}</td></tr>`
    );
  });
  const all = [...failedRows, ...shardRows];
  const table =
    `<table class="shards"><thead><tr><th>shard</th><th>planned</th><th>records</th><th>predictions</th><th>errors</th>` +
    `<th>records = predictions + errors</th><th>duration</th></tr></thead><tbody>${all.slice(0, MAX_SHARD_ROWS).join('')}</tbody></table>` +
    (all.length > MAX_SHARD_ROWS ? `<p>${all.length - MAX_SHARD_ROWS} more shards not listed.</p>` : '') +
    (c.failedShards.detailsOmitted > 0
      ? `<p>${c.failedShards.detailsOmitted} more failed shards (ids in the manifest).</p>`
      : '');
  return section('Counts and reconciliation', summary + table, 'counts');
}

async function errorsSection({ manifest: m, errorExamples }: RunReportData): Promise<string> {
  if (m.counts.errors === 0) return section('Errors', '<p>No record errors.</p>', 'errors');
  const chart = errorsChart(m.counts.errorsByReason);
  const rows = errorExamples.map(
    (e) =>
      `<tr><td>${esc(e.reason)}</td><td>${esc(e._source)}</td><td>${e._offset}</td><td>${esc(e.message)}</td></tr>`,
  );
  return section(
    'Errors',
    (chart ? await figure(chart) : '') +
      `<h3>Examples</h3><table class="error-examples"><thead><tr><th>reason</th><th>source object</th><th>offset</th><th>message</th></tr></thead>` +
      `<tbody>${rows.join('')}</tbody></table>` +
      `<p>All error rows: <code>${esc(m.outputs.errorsPrefixUri)}</code></p>`,
    'errors',
  );
}

async function predictionsSection({ manifest: m, previous }: RunReportData): Promise<string> {
  const parts: string[] = [];
  const labels = {
    current: `this run`,
    previous: previous ? `previous run ${previous.runId}` : 'previous run',
  };
  if (!m.summaries) {
    parts.push(
      `<p>No prediction distribution: ${m.summariesError ? esc(m.summariesError) : 'no completed shard reported one'}.</p>`,
    );
  } else {
    if (!previous) parts.push('<p>First run of the job: there is no previous run to compare with.</p>');
    for (const [column, summary] of Object.entries(m.summaries).sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      const before = previous?.summaries?.[column];
      const chart = distributionChart(column, summary, before, labels);
      if (chart) parts.push(await figure(chart));
    }
  }
  const bars: DriftBar[] = Object.entries(m.drift?.columns ?? {}).map(([column, psi]) => ({
    column,
    psi,
    kind: 'prediction',
  }));
  const chart = driftChart(bars, m.spec.validation.drift?.maxPsi ?? DEFAULT_DRIFT_THRESHOLD);
  if (chart) parts.push(await figure(chart));
  return section('Predictions', parts.join(''), 'predictions');
}

async function performanceSection({ manifest: m, markers }: RunReportData): Promise<string> {
  const first = m.timings.firstShardStartedAt ? Date.parse(m.timings.firstShardStartedAt) : NaN;
  const last = m.timings.lastShardFinishedAt ? Date.parse(m.timings.lastShardFinishedAt) : NaN;
  const span = last - first;
  const facts = dl([
    ['wall time (plan to finalize)', duration(m.timings.wallMs)],
    ['shards running (first start to last finish)', Number.isFinite(span) ? duration(span) : 'n/a'],
    [
      'throughput',
      Number.isFinite(span) && span > 0
        ? `${formatNumber(m.counts.records / (span / 1000))} records/s`
        : 'n/a',
    ],
    ['rounds', String(m.timings.rounds)],
    ['execution providers', counts(m.execution?.providers)],
    ['batch sizes', counts(m.execution?.batchSizes)],
  ]);
  const charts = [shardDurationsChart(markers), throughputChart(markers), stageTimingsChart(markers)];
  const figures = await Promise.all(charts.flatMap((c) => (c ? [figure(c)] : [])));
  return section(
    'Performance',
    facts + (figures.length > 0 ? figures.join('') : '<p>No shard completed: nothing to time.</p>'),
    'performance',
  );
}

function historySection({ history }: RunReportData): string {
  if (!history) {
    return section(
      'Against history',
      `<p>Fewer than ${MIN_HISTORY} earlier succeeded runs: nothing to compare with yet.</p>`,
      'history',
    );
  }
  const rows = history.checks.map(
    (c) =>
      `<tr class="${c.differs ? 'fail' : 'pass'}"><td>${c.differs ? 'DIFFERS' : 'usual'}</td><td>${esc(c.metric)}</td>` +
      `<td>${formatNumber(c.value)}</td><td>${formatNumber(c.median)}</td><td>${formatNumber(c.mad)}</td>` +
      `<td>${c.robustZ === undefined ? 'n/a' : formatNumber(c.robustZ)}</td>` +
      `<td>${c.relativeChange === undefined ? 'n/a' : percent(c.relativeChange)}</td></tr>`,
  );
  return section(
    'Against history',
    `<p>This run against the median of the last ${history.runIds.length} succeeded runs (${esc(history.runIds.join(', '))}); ` +
      `a metric differs when its robust z-score is over ${MAX_ROBUST_Z} and it changed by more than ${percent(MIN_RELATIVE_CHANGE)}.</p>` +
      `<table class="history"><thead><tr><th>result</th><th>metric</th><th>this run</th><th>median</th><th>MAD</th><th>robust z</th><th>change</th></tr></thead>` +
      `<tbody>${rows.join('')}</tbody></table>`,
    'history',
  );
}

function lineageSection(m: Manifest): string {
  const model = m.model;
  return section(
    'Lineage',
    dl([
      [
        'model',
        `${model.name}${model.version !== undefined ? ` version ${model.version}` : ''}${model.status ? ` (${model.status})` : ''} from ${model.source}`,
      ],
      ['model artifact', model.artifactUri],
      ['model sha256', model.sha256],
      ...(model.archive
        ? ([['model archive', `${model.archive.uri} (sha256 ${model.archive.sha256})`]] as const)
        : []),
      ['input', `${int(m.input.objects)} objects, ${bytes(m.input.bytes)} under ${m.spec.input.uri}`],
      ['input snapshot', `sha256 ${m.input.snapshotSha256} (${m.input.snapshotUri})`],
      ['output', `${m.outputs.partitionUri} (${m.outputs.format ?? 'parquet'})`],
      ['code version', m.codeVersion],
      ...(m.workerImage !== undefined ? ([['worker image', m.workerImage]] as const) : []),
      ...(m.scheduledTime !== undefined ? ([['scheduled time', m.scheduledTime]] as const) : []),
    ]),
    'lineage',
  );
}

// ---------------------------------------------------------------------------------------------------------------
// HTML helpers

async function figure(chart: ChartSpec): Promise<string> {
  const svg = await renderChart(chart.spec);
  return (
    `<figure class="chart" data-chart="${esc(chart.id)}"><figcaption><strong>${esc(chart.title)}</strong> ${esc(chart.caption)}</figcaption>` +
    `${svg}</figure>`
  );
}

function section(title: string, body: string, id: string): string {
  return `<section id="${id}"><h2>${esc(title)}</h2>${body}</section>`;
}

function dl(items: readonly (readonly [string, string])[]): string {
  return `<dl>${items.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')}</dl>`;
}

/** Escapes text for HTML content and attribute values. */
export function esc(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function value(v: number | string): string {
  return typeof v === 'number' ? formatNumber(v) : v;
}

function int(n: number): string {
  return n.toLocaleString('en-US');
}

function percent(rate: number): string {
  return `${formatNumber(rate * 100)}%`;
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${formatNumber(v)} ${units[u]}`;
}

function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 120) return `${formatNumber(s)} s`;
  const min = Math.floor(s / 60);
  if (min < 120) return `${min} min ${Math.round(s - min * 60)} s`;
  return `${Math.floor(min / 60)} h ${min % 60} min`;
}

function counts(record: Readonly<Record<string, number>> | undefined): string {
  if (!record || Object.keys(record).length === 0) return 'n/a';
  return Object.entries(record)
    .map(([k, n]) => `${k}: ${n} shard${n === 1 ? '' : 's'}`)
    .join(', ');
}

function plannedText(entry: { records: number; recordsExact: boolean } | undefined): string {
  if (!entry) return '';
  return entry.recordsExact ? int(entry.records) : `~${int(entry.records)}`;
}

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
header,main{max-width:1100px;margin:0 auto;padding:0 24px}
header{padding-top:20px}
h1{font-size:22px;margin:0 0 6px}
.run-id{font-weight:normal;color:#555;font-size:16px}
.status{display:inline-block;padding:2px 10px;border-radius:4px;font-weight:600;color:#fff;margin:0}
.status-succeeded{background:#2e7d32}.status-failed{background:#c62828}
.message{margin:8px 0 2px}.meta{color:#555;margin:0 0 12px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px 18px;margin:14px 0}
h2{font-size:17px;margin:4px 0 10px}h3{font-size:15px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #eee;padding:4px 6px;text-align:left;vertical-align:top}
tr.fail td{background:#fdecea}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:6px 0 12px}
dt{color:#555}dd{margin:0;word-break:break-all}
figure{margin:12px 0}figcaption{margin-bottom:6px}
code{font-size:12px}
`;
