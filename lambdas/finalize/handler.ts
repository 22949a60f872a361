/**
 * Finalize task: RunState -> RunResult. Validates the run, writes the audit manifest and publishes the run to the
 * Glue catalogue (src/results/finalize.ts), then emits the run's metrics and writes its row in the pipeline's runs
 * table (run-record.ts).
 */
import { z } from 'zod';
import { FUNCTION_ENV } from '../../lib/workflow-contract.js';
import { GlueCatalog } from '../../src/catalog/glue.js';
import { finalizeRun } from '../../src/results/finalize.js';
import { runStateSchema } from '../../src/runs/tasks.js';
import type { RunResult } from '../../src/runs/tasks.js';
import { createEmfMetrics, RUN_METRICS } from '../../src/runtime/metrics.js';
import { createObjectStore } from '../../src/storage/index.js';
import { functionLogger, parseEvent, readEnv } from '../shared/lambda.js';
import type { LambdaContext } from '../shared/lambda.js';
import { publishRunRecord } from './run-record.js';

const env = readEnv(
  z.object({
    AWS_REGION: z.string().min(1),
    [FUNCTION_ENV.glueDatabase]: z.string().min(1),
    [FUNCTION_ENV.auditRunsUri]: z.string().startsWith('s3://').optional(),
  }),
);

const logger = functionLogger();
const deps = {
  store: createObjectStore(),
  catalog: new GlueCatalog({ database: env[FUNCTION_ENV.glueDatabase] }),
};

export async function handler(event: unknown, context?: LambdaContext): Promise<RunResult> {
  const state = parseEvent('Finalize', () => runStateSchema.parse(event));
  const log = logger.child({ runId: state.runId, round: state.round, requestId: context?.awsRequestId });
  log.info('Finalizing run', { shardCount: state.shardCount });
  let result: RunResult;
  try {
    result = await finalizeRun(state, deps);
  } catch (error) {
    log.error('Finalize failed', { error });
    throw error;
  }
  const { status, reason, records, predictions, errors, failedShards } = result;
  log.info('Finalized run', { status, reason, records, predictions, errors, failedShards });
  try {
    await publishRunRecord(result, {
      store: deps.store,
      metrics: (pipeline, runId) =>
        createEmfMetrics({ dimensions: { [RUN_METRICS.dimension]: pipeline }, properties: { runId } }),
      auditRunsUri: env[FUNCTION_ENV.auditRunsUri],
    });
  } catch (error) {
    // The manifest already holds everything the metrics and the audit row are made of: log, do not fail the run.
    log.error('Could not publish the run record (metrics, runs table)', {
      error,
      manifestUri: result.manifestUri,
    });
  }
  return result;
}
