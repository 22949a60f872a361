/**
 * Window collector function: an upload window's timer (a Step Functions execution that waited until the window's end)
 * -> one run per part over exactly the window's objects, each a list manifest. Thin: the work is in
 * src/triggers/window.ts. Every step is idempotent, so the timer's retries are safe; what keeps failing reaches the
 * trigger dead-letter queue through the timer's Catch.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { z } from 'zod';
import { FUNCTION_ENV } from '../../lib/workflow-contract.js';
import { windowCloseEventSchema } from '../../src/triggers/events.js';
import { S3TriggerStateStore } from '../../src/triggers/state-store.js';
import { collectWindow, type WindowCloseOutcome } from '../../src/triggers/window.js';
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
    [FUNCTION_ENV.triggerStateBucket]: z.string().min(3),
    [FUNCTION_ENV.windowStatePrefix]: z.string().min(1),
    [FUNCTION_ENV.triggerManifestPrefix]: z.string().min(1),
  }),
);

const logger = createFunctionLogger();
export const deps = {
  s3: new S3Client(awsHttpOptions()),
  sfn: new SFNClient({ maxAttempts: 6, ...awsHttpOptions() }),
};

export async function handler(event: unknown, context?: LambdaContext): Promise<WindowCloseOutcome> {
  beginInvocation(logger, context);
  const parsed = parseEvent('WindowClose', () => windowCloseEventSchema.parse(event));
  logger.appendKeys({ pipeline: parsed.pipeline, trigger: 's3-window' });
  try {
    return await collectWindow(parsed, {
      store: new S3TriggerStateStore(deps.s3, env[FUNCTION_ENV.triggerStateBucket]),
      sfn: deps.sfn,
      log: engineLogger(logger),
      statePrefix: env[FUNCTION_ENV.windowStatePrefix],
      manifestPrefix: env[FUNCTION_ENV.triggerManifestPrefix],
    });
  } catch (error) {
    logger.error('Window collection failed', { error });
    throw error;
  }
}
