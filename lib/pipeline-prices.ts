/**
 * The deployment's `prices` (lib/config.ts) applied to its pipelines: each pipeline's spec gets the stack's price of
 * every instance type it does not price itself (`run.prices` wins), so every run of the pipeline, whoever starts it,
 * is priced the same way (the spec travels in each run's input and plan).
 */
import type { PriceOverrides } from '../src/cost/prices.js';
import type { Pipeline } from './pipelines.js';

export function withStackPrices(
  pipelines: readonly Pipeline[],
  prices: PriceOverrides | undefined,
): Pipeline[] {
  if (!prices || Object.keys(prices).length === 0) return [...pipelines];
  return pipelines.map((p) => ({
    ...p,
    spec: { ...p.spec, run: { ...p.spec.run, prices: { ...prices, ...p.spec.run.prices } } },
  }));
}
