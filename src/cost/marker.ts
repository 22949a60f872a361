/**
 * The cost fields of a shard marker (`instance`, `seconds`), kept here so the worker's marker code adds them with
 * one line.
 */
import type { ShardMarker } from '../runs/types.js';
import type { ShardInstance } from './instance.js';

/** `instance` and `seconds` for a marker with these timings; `local` when the worker was given no instance. */
export function markerCostFields(
  instance: ShardInstance | undefined,
  timings: ShardMarker['timings'],
): Pick<ShardMarker, 'instance' | 'seconds'> {
  return {
    instance: instance ?? { type: 'local', lifecycle: 'local', source: 'local' },
    seconds: Math.round(timings.totalMs) / 1000,
  };
}
