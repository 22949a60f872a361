/**
 * The challenger at Finalize (docs/adr/0020): its table is validated like the champion's (markers checked against
 * their files, counts, error rate, written schema), the shards' comparisons are merged into the run's, and the
 * `validation.challenger` thresholds become checks of the run. Every one of these checks is part of the run's
 * verdict: when one fails, the run fails with its reason and neither table is published. When the run passes, the
 * challenger's partition is published as `<name>_challenger` next to the champion's table.
 */
import type { Catalog } from '../catalog/catalog.js';
import { runLayout } from '../runs/layout.js';
import { type Plan, type ShardIndexEntry, type ShardMarker } from '../runs/types.js';
import type { ChallengerValidation } from '../spec/challenger.js';
import type { ObjectStore } from '../storage/object-store.js';
import { publishedRunOf } from '../results/finalize.js';
import { publishRunFiles } from '../results/publish-files.js';
import { modelName } from '../results/manifest.js';
import { forEachLimit, scanMarkers, verifyMarkerOutputs } from '../results/run-files.js';
import { validateRun, withCheck, type ValidationCheck, type ValidationReport } from '../results/validate.js';
import { checkWrittenSchema } from '../results/written-schema.js';
import { mergePartials, summarizeComparison, type Comparison, type ComparisonPartial } from './comparison.js';
import { readComparisonPartial, shardComparisonUri } from './comparison-files.js';
import type { ChallengerManifest } from './manifest-schema.js';
import { challengerLayoutOf, challengerPlanOf } from './plan.js';

export interface ChallengerOutcome {
  /** The challenger's checks, to add to the run's report (`withChallengerChecks`). */
  readonly checks: readonly ValidationCheck[];
  readonly comparison?: Comparison;
  /** Publishes the challenger's table (after the champion's, only when the run passed). */
  publish(catalog: Catalog, finishedAt: string): Promise<void>;
  /** The manifest's challenger section; `publishedAt` when the tables were published. */
  manifest(publishedAt: string | undefined): ChallengerManifest;
}

/** Validates the challenger's table and compares it with the champion's; undefined when the run has none. */
export async function finalizeChallenger(
  store: ObjectStore,
  plan: Plan,
  shards: readonly ShardIndexEntry[],
  championAccepted: readonly ShardMarker[],
  concurrency: number,
): Promise<ChallengerOutcome | undefined> {
  const challengerPlan = challengerPlanOf(plan);
  const layout = challengerLayoutOf(plan);
  if (!challengerPlan || !layout) return undefined;
  const scan = await scanMarkers(store, layout, plan.shardCount, concurrency);
  const listing = await verifyMarkerOutputs(store, layout, scan);
  // Only the champion's accepted shards are the run's records; a challenger shard without its champion is not.
  const championIds = new Set(championAccepted.map((m) => m.shardId));
  for (const id of [...scan.markers.keys()]) {
    if (!championIds.has(id)) {
      scan.markers.delete(id);
      scan.problems.set(id, 'the champion has no accepted marker for this shard');
    }
  }
  let report: ValidationReport = validateRun(challengerPlan, shards, scan.markers, scan.problems);
  if (report.accepted.some((m) => m.predictions > 0)) {
    report = withCheck(
      report,
      await checkWrittenSchema(store, challengerPlan.spec.output.format, report.accepted),
    );
  }
  const checks: ValidationCheck[] = report.checks.map((c) => ({
    ...c,
    name: `challenger.${c.name}`,
    description: `challenger table: ${c.description}`,
    ...(c.message !== undefined ? { message: `challenger table: ${c.message}` } : {}),
  }));

  let comparison: Comparison | undefined;
  let comparisonError: string | undefined;
  try {
    const partials: ComparisonPartial[] = new Array<ComparisonPartial>(report.accepted.length);
    await forEachLimit(
      report.accepted.map((m, i) => [m.shardId, i] as const),
      concurrency,
      async ([id, i]) => {
        partials[i] = await readComparisonPartial(store, shardComparisonUri(layout, id));
      },
    );
    const merged = mergePartials(partials);
    comparison = merged && summarizeComparison(merged);
  } catch (err) {
    comparisonError = err instanceof Error ? err.message : String(err);
  }
  const thresholds = plan.spec.validation.challenger;
  if (thresholds) checks.push(...thresholdChecks(thresholds, comparison, comparisonError));

  const table = challengerPlan.spec.name;
  return {
    checks,
    ...(comparison ? { comparison } : {}),
    async publish(catalog, finishedAt) {
      // Staged files move into the challenger's partition, strays go (docs/adr/0014 §9), as for the champion.
      const published = await publishRunFiles(store, layout, listing, report, concurrency);
      await catalog.publishRun({
        ...publishedRunOf(challengerPlan, layout, published.report, finishedAt),
        // The audit record is the run's (the champion's) manifest.
        manifestUri: runLayout(plan.spec.output.uri, plan.runId, plan.runDate).manifestUri,
      });
    },
    manifest(publishedAt) {
      return {
        model: { ...challengerPlan.model, name: modelName(challengerPlan.model) },
        table,
        partitionUri: layout.partitionUri,
        counts: {
          records: report.totals.records,
          predictions: report.totals.predictions,
          errors: report.totals.errors,
          errorsByReason: { ...report.totals.errorsByReason },
        },
        ...(comparison ? { comparison } : {}),
        ...(comparisonError !== undefined ? { comparisonError } : {}),
        checks,
        catalog: {
          table,
          published: publishedAt !== undefined,
          ...(publishedAt !== undefined ? { publishedAt } : {}),
        },
      };
    },
  };
}

/** The run's report with the challenger's checks added (its verdict recomputed). */
export function withChallengerChecks(
  report: ValidationReport,
  outcome: ChallengerOutcome | undefined,
): ValidationReport {
  let result = report;
  for (const check of outcome?.checks ?? []) result = withCheck(result, check);
  return result;
}

const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;

/**
 * One check per threshold and compared column. A threshold that no compared column can answer (no label column
 * both models write, for minAgreement) fails: a promotion gate that cannot be evaluated must not pass silently.
 */
export function thresholdChecks(
  thresholds: ChallengerValidation,
  comparison: Comparison | undefined,
  comparisonError: string | undefined,
): ValidationCheck[] {
  const checks: ValidationCheck[] = [];
  const unavailable = (name: string, threshold: number, what: string): ValidationCheck => ({
    name,
    description: what,
    threshold,
    actual: 'n/a',
    passed: false,
    message: comparisonError
      ? `${name}: the comparison could not be computed (${comparisonError}), so the threshold cannot be checked`
      : `${name}: ${what} cannot be measured: the models write no such column under the same name, or no record ` +
        'was predicted by both',
  });
  const gate = (
    name: string,
    threshold: number | undefined,
    what: string,
    measured: readonly (readonly [column: string, actual: number])[],
    passes: (actual: number, threshold: number) => boolean,
    failure: (column: string, actual: number, threshold: number) => string,
  ): void => {
    if (threshold === undefined) return;
    if (measured.length === 0) checks.push(unavailable(name, threshold, what));
    for (const [column, actual] of measured) {
      const passed = passes(actual, threshold);
      checks.push({
        name: `${name}.${column}`,
        description: `${what} (${column})`,
        threshold,
        actual,
        passed,
        ...(passed ? {} : { message: failure(column, actual, threshold) }),
      });
    }
  };
  const measured = <T>(
    columns: Readonly<Record<string, T>> | undefined,
    value: (entry: T) => number | null,
  ): [string, number][] =>
    Object.entries(columns ?? {}).flatMap(([column, entry]) => {
      const actual = value(entry);
      return actual === null ? [] : [[column, actual] as [string, number]];
    });
  gate(
    'challenger.minAgreement',
    thresholds.minAgreement,
    'label agreement between champion and challenger',
    measured(comparison?.labels, (l) => l.agreement),
    (actual, min) => actual >= min,
    (column, actual, min) =>
      `champion and challenger agree on ${pct(actual)} of ${column} labels (${comparison!.labels[column]!.agreeing} ` +
      `of ${comparison!.compared} records), below validation.challenger.minAgreement ${pct(min)}; ` +
      'the challenger is not published as a promotion candidate',
  );
  gate(
    'challenger.maxMeanAbsScoreDiff',
    thresholds.maxMeanAbsScoreDiff,
    'mean absolute score difference (challenger - champion)',
    measured(comparison?.scores, (s) => s.meanAbs),
    (actual, max) => actual <= max,
    (column, actual, max) =>
      `the mean absolute difference of ${column} is ${actual.toPrecision(4)}, above validation.challenger.maxMeanAbsScoreDiff ${max}`,
  );
  gate(
    'challenger.minMeanCosine',
    thresholds.minMeanCosine,
    'mean cosine similarity of champion and challenger vectors',
    measured(comparison?.cosine, (s) => s.mean),
    (actual, min) => actual >= min,
    (column, actual, min) =>
      `the mean cosine similarity of ${column} is ${actual.toFixed(4)}, below validation.challenger.minMeanCosine ${min}`,
  );
  return checks;
}
