/**
 * `validation.stopEarly` (issue 10 item 5, ADR 0009): Reconcile stops submitting retry rounds once the error rate of
 * the records that completed is, beyond reasonable doubt, above `validation.maxErrorRate`: the run would fail its
 * error-rate check anyway, and the retry rounds would only add GPU time.
 *
 * Two rules, either one stops the run:
 * - **certain**: the completed shards' error rows alone exceed `maxErrorRate` x the run's planned records (when the
 *   planner knows the count exactly). Even if every other record succeeded, the run's error rate would be above the
 *   bar: no statistics involved.
 * - **confident**: at least `MIN_RECORDS` records completed, and the one-sided lower confidence bound of their error
 *   rate (Wilson score interval, z = 3.09, i.e. 99.9% one-sided) is above `maxErrorRate`. Treating the completed
 *   records as a sample of the run's records, the chance that a run whose true error rate is at or below the bar
 *   shows such a count is under 0.1%. Shards are contiguous ranges of the input, not random samples: errors that
 *   cluster in some files can mislead the estimate, which is why the bound is strict and the minimum is not small.
 */
import { writeRunStop } from '../runs/stop.js';
import type { Plan, ShardMarker } from '../runs/types.js';
import type { ObjectStore } from '../storage/object-store.js';

/** One-sided 99.9% normal quantile. */
export const EARLY_STOP_Z = 3.09;
/** Fewer completed records than this never stop a run on the estimate alone. */
export const EARLY_STOP_MIN_RECORDS = 1_000;

export interface ObservedErrors {
  /** Records of the completed shards. */
  readonly records: number;
  /** Error rows among them. */
  readonly errors: number;
  /** The run's planned records, and whether that count is exact (Parquet metadata, files) or an estimate. */
  readonly plannedRecords: number;
  readonly plannedExact: boolean;
}

export type EarlyStopDecision =
  | { readonly stop: false }
  | {
      readonly stop: true;
      readonly rule: 'certain' | 'confident';
      /** The observed rate and its lower bound (the bound equals the rate under `certain`'s own arithmetic). */
      readonly observedRate: number;
      readonly lowerBound: number;
      readonly message: string;
    };

/** The lower bound of the one-sided Wilson score interval for `errors` successes in `records` trials. */
export function wilsonLowerBound(errors: number, records: number, z = EARLY_STOP_Z): number {
  if (records <= 0) return 0;
  const p = errors / records;
  const z2 = z * z;
  const centre = p + z2 / (2 * records);
  const spread = z * Math.sqrt((p * (1 - p)) / records + z2 / (4 * records * records));
  return Math.max(0, (centre - spread) / (1 + z2 / records));
}

/** Whether the run should stop now, and why, in a sentence that names the numbers and the rule. */
export function earlyStopDecision(observed: ObservedErrors, maxErrorRate: number): EarlyStopDecision {
  const { records, errors, plannedRecords, plannedExact } = observed;
  if (records === 0) return { stop: false };
  const observedRate = errors / records;
  const rate = (x: number): string => `${(x * 100).toPrecision(3)}%`;
  const seen = `${errors} error rows in the ${records} records of the completed shards (${rate(observedRate)})`;
  if (plannedExact && plannedRecords > 0 && errors > maxErrorRate * plannedRecords) {
    return {
      stop: true,
      rule: 'certain',
      observedRate,
      lowerBound: errors / plannedRecords,
      message:
        `validation.stopEarly: ${seen} already exceed validation.maxErrorRate ${rate(maxErrorRate)} of the run's ` +
        `${plannedRecords} records, whatever the remaining shards do; no more rounds`,
    };
  }
  if (records < EARLY_STOP_MIN_RECORDS) return { stop: false };
  const lowerBound = wilsonLowerBound(errors, records);
  if (lowerBound <= maxErrorRate) return { stop: false };
  return {
    stop: true,
    rule: 'confident',
    observedRate,
    lowerBound,
    message:
      `validation.stopEarly: ${seen}; the error rate is at least ${rate(lowerBound)} (99.9% one-sided Wilson ` +
      `bound), above validation.maxErrorRate ${rate(maxErrorRate)}; no more rounds`,
  };
}

/** The observed errors of a run's accepted markers against its planned shards. */
export function observedErrorsOf(
  markers: Iterable<Pick<ShardMarker, 'records' | 'errors'>>,
  planned: Iterable<{ readonly records: number; readonly recordsExact: boolean }>,
): ObservedErrors {
  let records = 0;
  let errors = 0;
  for (const m of markers) {
    records += m.records;
    errors += m.errors;
  }
  let plannedRecords = 0;
  let plannedExact = true;
  for (const s of planned) {
    plannedRecords += s.records;
    plannedExact &&= s.recordsExact;
  }
  return { records, errors, plannedRecords, plannedExact };
}

/**
 * Reconcile's hook: with `validation.stopEarly`, decides whether a run that would go on to another round stops
 * instead, and when it does, writes its stop record (src/runs/stop.ts) for Finalize. Returns the decision's message
 * when the run stops.
 */
export async function stopEarlyIfSure(
  store: ObjectStore,
  plan: Pick<Plan, 'runId' | 'spec'>,
  runUri: string,
  round: number,
  markers: Iterable<Pick<ShardMarker, 'records' | 'errors'>>,
  planned: Iterable<{ readonly records: number; readonly recordsExact: boolean }>,
  now: () => Date,
): Promise<string | undefined> {
  if (!plan.spec.validation.stopEarly) return undefined;
  const decision = earlyStopDecision(observedErrorsOf(markers, planned), plan.spec.validation.maxErrorRate);
  if (!decision.stop) return undefined;
  await writeRunStop(store, runUri, {
    runId: plan.runId,
    code: 'ErrorRateAboveMax',
    message: decision.message,
    round,
    stoppedAt: now().toISOString(),
  });
  return decision.message;
}
