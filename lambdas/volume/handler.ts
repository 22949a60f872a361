/**
 * Volume trigger function: an S3 "Object Created" event under a pipeline's volume prefix -> count its bytes, and
 * start one run when the count since the last run reaches the pipeline's minBytes, over a list manifest of exactly
 * the objects counted since the last run. Thin: the work is
 * in src/triggers/volume.ts.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { z } from 'zod';
import { FUNCTION_ENV } from '../../lib/workflow-contract.js';
import { volumeTriggerEventSchema } from '../../src/triggers/events.js';
import { S3TriggerStateStore } from '../../src/triggers/state-store.js';
import {
  recordVolume,
  S3VolumeStateStore,
  volumeStateKey,
  type VolumeOutcome,
} from '../../src/triggers/volume.js';
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
    [FUNCTION_ENV.volumeStateBucket]: z.string().min(3),
    [FUNCTION_ENV.volumeStatePrefix]: z.string().min(1),
    // Set by the stack: runs then score exactly the objects counted since the last run (a list manifest).
    [FUNCTION_ENV.triggerManifestPrefix]: z.string().min(1).optional(),
  }),
);

const logger = createFunctionLogger();
export const deps = {
  s3: new S3Client(awsHttpOptions()),
  sfn: new SFNClient({ maxAttempts: 6, ...awsHttpOptions() }),
};

export async function handler(event: unknown, context?: LambdaContext): Promise<VolumeOutcome> {
  beginInvocation(logger, context);
  const parsed = parseEvent('Volume', () => volumeTriggerEventSchema.parse(event));
  logger.appendKeys({ pipeline: parsed.pipeline, trigger: 'volume' });
  const store = new S3VolumeStateStore(
    deps.s3,
    env[FUNCTION_ENV.volumeStateBucket],
    volumeStateKey(env[FUNCTION_ENV.volumeStatePrefix], parsed.pipeline),
  );
  try {
    const manifestPrefix = env[FUNCTION_ENV.triggerManifestPrefix];
    return await recordVolume(parsed, {
      store,
      sfn: deps.sfn,
      log: engineLogger(logger),
      ...(manifestPrefix
        ? {
            newObjects: {
              store: new S3TriggerStateStore(deps.s3, env[FUNCTION_ENV.volumeStateBucket]),
              statePrefix: env[FUNCTION_ENV.volumeStatePrefix],
              manifestPrefix,
            },
          }
        : {}),
    });
  } catch (error) {
    logger.error('Volume trigger failed', { error });
    throw error;
  }
}
