/**
 * Trigger function: an S3 "Object Created" event (through an EventBridge rule) or an EventBridge Scheduler schedule
 * -> at most one run of the pipeline named in the event, or, for a batching S3 trigger, the object recorded in its
 * upload window. Thin: the work is in src/triggers/trigger.ts and window.ts.
 *
 * A duplicated event is not an error: it maps to the same execution name and Step Functions refuses the second
 * start. Any other failure is thrown, so the event is retried and then kept in the trigger dead-letter queue.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { z } from 'zod';
import { FUNCTION_ENV } from '../../lib/workflow-contract.js';
import { triggerEventSchema } from '../../src/triggers/events.js';
import { S3TriggerStateStore } from '../../src/triggers/state-store.js';
import { handleTrigger, type TriggerOutcome } from '../../src/triggers/trigger.js';
import {
  beginInvocation,
  createFunctionLogger,
  engineLogger,
  parseEvent,
  readEnv,
} from '../shared/lambda.js';
import type { LambdaContext } from '../shared/lambda.js';
import { awsHttpOptions } from '../../src/runtime/aws-http.js';

const env = readEnv(
  z.object({
    AWS_REGION: z.string().min(1),
    // Set when a pipeline has a batching S3 trigger: where the upload windows are recorded.
    [FUNCTION_ENV.triggerStateBucket]: z.string().min(3).optional(),
    [FUNCTION_ENV.windowStatePrefix]: z.string().min(1).optional(),
  }),
);

const logger = createFunctionLogger();
// More attempts than the default 3: a burst of uploads can throttle StartExecution, and a retry here is cheaper than
// a whole event retry.
export const deps = {
  sfn: new SFNClient({ maxAttempts: 6, ...awsHttpOptions() }),
  s3: new S3Client(awsHttpOptions()),
};

export async function handler(event: unknown, context?: LambdaContext): Promise<TriggerOutcome> {
  beginInvocation(logger, context);
  const parsed = parseEvent('Trigger', () => triggerEventSchema.parse(event));
  logger.appendKeys({ pipeline: parsed.pipeline, trigger: parsed.trigger });
  try {
    const bucket = env[FUNCTION_ENV.triggerStateBucket];
    const statePrefix = env[FUNCTION_ENV.windowStatePrefix];
    return await handleTrigger(parsed, {
      sfn: deps.sfn,
      log: engineLogger(logger),
      ...(bucket && statePrefix
        ? { windows: { store: new S3TriggerStateStore(deps.s3, bucket), statePrefix } }
        : {}),
    });
  } catch (error) {
    logger.error('Trigger failed', { error });
    throw error;
  }
}
