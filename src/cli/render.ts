/** Text renderings of run status and history, shared by `status`, `watch`, `runs` for both backends. */
import { formatMoney } from '../cost/prices.js';
import { fmt, formatDuration } from '../local/progress.js';
import type { RunList, RunStatusReport } from '../operate/backend.js';
import type { Style } from './io.js';
import { statusStyle } from './io.js';

type Paint = (style: Style, text: string) => string;

export function renderStatus(s: RunStatusReport, paint: Paint): string[] {
  const p = s.progress;
  const lines = [
    `Run ${s.runId} ${paint(statusStyle(s.status), s.status)} · ${s.pipeline} · ${formatDuration(s.durationMs / 1000)}` +
      (p.planned
        ? ` · round ${p.round}${p.round > 0 ? ` (${p.roundShards} shards retried)` : ''}`
        : ' · planning'),
  ];
  if (p.planned) {
    lines.push(
      `  shards     ${fmt(p.succeeded)}/${fmt(p.shards)} succeeded · ${fmt(p.running)} running · ${fmt(p.pending)} pending · ${fmt(p.failed)} failed` +
        (p.failedShardIds.length
          ? ` (${p.failedShardIds.slice(0, 10).join(', ')}${p.failedShardIds.length > 10 ? ', ...' : ''})`
          : ''),
    );
    if (s.batch) {
      lines.push(
        `  batch      ${Object.entries(s.batch)
          .map(([k, v]) => `${k} ${fmt(v)}`)
          .join(' · ')}`,
      );
    }
    const eta = s.etaSeconds !== undefined ? ` · ETA ${formatDuration(s.etaSeconds)}` : '';
    lines.push(
      `  records    ${fmt(p.recordsDone)}/${p.recordsExact ? '' : '~'}${fmt(p.recordsPlanned)} · ${fmt(Math.round(s.recordsPerSecond))} rec/s${eta}`,
    );
    const reasons = Object.entries(p.errorsByReason).map(([k, v]) => `${k} ${fmt(v)}`);
    lines.push(`  errors     ${fmt(p.errors)}${reasons.length ? ` (${reasons.join(', ')})` : ''}`);
    const failures = Object.entries(p.shardFailuresByReason).map(([k, v]) => `${k}: ${fmt(v)}`);
    if (failures.length) lines.push(`  shard failures  ${failures.join('; ')}`);
  }
  if (s.error) lines.push(`  reason     ${s.error}${s.cause ? `: ${s.cause.split('\n')[0]}` : ''}`);
  return lines;
}

export function renderRuns(list: RunList, paint: Paint): string[] {
  if (list.runs.length === 0) return ['No runs.'];
  const rows = list.runs.map((r) => [
    r.runId,
    r.pipeline,
    r.status,
    r.startedAt.replace(/\.\d+Z$/, 'Z'),
    r.durationMs !== undefined ? formatDuration(r.durationMs / 1000) : '-',
    r.records !== undefined ? fmt(r.records) : '-',
    r.errors !== undefined ? fmt(r.errors) : '-',
    r.modelVersion ?? '-',
    r.cost !== undefined ? formatMoney(r.cost, r.costCurrency ?? 'USD') : '-',
    r.failure ?? '',
  ]);
  const header = [
    'RUN',
    'PIPELINE',
    'STATUS',
    'STARTED',
    'DURATION',
    'RECORDS',
    'ERRORS',
    'MODEL',
    'COST',
    'FAILURE',
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[], color = false): string =>
    cells
      .map((c, i) => {
        const padded = i === cells.length - 1 ? c : c.padEnd(widths[i]!);
        return color && i === 2 ? paint(statusStyle(c), padded) : padded;
      })
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map((r) => line(r, true))];
}
