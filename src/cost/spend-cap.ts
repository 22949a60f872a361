/**
 * The spend cap (`run.maxCost`): Reconcile asks it before scheduling a retry round. What the run has spent is the
 * cost of its completed shards (cost.ts); what is left is the shards the round would retry, at this run's measured
 * seconds per record (or the pipeline's history when no shard has completed) and the On-Demand price a retry round
 * pays. When spent + remaining would pass the cap, no round starts: the missing shards fail and the run fails with
 * the reason (`SpendCapReached`), in the manifest, the run's result and the CLI.
 */
import { z } from 'zod';
import type { Plan, ShardIndexEntry, ShardMarker } from '../runs/types.js';
import type { RunError } from '../runs/failures.js';
import type { ObjectStore } from '../storage/object-store.js';
import { runCost } from './cost.js';
import { speedFromHistory, speedOfMarkers, type MeasuredSpeed } from './estimate.js';
import { formatMoney, hourlyPrice, priceTableOf, referenceInstanceType } from './prices.js';

/** The error code a run stopped by its spend cap fails with. */
export const SPEND_CAP_ERROR = 'SpendCapReached';

/** What Reconcile records (`rounds/<r>.reconcile.json` `spendCap`) when the run has a cap and a round to decide. */
export const spendCapRecordSchema = z.object({
  maxCost: z.number().positive(),
  currency: z.string(),
  /** Cost of the completed shards so far. */
  spent: z.number().nonnegative(),
  /** Estimated cost of the retry round; absent when nothing measured the speed yet. */
  remaining: z.number().nonnegative().optional(),
  secondsPerRecord: z.number().nonnegative().optional(),
  speedSource: z.enum(['history', 'this-run', 'none']),
  /** True when the cap stopped the retry round. */
  stopped: z.boolean(),
  message: z.string(),
});
export type SpendCapRecord = z.infer<typeof spendCapRecordSchema>;

export interface SpendCapInput {
  readonly plan: Pick<Plan, 'spec' | 'runId'>;
  /** The run's completed shards. */
  readonly markers: readonly ShardMarker[];
  /** The shards the next round would retry, as planned (their record counts). */
  readonly retry: readonly Pick<ShardIndexEntry, 'records'>[];
  /** The round just reconciled. */
  readonly round: number;
  /** A local run: its retry round is priced as the `local` instance. */
  readonly local: boolean;
  /** When no shard of this run has completed. */
  readonly history?: MeasuredSpeed;
}

/** Whether the cap lets the next round start; undefined when the spec sets no `run.maxCost`. */
export function checkSpendCap(input: SpendCapInput): SpendCapRecord | undefined {
  const { spec } = input.plan;
  const maxCost = spec.run.maxCost;
  if (maxCost === undefined) return undefined;
  const table = priceTableOf(spec.run.prices);
  const money = (x: number): string => formatMoney(x, table.currency);
  const spent = runCost(input.markers, table, spec.run.compute).total;
  const speed = speedOfMarkers(input.markers) ?? input.history;
  const records = input.retry.reduce((n, s) => n + s.records, 0);
  const type = referenceInstanceType(table, spec.run.compute, input.local);
  const price = hourlyPrice(table, type, input.local ? 'local' : 'on-demand') ?? 0;
  const remaining = speed ? ((records * speed.secondsPerRecord) / 3600) * price : undefined;
  const projected = spent + (remaining ?? 0);
  const stopped = projected > maxCost;
  const retrying = `${input.retry.length} shard${input.retry.length === 1 ? '' : 's'} (${records} records)`;
  const message = stopped
    ? `run.maxCost ${money(maxCost)} reached after round ${input.round}: spent ${money(spent)}, and retrying ` +
      `${retrying} On-Demand would cost about ${money(remaining ?? 0)} more; no further round was started. ` +
      'Raise run.maxCost, or resume later with a higher cap'
    : `within run.maxCost ${money(maxCost)}: spent ${money(spent)}` +
      (remaining === undefined
        ? ', the retry round not estimated (no speed measured yet)'
        : `, retrying ${retrying} about ${money(remaining)}`);
  return {
    maxCost,
    currency: table.currency,
    spent,
    ...(remaining !== undefined && { remaining }),
    ...(speed && { secondsPerRecord: speed.secondsPerRecord }),
    speedSource: speed?.source ?? 'none',
    stopped,
    message,
  };
}

/** Reads the history speed only when the run has a cap and no completed shard to measure. */
export async function historySpeedForCap(
  store: ObjectStore,
  plan: Pick<Plan, 'spec'>,
  markers: ReadonlyMap<number, unknown>,
): Promise<MeasuredSpeed | undefined> {
  if (plan.spec.run.maxCost === undefined || markers.size > 0) return undefined;
  try {
    return await speedFromHistory(store, plan.spec.output.uri, plan.spec.name);
  } catch {
    // The cap then weighs what was spent only.
    return undefined;
  }
}

/** The run error of a run the cap stopped: the last reconcile record that stopped a round. */
export function spendCapErrorOf(
  records: readonly { readonly round: number; readonly spendCap?: SpendCapRecord }[],
): RunError | undefined {
  const stopped = [...records].reverse().find((r) => r.spendCap?.stopped);
  return stopped?.spendCap ? { code: SPEND_CAP_ERROR, message: stopped.spendCap.message } : undefined;
}
