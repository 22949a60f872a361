/**
 * Where a run's canary (`run.canary`) keeps its files: `<runUri>canary/` is the canary's own output folder, and its
 * run files are under `_runs/<runId>/` there. Apart from the real run's output, so round 0 starts clean.
 */
import { asPrefix, joinUri } from '../storage/uri.js';
import { runLayout, type RunLayout } from './layout.js';
import type { Plan } from './types.js';

export function canaryOutputUri(runUri: string): string {
  return joinUri(asPrefix(runUri), 'canary/');
}

/** The layout of a run's canary. */
export function canaryLayout(runUri: string, plan: Pick<Plan, 'runId' | 'runDate'>): RunLayout {
  return runLayout(canaryOutputUri(runUri), plan.runId, plan.runDate);
}
