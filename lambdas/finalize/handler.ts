/**
 * Finalize task: RunState -> RunResult. Validates the run, writes the audit manifest and publishes the run to the
 * Glue catalogue. Thin: the work is in src/results/finalize.ts.
 */
import { z } from 'zod';
import { FUNCTION_ENV } from '../../lib/workflow-contract.js';
import { GlueCatalog } from '../../src/catalog/glue.js';
import { finalizeRun } from '../../src/results/finalize.js';
import { runStateSchema } from '../../src/runs/tasks.js';
import type { RunResult } from '../../src/runs/tasks.js';
import { createObjectStore } from '../../src/storage/index.js';
import { createLogger } from '../shared/logger.js';
import { parseEvent, readEnv } from '../shared/lambda.js';
import type { LambdaContext } from '../shared/lambda.js';

const env = readEnv(
  z.object({ AWS_REGION: z.string().min(1), [FUNCTION_ENV.glueDatabase]: z.string().min(1) }),
);

const logger = createLogger();
const deps = {
  store: createObjectStore(),
  catalog: new GlueCatalog({ database: env[FUNCTION_ENV.glueDatabase] }),
};

export async function handler(event: unknown, context?: LambdaContext): Promise<RunResult> {
  const state = parseEvent('Finalize', () => runStateSchema.parse(event));
  const log = logger.child({ runId: state.runId, round: state.round, requestId: context?.awsRequestId });
  log.info('Finalizing run', { shardCount: state.shardCount });
  try {
    const result = await finalizeRun(state, deps);
    const { status, reason, records, predictions, errors, failedShards } = result;
    log.info('Finalized run', { status, reason, records, predictions, errors, failedShards });
    return result;
  } catch (error) {
    log.error('Finalize failed', { error });
    throw error;
  }
}
