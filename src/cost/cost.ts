/**
 * What a run cost: the sum over its completed shards of the seconds each kept its instance busy times that instance's
 * hourly price (prices.ts), split by Spot / On-Demand, by round (the first round's queue is Spot first, retry rounds
 * go On-Demand, ADR 0012) and by instance type. Written into the manifest (`manifest.cost`), the runs tables and a
 * metric.
 *
 * What it leaves out, on purpose: attempts that never wrote a marker (a reclaimed host's lost work, a failed shard),
 * the time an instance waits for its next job or to scale in, and a shared CPU instance's other jobs (a shard is
 * charged the whole instance). Lambda, Step Functions and S3 requests are negligible next to instance hours (see
 * prices.ts). It is an estimate of compute, not the bill.
 */
import { z } from 'zod';
import type { ShardMarker } from '../runs/types.js';
import { hourlyPrice, LIFECYCLES, referenceInstanceType, type Lifecycle, type PriceTable } from './prices.js';

const count = z.number().int().nonnegative();
const amount = z.number().nonnegative();

const costPartSchema = z.object({ shards: count, seconds: amount, cost: amount });
export type CostPart = z.infer<typeof costPartSchema>;

/** `manifest.cost`. */
export const runCostSchema = z.object({
  currency: z.string(),
  /** Sum of the completed shards' costs. */
  total: amount,
  /** Sum of the completed shards' seconds (every attempt that contributed to a marker). */
  shardSeconds: amount,
  /** The price table the run was priced with. */
  prices: z.object({ region: z.string(), asOf: z.string(), source: z.string() }),
  byLifecycle: z.partialRecord(z.enum(LIFECYCLES), costPartSchema),
  /** Per round; `queue` is where the round's jobs went: `first` (Spot, then On-Demand) or `on-demand`. */
  byRound: z.array(costPartSchema.extend({ round: count, queue: z.enum(['first', 'on-demand']) })),
  /** Per instance type, with the hourly price applied (On-Demand or Spot: the lifecycle of its shards). */
  byInstanceType: z.record(z.string(), costPartSchema),
  /**
   * Shards whose instance type the table does not price (or could not be read): priced at `referenceType`, the
   * dearest default type of the run's compute, so the total errs high.
   */
  assumed: z.object({ shards: count, referenceType: z.string() }).optional(),
  /** Set when `run.maxCost` stopped the retry rounds (spend-cap.ts). */
  spendCap: z
    .object({
      maxCost: amount,
      spent: amount,
      remaining: amount,
      round: count,
      message: z.string(),
    })
    .optional(),
});
export type RunCost = z.infer<typeof runCostSchema>;

/** A shard's seconds: the marker's own, or its total timing for markers written before `seconds` was recorded. */
export function shardSeconds(marker: Pick<ShardMarker, 'seconds' | 'timings'>): number {
  return marker.seconds ?? marker.timings.totalMs / 1000;
}

/** What one shard cost, and at which type and lifecycle it was priced. */
export function shardCost(
  marker: Pick<ShardMarker, 'seconds' | 'timings' | 'instance'>,
  table: PriceTable,
  compute: 'gpu' | 'cpu',
): { seconds: number; cost: number; type: string; lifecycle: Lifecycle; assumed: boolean } {
  const seconds = shardSeconds(marker);
  const lifecycle: Lifecycle = marker.instance?.lifecycle ?? 'unknown';
  const type = marker.instance?.type ?? 'unknown';
  let price = hourlyPrice(table, type, lifecycle);
  let assumed = false;
  let pricedType = type;
  if (price === undefined) {
    // An unknown lifecycle is priced On-Demand: the dearer of the two.
    pricedType = referenceInstanceType(table, compute, false);
    price = hourlyPrice(table, pricedType, lifecycle) ?? 0;
    assumed = true;
  }
  return { seconds, cost: (seconds / 3600) * price, type: pricedType, lifecycle, assumed };
}

/** The cost of a run's completed shards. */
export function runCost(
  markers: readonly Pick<ShardMarker, 'seconds' | 'timings' | 'instance' | 'round'>[],
  table: PriceTable,
  compute: 'gpu' | 'cpu',
): RunCost {
  const add = (parts: Record<string, CostPart>, key: string, seconds: number, cost: number): void => {
    const part = (parts[key] ??= { shards: 0, seconds: 0, cost: 0 });
    part.shards += 1;
    part.seconds += seconds;
    part.cost += cost;
  };
  const byLifecycle: Record<string, CostPart> = {};
  const byRound: Record<string, CostPart> = {};
  const byInstanceType: Record<string, CostPart> = {};
  let total = 0;
  let seconds = 0;
  let assumed = 0;
  for (const marker of markers) {
    const shard = shardCost(marker, table, compute);
    total += shard.cost;
    seconds += shard.seconds;
    if (shard.assumed) assumed += 1;
    add(byLifecycle, shard.lifecycle, shard.seconds, shard.cost);
    add(byRound, String(marker.round), shard.seconds, shard.cost);
    add(byInstanceType, shard.type, shard.seconds, shard.cost);
  }
  return {
    currency: table.currency,
    total,
    shardSeconds: seconds,
    prices: { region: table.region, asOf: table.asOf, source: table.source },
    byLifecycle,
    byRound: Object.entries(byRound)
      .map(([round, part]) => ({
        round: Number(round),
        queue: Number(round) === 0 ? ('first' as const) : ('on-demand' as const),
        ...part,
      }))
      .sort((a, b) => a.round - b.round),
    byInstanceType,
    ...(assumed > 0 && {
      assumed: { shards: assumed, referenceType: referenceInstanceType(table, compute, false) },
    }),
  };
}
