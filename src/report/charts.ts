/**
 * The run report's charts: Vega-Lite specifications built from run files (pure functions of the manifest and the
 * markers), compiled to Vega and drawn to static SVG in this process (`renderChart`). Nothing is drawn by hand and
 * nothing is fetched: every spec carries its data inline, and the Vega loader is replaced by one that refuses to
 * load anything, so a spec that asked for a URL would fail at write time instead of at view time.
 */
import type * as Vega from 'vega';
import type * as VegaLite from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';
import { lazyModule, type LazyModule } from '../runtime/lazy-module.js';
import { quantileOf, type ColumnSummary, type NumericSummary } from '../runs/stats.js';
import type { ShardMarker } from '../runs/types.js';

/** One chart of the report: what it shows, its Vega-Lite spec, and the marks a reader should find in it. */
export interface ChartSpec {
  /** Stable id (used as the figure's `data-chart` attribute). */
  readonly id: string;
  readonly title: string;
  /** One sentence under the chart: how to read it. */
  readonly caption: string;
  readonly spec: TopLevelSpec;
}

/** Colours of the two runs compared, the same in every chart. */
const RUN_COLORS = { current: '#1f77b4', previous: '#ff7f0e' } as const;
const WIDTH = 560;
const HEIGHT = 220;

/** Categories shown in a categorical distribution; the rest are summed into `(other)`. */
export const MAX_CATEGORY_BARS = 15;
/** Buckets a numeric distribution is drawn in (equal width over both runs' range). */
export const NUMERIC_DISPLAY_BUCKETS = 20;
/** Shards drawn in the durations chart; a bigger run shows its slowest this many. */
export const MAX_SHARD_BARS = 500;
/** A shard slower than this many times the median shard is drawn as a straggler. */
export const STRAGGLER_FACTOR = 2;

/**
 * Vega and Vega-Lite, loaded by the first chart: about 0.15 s of loading that the CLI's other commands, and a local
 * run until its report, do without (`preloadChartRenderer` starts it early). One after the other: jest's ESM loader
 * fails concurrent imports of graphs that share modules ("request for './accessor.js' is not in cache"), and
 * Vega-Lite shares Vega's.
 */
const renderer: LazyModule<[typeof Vega, typeof VegaLite]> = lazyModule(() =>
  import('vega').then(async (vega) => [vega, await import('vega-lite')]),
);

/** Starts loading the chart renderer now (a local run does while its workers run), so the report does not wait. */
export function preloadChartRenderer(): void {
  renderer.preload();
}

/** Renders one Vega-Lite spec to an SVG document string, offline. */
export async function renderChart(spec: TopLevelSpec): Promise<string> {
  const [{ Warn: VEGA_WARN, loader: vegaLoader, logger: vegaLogger, parse: vegaParse, View }, { compile }] =
    await renderer.load();
  const vega = compile(spec).spec;
  const offline = vegaLoader();
  const refuse = (uri: string): Promise<never> =>
    Promise.reject(new Error(`the run report loads nothing at render time (asked for ${uri})`));
  offline.load = refuse;
  offline.sanitize = refuse;
  // Vega reports a failed load as a warning (and dataflow errors as errors) and draws on: collect both, then refuse
  // the chart rather than store one that silently lacks its data.
  const errors: string[] = [];
  const logger = vegaLogger(VEGA_WARN, 'error', (_method, _level, args) => {
    errors.push(args.map((a) => (a instanceof Error ? a.message : String(a))).join(' '));
  });
  const view = new View(vegaParse(vega), { renderer: 'none', loader: offline, logger });
  try {
    const svg = await view.toSVG();
    if (errors.length > 0) throw new Error(`the chart could not be drawn: ${errors.join('; ')}`);
    return svg;
  } finally {
    view.finalize();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Prediction distributions

export interface DistributionRow {
  readonly run: string;
  readonly bucket: string;
  /** Position of the bucket on the axis (buckets sort by it). */
  readonly order: number;
  readonly share: number;
  readonly rows: number;
}

/**
 * The distribution of one output column in this run and (when there is one) the previous run, as shares of rows
 * per bucket: categories for categorical columns, equal-width value buckets for numeric ones, and for vectors the
 * distribution of their elements (and of their norms when the summary has them).
 */
export function distributionRows(
  current: ColumnSummary,
  previous: ColumnSummary | undefined,
  labels: { readonly current: string; readonly previous: string },
): DistributionRow[] {
  if (current.kind === 'categorical') {
    return categoricalRows(current, previous?.kind === 'categorical' ? previous : undefined, labels);
  }
  const numeric = (s: ColumnSummary | undefined): NumericSummary | undefined =>
    s === undefined ? undefined : s.kind === 'numeric' ? s : s.kind === 'vector' ? s.elements : undefined;
  const cur = numeric(current);
  return cur ? numericRows(cur, numeric(previous), labels) : [];
}

function categoricalRows(
  current: Extract<ColumnSummary, { kind: 'categorical' }>,
  previous: Extract<ColumnSummary, { kind: 'categorical' }> | undefined,
  labels: { readonly current: string; readonly previous: string },
): DistributionRow[] {
  const cur = new Map(Object.entries(current.counts));
  const prev = new Map(Object.entries(previous?.counts ?? {}));
  // The most frequent values of this run, then values only the previous run had (a label that vanished matters).
  const byCount = (m: Map<string, number>): string[] =>
    [...m].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([v]) => v);
  const shown: string[] = [];
  for (const v of [...byCount(cur), ...byCount(prev)]) {
    if (shown.length >= MAX_CATEGORY_BARS) break;
    if (!shown.includes(v)) shown.push(v);
  }
  const rows: DistributionRow[] = [];
  const add = (run: string, counts: Map<string, number>, other: number, total: number): void => {
    if (total === 0) return;
    let rest = other;
    for (const [v, n] of counts) if (!shown.includes(v)) rest += n;
    shown.forEach((v, i) => {
      const n = counts.get(v) ?? 0;
      rows.push({ run, bucket: v, order: i, share: n / total, rows: n });
    });
    if (rest > 0) rows.push({ run, bucket: '(other)', order: shown.length, share: rest / total, rows: rest });
  };
  add(labels.current, cur, current.other, current.count);
  if (previous) add(labels.previous, prev, previous.other, previous.count);
  return rows;
}

function numericRows(
  current: NumericSummary,
  previous: NumericSummary | undefined,
  labels: { readonly current: string; readonly previous: string },
): DistributionRow[] {
  const sides = [
    { run: labels.current, s: current },
    ...(previous && previous.count > 0 ? [{ run: labels.previous, s: previous }] : []),
  ].filter((x) => x.s.count > 0 && x.s.min !== undefined && x.s.max !== undefined);
  if (sides.length === 0) return [];
  const lo = Math.min(...sides.map((x) => x.s.min!));
  const hi = Math.max(...sides.map((x) => x.s.max!));
  const buckets = lo === hi ? 1 : NUMERIC_DISPLAY_BUCKETS;
  const width = (hi - lo) / buckets;
  const label = (i: number): string =>
    buckets === 1
      ? formatNumber(lo)
      : `${formatNumber(lo + i * width)}–${formatNumber(lo + (i + 1) * width)}`;
  const rows: DistributionRow[] = [];
  for (const { run, s } of sides) {
    const counts = new Array<number>(buckets).fill(0);
    for (const [value, n] of binValues(s)) {
      const i = width === 0 ? 0 : Math.min(buckets - 1, Math.max(0, Math.floor((value - lo) / width)));
      counts[i]! += n;
    }
    counts.forEach((n, i) => rows.push({ run, bucket: label(i), order: i, share: n / s.count, rows: n }));
  }
  return rows;
}

/**
 * Each bin of a numeric summary as [a value in it, rows]: the bins' representative values clamped to the column's
 * range, so the extreme bins land inside [min, max].
 */
function binValues(s: NumericSummary): [number, number][] {
  const gamma = s.bins.gamma;
  const mid = (i: number): number => (2 * gamma ** i) / (gamma + 1);
  const clamp = (v: number): number => Math.min(s.max ?? v, Math.max(s.min ?? v, v));
  return [
    ...s.bins.negative.map(([i, n]): [number, number] => [clamp(-mid(i)), n]),
    ...(s.bins.zero > 0 ? [[clamp(0), s.bins.zero] as [number, number]] : []),
    ...s.bins.positive.map(([i, n]): [number, number] => [clamp(mid(i)), n]),
  ];
}

export function distributionChart(
  column: string,
  current: ColumnSummary,
  previous: ColumnSummary | undefined,
  labels: { readonly current: string; readonly previous: string },
): ChartSpec | undefined {
  const rows = distributionRows(current, previous, labels);
  if (rows.length === 0) return undefined;
  const what =
    current.kind === 'categorical'
      ? `top ${MAX_CATEGORY_BARS} values`
      : current.kind === 'vector'
        ? 'vector elements, equal-width buckets'
        : 'equal-width buckets';
  const median = current.kind === 'numeric' ? quantileOf(current, 0.5) : undefined;
  return {
    id: `distribution-${column}`,
    title: `Prediction distribution: ${column}`,
    caption:
      `Share of rows per bucket (${what})` +
      (rows.some((r) => r.run === labels.previous)
        ? `, this run against ${labels.previous}`
        : ', this run only') +
      (median === undefined ? '.' : `; median ${formatNumber(median)}.`),
    spec: {
      width: WIDTH,
      height: HEIGHT,
      data: { values: rows.map((r) => ({ ...r })) },
      mark: { type: 'bar', tooltip: false },
      encoding: {
        x: {
          field: 'bucket',
          type: 'nominal',
          sort: { field: 'order', op: 'min' },
          title: column,
          axis: { labelAngle: -40, labelLimit: 120 },
        },
        xOffset: { field: 'run', type: 'nominal' },
        y: { field: 'share', type: 'quantitative', title: 'share of rows', axis: { format: '.0%' } },
        color: runColor(labels),
      },
    },
  };
}

function runColor(labels: { readonly current: string; readonly previous: string }): {
  field: string;
  type: 'nominal';
  title: string;
  scale: { domain: string[]; range: string[] };
  legend: { orient: 'top'; labelLimit: number };
} {
  return {
    field: 'run',
    type: 'nominal',
    title: 'run',
    // Run ids run to 80 characters: a legend above the chart, never cut.
    legend: { orient: 'top', labelLimit: 1000 },
    scale: { domain: [labels.current, labels.previous], range: [RUN_COLORS.current, RUN_COLORS.previous] },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Drift

export interface DriftBar {
  readonly column: string;
  readonly psi: number;
  /** What was compared: `prediction`, `norm`, `input`... */
  readonly kind: string;
}

/** PSI per column against the previous run, with the threshold as a rule. */
export function driftChart(bars: readonly DriftBar[], threshold: number): ChartSpec | undefined {
  if (bars.length === 0) return undefined;
  return {
    id: 'drift',
    title: 'Drift against the previous run (PSI)',
    caption: `Population stability index per column; the line is the threshold (${formatNumber(threshold)}). Below 0.1 reads as stable, above 0.25 as a major shift.`,
    spec: {
      width: WIDTH,
      height: Math.max(60, 22 * bars.length),
      layer: [
        {
          data: {
            values: bars.map((b) => ({ ...b, over: b.psi > threshold ? 'above threshold' : 'within' })),
          },
          mark: { type: 'bar' },
          encoding: {
            y: { field: 'column', type: 'nominal', title: null, sort: null },
            x: { field: 'psi', type: 'quantitative', title: 'PSI' },
            color: {
              field: 'over',
              type: 'nominal',
              title: null,
              scale: { domain: ['within', 'above threshold'], range: ['#4c9a2a', '#d62728'] },
            },
          },
        },
        {
          data: { values: [{ threshold }] },
          mark: { type: 'rule', color: '#333', strokeDash: [4, 3] },
          encoding: { x: { field: 'threshold', type: 'quantitative' } },
        },
      ],
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Errors

export function errorsChart(errorsByReason: Readonly<Record<string, number>>): ChartSpec | undefined {
  const rows = Object.entries(errorsByReason)
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .map(([reason, rows]) => ({ reason, rows }));
  if (rows.length === 0) return undefined;
  return {
    id: 'errors-by-reason',
    title: 'Errors by reason',
    caption: 'Records that could not be scored, by reason (rows of the errors files).',
    spec: {
      width: WIDTH,
      height: Math.max(40, 26 * rows.length),
      data: { values: rows },
      mark: { type: 'bar', color: '#d62728' },
      encoding: {
        y: { field: 'reason', type: 'nominal', title: null, sort: null },
        x: { field: 'rows', type: 'quantitative', title: 'records' },
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Shards: durations, throughput, stage timings

/** Shard durations (all attempts' compute time), stragglers coloured: the tail that decides the run's wall time. */
export function shardDurationsChart(markers: readonly ShardMarker[]): ChartSpec | undefined {
  if (markers.length === 0) return undefined;
  const durations = markers.map((m) => m.timings.totalMs).sort((a, b) => a - b);
  const median = durations[Math.floor((durations.length - 1) / 2)]!;
  const shown = [...markers]
    .sort((a, b) => b.timings.totalMs - a.timings.totalMs || a.shardId - b.shardId)
    .slice(0, MAX_SHARD_BARS)
    .sort((a, b) => a.shardId - b.shardId);
  const straggler = (ms: number): boolean => median > 0 && ms > STRAGGLER_FACTOR * median;
  return {
    id: 'shard-durations',
    title: 'Shard durations',
    caption:
      `Seconds per shard (read, decode, infer and write, all attempts); median ${formatNumber(median / 1000)} s, ` +
      `stragglers (over ${STRAGGLER_FACTOR}× the median) in red` +
      (shown.length < markers.length ? `; the slowest ${shown.length} of ${markers.length} shards.` : '.'),
    spec: {
      width: WIDTH,
      height: HEIGHT,
      data: {
        values: shown.map((m) => ({
          shard: m.shardId,
          seconds: m.timings.totalMs / 1000,
          kind: straggler(m.timings.totalMs) ? 'straggler' : 'shard',
        })),
      },
      mark: { type: 'bar' },
      encoding: {
        x: { field: 'shard', type: 'ordinal', title: 'shard', axis: { labelOverlap: true } },
        y: { field: 'seconds', type: 'quantitative', title: 'seconds' },
        color: {
          field: 'kind',
          type: 'nominal',
          title: null,
          scale: { domain: ['shard', 'straggler'], range: [RUN_COLORS.current, '#d62728'] },
        },
      },
    },
  };
}

/** Records finished over the run: each point a shard finishing, cumulative; the slope is the throughput. */
export function throughputChart(markers: readonly ShardMarker[]): ChartSpec | undefined {
  const finished = markers
    .filter((m) => Number.isFinite(Date.parse(m.finishedAt)))
    .sort((a, b) => Date.parse(a.finishedAt) - Date.parse(b.finishedAt) || a.shardId - b.shardId);
  if (finished.length === 0) return undefined;
  let total = 0;
  const values = finished.map((m) => {
    total += m.records;
    return { time: new Date(Date.parse(m.finishedAt)).toISOString(), records: total, shard: m.shardId };
  });
  const first = Math.min(...markers.map((m) => Date.parse(m.startedAt)).filter(Number.isFinite));
  const last = Date.parse(finished[finished.length - 1]!.finishedAt);
  const seconds = (last - first) / 1000;
  if (Number.isFinite(first)) values.unshift({ time: new Date(first).toISOString(), records: 0, shard: -1 });
  return {
    id: 'throughput',
    title: 'Throughput over the run',
    caption:
      'Records completed over time (UTC), one point per shard finishing' +
      (seconds > 0 ? `; ${formatNumber(total / seconds)} records/s from first start to last finish.` : '.'),
    spec: {
      width: WIDTH,
      height: HEIGHT,
      data: { values },
      mark: { type: 'line', point: true, interpolate: 'step-after' },
      encoding: {
        x: {
          field: 'time',
          type: 'temporal',
          title: 'time (UTC)',
          scale: { type: 'utc' },
          axis: { format: '%H:%M:%S' },
        },
        y: { field: 'records', type: 'quantitative', title: 'records completed' },
      },
    },
  };
}

/** Compute time per stage, summed over completed shards. */
export function stageTimingsChart(markers: readonly ShardMarker[]): ChartSpec | undefined {
  if (markers.length === 0) return undefined;
  const sum = (f: (m: ShardMarker) => number): number => markers.reduce((n, m) => n + f(m), 0) / 1000;
  const values = [
    { stage: 'read', seconds: sum((m) => m.timings.readMs) },
    { stage: 'decode', seconds: sum((m) => m.timings.decodeMs) },
    { stage: 'infer', seconds: sum((m) => m.timings.inferMs) },
    { stage: 'write', seconds: sum((m) => m.timings.writeMs) },
  ];
  return {
    id: 'stage-timings',
    title: 'Stage timings',
    caption: 'Seconds spent per stage, summed over completed shards (compute time, not wall time).',
    spec: {
      width: WIDTH,
      height: 120,
      data: { values },
      mark: { type: 'bar' },
      encoding: {
        y: { field: 'stage', type: 'nominal', title: null, sort: null },
        x: { field: 'seconds', type: 'quantitative', title: 'seconds' },
        color: { field: 'stage', type: 'nominal', legend: null },
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------

/** Numbers for people: up to 4 significant digits, no exponent for ordinary magnitudes. */
export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (n === 0) return '0';
  const abs = Math.abs(n);
  if (abs >= 1e6 || abs < 1e-3) return n.toExponential(2);
  return String(Number(n.toPrecision(4)));
}
