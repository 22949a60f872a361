/**
 * The cost lines of the CLI: the estimate `run` prints once the run is planned (from its plan and shard index) and
 * `start` prints before it starts one, and the cost a finished run's manifest records. Never fatal: a price is
 * information, and a run must not fail because it could not be priced.
 */
import { parseManifest } from '../results/manifest.js';
import { readShardIndex } from '../results/shard-list.js';
import { runLayout } from '../runs/layout.js';
import { planSchema } from '../runs/types.js';
import { getJson, type ObjectStore } from '../storage/object-store.js';
import { joinUri } from '../storage/uri.js';
import type { RunCost } from './cost.js';
import { describeEstimate, estimateRunCost, speedFromHistory, type CostEstimate } from './estimate.js';
import { formatMoney } from './prices.js';

/** The estimate of a planned run: its shard index's records, the pipeline's history speed. */
export async function estimatePlannedRun(
  store: ObjectStore,
  runUri: string,
  local: boolean,
): Promise<CostEstimate> {
  const plan = planSchema.parse(await getJson(store, joinUri(runUri, 'plan.json')));
  const layout = runLayout(plan.spec.output.uri, plan.runId, plan.runDate);
  let records = 0;
  let exact = true;
  for (const shard of await readShardIndex(store, layout, plan.shardCount)) {
    records += shard.records;
    exact &&= shard.recordsExact;
  }
  const speed = await speedFromHistory(store, plan.spec.output.uri, plan.spec.name).catch(() => undefined);
  return estimateRunCost({
    spec: plan.spec,
    records,
    recordsExact: exact,
    shards: plan.shardCount,
    local,
    ...(speed && { speed }),
  });
}

/** Writes the estimate to `out` (stderr), or why there is none. */
export function printEstimate(
  out: { write(text: string): unknown },
  estimate: CostEstimate | undefined,
  error?: unknown,
): void {
  if (estimate) out.write(`${describeEstimate(estimate).join('\n')}\n`);
  else out.write(`Estimate: none (${error instanceof Error ? error.message : String(error)})\n`);
}

/** The cost recorded in a run's manifest; undefined when it has none or cannot be read. */
export async function costOfManifest(store: ObjectStore, manifestUri: string): Promise<RunCost | undefined> {
  try {
    return parseManifest(await getJson(store, manifestUri)).cost;
  } catch {
    return undefined;
  }
}

/** `$0.42 (Spot $0.30, On-Demand $0.12)`: a cost in one line. */
export function describeCost(cost: RunCost): string {
  const parts = Object.entries(cost.byLifecycle)
    .filter(([, part]) => part.shards > 0)
    .map(([lifecycle, part]) => `${lifecycle} ${formatMoney(part.cost, cost.currency)}`);
  const capped = cost.spendCap
    ? `; stopped by run.maxCost ${formatMoney(cost.spendCap.maxCost, cost.currency)}`
    : '';
  return `${formatMoney(cost.total, cost.currency)} (${parts.join(', ') || 'no completed shard'}, ${Math.round(cost.shardSeconds)} shard seconds${capped})`;
}

/** `cost` and `costCurrency` of a run list entry, from the run's manifest; nothing when it has no cost. */
export async function costFieldsOf(
  store: ObjectStore,
  manifestUri: string | undefined,
): Promise<{ cost?: number; costCurrency?: string }> {
  if (manifestUri === undefined) return {};
  const cost = await costOfManifest(store, manifestUri);
  return cost ? { cost: cost.total, costCurrency: cost.currency } : {};
}
