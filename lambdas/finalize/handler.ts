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
import { PREDICTION_METRICS, RUN_METRICS } from '../../src/runtime/metrics.js';
import { createObjectStore } from '../../src/storage/index.js';
import {
  beginInvocation,
  createFunctionLogger,
  createFunctionMetrics,
  emfMetrics,
  parseEvent,
  readEnv,
} from '../shared/lambda.js';
import type { LambdaContext } from '../shared/lambda.js';
import { publishRunRecord } from './run-record.js';

const env = readEnv(
  z.object({
    AWS_REGION: z.string().min(1),
    [FUNCTION_ENV.glueDatabase]: z.string().min(1),
    [FUNCTION_ENV.auditRunsUri]: z.string().startsWith('s3://').optional(),
  }),
);

const logger = createFunctionLogger();
const metrics = createFunctionMetrics();
export const deps = {
  store: createObjectStore(),
  catalog: new GlueCatalog({ database: env[FUNCTION_ENV.glueDatabase] }),
};

export async function handler(event: unknown, context?: LambdaContext): Promise<RunResult> {
  beginInvocation(logger, context);
  const state = parseEvent('Finalize', () => runStateSchema.parse(event));
  logger.appendKeys({ runId: state.runId, round: state.round });
  logger.info('Finalizing run', { shardCount: state.shardCount, scheduledTime: state.scheduledTime });
  let result: RunResult;
  try {
    result = await finalizeRun(state, deps);
  } catch (error) {
    logger.error('Finalize failed', { error });
    throw error;
  }
  const { status, reason, records, predictions, errors, failedShards } = result;
  logger.info('Finalized run', { status, reason, records, predictions, errors, failedShards });
  try {
    await publishRunRecord(result, {
      store: deps.store,
      // The status rides along as a property: the dashboard's table of last runs reads it from this line.
      metrics: (pipeline, runId) =>
        emfMetrics(metrics, {
          dimensions: { [RUN_METRICS.dimension]: pipeline },
          properties: { runId, status: result.status },
        }),
      columnMetrics: (pipeline, runId, column) =>
        emfMetrics(metrics, {
          dimensions: { [RUN_METRICS.dimension]: pipeline, [PREDICTION_METRICS.dimension]: column },
          properties: { runId },
        }),
      auditRunsUri: env[FUNCTION_ENV.auditRunsUri],
      ensureRunsTable: (spec) => deps.catalog.ensureRunsTable(spec),
    });
  } catch (error) {
    // The manifest already holds everything the metrics and the audit row are made of: log, do not fail the run.
    logger.error('Could not publish the run record (metrics, runs table)', {
      error,
      manifestUri: result.manifestUri,
    });
  }
  return result;
}
