/**
 * What preflight reports: one Problem per mismatch between the job spec and the model or the data, each naming the
 * field, the value, what the model or data has instead, and the fix.
 */

/** Kinds of mismatch; stable, so tests and callers (CLI, Plan, chaos tests) can match on them. */
export type ProblemCode =
  | 'UnknownTensor'
  | 'UnfedTensor'
  | 'DtypeMismatch'
  | 'RankMismatch'
  | 'ColumnCount'
  | 'LabelCount'
  | 'PoolingRank'
  | 'NotNumeric'
  | 'MissingColumn'
  | 'SchemaColumn'
  | 'SchemaType'
  | 'ModelUnreadable'
  | 'InputUnreadable';

export interface Problem {
  readonly code: ProblemCode;
  /** Dotted path of the spec field, e.g. `model.inputs[0].tensor`. */
  readonly field: string;
  /** The value the spec has there, as written. */
  readonly value: string;
  /** What the model or the data has instead. */
  readonly found: string;
  /** What to change. */
  readonly fix: string;
}

/** One line for a person: `model.inputs[0].tensor "featurez": the model's inputs are features; fix: ...`. */
export function formatProblem(p: Problem): string {
  return `${p.field} ${p.value}: ${p.found}; ${p.fix}`;
}

/**
 * The spec does not fit the model or the data. Never retried: the same spec, model and data fail the same way. Its
 * name is what Step Functions sees as the Plan task's error.
 */
export class PreflightError extends Error {
  override readonly name = 'PreflightError';
  constructor(readonly problems: readonly Problem[]) {
    super(
      `The job spec does not fit the ${problems.some((p) => p.code === 'MissingColumn' || p.code === 'InputUnreadable') ? 'model or the input data' : 'model'}` +
        ` (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
        problems.map((p) => `  - ${formatProblem(p)}`).join('\n'),
    );
  }
}

/** Levenshtein distance, for did-you-mean suggestions on names. */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

/** The closest of `candidates` to `name` when close enough to be a typo (case differences count as near). */
export function didYouMean(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = c.toLowerCase() === name.toLowerCase() ? 0.5 : editDistance(name, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  const limit = Math.max(1, Math.floor(name.length / 3));
  return best !== undefined && bestDistance <= limit ? best : undefined;
}

/** `"a", "b" and "c"` (at most `max` names, then "and N more"). */
export function listNames(names: readonly string[], max = 20): string {
  if (names.length === 0) return '(none)';
  const shown = names.slice(0, max).map((n) => JSON.stringify(n));
  const more = names.length > max ? `, and ${names.length - max} more` : '';
  return shown.join(', ') + more;
}
