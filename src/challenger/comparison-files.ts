/**
 * Where a challenger run keeps its comparison partials (docs/adr/0020), and how they are read back. Apart from
 * lane.ts, which loads ONNX Runtime: Finalize reads these files and its Lambda bundle must not pull the worker in.
 */
import type { RunLayout } from '../runs/layout.js';
import { getJson, type ObjectStore } from '../storage/object-store.js';
import { joinUri } from '../storage/uri.js';
import { comparisonPartialSchema, type ComparisonPartial } from './comparison.js';

/** A chunk's comparison partial: `<challenger run>/comparisons/<shard>-<chunk>.json`. */
export function chunkComparisonUri(layout: RunLayout, shardId: number, chunk: number): string {
  return joinUri(layout.runUri, 'comparisons', `${shardId}-${chunk}.json`);
}

/** A shard's comparison (its chunks' merged): `<challenger run>/comparisons/<shard>.json`, written before its marker. */
export function shardComparisonUri(layout: RunLayout, shardId: number): string {
  return joinUri(layout.runUri, 'comparisons', `${shardId}.json`);
}

export async function readComparisonPartial(store: ObjectStore, uri: string): Promise<ComparisonPartial> {
  const parsed = comparisonPartialSchema.safeParse(await getJson(store, uri));
  if (!parsed.success) throw new Error(`${uri} is not a comparison partial: ${parsed.error.message}`);
  return parsed.data;
}
