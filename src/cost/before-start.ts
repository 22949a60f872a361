/**
 * The estimate `batch-infer start` prints before it starts a run, when nothing is planned yet: the input's size (a
 * prefix listing) over the bytes per record of the pipeline's last runs gives the records, or, for an input that is
 * not a prefix, the last run's record count; shards follow from `run.shards` as the planner would make them.
 */
import type { JobSpec } from '../spec/schema.js';
import type { ObjectStore } from '../storage/object-store.js';
import { estimateRunCost, speedFromHistory, type CostEstimate } from './estimate.js';

/** Objects listed at most to size the input; past this the size is a lower bound. */
export const MAX_LISTED_OBJECTS = 100_000;

export interface StartEstimateInput {
  readonly store: ObjectStore;
  readonly spec: JobSpec;
  /** `--input`, else the spec's `input.uri`. */
  readonly inputUri?: string;
  /** Where the pipeline's runs are (`output.uri`). @default spec.output.uri */
  readonly outputUri?: string;
  readonly local: boolean;
}

export async function estimateBeforeStart(input: StartEstimateInput): Promise<CostEstimate> {
  const { spec, store } = input;
  const speed = await speedFromHistory(store, input.outputUri ?? spec.output.uri, spec.name).catch(
    () => undefined,
  );
  const inputUri = input.inputUri ?? spec.input.uri;
  let bytes: number | undefined;
  if (inputUri.endsWith('/') && spec.input.manifest !== 'list' && spec.input.manifest !== 's3-inventory') {
    bytes = 0;
    let listed = 0;
    try {
      for await (const object of store.list(inputUri)) {
        bytes += object.size;
        if (++listed >= MAX_LISTED_OBJECTS) break;
      }
    } catch {
      bytes = undefined;
    }
  }
  const records =
    bytes !== undefined && speed?.bytesPerRecord
      ? Math.round(bytes / speed.bytesPerRecord)
      : (speed?.lastRecords ?? 0);
  const { targetRecords, targetBytes, max } = spec.run.shards;
  const shards = Math.min(
    max,
    Math.max(1, Math.ceil(records / targetRecords), bytes ? Math.ceil(bytes / targetBytes) : 1),
  );
  return estimateRunCost({
    spec,
    records,
    recordsExact: false,
    shards: records === 0 ? 0 : shards,
    local: input.local,
    ...(speed && { speed }),
  });
}
