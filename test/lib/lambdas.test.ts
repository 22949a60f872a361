/**
 * What the functions publish besides their task results: EMF metrics (src/runtime/metrics.ts), Finalize's run record
 * (metrics and the runs table row, lambdas/finalize/run-record.ts) and the queue depth measurement
 * (lambdas/queue-depth/depth.ts, with the real BatchClient over recorded ListJobs responses).
 */
import * as path from 'node:path';
import { BatchClient } from '@aws-sdk/client-batch';
import { describe, expect, it } from 'vitest';
import { RUN_RECORD_COLUMNS } from '../../lambdas/finalize/run-record-columns.js';
import { driftOf, publishRunRecord, runRecordUri } from '../../lambdas/finalize/run-record.js';
import { emitQueueDepth, measureQueue } from '../../lambdas/queue-depth/depth.js';
import { REPO_ROOT } from '../../lib/paths.js';
import { loadPipelines } from '../../lib/pipelines.js';
import type { RunResult } from '../../src/runs/tasks.js';
import {
  createEmfMetrics,
  METRICS_NAMESPACE,
  QUEUE_METRICS,
  RUN_METRICS,
} from '../../src/runtime/metrics.js';
import type { ObjectStore } from '../../src/storage/object-store.js';
import { RecordedHttpHandler, TEST_CREDENTIALS } from '../triggers/recorded-http.js';

function emf(): { lines: Record<string, unknown>[]; write: (line: string) => void } {
  const lines: Record<string, unknown>[] = [];
  return { lines, write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) };
}

describe('EMF metrics', () => {
  it('writes one Embedded Metric Format line: directive, dimensions, properties and values', () => {
    const out = emf();
    const metrics = createEmfMetrics({
      namespace: 'Test',
      dimensions: { Pipeline: 'scores' },
      properties: { runId: 'r1' },
      write: out.write,
      now: () => 1_700_000_000_000,
    });
    metrics.add('Records', 10, 'Count');
    metrics.add('ErrorRate', 0.1, 'None');
    metrics.flush();
    expect(out.lines).toEqual([
      {
        _aws: {
          Timestamp: 1_700_000_000_000,
          CloudWatchMetrics: [
            {
              Namespace: 'Test',
              Dimensions: [['Pipeline']],
              Metrics: [
                { Name: 'Records', Unit: 'Count' },
                { Name: 'ErrorRate', Unit: 'None' },
              ],
            },
          ],
        },
        runId: 'r1',
        Pipeline: 'scores',
        Records: 10,
        ErrorRate: 0.1,
      },
    ]);
  });

  it('writes several values of one metric as an array, and nothing when empty', () => {
    const out = emf();
    const metrics = createEmfMetrics({ write: out.write });
    metrics.flush();
    metrics.add('Latency', 1, 'Milliseconds');
    metrics.add('Latency', 2, 'Milliseconds');
    metrics.flush();
    metrics.flush();
    expect(out.lines).toHaveLength(1);
    expect(out.lines[0]!.Latency).toEqual([1, 2]);
  });

  it('defaults the namespace to POWERTOOLS_METRICS_NAMESPACE, then BatchInfer', () => {
    const out = emf();
    const saved = process.env.POWERTOOLS_METRICS_NAMESPACE;
    try {
      delete process.env.POWERTOOLS_METRICS_NAMESPACE;
      const metrics = createEmfMetrics({ write: out.write });
      metrics.add('X', 1, 'Count');
      metrics.flush();
      process.env.POWERTOOLS_METRICS_NAMESPACE = 'Other';
      const other = createEmfMetrics({ write: out.write });
      other.add('X', 1, 'Count');
      other.flush();
    } finally {
      if (saved === undefined) delete process.env.POWERTOOLS_METRICS_NAMESPACE;
      else process.env.POWERTOOLS_METRICS_NAMESPACE = saved;
    }
    const namespaces = out.lines.map(
      (l) => (l._aws as { CloudWatchMetrics: { Namespace: string }[] }).CloudWatchMetrics[0]!.Namespace,
    );
    expect(namespaces).toEqual([METRICS_NAMESPACE, 'Other']);
  });

  it('refuses values CloudWatch would drop and names that would collide', () => {
    const metrics = createEmfMetrics({ dimensions: { Pipeline: 'p' }, write: () => undefined });
    expect(() => metrics.add('X', Number.NaN, 'Count')).toThrow(/finite number/);
    expect(() => metrics.add('Pipeline', 1, 'Count')).toThrow(/name of a dimension/);
    metrics.add('Y', 1, 'Count');
    expect(() => metrics.add('Y', 1, 'Seconds')).toThrow(/was added as Count/);
    expect(() =>
      createEmfMetrics({
        dimensions: Object.fromEntries(Array.from({ length: 31 }, (_, i) => [`d${i}`, 'v'])),
      }),
    ).toThrow(/at most 30 dimensions/);
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
  const result: RunResult = {
    runId: manifest.runId,
    status: 'SUCCEEDED',
    message: manifest.message,
    records: 1000,
    predictions: 990,
    errors: 10,
    failedShards: 0,
    outputUri: manifest.outputs.partitionUri,
    manifestUri: 's3://data/predictions/breast_cancer/_runs/s3-patients_csv-0123/manifest.json',
  };

  function store(raw: unknown): { store: ObjectStore; puts: { uri: string; body: string }[] } {
    const puts: { uri: string; body: string }[] = [];
    const fake = {
      get: async (uri: string) => {
        if (uri !== result.manifestUri) throw new Error(`unexpected read of ${uri}`);
        return new TextEncoder().encode(JSON.stringify(raw));
      },
      put: async (uri: string, body: Uint8Array | string) => {
        puts.push({ uri, body: typeof body === 'string' ? body : new TextDecoder().decode(body) });
        return { uri, size: 0, etag: 'e' };
      },
    };
    return { store: fake as unknown as ObjectStore, puts };
  }

  it('emits the run metrics with the pipeline dimension, and writes one JSON line to the runs table', async () => {
    const out = emf();
    const { store: s, puts } = store(manifest);
    const record = await publishRunRecord(result, {
      store: s,
      metrics: (p, runId) =>
        createEmfMetrics({
          dimensions: { [RUN_METRICS.dimension]: p },
          properties: { runId },
          write: out.write,
        }),
      auditRunsUri: 's3://data/audit/runs/',
    });
    expect(out.lines).toHaveLength(1);
    expect(out.lines[0]).toMatchObject({
      Pipeline: 'breast_cancer',
      runId: manifest.runId,
      [RUN_METRICS.records]: 1000,
      [RUN_METRICS.errors]: 10,
      [RUN_METRICS.errorRate]: 0.01,
      [RUN_METRICS.failedShards]: 0,
      [RUN_METRICS.recordsPerSecond]: 50,
      [RUN_METRICS.wallSeconds]: 20,
    });
    expect(out.lines[0]).not.toHaveProperty(RUN_METRICS.drift);
    expect(puts).toHaveLength(1);
    expect(puts[0]!.uri).toBe(
      's3://data/audit/runs/breast_cancer/run_date=2025-03-01/s3-patients_csv-0123.json',
    );
    expect(puts[0]!.body.trimEnd().split('\n')).toHaveLength(1);
    expect(JSON.parse(puts[0]!.body)).toEqual(record);
    expect(record).toMatchObject({
      pipeline: 'breast_cancer',
      model_version: 3,
      records_per_second: 50,
      reason: null,
    });
  });

  it('has exactly the columns the runs table declares', () => {
    const { store: s } = store(manifest);
    return publishRunRecord(result, {
      store: s,
      metrics: () => createEmfMetrics({ write: () => undefined }),
    }).then((record) => {
      expect(Object.keys(record)).toEqual(RUN_RECORD_COLUMNS.map((c) => c.name));
    });
  });

  it('emits Drift once a manifest carries a drift score', async () => {
    expect(driftOf({ drift: 0.31 })).toBe(0.31);
    expect(driftOf({ drift: { score: 0.12 } })).toBe(0.12);
    expect(driftOf({})).toBeUndefined();
    const out = emf();
    const { store: s } = store({ ...manifest, drift: { score: 0.4 } });
    await publishRunRecord(result, { store: s, metrics: () => createEmfMetrics({ write: out.write }) });
    expect(out.lines[0]![RUN_METRICS.drift]).toBe(0.4);
  });

  it('writes no row without a runs location (local runs)', async () => {
    const { store: s, puts } = store(manifest);
    await publishRunRecord(result, { store: s, metrics: () => createEmfMetrics({ write: () => undefined }) });
    expect(puts).toEqual([]);
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
    const out = emf();
    emitQueueDepth(
      { queue: 'q', pending: 1, runnable: 2, starting: 3, running: 4 },
      createEmfMetrics({ dimensions: { [QUEUE_METRICS.dimension]: 'q' }, write: out.write }),
    );
    expect(out.lines[0]).toMatchObject({
      JobQueue: 'q',
      [QUEUE_METRICS.pending]: 1,
      [QUEUE_METRICS.runnable]: 2,
      [QUEUE_METRICS.starting]: 3,
      [QUEUE_METRICS.running]: 4,
    });
  });
});
