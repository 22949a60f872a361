/**
 * Reconcile task: RunState (+ `inferError` when the round's Batch job failed) -> RunState whose `next` says
 * whether another round runs. Thin: the work is in src/results/reconcile.ts.
 */
import { z } from 'zod';
import { AwsBatchJobInspector } from '../../src/results/aws-job-inspector.js';
import { reconcileRun } from '../../src/results/reconcile.js';
import { runStateSchema } from '../../src/runs/tasks.js';
import type { RunState } from '../../src/runs/tasks.js';
import { createObjectStore } from '../../src/storage/index.js';
import { beginInvocation, createFunctionLogger, parseEvent, readEnv } from '../shared/lambda.js';
import type { LambdaContext } from '../shared/lambda.js';

readEnv(z.object({ AWS_REGION: z.string().min(1) }));

const logger = createFunctionLogger();
/**
 * What the engine gets. The inspector asks Batch which array children failed and why (ListJobs/DescribeJobs, which
 * the stack grants this function), for the run manifest; without it Reconcile would only know that a round failed.
 */
export const deps = { store: createObjectStore(), inspector: new AwsBatchJobInspector() };

/** The state as the state machine passes it: a failed Batch task's Catch adds the error under `inferError`. */
const reconcileEventSchema = runStateSchema.extend({ inferError: z.unknown().optional() });

export async function handler(event: unknown, context?: LambdaContext): Promise<RunState> {
  beginInvocation(logger, context);
  const state = parseEvent('Reconcile', () => reconcileEventSchema.parse(event));
  logger.appendKeys({ runId: state.runId, round: state.round });
  logger.info('Reconciling round', { pending: state.pending, jobFailed: state.inferError !== undefined });
  try {
    const next = await reconcileRun(state, deps);
    logger.info('Reconciled round', { next: next.next, pending: next.pending, nextRound: next.round });
    return next;
  } catch (error) {
    logger.error('Reconcile failed', { error });
    throw error;
  }
}
