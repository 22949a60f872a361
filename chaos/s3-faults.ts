/**
 * The S3 fault loop of `npm run chaos` (issue 17): local runs whose input and output are in S3 (s3rver on
 * loopback), every request of the run (Plan, workers, Reconcile, Finalize, the catalogue's copies) going through
 * test/support/s3-fault-proxy.ts, which fails a share of them with 500 InternalError, 503 SlowDown, dropped
 * connections, bodies cut mid-stream and slow answers.
 *
 * - At each rate of `rates` (10 % and 30 % by default): every run must SUCCEED and publish exactly the rows of a
 *   clean run (same rows in every column, no duplicate id, the right count).
 * - At a rate that exhausts the SDK's retries (every write of a Parquet file fails, `exhaust`): the run must FAIL
 *   with a cause that names the S3 error, and publish nothing: no catalogue row, no `_runs` entry, no Parquet file
 *   of the run under the output's `run_date=*\/run_id=*\/` (see local-runs.ts).
 *
 * One seed (printed) drives every fault decision, so a loop can be replayed with CHAOS_SEED (worker timing still
 * varies, so which request meets which decision can differ).
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makeDemoInput } from '../examples/breast-cancer/demo.js';
import type { LocalRunOutcome } from '../src/local/run-local.js';
import { createObjectStore } from '../src/storage/index.js';
import { CHUNK_RECORDS_ENV } from '../src/worker/env.js';
import { startS3FaultProxy, type S3FaultKind, type S3FaultRequest } from '../test/support/s3-fault-proxy.js';
import { startS3Server, useS3TestEnv } from '../test/support/s3-server.js';
import { catalogueOf, exampleSpec, publishedDifferences, runOnce, visibleParquet } from './local-runs.js';

export interface S3FaultLoopOptions {
  /** Fault rates at which runs must complete exactly. @default [0.1, 0.3] */
  readonly rates?: readonly number[];
  /** Runs per rate. @default 1 */
  readonly runsPerRate?: number;
  /** Records of input (three CSV files). @default 1500 */
  readonly records?: number;
  /** Also run once with every Parquet write failing, which must fail clearly and publish nothing. @default true */
  readonly exhaust?: boolean;
  readonly seed: number;
  readonly progress?: (line: string) => void;
}

export interface S3FaultRunOutcome {
  readonly name: string;
  readonly rate: number;
  /** 'exact' runs must succeed with a clean run's rows; 'exhausted' runs must fail and publish nothing. */
  readonly expect: 'exact' | 'exhausted';
  readonly status: LocalRunOutcome['status'];
  readonly cause?: string;
  readonly requests: number;
  readonly faults: number;
  readonly byKind: Partial<Record<S3FaultKind, number>>;
  /** What did not hold; [] when the run met its expectation. */
  readonly problems: string[];
}

export interface S3FaultLoopResult {
  readonly seed: number;
  readonly records: number;
  readonly outcomes: S3FaultRunOutcome[];
}

const BUCKET = 'lake';
const TABLE = 'breast_cancer';
const ID = 'patient_id';
/**
 * A write of a Parquet file, wherever the product puts it (PutObject, multipart parts, CopyObject): the workers' staged
 * parts (`part-*.parquet.staged`) and Finalize's moves into the partition (ADR 0014 §9).
 */
const isParquetWrite = (r: S3FaultRequest): boolean =>
  r.method !== 'GET' && r.method !== 'HEAD' && /\.parquet(\.staged)?$/.test(r.path);
/** What a cause naming the S3 error looks like: the S3 error code, the network error, or the status. */
export const S3_ERROR_IN_CAUSE =
  /InternalError|SlowDown|ECONNRESET|socket hang up|aborted|S3 \w+ s3:\/\/|\b50[03]\b/;

export async function s3FaultLoop(options: S3FaultLoopOptions): Promise<S3FaultLoopResult> {
  const rates = options.rates ?? [0.1, 0.3];
  const runsPerRate = options.runsPerRate ?? 1;
  const records = options.records ?? 1500;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'chaos-s3-'));
  const server = await startS3Server();
  const restoreEnv = useS3TestEnv(server.endpoint);
  // Several chunks per shard, so each shard writes several parts and checkpoints through the faults.
  const savedChunk = process.env[CHUNK_RECORDS_ENV];
  process.env[CHUNK_RECORDS_ENV] = '200';
  const outcomes: S3FaultRunOutcome[] = [];
  try {
    await server.createBucket(BUCKET);
    const made = await makeDemoInput({ dir: path.join(dir, 'in'), records, files: 3, badRecordEvery: 0 });
    const direct = createObjectStore({ s3Endpoint: server.endpoint });
    for (const file of readdirSync(path.join(dir, 'in')).sort()) {
      await direct.put(`s3://${BUCKET}/in/${file}`, await readFile(path.join(dir, 'in', file)));
    }
    const spec = await exampleSpec(`s3://${BUCKET}/in/`, `s3://${BUCKET}/out/`, {
      run: { shards: { targetRecords: Math.ceil(records / 3) }, maxRounds: 2 },
      validation: { maxErrorRate: 0.01 },
    });
    const catalogPath = path.join(dir, 'catalog.duckdb');
    const stateDir = path.join(dir, 'state');
    const clean = await runOnce(spec, {
      store: direct,
      catalogPath,
      stateDir,
      runId: 'clean',
      s3Endpoint: server.endpoint,
    });
    if (clean.status !== 'SUCCEEDED') throw new Error(`the clean run failed: ${clean.error}: ${clean.cause}`);
    if (clean.result?.records !== made.records) {
      throw new Error(`the clean run read ${clean.result?.records} records of ${made.records}`);
    }

    let n = 0;
    const plan: { rate: number; expect: 'exact' | 'exhausted' }[] = rates.flatMap((rate) =>
      Array.from({ length: runsPerRate }, () => ({ rate, expect: 'exact' as const })),
    );
    if (options.exhaust ?? true) plan.push({ rate: 1, expect: 'exhausted' });
    for (const step of plan) {
      const runId = `faults-${n}`;
      const proxy = await startS3FaultProxy(server.endpoint, {
        rate: step.rate,
        seed: options.seed + n,
        slowMs: 200,
        ...(step.expect === 'exhausted'
          ? { match: isParquetWrite, kinds: ['internal-error', 'slow-down', 'reset'] }
          : {}),
      });
      n++;
      let outcome: LocalRunOutcome;
      const store = createObjectStore({ s3Endpoint: proxy.endpoint });
      try {
        // One round and one shard are enough to show the failure: more only retry the same exhausted writes.
        const stepSpec =
          step.expect === 'exhausted'
            ? {
                ...spec,
                run: { ...spec.run, maxRounds: 1, shards: { ...spec.run.shards, targetRecords: records } },
              }
            : spec;
        outcome = await runOnce(stepSpec, {
          store,
          catalogPath,
          stateDir,
          runId,
          s3Endpoint: proxy.endpoint,
        });
      } finally {
        await proxy.stop();
      }
      const problems: string[] = [];
      if (step.expect === 'exact') {
        if (outcome.status !== 'SUCCEEDED') {
          problems.push(`run ${outcome.status}: ${outcome.error}: ${(outcome.cause ?? '').slice(0, 400)}`);
        } else {
          if (outcome.result?.records !== made.records)
            problems.push(`summary says ${outcome.result?.records} records, input has ${made.records}`);
          problems.push(
            ...(await publishedDifferences(catalogPath, TABLE, runId, 'clean', ID, made.records)),
          );
        }
      } else {
        if (outcome.status !== 'FAILED')
          problems.push(`run ${outcome.status} although every Parquet write failed`);
        else if (!S3_ERROR_IN_CAUSE.test(outcome.cause ?? ''))
          problems.push(`the failure does not name the S3 error: ${(outcome.cause ?? '').slice(0, 400)}`);
        const published = await catalogueOf(catalogPath, TABLE, runId);
        if (published.rows > 0 || published.listed)
          problems.push(`published: ${published.rows} catalogue rows, in _runs: ${published.listed}`);
        const visible = await visibleParquet(direct, spec.output.uri, runId);
        if (visible.length > 0) problems.push(`visible under the output prefix: ${visible.join(', ')}`);
      }
      const result: S3FaultRunOutcome = {
        name: runId,
        rate: step.rate,
        expect: step.expect,
        status: outcome.status,
        ...(outcome.cause !== undefined ? { cause: outcome.cause } : {}),
        requests: proxy.stats.requests,
        faults: proxy.stats.faults,
        byKind: { ...proxy.stats.byKind },
        problems,
      };
      outcomes.push(result);
      options.progress?.(
        `${runId} rate ${step.rate} (${step.expect}): ${outcome.status}, ${proxy.stats.faults} faults in ` +
          `${proxy.stats.requests} requests ${JSON.stringify(proxy.stats.byKind)}: ` +
          (problems.length === 0 ? 'as expected' : `NOT AS EXPECTED: ${problems.join('; ')}`),
      );
    }
    return { seed: options.seed, records: made.records, outcomes };
  } finally {
    if (savedChunk === undefined) delete process.env[CHUNK_RECORDS_ENV];
    else process.env[CHUNK_RECORDS_ENV] = savedChunk;
    restoreEnv();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** For a report: the figures of a loop. */
export function summarizeS3Faults(result: S3FaultLoopResult): Record<string, unknown> {
  return {
    seed: result.seed,
    records: result.records,
    runs: result.outcomes.map((o) => ({
      run: o.name,
      rate: o.rate,
      expect: o.expect,
      status: o.status,
      asExpected: o.problems.length === 0,
      faults: o.faults,
      requests: o.requests,
      byKind: o.byKind,
    })),
  };
}
