/**
 * The quality bar a run must meet before it is published, as pure functions over the plan, the shard list and the
 * markers, so every rule can be tested without storage.
 *
 * Two kinds of failure, in this order of precedence:
 * - `ShardsFailed`: more shards than `validation.maxFailedShards` have no usable marker. A shard fails when its
 *   marker is missing, unreadable, or inconsistent with itself or the plan (see `shardIntegrityProblem`): counts
 *   that do not add up mean the outputs cannot be trusted, so the shard is treated as not done.
 * - `ValidationFailed`: the shards that completed do not meet the spec (error rate, declared column types, or
 *   shards disagreeing on a column's type).
 */
import type { Plan, Shard, ShardMarker } from '../runs/types.js';

/** What validation needs of a planned shard: its id and planned records (a shards.index.json entry has them). */
export type PlannedShard = Pick<Shard, 'id' | 'records' | 'recordsExact'>;
import { canonicalColumnType, columnTypeMatches } from './column-types.js';

export type FailureReason = 'ValidationFailed' | 'ShardsFailed';

export interface ValidationCheck {
  /** Stable name: `failedShards`, `errorRate`, `columnTypesConsistent`, `schema.<column>`. */
  readonly name: string;
  readonly description: string;
  /** The limit or the expected value. */
  readonly threshold: number | string;
  /** What the run has. */
  readonly actual: number | string;
  readonly passed: boolean;
  /** Why it failed, in a sentence, when it failed. */
  readonly message?: string;
}

export interface FailedShard {
  readonly shardId: number;
  /** Why the shard does not count, as found at finalize time. */
  readonly problem: string;
}

export interface RunTotals {
  readonly records: number;
  readonly predictions: number;
  readonly errors: number;
  readonly errorsByReason: Readonly<Record<string, number>>;
}

export interface ValidationReport {
  readonly passed: boolean;
  readonly reason?: FailureReason;
  /** One paragraph: what failed with the numbers, or a summary when everything passed. */
  readonly message: string;
  readonly checks: readonly ValidationCheck[];
  /** Ascending by shard id. */
  readonly failedShards: readonly FailedShard[];
  /** Markers of the shards that count, ascending by shard id. Their outputs are the run's outputs. */
  readonly accepted: readonly ShardMarker[];
  /** Over accepted shards only. */
  readonly totals: RunTotals;
  /** Output column -> written (Parquet) type, over accepted shards that wrote rows; first type seen wins. */
  readonly columns: Readonly<Record<string, string>>;
}

/**
 * Validates a run. `markers` are the markers that exist and belong to their shard (see `scanMarkers`);
 * `problems` are shards whose marker exists but was unusable, with why.
 */
export function validateRun(
  plan: Plan,
  shards: readonly PlannedShard[],
  markers: ReadonlyMap<number, ShardMarker>,
  problems: ReadonlyMap<number, string> = new Map(),
): ValidationReport {
  const { validation } = plan.spec;
  const failedShards: FailedShard[] = [];
  const accepted: ShardMarker[] = [];
  for (const shard of shards) {
    const marker = markers.get(shard.id);
    if (!marker) {
      failedShards.push({ shardId: shard.id, problem: problems.get(shard.id) ?? 'no completion marker' });
      continue;
    }
    const problem = shardIntegrityProblem(shard, marker);
    if (problem) failedShards.push({ shardId: shard.id, problem: `corrupt marker: ${problem}` });
    else accepted.push(marker);
  }

  const totals = sumTotals(accepted);
  const checks: ValidationCheck[] = [];

  const failedCount = failedShards.length;
  checks.push({
    name: 'failedShards',
    description: 'shards without a valid completion marker after all rounds',
    threshold: validation.maxFailedShards,
    actual: failedCount,
    passed: failedCount <= validation.maxFailedShards,
    ...(failedCount > validation.maxFailedShards && {
      message:
        `${failedCount} of ${shards.length} shards failed, more than validation.maxFailedShards ` +
        `(${validation.maxFailedShards}): ${describeFailed(failedShards)}`,
    }),
  });

  const rate = totals.records === 0 ? 0 : totals.errors / totals.records;
  checks.push({
    name: 'errorRate',
    description: 'error rows / input records, over completed shards',
    threshold: validation.maxErrorRate,
    actual: rate,
    passed: rate <= validation.maxErrorRate,
    ...(rate > validation.maxErrorRate && {
      message:
        `error rate ${formatRate(rate)} (${totals.errors} errors in ${totals.records} records) exceeds ` +
        `validation.maxErrorRate ${formatRate(validation.maxErrorRate)}${topReasons(totals.errorsByReason)}`,
    }),
  });

  const { columns, conflicts, lacking } = consolidateColumns(accepted);
  checks.push({
    name: 'columnTypesConsistent',
    description: 'every shard wrote each output column with the same type',
    threshold: 0,
    actual: conflicts.length,
    passed: conflicts.length === 0,
    ...(conflicts.length > 0 && {
      message: `shards disagree on column types: ${conflicts.slice(0, 5).join('; ')}${more(conflicts.length, 5)}`,
    }),
  });

  const declared = plan.spec.output.schema ?? {};
  const anyRows = accepted.some(writesRows);
  for (const [column, type] of Object.entries(declared)) {
    const actual = columns[column];
    const lackingShard = lacking.get(column);
    let passed: boolean;
    let shown: string;
    let message: string | undefined;
    if (!anyRows) {
      // Nothing was written, so there is no type to check; the error-rate check speaks for such a run.
      passed = true;
      shown = 'n/a (no rows written)';
    } else if (actual === undefined) {
      passed = false;
      shown = 'missing';
      message = `column "${column}" is declared as ${type} in output.schema but no shard wrote it`;
    } else if (lackingShard !== undefined) {
      passed = false;
      shown = 'missing';
      message = `column "${column}" is declared as ${type} in output.schema but shard ${lackingShard} did not write it`;
    } else {
      passed = columnTypeMatches(type, actual);
      shown = actual;
      if (!passed) {
        const canonical = canonicalColumnType(actual);
        message =
          `column "${column}" is declared as ${type} in output.schema but was written as ${actual}` +
          (canonical ? ` (${canonical})` : '');
      }
    }
    checks.push({
      name: `schema.${column}`,
      description: `output column "${column}" has the declared type`,
      threshold: type,
      actual: shown,
      passed,
      ...(message && { message }),
    });
  }

  const failing = checks.filter((c) => !c.passed);
  const passed = failing.length === 0;
  const reason: FailureReason | undefined = passed
    ? undefined
    : failing.some((c) => c.name === 'failedShards')
      ? 'ShardsFailed'
      : 'ValidationFailed';
  const message = passed
    ? `${accepted.length} of ${shards.length} shards completed: ${totals.records} records, ` +
      `${totals.predictions} predictions, ${totals.errors} errors (${formatRate(rate)})`
    : failing.map((c) => c.message ?? `${c.name} failed`).join('\n');
  return { passed, ...(reason && { reason }), message, checks, failedShards, accepted, totals, columns };
}

/**
 * The report with one more check (one that needs storage, which validateRun does not read): the verdict, the
 * failure reason and the message are recomputed with it.
 */
export function withCheck(report: ValidationReport, check: ValidationCheck): ValidationReport {
  const checks = [...report.checks, check];
  const failing = checks.filter((c) => !c.passed);
  const passed = failing.length === 0;
  const reason: FailureReason | undefined = passed
    ? undefined
    : failing.some((c) => c.name === 'failedShards')
      ? 'ShardsFailed'
      : 'ValidationFailed';
  const { reason: _previous, ...rest } = report;
  return {
    ...rest,
    passed,
    ...(reason && { reason }),
    message: passed ? report.message : failing.map((c) => c.message ?? `${c.name} failed`).join('\n'),
    checks,
  };
}

/**
 * Why a marker cannot be trusted, or undefined when it adds up: every record is a prediction or an error, the
 * output files hold exactly the predictions (and the errors file the errors), and an exactly planned shard
 * processed exactly its records.
 */
export function shardIntegrityProblem(shard: PlannedShard, marker: ShardMarker): string | undefined {
  if (marker.records !== marker.predictions + marker.errors) {
    return (
      `records (${marker.records}) != predictions (${marker.predictions}) + errors (${marker.errors}) ` +
      `in shard ${shard.id}`
    );
  }
  const rows = marker.outputs.reduce((n, f) => n + f.rows, 0);
  if (rows !== marker.predictions) {
    return `output files of shard ${shard.id} hold ${rows} rows but the marker reports ${marker.predictions} predictions`;
  }
  if (marker.errorsFile && marker.errorsFile.rows !== marker.errors) {
    return `errors file of shard ${shard.id} holds ${marker.errorsFile.rows} rows but the marker reports ${marker.errors} errors`;
  }
  const reasons = Object.values(marker.errorsByReason).reduce((n, c) => n + c, 0);
  if (reasons !== marker.errors) {
    return `errorsByReason of shard ${shard.id} sums to ${reasons} but the marker reports ${marker.errors} errors`;
  }
  if (shard.recordsExact && marker.records !== shard.records) {
    return `shard ${shard.id} processed ${marker.records} records but the plan counted exactly ${shard.records}`;
  }
  return undefined;
}

export function sumTotals(markers: readonly ShardMarker[]): RunTotals {
  let records = 0;
  let predictions = 0;
  let errors = 0;
  const errorsByReason: Record<string, number> = {};
  for (const m of markers) {
    records += m.records;
    predictions += m.predictions;
    errors += m.errors;
    for (const [reason, n] of Object.entries(m.errorsByReason))
      errorsByReason[reason] = (errorsByReason[reason] ?? 0) + n;
  }
  return { records, predictions, errors, errorsByReason };
}

/** A rate as a percentage with enough digits to see small limits (0.1% vs 0.001%). */
export function formatRate(rate: number): string {
  return `${Number((rate * 100).toPrecision(3))}%`;
}

function writesRows(m: ShardMarker): boolean {
  return m.predictions > 0;
}

function consolidateColumns(accepted: readonly ShardMarker[]): {
  columns: Record<string, string>;
  conflicts: string[];
  /** Column -> first shard with rows that did not write it. */
  lacking: Map<string, number>;
} {
  const columns: Record<string, string> = {};
  const firstShard = new Map<string, number>();
  const conflicts: string[] = [];
  const writers = accepted.filter(writesRows);
  for (const m of writers) {
    for (const [name, type] of Object.entries(m.columns)) {
      const seen = columns[name];
      if (seen === undefined) {
        columns[name] = type;
        firstShard.set(name, m.shardId);
      } else if (canonicalOrRaw(seen) !== canonicalOrRaw(type)) {
        conflicts.push(
          `"${name}" is ${seen} in shard ${firstShard.get(name)} but ${type} in shard ${m.shardId}`,
        );
      }
    }
  }
  const lacking = new Map<string, number>();
  for (const name of Object.keys(columns)) {
    const without = writers.find((m) => !(name in m.columns));
    if (without) lacking.set(name, without.shardId);
  }
  return { columns, conflicts, lacking };
}

function canonicalOrRaw(type: string): string {
  return canonicalColumnType(type) ?? type.toUpperCase();
}

function describeFailed(failed: readonly FailedShard[]): string {
  const shown = failed.slice(0, 5).map((f) => `shard ${f.shardId}: ${f.problem}`);
  return `${shown.join('; ')}${more(failed.length, 5)}`;
}

function topReasons(byReason: Readonly<Record<string, number>>): string {
  const top = Object.entries(byReason)
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([reason, n]) => `${reason} ${n}`);
  return top.length ? ` (by reason: ${top.join(', ')})` : '';
}

function more(total: number, shown: number): string {
  return total > shown ? `; and ${total - shown} more` : '';
}
