/**
 * What Finalize does about cost, in one place: price the completed shards, say when the spend cap stopped the run,
 * and carry the cost to the catalogue's runs table.
 */
import type { PublishedRun } from '../catalog/catalog.js';
import type { RunError } from '../runs/failures.js';
import type { Plan, ShardMarker } from '../runs/types.js';
import { runCost, type RunCost } from './cost.js';
import { priceTableOf } from './prices.js';
import { spendCapErrorOf, type SpendCapRecord } from './spend-cap.js';

export interface PricedRun {
  readonly cost: RunCost;
  /** Set when the spend cap stopped a retry round. */
  readonly error?: RunError;
}

/** The run's cost from its accepted markers, with the spend cap's stop (from the reconcile records) when it fired. */
export function priceRun(
  plan: Pick<Plan, 'spec'>,
  accepted: readonly ShardMarker[],
  records: readonly { readonly round: number; readonly spendCap?: SpendCapRecord }[],
): PricedRun {
  const cost = runCost(accepted, priceTableOf(plan.spec.run.prices), plan.spec.run.compute);
  const stop = [...records].reverse().find((r) => r.spendCap?.stopped);
  const error = spendCapErrorOf(records);
  if (!stop?.spendCap || !error) return { cost };
  const cap = stop.spendCap;
  return {
    cost: {
      ...cost,
      spendCap: {
        maxCost: cap.maxCost,
        spent: cap.spent,
        remaining: cap.remaining ?? 0,
        round: stop.round,
        message: cap.message,
      },
    },
    error,
  };
}

/**
 * Writes the cost into the manifest; a run the cap stopped (and that failed) fails with the cap as its error, and
 * its message says so.
 */
export function applyRunCost<
  M extends { cost?: RunCost; error?: RunError; message: string; validation: { passed: boolean } },
>(manifest: M, priced: PricedRun): void {
  manifest.cost = priced.cost;
  if (priced.error && !manifest.validation.passed) {
    manifest.error = priced.error;
    manifest.message = `${manifest.message}; ${priced.error.message}`;
  }
}

/** The published run with its cost, for the runs table. */
export function withRunCost(run: PublishedRun, cost: RunCost): PublishedRun {
  return { ...run, cost: cost.total, costCurrency: cost.currency };
}
