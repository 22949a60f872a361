/**
 * A worker whose shard cannot succeed however often it runs (the spec does not fit the model) writes a failure
 * record and exits with DETERMINISTIC_EXIT_CODE, and the local pool, like the Batch job definition, does not retry it.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { LocalWorkerPool } from '../../src/local/worker-pool.js';
import { failureRecordSchema, failureUri } from '../../src/runs/failures.js';
import { WORKER_ENV } from '../../src/runs/tasks.js';
import { DETERMINISTIC_EXIT_CODE } from '../../src/runs/worker-retry.js';
import { getJson } from '../../src/storage/object-store.js';
import { expectIn } from '../support/expect-in.js';
import { breastCancerInput, breastCancerSpec, planWorkerRun, tempDir } from '../worker/helpers.js';

let tmp: { dir: string; cleanup: () => void };
let inputDir: string;

beforeAll(async () => {
  tmp = tempDir('deterministic-');
  inputDir = path.join(tmp.dir, 'in');
  await breastCancerInput(inputDir, 50, 1, 50);
});
afterAll(() => tmp.cleanup());

describe('a deterministic worker failure', () => {
  it('is recorded in failures/<shard>.json and not retried by the local pool', async () => {
    const spec = breastCancerSpec(inputDir, path.join(tmp.dir, 'out'));
    (spec.model.inputs as { tensor: string }[])[0]!.tensor = 'featurez';
    // Planned without preflight, as a spec that slipped past it would be: the worker is the last line.
    const planned = await planWorkerRun(spec);
    const attempts: { attempt: number; code: number | null }[] = [];
    const pool = new LocalWorkerPool({
      concurrency: 1,
      logDir: path.join(tmp.dir, 'logs'),
      environment: { [WORKER_ENV.executionProviders]: 'cpu', [WORKER_ENV.threads]: '1' },
      onAttemptEnd: ({ attempt, code }) => attempts.push({ attempt, code }),
    });
    const result = await pool.runJob({
      jobName: 'det',
      environment: { [WORKER_ENV.runUri]: planned.runUri },
    });

    expectIn(attempts, JSON.stringify(result.failed)).toEqual([
      { attempt: 1, code: DETERMINISTIC_EXIT_CODE },
    ]);
    expect(result.failed).toHaveLength(1);
    expect(result.failed[0]).toMatchObject({ attempts: 1, exitCode: DETERMINISTIC_EXIT_CODE });

    const record = failureRecordSchema.parse(await getJson(planned.store, failureUri(planned.runUri, 0)));
    expect(record).toMatchObject({
      runId: planned.plan.runId,
      shardId: 0,
      round: 0,
      attempt: 1,
      errorClass: 'ModelError',
      deterministic: true,
      log: result.failed[0]!.logFile,
    });
    expect(record.message).toContain('featurez');
    expect(existsSync(record.log!)).toBe(true);
  });
});
