/**
 * Plan task: `{ request, runId }` (the execution input and the execution name) -> RunState. Thin: the work is in
 * src/planning/plan-run.ts, shared with the local orchestrator.
 */
import { z } from 'zod';
import { planRequestFromEvent } from '../../lib/workflow-contract.js';
import { planRun } from '../../src/planning/plan-run.js';
import { preflightResolved } from '../../src/preflight/index.js';
import { SageMakerModelRegistry } from '../../src/registry/sagemaker.js';
import type { RunState } from '../../src/runs/tasks.js';
import { createObjectStore } from '../../src/storage/index.js';
import { beginInvocation, createFunctionLogger, parseEvent, readEnv } from '../shared/lambda.js';
import type { LambdaContext } from '../shared/lambda.js';

// The SDK clients (S3, SageMaker) need the region; Lambda always sets it.
readEnv(z.object({ AWS_REGION: z.string().min(1) }));

// Built once per execution environment, reused by warm invocations.
const logger = createFunctionLogger();
export const deps = {
  store: createObjectStore(),
  registry: new SageMakerModelRegistry(),
  // Spec against model signature and input sample, read without ONNX Runtime: a mistake fails here, not in Batch.
  preflight: preflightResolved,
};

export async function handler(event: unknown, context?: LambdaContext): Promise<RunState> {
  beginInvocation(logger, context);
  const request = parseEvent('Plan', () => planRequestFromEvent(event));
  logger.appendKeys({ runId: request.runId });
  logger.info('Planning run', {
    specUri: request.specUri,
    inputUri: request.inputUri,
    inlineSpec: !!request.spec,
    scheduledTime: request.scheduledTime,
  });
  try {
    // The run's trigger context (the scheduled time) travels with the state to Finalize, which records it.
    const state = await planRun(request, deps);
    logger.info('Planned run', {
      shardCount: state.shardCount,
      pending: state.pending,
      compute: state.compute,
    });
    return state;
  } catch (error) {
    logger.error('Planning failed', { error });
    throw error;
  }
}
