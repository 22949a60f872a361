/**
 * The run report's challenger section (docs/adr/0020): which model was the challenger, where its table is, its
 * checks, and the comparison with the champion: label agreement with the confusion matrix, score differences,
 * cosine similarity of vectors, and the records where the models disagree most, with their identity.
 */
import type { ChallengerManifest } from '../challenger/manifest-schema.js';

/** Labels of a confusion matrix shown at most (the most frequent, by champion count then challenger count). */
export const MAX_CONFUSION_LABELS = 20;

const esc = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const num = (x: number | null | undefined, digits = 4): string =>
  x === null || x === undefined
    ? 'n/a'
    : Number.isInteger(x)
      ? x.toLocaleString('en-US')
      : x.toPrecision(digits);
const pct = (x: number | null): string => (x === null ? 'n/a' : `${(x * 100).toFixed(2)}%`);

/** The section's HTML; empty when the run had no challenger. */
export function challengerSection(challenger: ChallengerManifest | undefined): string {
  if (!challenger) return '';
  const model = challenger.model;
  const parts: string[] = [];
  parts.push(
    `<dl><dt>challenger model</dt><dd>${esc(model.name)}${model.version !== undefined ? ` version ${model.version}` : ''}` +
      `${model.status ? ` (${esc(model.status)})` : ''}</dd>` +
      `<dt>challenger sha256</dt><dd>${esc(model.sha256)}</dd>` +
      `<dt>table</dt><dd><code>${esc(challenger.table)}</code>${challenger.catalog.published ? ' (published)' : ' (not published)'}</dd>` +
      `<dt>output</dt><dd>${esc(challenger.partitionUri)}</dd>` +
      `<dt>records</dt><dd>${num(challenger.counts.records)} = ${num(challenger.counts.predictions)} predictions + ` +
      `${num(challenger.counts.errors)} errors</dd></dl>`,
  );
  const failing = challenger.checks.filter((c) => !c.passed);
  if (challenger.checks.length > 0) {
    parts.push(
      `<p>${challenger.checks.length - failing.length} of ${challenger.checks.length} challenger checks passed.</p>`,
    );
    if (failing.length > 0) {
      parts.push(
        `<ul class="challenger-failures">${failing.map((c) => `<li>${esc(c.message ?? c.name)}</li>`).join('')}</ul>`,
      );
    }
  }
  const c = challenger.comparison;
  if (!c) {
    parts.push(
      `<p>No comparison${challenger.comparisonError ? `: ${esc(challenger.comparisonError)}` : ''}.</p>`,
    );
    return `<section id="challenger"><h2>Champion vs challenger</h2>${parts.join('')}</section>`;
  }
  parts.push(
    `<p>${num(c.compared)} records predicted by both models; ${num(c.championOnly)} only by the champion, ` +
      `${num(c.challengerOnly)} only by the challenger, ${num(c.neither)} by neither.</p>`,
  );
  for (const [column, label] of Object.entries(c.labels)) {
    parts.push(
      `<h3>Label agreement: ${esc(column)}</h3><p data-agreement="${label.agreement ?? ''}">` +
        `${pct(label.agreement)} agree (${num(label.agreeing)} of ${num(c.compared)}).</p>${confusionTable(label.confusion)}`,
    );
  }
  const stats = (
    title: string,
    entries: [
      string,
      { count: number; mean: number | null; meanAbs: number | null; quantiles: Record<string, number> },
    ][],
  ): string => {
    if (entries.length === 0) return '';
    const keys = [...new Set(entries.flatMap(([, s]) => Object.keys(s.quantiles)))];
    const head = `<tr><th>column</th><th>records</th><th>mean</th><th>mean |x|</th>${keys.map((k) => `<th>${esc(k)}</th>`).join('')}</tr>`;
    const rows = entries
      .map(
        ([name, s]) =>
          `<tr><td>${esc(name)}</td><td>${num(s.count)}</td><td>${num(s.mean)}</td><td>${num(s.meanAbs)}</td>` +
          `${keys.map((k) => `<td>${num(s.quantiles[k])}</td>`).join('')}</tr>`,
      )
      .join('');
    return `<h3>${esc(title)}</h3><table class="challenger-stats"><thead>${head}</thead><tbody>${rows}</tbody></table>`;
  };
  parts.push(stats('Score difference (challenger − champion)', Object.entries(c.scores)));
  parts.push(stats('Cosine similarity of vectors', Object.entries(c.cosine)));
  if (c.disagreements.length > 0) {
    const columns = [...new Set(c.disagreements.flatMap((d) => Object.keys(d.champion)))];
    const head =
      `<tr><th>id</th><th>_source</th><th>_offset</th><th>disagreement</th>` +
      columns.map((k) => `<th>${esc(k)} (champion → challenger)</th>`).join('') +
      `</tr>`;
    const rows = c.disagreements
      .map(
        (d) =>
          `<tr><td>${esc(String(d.id ?? ''))}</td><td>${esc(d._source)}</td><td>${d._offset}</td><td>${num(d.magnitude)}</td>` +
          columns
            .map(
              (k) => `<td>${esc(String(d.champion[k] ?? ''))} → ${esc(String(d.challenger[k] ?? ''))}</td>`,
            )
            .join('') +
          `</tr>`,
      )
      .join('');
    parts.push(
      `<h3>Where they disagree most</h3><table class="challenger-disagreements"><thead>${head}</thead><tbody>${rows}</tbody></table>`,
    );
  }
  return `<section id="challenger"><h2>Champion vs challenger</h2>${parts.join('')}</section>`;
}

function confusionTable(matrix: Readonly<Record<string, Readonly<Record<string, number>>>>): string {
  const totals = new Map<string, number>();
  for (const [x, row] of Object.entries(matrix)) {
    for (const [y, n] of Object.entries(row)) {
      totals.set(x, (totals.get(x) ?? 0) + n);
      totals.set(y, (totals.get(y) ?? 0) + n);
    }
  }
  const labels = [...totals.keys()]
    .sort((a, b) => totals.get(b)! - totals.get(a)! || (a < b ? -1 : 1))
    .slice(0, MAX_CONFUSION_LABELS);
  const head = `<tr><th>champion \\ challenger</th>${labels.map((l) => `<th>${esc(l)}</th>`).join('')}</tr>`;
  const rows = labels
    .map(
      (x) =>
        `<tr><th>${esc(x)}</th>${labels
          .map((y) => `<td${x === y ? ' class="diagonal"' : ''}>${num(matrix[x]?.[y] ?? 0)}</td>`)
          .join('')}</tr>`,
    )
    .join('');
  const more =
    totals.size > labels.length
      ? `<p>${totals.size - labels.length} less frequent labels not shown.</p>`
      : '';
  return `<table class="confusion"><thead>${head}</thead><tbody>${rows}</tbody></table>${more}`;
}
