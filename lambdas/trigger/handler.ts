/**
 * Trigger function: an S3 "Object Created" event (through an EventBridge rule) or an EventBridge Scheduler schedule
 * -> at most one run of the pipeline named in the event. Thin: the work is in src/triggers/trigger.ts.
 *
 * A duplicated event is not an error: it maps to the same execution name and Step Functions refuses the second
 * start. Any other failure is thrown, so the event is retried and then kept in the trigger dead-letter queue.
 */
import { SFNClient } from '@aws-sdk/client-sfn';
import { z } from 'zod';
import { triggerEventSchema } from '../../src/triggers/events.js';
import { handleTrigger, type TriggerOutcome } from '../../src/triggers/trigger.js';
import {
  beginInvocation,
  createFunctionLogger,
  engineLogger,
  parseEvent,
  readEnv,
} from '../shared/lambda.js';
import type { LambdaContext } from '../shared/lambda.js';

readEnv(z.object({ AWS_REGION: z.string().min(1) }));

const logger = createFunctionLogger();
// More attempts than the default 3: a burst of uploads can throttle StartExecution, and a retry here is cheaper than
// a whole event retry.
export const deps = { sfn: new SFNClient({ maxAttempts: 6 }) };

export async function handler(event: unknown, context?: LambdaContext): Promise<TriggerOutcome> {
  beginInvocation(logger, context);
  const parsed = parseEvent('Trigger', () => triggerEventSchema.parse(event));
  logger.appendKeys({ pipeline: parsed.pipeline, trigger: parsed.trigger });
  try {
    return await handleTrigger(parsed, { sfn: deps.sfn, log: engineLogger(logger) });
  } catch (error) {
    logger.error('Trigger failed', { error });
    throw error;
  }
}
