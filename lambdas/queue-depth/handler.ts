/**
 * Queue depth function, run every minute by EventBridge Scheduler: measures each job queue (see depth.ts) and emits
 * the counts as EMF metrics. Costs one invocation and a few ListJobs calls a minute, with or without runs.
 */
import { BatchClient } from '@aws-sdk/client-batch';
import { z } from 'zod';
import { FUNCTION_ENV } from '../../lib/workflow-contract.js';
import { QUEUE_METRICS } from '../../src/runtime/metrics.js';
import {
  beginInvocation,
  createFunctionLogger,
  createFunctionMetrics,
  emfMetrics,
  readEnv,
} from '../shared/lambda.js';
import type { LambdaContext } from '../shared/lambda.js';
import { emitQueueDepth, measureQueue, type QueueDepth } from './depth.js';
import { awsHttpOptions } from '../../src/runtime/aws-http.js';

const env = readEnv(
  z.object({
    AWS_REGION: z.string().min(1),
    [FUNCTION_ENV.jobQueues]: z
      .string()
      .transform((text, ctx) => {
        try {
          return JSON.parse(text) as unknown;
        } catch {
          ctx.addIssue({ code: 'custom', message: 'must be a JSON array of job queue names' });
          return z.NEVER;
        }
      })
      .pipe(z.array(z.string().min(1)).min(1)),
  }),
);

const logger = createFunctionLogger();
const metrics = createFunctionMetrics();
export const deps = { batch: new BatchClient(awsHttpOptions()) };

export async function handler(_event: unknown, context?: LambdaContext): Promise<QueueDepth[]> {
  beginInvocation(logger, context);
  const depths = await Promise.all(
    env[FUNCTION_ENV.jobQueues].map((queue) => measureQueue(deps.batch, queue)),
  );
  // One EMF blob per queue: each carries its own JobQueue dimension.
  for (const depth of depths) {
    emitQueueDepth(depth, emfMetrics(metrics, { dimensions: { [QUEUE_METRICS.dimension]: depth.queue } }));
  }
  logger.info('Measured queues', { depths });
  return depths;
}
