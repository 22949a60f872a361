/**
 * Reconcile task: RunState (+ `inferError` when the round's Batch job failed) -> RunState whose `next` says
 * whether another round runs. Thin: the work is in src/results/reconcile.ts.
 */
import { z } from 'zod';
import { AwsBatchJobInspector } from '../../src/results/job-inspector.js';
import { reconcileRun } from '../../src/results/reconcile.js';
import { runStateSchema } from '../../src/runs/tasks.js';
import type { RunState } from '../../src/runs/tasks.js';
import { createObjectStore } from '../../src/storage/index.js';
import { functionLogger, parseEvent, readEnv } from '../shared/lambda.js';
import type { LambdaContext } from '../shared/lambda.js';

readEnv(z.object({ AWS_REGION: z.string().min(1) }));

const logger = functionLogger();
// The inspector asks Batch which array children failed and why (ListJobs/DescribeJobs), for the run manifest.
const deps = { store: createObjectStore(), inspector: new AwsBatchJobInspector() };

/** The state as the state machine passes it: a failed Batch task's Catch adds the error under `inferError`. */
const reconcileEventSchema = runStateSchema.extend({ inferError: z.unknown().optional() });

export async function handler(event: unknown, context?: LambdaContext): Promise<RunState> {
  const state = parseEvent('Reconcile', () => reconcileEventSchema.parse(event));
  const log = logger.child({ runId: state.runId, round: state.round, requestId: context?.awsRequestId });
  log.info('Reconciling round', { pending: state.pending, jobFailed: state.inferError !== undefined });
  try {
    const next = await reconcileRun(state, deps);
    log.info('Reconciled round', { next: next.next, pending: next.pending, nextRound: next.round });
    return next;
  } catch (error) {
    log.error('Reconcile failed', { error });
    throw error;
  }
}
