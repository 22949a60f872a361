/**
 * Champion vs challenger, record by record (docs/adr/0020). The worker adds each written batch of both models'
 * predictions (same records, input order) to a `ComparisonAccumulator`, stores one partial per output chunk, and
 * merges a shard's partials into one; Finalize merges the shards' and turns the result into the manifest's
 * comparison (`summarizeComparison`) and the `validation.challenger` checks.
 *
 * What is compared is decided by the columns both models write under the same name:
 * - label columns (an argmax `as` of both): agreement rate and confusion matrix (champion label -> challenger label);
 * - numeric scalar columns (float, double; `score`): the difference challenger - champion (mean, mean absolute,
 *   quantiles);
 * - numeric vector columns (pooled embeddings, probabilities): cosine similarity.
 * The records where they disagree most (labels first, then the largest score differences and lowest cosines) are
 * kept with their identity (`_source`, `_offset`, the id column).
 */
import { z } from 'zod';
import type { SourceRecord } from '../formats/records.js';
import type { OutputColumnTypeName } from '../spec/model-io.js';
import { NumericSketch, sketchSchema } from './sketch.js';

/** Disagreeing records kept per shard, and in the run's comparison. */
export const DISAGREEMENT_SAMPLE = 20;
export const QUANTILES = [0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1] as const;

export interface CompareColumns {
  readonly labels: readonly string[];
  readonly scores: readonly string[];
  readonly vectors: readonly string[];
}

interface ColumnInfo {
  readonly name: string;
  readonly type: OutputColumnTypeName;
}

/** The columns compared: those both models write, by kind (see the module comment). */
export function compareColumnsOf(
  champion: readonly ColumnInfo[],
  challenger: readonly ColumnInfo[],
  labelColumns: { readonly champion: ReadonlySet<string>; readonly challenger: ReadonlySet<string> },
): CompareColumns {
  const theirs = new Map(challenger.map((c) => [c.name, c.type]));
  const labels: string[] = [];
  const scores: string[] = [];
  const vectors: string[] = [];
  for (const { name, type } of champion) {
    const other = theirs.get(name);
    if (other === undefined) continue;
    if (labelColumns.champion.has(name) && labelColumns.challenger.has(name)) labels.push(name);
    else if ((type === 'float' || type === 'double') && (other === 'float' || other === 'double'))
      scores.push(name);
    else if (/^array<(float|double)>$/.test(type) && /^array<(float|double)>$/.test(other))
      vectors.push(name);
  }
  return { labels, scores, vectors };
}

const identityValue = z.union([z.string(), z.number(), z.boolean(), z.null()]);

export const disagreementSchema = z.strictObject({
  /** How much they disagree: labels that differ + absolute score differences + (1 - cosine) per vector. */
  magnitude: z.number().nonnegative(),
  _source: z.string(),
  _offset: z.number(),
  id: identityValue.optional(),
  /** The compared label and score values of each model (vectors are shown by their cosine). */
  champion: z.record(z.string(), identityValue),
  challenger: z.record(z.string(), identityValue),
  cosine: z.record(z.string(), z.number()).optional(),
});
export type Disagreement = z.infer<typeof disagreementSchema>;

/** A partial comparison (a chunk's, a shard's, a run's): what is merged. */
export const comparisonPartialSchema = z.strictObject({
  version: z.literal(1),
  columns: z.strictObject({
    labels: z.array(z.string()),
    scores: z.array(z.string()),
    vectors: z.array(z.string()),
  }),
  /** Records both models predicted (the records compared). */
  compared: z.number().int().nonnegative(),
  /** Records only the champion predicted (the challenger failed on them), and only the challenger. */
  championOnly: z.number().int().nonnegative(),
  challengerOnly: z.number().int().nonnegative(),
  /** Records neither predicted. */
  neither: z.number().int().nonnegative(),
  /** Per label column: champion label -> challenger label -> records. */
  confusion: z.record(z.string(), z.record(z.string(), z.record(z.string(), z.number().int().nonnegative()))),
  /** Per score column: challenger - champion. */
  scoreDiffs: z.record(z.string(), sketchSchema),
  /** Per vector column: cosine similarity. */
  cosines: z.record(z.string(), sketchSchema),
  /** Most disagreeing first. */
  disagreements: z.array(disagreementSchema),
});
export type ComparisonPartial = z.infer<typeof comparisonPartialSchema>;

/** One side of a batch: its records' rows (-1: an error row) and its prediction columns. */
export interface ComparedSide {
  readonly rowOf: Int32Array;
  readonly columns: readonly string[];
  readonly predictions: readonly (readonly unknown[])[];
}

const labelText = (v: unknown): string => {
  if (v === null || v === undefined) return '(null)';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return v.toString();
  return JSON.stringify(v);
};

function scalar(v: unknown): string | number | boolean | null {
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  if (typeof v === 'bigint') return Number(v);
  return null;
}

function cosine(a: unknown, b: unknown): number | undefined {
  if (!isNumeric(a) || !isNumeric(b) || a.length !== b.length || a.length === 0) return undefined;
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = Number(a[i]);
    const y = Number(b[i]);
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  if (na === 0 || nb === 0) return na === nb ? 1 : 0;
  return dot / Math.sqrt(na * nb);
}

function isNumeric(v: unknown): v is ArrayLike<number> {
  return Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));
}

export class ComparisonAccumulator {
  private compared = 0;
  private championOnly = 0;
  private challengerOnly = 0;
  private neither = 0;
  private readonly confusion: Record<string, Record<string, Record<string, number>>> = {};
  private readonly scoreDiffs = new Map<string, NumericSketch>();
  private readonly cosines = new Map<string, NumericSketch>();
  private disagreements: Disagreement[] = [];

  constructor(
    readonly columns: CompareColumns,
    private readonly idColumn?: string,
  ) {
    for (const c of columns.labels) this.confusion[c] = {};
    for (const c of columns.scores) this.scoreDiffs.set(c, new NumericSketch());
    for (const c of columns.vectors) this.cosines.set(c, new NumericSketch());
  }

  get records(): number {
    return this.compared + this.championOnly + this.challengerOnly + this.neither;
  }

  /** Adds one batch: both sides hold the same records, in the same order. */
  add(records: readonly SourceRecord[], champion: ComparedSide, challenger: ComparedSide): void {
    const col = (side: ComparedSide, name: string): readonly unknown[] | undefined =>
      side.predictions[side.columns.indexOf(name)];
    const labels = this.columns.labels.map((c) => [c, col(champion, c), col(challenger, c)] as const);
    const scores = this.columns.scores.map((c) => [c, col(champion, c), col(challenger, c)] as const);
    const vectors = this.columns.vectors.map((c) => [c, col(champion, c), col(challenger, c)] as const);
    let floor = this.disagreements.length >= DISAGREEMENT_SAMPLE ? this.disagreements.at(-1)!.magnitude : 0;
    for (let i = 0; i < records.length; i++) {
      const a = champion.rowOf[i]!;
      const b = challenger.rowOf[i]!;
      if (a < 0 || b < 0) {
        if (a >= 0) this.championOnly++;
        else if (b >= 0) this.challengerOnly++;
        else this.neither++;
        continue;
      }
      this.compared++;
      let magnitude = 0;
      for (const [name, ours, theirs] of labels) {
        const x = labelText(ours?.[a]);
        const y = labelText(theirs?.[b]);
        const row = (this.confusion[name]![x] ??= {});
        row[y] = (row[y] ?? 0) + 1;
        if (x !== y) magnitude += 1;
      }
      for (const [name, ours, theirs] of scores) {
        const x = Number(ours?.[a]);
        const y = Number(theirs?.[b]);
        if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
        this.scoreDiffs.get(name)!.add(y - x);
        magnitude += Math.abs(y - x);
      }
      const cos: Record<string, number> = {};
      for (const [name, ours, theirs] of vectors) {
        const c = cosine(ours?.[a], theirs?.[b]);
        if (c === undefined) continue;
        this.cosines.get(name)!.add(c);
        cos[name] = c;
        magnitude += 1 - c;
      }
      if (magnitude <= floor || magnitude <= 0) continue;
      const rec = records[i]!;
      const idValue = this.idColumn && !rec.error ? scalar(rec.values[this.idColumn]) : undefined;
      const pick = (side: ComparedSide, row: number): Record<string, string | number | boolean | null> =>
        Object.fromEntries(
          [...this.columns.labels, ...this.columns.scores].map((c) => [c, scalar(col(side, c)?.[row])]),
        );
      this.disagreements.push({
        magnitude,
        _source: rec.source,
        _offset: rec.offset,
        ...(idValue !== undefined ? { id: idValue } : {}),
        champion: pick(champion, a),
        challenger: pick(challenger, b),
        ...(Object.keys(cos).length > 0 ? { cosine: cos } : {}),
      });
      this.disagreements = topDisagreements(this.disagreements);
      if (this.disagreements.length >= DISAGREEMENT_SAMPLE) floor = this.disagreements.at(-1)!.magnitude;
    }
  }

  toPartial(): ComparisonPartial {
    return {
      version: 1,
      columns: {
        labels: [...this.columns.labels],
        scores: [...this.columns.scores],
        vectors: [...this.columns.vectors],
      },
      compared: this.compared,
      championOnly: this.championOnly,
      challengerOnly: this.challengerOnly,
      neither: this.neither,
      confusion: this.confusion,
      scoreDiffs: Object.fromEntries([...this.scoreDiffs].map(([c, s]) => [c, s.toJSON()])),
      cosines: Object.fromEntries([...this.cosines].map(([c, s]) => [c, s.toJSON()])),
      disagreements: this.disagreements,
    };
  }
}

/** Most disagreeing first; ties by source and offset, so the sample is the same whatever the merge order. */
function topDisagreements(list: readonly Disagreement[]): Disagreement[] {
  return [...list]
    .sort(
      (x, y) =>
        y.magnitude - x.magnitude ||
        (x._source < y._source ? -1 : x._source > y._source ? 1 : 0) ||
        x._offset - y._offset,
    )
    .slice(0, DISAGREEMENT_SAMPLE);
}

/** Partials merged (chunks of a shard, shards of a run), in the order given. Undefined for an empty list. */
export function mergePartials(partials: readonly ComparisonPartial[]): ComparisonPartial | undefined {
  const first = partials[0];
  if (!first) return undefined;
  const confusion: ComparisonPartial['confusion'] = {};
  const scoreDiffs = new Map<string, NumericSketch>();
  const cosines = new Map<string, NumericSketch>();
  let disagreements: Disagreement[] = [];
  const merged = { compared: 0, championOnly: 0, challengerOnly: 0, neither: 0 };
  for (const p of partials) {
    merged.compared += p.compared;
    merged.championOnly += p.championOnly;
    merged.challengerOnly += p.challengerOnly;
    merged.neither += p.neither;
    for (const [column, rows] of Object.entries(p.confusion)) {
      const into = (confusion[column] ??= {});
      for (const [x, cells] of Object.entries(rows)) {
        const row = (into[x] ??= {});
        for (const [y, n] of Object.entries(cells)) row[y] = (row[y] ?? 0) + n;
      }
    }
    for (const [target, source] of [
      [scoreDiffs, p.scoreDiffs],
      [cosines, p.cosines],
    ] as const) {
      for (const [column, data] of Object.entries(source)) {
        const sketch = target.get(column);
        if (sketch) sketch.merge(NumericSketch.from(data));
        else target.set(column, NumericSketch.from(data));
      }
    }
    disagreements = topDisagreements([...disagreements, ...p.disagreements]);
  }
  return {
    version: 1,
    columns: first.columns,
    ...merged,
    confusion,
    scoreDiffs: Object.fromEntries([...scoreDiffs].map(([c, s]) => [c, s.toJSON()])),
    cosines: Object.fromEntries([...cosines].map(([c, s]) => [c, s.toJSON()])),
    disagreements,
  };
}

const statsSchema = z.strictObject({
  count: z.number().int().nonnegative(),
  mean: z.number().nullable(),
  meanAbs: z.number().nullable(),
  /** "p0", "p1", "p5", ... "p100" -> value. */
  quantiles: z.record(z.string(), z.number()),
});

/** The comparison as the manifest records it (and the report shows). */
export const comparisonSchema = z.strictObject({
  compared: z.number().int().nonnegative(),
  championOnly: z.number().int().nonnegative(),
  challengerOnly: z.number().int().nonnegative(),
  neither: z.number().int().nonnegative(),
  labels: z.record(
    z.string(),
    z.strictObject({
      /** Share of compared records with the same label; null when none were compared. */
      agreement: z.number().nullable(),
      agreeing: z.number().int().nonnegative(),
      confusion: z.record(z.string(), z.record(z.string(), z.number().int().nonnegative())),
    }),
  ),
  /** challenger - champion. */
  scores: z.record(z.string(), statsSchema),
  cosine: z.record(z.string(), statsSchema),
  disagreements: z.array(disagreementSchema),
});
export type Comparison = z.infer<typeof comparisonSchema>;

function statsOf(data: z.infer<typeof sketchSchema>): z.infer<typeof statsSchema> {
  const sketch = NumericSketch.from(data);
  const quantiles: Record<string, number> = {};
  for (const p of QUANTILES) {
    const q = sketch.quantile(p);
    if (q !== undefined) quantiles[`p${Math.round(p * 100)}`] = q;
  }
  return { count: sketch.size, mean: sketch.mean() ?? null, meanAbs: sketch.meanAbs() ?? null, quantiles };
}

export function summarizeComparison(partial: ComparisonPartial): Comparison {
  const labels: Comparison['labels'] = {};
  for (const [column, matrix] of Object.entries(partial.confusion)) {
    let total = 0;
    let agreeing = 0;
    for (const [x, row] of Object.entries(matrix)) {
      for (const [y, n] of Object.entries(row)) {
        total += n;
        if (x === y) agreeing += n;
      }
    }
    labels[column] = { agreement: total > 0 ? agreeing / total : null, agreeing, confusion: matrix };
  }
  return {
    compared: partial.compared,
    championOnly: partial.championOnly,
    challengerOnly: partial.challengerOnly,
    neither: partial.neither,
    labels,
    scores: Object.fromEntries(Object.entries(partial.scoreDiffs).map(([c, s]) => [c, statsOf(s)])),
    cosine: Object.fromEntries(Object.entries(partial.cosines).map(([c, s]) => [c, statsOf(s)])),
    disagreements: partial.disagreements,
  };
}
