/**
 * BatchJobInspector: the AWS implementation runs the real BatchClient (serialization, signing, retries, parsing)
 * against recorded exchanges in the shapes of the AWS Batch API reference (test/fixtures/batch); the local one
 * reads the cause the local worker pool throws (src/local/run-local.ts: FailedChildren in the JSON message).
 */
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { BatchClient } from '@aws-sdk/client-batch';
import { describe, expect, it } from '@jest/globals';
import { AwsBatchJobInspector } from '../../src/results/aws-job-inspector.js';
import { LocalJobInspector } from '../../src/results/job-inspector.js';

interface Exchange {
  readonly request: { readonly path: string; readonly body: unknown };
  readonly response: {
    readonly status: number;
    readonly headers: Record<string, string>;
    readonly body: unknown;
  };
}

async function fixture<T>(name: string): Promise<T> {
  return JSON.parse(await readFile(new URL(`../fixtures/batch/${name}.json`, import.meta.url), 'utf8')) as T;
}

interface WireRequest {
  readonly method: string;
  readonly hostname: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: unknown;
}

class RecordedBatch {
  readonly wire: WireRequest[] = [];
  readonly sent: { path: string; body: unknown }[] = [];
  private next = 0;

  constructor(private readonly exchanges: readonly Exchange[]) {}

  readonly handler = {
    handle: async (request: WireRequest): Promise<{ response: unknown }> => {
      this.wire.push(request);
      const text =
        typeof request.body === 'string'
          ? request.body
          : new TextDecoder().decode(request.body as Uint8Array);
      this.sent.push({ path: request.path, body: JSON.parse(text) as unknown });
      const exchange = this.exchanges[this.next++];
      if (!exchange) throw new Error(`unexpected request ${request.path} ${text}`);
      return {
        response: {
          statusCode: exchange.response.status,
          headers: exchange.response.headers,
          body: Readable.from([Buffer.from(JSON.stringify(exchange.response.body))]),
        },
      };
    },
    updateHttpClientConfig: (): void => undefined,
    httpHandlerConfigs: (): Record<string, never> => ({}),
  };

  client(): BatchClient {
    return new BatchClient({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
      requestHandler: this.handler,
      maxAttempts: 3,
    });
  }

  done(): void {
    expect(this.next).toBe(this.exchanges.length);
  }
}

describe('AwsBatchJobInspector', () => {
  it('lists the failed children of an array job across pages (retrying throttling) and describes them', async () => {
    const { exchanges } = await fixture<{ exchanges: Exchange[] }>('array-job-failed');
    const { inferError } = await fixture<{ inferError: unknown }>('sfn-array-failure');
    const batch = new RecordedBatch(exchanges);

    const failed = await new AwsBatchJobInspector(batch.client()).failedJobs(inferError);

    batch.done();
    const parent = '4c1f2a9e-6b3d-4f0e-9a7c-1d2e3f4a5b6c';
    expect(failed).toEqual([
      {
        arrayIndex: 2,
        jobId: `${parent}:2`,
        exitCode: 1,
        statusReason: 'Essential container in task exited',
        logStream: 'batch-infer-worker/default/1b2c-attempt1',
        attempts: 1,
      },
      {
        arrayIndex: 5,
        jobId: `${parent}:5`,
        exitCode: 137,
        statusReason: 'Essential container in task exited',
        reason: 'OutOfMemoryError: Container killed due to memory usage',
        logStream: 'batch-infer-worker/default/5e6f-attempt3',
        attempts: 3,
      },
      {
        arrayIndex: 7,
        jobId: `${parent}:7`,
        statusReason: 'Task failed to start',
        reason:
          'CannotInspectContainerError: Could not transition to inspecting; timed out after waiting 30s',
        logStream: 'batch-infer-worker/default/7a8b-attempt2',
        attempts: 2,
      },
    ]);
    // What went over the wire: the recorded request bodies, POSTed as restJson1 to the Batch endpoint.
    expect(batch.sent).toEqual(exchanges.map((e) => e.request));
    for (const w of batch.wire) {
      expect(w.method).toBe('POST');
      expect(w.hostname).toBe('batch.eu-west-1.amazonaws.com');
      expect(w.headers['content-type']).toBe('application/json');
      expect(w.headers.authorization).toMatch(
        /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/batch\//,
      );
    }
    expect(batch.wire.map((w) => w.headers['amz-sdk-request'])).toEqual([
      'attempt=1; max=3',
      'attempt=1; max=3',
      'attempt=2; max=3',
      'attempt=1; max=3',
    ]);
  });

  it('reads a single job from the cause without calling Batch', async () => {
    const { inferError } = await fixture<{ inferError: unknown }>('sfn-single-failure');
    const batch = new RecordedBatch([]);
    expect(await new AwsBatchJobInspector(batch.client()).failedJobs(inferError)).toEqual([
      {
        jobId: '9c0d7e6f-1a2b-4c3d-8e9f-0a1b2c3d4e5f',
        exitCode: 139,
        statusReason: 'Essential container in task exited',
        logStream: 'batch-infer-worker/default/9c0d-attempt1',
        attempts: 1,
      },
    ]);
    expect(batch.sent).toEqual([]);
  });

  it('gives nothing for an error that is not a job description', async () => {
    const batch = new RecordedBatch([]);
    const inspector = new AwsBatchJobInspector(batch.client());
    expect(await inspector.failedJobs({ Error: 'States.Timeout', Cause: 'not json' })).toEqual([]);
    expect(await inspector.failedJobs('boom')).toEqual([]);
    expect(batch.sent).toEqual([]);
  });
});

describe('LocalJobInspector', () => {
  it('reads FailedChildren from the cause the local worker pool throws', async () => {
    // The shape src/local/run-local.ts puts in the error message (which becomes the caught Cause).
    const cause = JSON.stringify({
      JobName: 'infer-run-1-r0',
      Status: 'FAILED',
      StatusReason: 'Array Child Job failed',
      ArrayProperties: { Size: 4, StatusSummary: { FAILED: 2 } },
      FailedChildren: [
        {
          index: 3,
          attempts: 3,
          exitCode: 1,
          statusReason: 'Essential container in task exited',
          logFile: '/s/logs/3.log',
        },
        { index: 0, attempts: 1, exitCode: 137, statusReason: 'Killed', logFile: '/s/logs/0.log' },
      ],
    });
    expect(await new LocalJobInspector().failedJobs({ Error: 'States.TaskFailed', Cause: cause })).toEqual([
      { arrayIndex: 0, exitCode: 137, statusReason: 'Killed', logStream: '/s/logs/0.log', attempts: 1 },
      {
        arrayIndex: 3,
        exitCode: 1,
        statusReason: 'Essential container in task exited',
        logStream: '/s/logs/3.log',
        attempts: 3,
      },
    ]);
  });

  it('cannot see the children of an AWS array job from its cause alone', async () => {
    const { inferError } = await fixture<{ inferError: unknown }>('sfn-array-failure');
    expect(await new LocalJobInspector().failedJobs(inferError)).toEqual([]);
  });
});
