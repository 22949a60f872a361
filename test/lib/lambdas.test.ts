/**
 * What the functions publish besides their task results: EMF metrics (Powertools Metrics through
 * lambdas/shared/powertools.ts), Finalize's run record (metrics and the runs table row,
 * lambdas/finalize/run-record.ts, over a real local object store) and the queue depth measurement
 * (lambdas/queue-depth/depth.ts, with the real BatchClient over recorded ListJobs responses).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { BatchClient } from '@aws-sdk/client-batch';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { RUN_RECORD_COLUMNS } from '../../lambdas/finalize/run-record-columns.js';
import {
  driftOf,
  emitPredictionMetrics,
  historyDiffersOf,
  publishRunRecord,
  runRecordUri,
} from '../../lambdas/finalize/run-record.js';
import type { RunsTableSpec } from '../../src/catalog/glue.js';
import { emitQueueDepth, measureQueue } from '../../lambdas/queue-depth/depth.js';
import {
  createFunctionMetrics,
  emfMetrics,
  type EmfMetricsOptions,
} from '../../lambdas/shared/powertools.js';
import { REPO_ROOT } from '../../lib/paths.js';
import { loadPipelines } from '../../lib/pipelines.js';
import type { RunResult } from '../../src/runs/tasks.js';
import { METRICS_NAMESPACE, QUEUE_METRICS, RUN_METRICS, type Metrics } from '../../src/runtime/metrics.js';
import { LocalObjectStore } from '../../src/storage/index.js';
import { RecordedHttpHandler, TEST_CREDENTIALS } from '../triggers/recorded-http.js';

/**
 * Metrics as the functions emit them (Powertools, with the namespace from the environment) whose EMF blobs are read
 * back from stdout: `lines` holds every blob written so far.
 */
function emf(options: EmfMetricsOptions = {}): { lines: Record<string, unknown>[]; metrics: Metrics } {
  const lines: Record<string, unknown>[] = [];
  const inner = emfMetrics(createFunctionMetrics(), options);
  const capture = (run: () => void): void => {
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      for (const line of String(chunk).split('\n').filter(Boolean)) {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      return true;
    });
    try {
      run();
    } finally {
      spy.mockRestore();
    }
  };
  return {
    lines,
    metrics: { add: (...args) => inner.add(...args), flush: () => capture(() => inner.flush()) },
  };
}

/** The directive of an EMF blob. */
function directive(line: Record<string, unknown> | undefined): {
  Namespace: string;
  Dimensions: string[][];
  Metrics: { Name: string; Unit: string }[];
} {
  return (line?._aws as { CloudWatchMetrics: [ReturnType<typeof directive>] }).CloudWatchMetrics[0];
}

describe('EMF metrics (Powertools)', () => {
  it('writes one Embedded Metric Format blob: directive, exactly the given dimensions, properties and values', () => {
    const out = emf({ dimensions: { Pipeline: 'scores' }, properties: { runId: 'r1' } });
    out.metrics.add('Records', 10, 'Count');
    out.metrics.add('ErrorRate', 0.1, 'None');
    out.metrics.flush();
    expect(out.lines).toHaveLength(1);
    const [line] = out.lines;
    expect(line!._aws).toMatchObject({ Timestamp: expect.any(Number) });
    expect(directive(line)).toEqual({
      Namespace: METRICS_NAMESPACE,
      // No `service` dimension: the alarms read { Pipeline } alone, and CloudWatch matches dimension sets exactly.
      Dimensions: [['Pipeline']],
      Metrics: [
        { Name: 'Records', Unit: 'Count' },
        { Name: 'ErrorRate', Unit: 'None' },
      ],
    });
    expect(line).toMatchObject({ runId: 'r1', Pipeline: 'scores', Records: 10, ErrorRate: 0.1 });
    expect(line).not.toHaveProperty('service');
  });

  it('writes several values of one metric as an array, and nothing when empty', () => {
    const out = emf();
    out.metrics.flush();
    out.metrics.add('Latency', 1, 'Milliseconds');
    out.metrics.add('Latency', 2, 'Milliseconds');
    out.metrics.flush();
    out.metrics.flush();
    expect(out.lines).toHaveLength(1);
    expect(out.lines[0]!.Latency).toEqual([1, 2]);
  });

  it('takes the namespace from POWERTOOLS_METRICS_NAMESPACE, else BatchInfer', () => {
    const saved = process.env.POWERTOOLS_METRICS_NAMESPACE;
    const namespaces: string[] = [];
    try {
      for (const value of [undefined, 'Other']) {
        if (value === undefined) delete process.env.POWERTOOLS_METRICS_NAMESPACE;
        else process.env.POWERTOOLS_METRICS_NAMESPACE = value;
        const out = emf();
        out.metrics.add('X', 1, 'Count');
        out.metrics.flush();
        namespaces.push(directive(out.lines[0]).Namespace);
      }
    } finally {
      if (saved === undefined) delete process.env.POWERTOOLS_METRICS_NAMESPACE;
      else process.env.POWERTOOLS_METRICS_NAMESPACE = saved;
    }
    expect(namespaces).toEqual([METRICS_NAMESPACE, 'Other']);
  });

  it('refuses values CloudWatch would drop', () => {
    const { metrics } = emf();
    expect(() => metrics.add('X', Number.NaN, 'Count')).toThrow(/finite number/);
    expect(() => metrics.add('X', Number.POSITIVE_INFINITY, 'Count')).toThrow(/finite number/);
  });
});

describe("Finalize's run record", () => {
  const [pipeline] = loadPipelines(path.join(REPO_ROOT, 'pipelines'));
  const manifest = {
    version: 1,
    runId: 's3-patients_csv-0123',
    runDate: '2025-03-01',
    status: 'SUCCEEDED',
    message: 'passed; published to table breast_cancer',
    spec: pipeline!.spec,
    model: {
      source: 'registry',
      group: 'breast-cancer-mlp',
      version: 3,
      status: 'Approved',
      artifactUri: 's3://models/breast-cancer-mlp/3/model.onnx',
      etag: 'abc',
      size: 1234,
      sha256: 'a'.repeat(64),
      files: {},
      name: 'breast-cancer-mlp',
    },
    input: {
      objects: 2,
      bytes: 4096,
      snapshotSha256: 'b'.repeat(64),
      snapshotUri: 's3://data/_runs/x/input.jsonl',
    },
    counts: {
      shards: 4,
      completedShards: 4,
      records: 1000,
      predictions: 990,
      errors: 10,
      errorsByReason: { MISSING_VALUE: 10 },
      errorRate: 0.01,
      failedShards: { count: 0, ids: [], details: [], detailsOmitted: 0 },
    },
    timings: {
      plannedAt: '2025-03-01T02:00:00.000Z',
      finalizedAt: '2025-03-01T02:00:20.000Z',
      wallMs: 20_000,
      rounds: 1,
      shards: { readMs: 1, decodeMs: 1, inferMs: 1, writeMs: 1, totalMs: 4 },
    },
    outputs: {
      outputUri: 's3://data/predictions/breast_cancer/',
      partitionUri: 's3://data/predictions/breast_cancer/run_date=2025-03-01/run_id=s3-patients_csv-0123/',
      errorsPrefixUri: 's3://data/predictions/breast_cancer/_errors/run_id=s3-patients_csv-0123/',
      columns: {},
      files: [],
      errorsFiles: [],
    },
    validation: { passed: true, checks: [] },
    catalog: { table: 'breast_cancer', published: true },
    codeVersion: 'test',
  };
  let root: string;
  let base: string;
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'batch-infer-run-record-'));
    base = pathToFileURL(root).href;
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  const store = new LocalObjectStore();
  const result = (): RunResult => ({
    runId: manifest.runId,
    status: 'SUCCEEDED',
    message: manifest.message,
    records: 1000,
    predictions: 990,
    errors: 10,
    failedShards: 0,
    outputUri: manifest.outputs.partitionUri,
    manifestUri: `${base}/predictions/breast_cancer/_runs/s3-patients_csv-0123/manifest.json`,
  });
  /** Writes a manifest where Finalize wrote it, and a fresh runs location for the audit rows. */
  async function finalized(raw: unknown): Promise<{ auditRunsUri: string }> {
    await store.put(result().manifestUri, JSON.stringify(raw));
    return { auditRunsUri: `${base}/audit-${Math.random().toString(36).slice(2)}/runs/` };
  }
  const rowsUnder = (auditRunsUri: string): string[] => {
    const dir = new URL(auditRunsUri).pathname;
    if (!fs.existsSync(dir)) return [];
    return fs
      .readdirSync(dir, { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.json'))
      .map((f) => path.join(dir, f));
  };

  it('emits the run metrics with the pipeline dimension, and writes one JSON line to the runs table', async () => {
    const { auditRunsUri } = await finalized(manifest);
    const blobs: Record<string, unknown>[] = [];
    const ensured: RunsTableSpec[] = [];
    const record = await publishRunRecord(result(), {
      store,
      metrics: (p, runId) => {
        const out = emf({ dimensions: { [RUN_METRICS.dimension]: p }, properties: { runId } });
        return { add: out.metrics.add, flush: () => (out.metrics.flush(), blobs.push(...out.lines)) };
      },
      auditRunsUri,
      ensureRunsTable: async (spec) => void ensured.push(spec),
    });
    // Finalize owns the runs table (ADR 0017): it is created or updated at the row's location, with the row's columns.
    expect(ensured).toEqual([
      {
        table: 'breast_cancer_runs',
        location: `${auditRunsUri}breast_cancer/`,
        columns: RUN_RECORD_COLUMNS,
      },
    ]);
    expect(blobs).toHaveLength(1);
    expect(directive(blobs[0])).toMatchObject({ Namespace: METRICS_NAMESPACE, Dimensions: [['Pipeline']] });
    expect(blobs[0]).toMatchObject({
      Pipeline: 'breast_cancer',
      runId: manifest.runId,
      [RUN_METRICS.records]: 1000,
      [RUN_METRICS.errors]: 10,
      [RUN_METRICS.errorRate]: 0.01,
      [RUN_METRICS.failedShards]: 0,
      [RUN_METRICS.recordsPerSecond]: 50,
      [RUN_METRICS.wallSeconds]: 20,
    });
    expect(blobs[0]).not.toHaveProperty(RUN_METRICS.drift);
    const rows = rowsUnder(auditRunsUri);
    expect(rows).toEqual([
      new URL(runRecordUri(auditRunsUri, { pipeline: 'breast_cancer', run_id: manifest.runId }, '2025-03-01'))
        .pathname,
    ]);
    const body = fs.readFileSync(rows[0]!, 'utf8');
    expect(body.trimEnd().split('\n')).toHaveLength(1);
    expect(JSON.parse(body)).toEqual(record);
    expect(record).toMatchObject({
      pipeline: 'breast_cancer',
      model_version: 3,
      records_per_second: 50,
      reason: null,
    });
  });

  it("writes the first failure's reason (manifest.error) in the runs table's error columns", async () => {
    const error = {
      code: 'PreflightError',
      message:
        'model.inputs[0].tensor is "featurez" but the model has no such input; did you mean "features"?',
      shard: 0,
      log: 'Batch job 1234',
    };
    const { auditRunsUri } = await finalized({
      ...manifest,
      status: 'FAILED',
      reason: 'ShardsFailed',
      message: `first error: ${error.code}\n1 of 4 shards failed`,
      error,
    });
    const record = await publishRunRecord(result(), { store, metrics: () => emf().metrics, auditRunsUri });
    expect(record).toMatchObject({
      reason: 'ShardsFailed',
      error_code: 'PreflightError',
      error_message: error.message,
      error_shard: 0,
      error_log: 'Batch job 1234',
    });
    const [row] = rowsUnder(auditRunsUri);
    expect(JSON.parse(fs.readFileSync(row!, 'utf8'))).toMatchObject({
      error_code: 'PreflightError',
      error_shard: 0,
    });
    await finalized(manifest);
    const ok = await publishRunRecord(result(), { store, metrics: () => emf().metrics });
    expect(ok).toMatchObject({ error_code: null, error_message: null, error_shard: null, error_log: null });
  });

  it('has exactly the columns the runs table declares', async () => {
    await finalized(manifest);
    const record = await publishRunRecord(result(), { store, metrics: () => emf().metrics });
    expect(Object.keys(record)).toEqual(RUN_RECORD_COLUMNS.map((c) => c.name));
  });

  it("writes the run's cost to the runs table and emits RunCost, when the manifest has one", async () => {
    const cost = {
      currency: 'USD',
      total: 1.25,
      shardSeconds: 3600,
      prices: { region: 'us-east-1', asOf: '2026-12-06', source: 'test' },
      byLifecycle: { spot: { shards: 1, seconds: 3600, cost: 1.25 } },
      byRound: [{ round: 0, queue: 'first', shards: 1, seconds: 3600, cost: 1.25 }],
      byInstanceType: { 'g5.xlarge': { shards: 1, seconds: 3600, cost: 1.25 } },
    };
    await finalized({ ...manifest, cost });
    const blobs: Record<string, unknown>[] = [];
    const record = await publishRunRecord(result(), {
      store,
      metrics: (p) => {
        const out = emf({ dimensions: { [RUN_METRICS.dimension]: p } });
        return { add: out.metrics.add, flush: () => (out.metrics.flush(), blobs.push(...out.lines)) };
      },
    });
    expect(record).toMatchObject({ cost: 1.25, cost_currency: 'USD' });
    expect(blobs[0]).toMatchObject({ [RUN_METRICS.cost]: 1.25 });
    // A manifest written before runs were priced: null columns, no metric.
    await finalized(manifest);
    const older: Record<string, unknown>[] = [];
    const old = await publishRunRecord(result(), {
      store,
      metrics: (p) => {
        const out = emf({ dimensions: { [RUN_METRICS.dimension]: p } });
        return { add: out.metrics.add, flush: () => (out.metrics.flush(), older.push(...out.lines)) };
      },
    });
    expect(old).toMatchObject({ cost: null, cost_currency: null });
    expect(older[0]).not.toHaveProperty(RUN_METRICS.cost);
  });

  it('emits the shards per execution provider from the manifest, ShardsOnCpu and ShardsOnCuda', async () => {
    await finalized({
      ...manifest,
      execution: { providers: { cuda: 3, cpu: 2 }, batchSizes: { '64': 5 } },
    });
    const blobs: Record<string, unknown>[] = [];
    await publishRunRecord(result(), {
      store,
      metrics: (p) => {
        const out = emf({ dimensions: { [RUN_METRICS.dimension]: p } });
        return { add: out.metrics.add, flush: () => (out.metrics.flush(), blobs.push(...out.lines)) };
      },
    });
    expect(blobs[0]).toMatchObject({ [RUN_METRICS.shardsOnCpu]: 2, [RUN_METRICS.shardsOnCuda]: 3 });
    expect(directive(blobs[0]).Metrics).toContainEqual({ Name: RUN_METRICS.shardsOnCpu, Unit: 'Count' });
  });

  it("emits Drift, the manifest's drift.maxPsi, when the manifest carries the run's drift, and nothing without", async () => {
    const drift = {
      baselineRunId: 'sched-1-20250222T023000Z',
      maxPsi: 0.31,
      columns: { label: 0.31, score: 0.12 },
    };
    expect(driftOf({ drift })).toBe(0.31);
    expect(driftOf({})).toBeUndefined();
    await finalized({ ...manifest, drift });
    const blobs: Record<string, unknown>[] = [];
    await publishRunRecord(result(), {
      store,
      metrics: (p) => {
        const out = emf({ dimensions: { [RUN_METRICS.dimension]: p } });
        return { add: out.metrics.add, flush: () => (out.metrics.flush(), blobs.push(...out.lines)) };
      },
    });
    expect(blobs[0]![RUN_METRICS.drift]).toBe(0.31);
    expect(directive(blobs[0]).Metrics).toContainEqual({ Name: RUN_METRICS.drift, Unit: 'None' });
    // A drift of another shape is not the manifest's: the record is not published (Finalize logs why).
    await finalized({ ...manifest, drift: { score: 0.4 } });
    await expect(publishRunRecord(result(), { store, metrics: () => emf().metrics })).rejects.toThrow(
      /drift/,
    );
  });

  it('emits HistoryDiffers (1 or 0) when the manifest compares the run with its history, and nothing without', async () => {
    const check = { metric: 'records', value: 20, median: 80, mad: 0, relativeChange: -0.75, differs: true };
    const compared = (differs: boolean) => ({
      status: 'compared',
      runIds: ['r1', 'r2', 'r3'],
      checks: [{ ...check, differs }],
      differs,
    });
    const notEnough = { status: 'notEnoughHistory', runs: 1, required: 3, message: 'not enough history' };
    const emitted = async (history: unknown): Promise<Record<string, unknown>> => {
      await finalized({ ...manifest, ...(history !== undefined && { history }) });
      const blobs: Record<string, unknown>[] = [];
      await publishRunRecord(result(), {
        store,
        metrics: (p) => {
          const out = emf({ dimensions: { [RUN_METRICS.dimension]: p } });
          return { add: out.metrics.add, flush: () => (out.metrics.flush(), blobs.push(...out.lines)) };
        },
      });
      expect(blobs).toHaveLength(1);
      return blobs[0]!;
    };
    const differs = await emitted(compared(true));
    expect(differs[RUN_METRICS.historyDiffers]).toBe(1);
    expect(directive(differs).Metrics).toContainEqual({ Name: RUN_METRICS.historyDiffers, Unit: 'Count' });
    expect((await emitted(compared(false)))[RUN_METRICS.historyDiffers]).toBe(0);
    expect(await emitted(notEnough)).not.toHaveProperty(RUN_METRICS.historyDiffers);
    expect(await emitted(undefined)).not.toHaveProperty(RUN_METRICS.historyDiffers);
    expect(historyDiffersOf({})).toBeUndefined();
  });

  it('emits the prediction distribution: p10/p50/p90 per numeric column with the Pipeline and Column dimensions', async () => {
    const numeric = {
      kind: 'numeric',
      count: 3,
      missing: 0,
      min: 0.1,
      max: 0.9,
      sum: 1.5,
      sumSquares: 0.91,
      bins: { gamma: 1.0202, zero: 0, positive: [], negative: [] },
      quantiles: { p10: 0.1, p50: 0.5, p90: 0.9 },
    };
    const categorical = { kind: 'categorical', count: 3, missing: 0, counts: { a: 3 }, other: 0 };
    await finalized({ ...manifest, summaries: { score: numeric, label: categorical } });
    const blobs: Record<string, unknown>[] = [];
    await publishRunRecord(result(), {
      store,
      metrics: () => emf().metrics,
      columnMetrics: (p, runId, column) => {
        const out = emf({ dimensions: { Pipeline: p, Column: column }, properties: { runId } });
        return { add: out.metrics.add, flush: () => (out.metrics.flush(), blobs.push(...out.lines)) };
      },
    });
    // The categorical column has no quantiles: one blob, the score's.
    expect(blobs).toHaveLength(1);
    expect(directive(blobs[0])).toMatchObject({ Dimensions: [['Pipeline', 'Column']] });
    expect(blobs[0]).toMatchObject({
      Pipeline: 'breast_cancer',
      Column: 'score',
      PredictionP10: 0.1,
      PredictionP50: 0.5,
      PredictionP90: 0.9,
    });
    const none: string[] = [];
    emitPredictionMetrics({}, (c) => (none.push(c), emf().metrics));
    expect(none).toEqual([]);
  });

  it('writes no row without a runs location (local runs)', async () => {
    const { auditRunsUri } = await finalized(manifest);
    await publishRunRecord(result(), { store, metrics: () => emf().metrics });
    expect(rowsUnder(auditRunsUri)).toEqual([]);
    expect(runRecordUri('s3://d/audit/runs', { pipeline: 'p', run_id: 'r' }, '2025-01-01')).toBe(
      's3://d/audit/runs/p/run_date=2025-01-01/r.json',
    );
  });
});

describe('queue depth', () => {
  const page = (jobs: unknown[], nextToken?: string) => ({
    status: 200,
    headers: { 'content-type': 'application/json' },
    body: { jobSummaryList: jobs, ...(nextToken ? { nextToken } : {}) },
  });

  it('counts jobs per state, array children one by one, across pages, each job once', async () => {
    const http = new RecordedHttpHandler([
      // SUBMITTED
      page([]),
      // PENDING: an array parent whose children are spread over states.
      page([
        {
          jobId: 'parent',
          jobName: 'r-r0',
          status: 'PENDING',
          arrayProperties: {
            size: 10,
            statusSummary: { RUNNABLE: 6, STARTING: 1, RUNNING: 2, SUCCEEDED: 1 },
          },
        },
      ]),
      // RUNNABLE: two pages, and the parent listed again (its status changed between calls).
      page([{ jobId: 'single-1', status: 'RUNNABLE' }], 'token-2'),
      page([
        { jobId: 'single-2', status: 'RUNNABLE' },
        {
          jobId: 'parent',
          status: 'RUNNABLE',
          arrayProperties: { size: 10, statusSummary: { RUNNABLE: 6 } },
        },
      ]),
      // STARTING
      page([]),
      // RUNNING
      page([{ jobId: 'single-3', status: 'RUNNING' }]),
    ]);
    const client = new BatchClient({
      region: 'us-east-1',
      credentials: TEST_CREDENTIALS,
      requestHandler: http,
      maxAttempts: 1,
    });
    const depth = await measureQueue(client, 'batch-infer-dev-gpu');
    expect(depth).toEqual({ queue: 'batch-infer-dev-gpu', pending: 0, runnable: 8, starting: 1, running: 3 });
    expect(
      http.requests.map((r) => [
        r.method,
        r.path,
        JSON.parse(r.text) as { jobStatus: string; nextToken?: string },
      ]),
    ).toEqual([
      ['POST', '/v1/listjobs', { jobQueue: 'batch-infer-dev-gpu', jobStatus: 'SUBMITTED', maxResults: 100 }],
      ['POST', '/v1/listjobs', { jobQueue: 'batch-infer-dev-gpu', jobStatus: 'PENDING', maxResults: 100 }],
      ['POST', '/v1/listjobs', { jobQueue: 'batch-infer-dev-gpu', jobStatus: 'RUNNABLE', maxResults: 100 }],
      [
        'POST',
        '/v1/listjobs',
        { jobQueue: 'batch-infer-dev-gpu', jobStatus: 'RUNNABLE', maxResults: 100, nextToken: 'token-2' },
      ],
      ['POST', '/v1/listjobs', { jobQueue: 'batch-infer-dev-gpu', jobStatus: 'STARTING', maxResults: 100 }],
      ['POST', '/v1/listjobs', { jobQueue: 'batch-infer-dev-gpu', jobStatus: 'RUNNING', maxResults: 100 }],
    ]);
  });

  it('emits the counts with the JobQueue dimension', () => {
    const out = emf({ dimensions: { [QUEUE_METRICS.dimension]: 'q' } });
    emitQueueDepth({ queue: 'q', pending: 1, runnable: 2, starting: 3, running: 4 }, out.metrics);
    expect(directive(out.lines[0]).Dimensions).toEqual([[QUEUE_METRICS.dimension]]);
    expect(out.lines[0]).toMatchObject({
      JobQueue: 'q',
      [QUEUE_METRICS.pending]: 1,
      [QUEUE_METRICS.runnable]: 2,
      [QUEUE_METRICS.starting]: 3,
      [QUEUE_METRICS.running]: 4,
    });
  });
});
