/**
 * SageMakerModelRegistry against recorded HTTP exchanges. The real SDK client runs end to end (serialization,
 * signing, retries, deserialization); only its HTTP handler is replaced by one that returns the recorded responses
 * and keeps the requests, so the tests check what goes over the wire in both directions.
 *
 * Fixture shapes follow the SageMaker API reference (ListModelPackages, DescribeModelPackage; awsJson1_1, with
 * timestamps as epoch seconds).
 */
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { SageMakerClient } from '@aws-sdk/client-sagemaker';
import { describe, expect, it } from '@jest/globals';
import { SageMakerModelRegistry } from '../../src/registry/sagemaker.js';
import { ModelError } from '../../src/spec/errors.js';

interface RecordedRequest {
  readonly target: string;
  readonly body: unknown;
}
interface Exchange {
  readonly request: RecordedRequest;
  readonly response: {
    readonly status: number;
    readonly headers: Record<string, string>;
    readonly body: unknown;
  };
}
interface Fixture {
  readonly description: string;
  readonly exchanges: readonly Exchange[];
}

/** What the handler receives: the parts of the SDK's HttpRequest these tests read. */
interface WireRequest {
  readonly method: string;
  readonly hostname: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: unknown;
}

class RecordedHandler {
  readonly requests: RecordedRequest[] = [];
  readonly wire: WireRequest[] = [];
  private next = 0;

  constructor(private readonly exchanges: readonly Exchange[]) {}

  async handle(request: WireRequest): Promise<{ response: unknown }> {
    this.wire.push(request);
    const body =
      request.body instanceof Uint8Array ? new TextDecoder().decode(request.body) : String(request.body);
    this.requests.push({ target: request.headers['x-amz-target'] ?? '', body: JSON.parse(body) as unknown });
    const exchange = this.exchanges[this.next++];
    if (!exchange) throw new Error(`unexpected request #${this.next}: ${body}`);
    const { status, headers, body: responseBody } = exchange.response;
    return {
      response: {
        statusCode: status,
        headers,
        body: Readable.from([Buffer.from(JSON.stringify(responseBody))]),
      },
    };
  }

  updateHttpClientConfig(): void {}

  httpHandlerConfigs(): Record<string, never> {
    return {};
  }
}

async function setup(
  name: string,
): Promise<{ registry: SageMakerModelRegistry; handler: RecordedHandler; fixture: Fixture }> {
  const fixture = JSON.parse(
    await readFile(new URL(`../fixtures/sagemaker/${name}.json`, import.meta.url), 'utf8'),
  ) as Fixture;
  const handler = new RecordedHandler(fixture.exchanges);
  const client = new SageMakerClient({
    region: 'eu-west-1',
    credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' },
    requestHandler: handler,
  });
  return { registry: new SageMakerModelRegistry(client), handler, fixture };
}

/** Every recorded request was sent, in order, with exactly the recorded body. */
function expectAllSent(handler: RecordedHandler, fixture: Fixture): void {
  expect(handler.requests).toEqual(fixture.exchanges.map((e) => e.request));
  for (const wire of handler.wire) {
    expect(wire.method).toBe('POST');
    expect(wire.hostname).toBe('api.sagemaker.eu-west-1.amazonaws.com');
    expect(wire.path).toBe('/');
    expect(wire.headers['content-type']).toBe('application/x-amz-json-1.1');
    expect(wire.headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/sagemaker\//,
    );
  }
}

describe('SageMakerModelRegistry', () => {
  it('latest-approved: pages with NextToken, skips packages that are not Completed', async () => {
    const { registry, handler, fixture } = await setup('latest-approved-paginated');
    await expect(registry.resolve('iris', 'latest-approved')).resolves.toEqual({
      group: 'iris',
      version: 5,
      status: 'Approved',
      artifactUri: 's3://models-bucket/iris/5/model.onnx',
      createdAt: '2024-05-01T15:40:00.000Z',
      ref: 'arn:aws:sagemaker:eu-west-1:123456789012:model-package/iris/5',
    });
    expectAllSent(handler, fixture);
  });

  it('no approved version: names the group, the region and the versions it has', async () => {
    const { registry, handler, fixture } = await setup('no-approved');
    const err = await registry.resolve('iris', 'latest-approved').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect((err as Error).message).toBe(
      'model package group "iris" (SageMaker Model Registry, eu-west-1) has no Approved version that is Completed ' +
        '(it has versions 1 (Rejected), 2 (PendingManualApproval), 3 (PendingManualApproval, InProgress)). ' +
        'Approve a version in SageMaker Model Registry (UpdateModelPackage ModelApprovalStatus=Approved), or pin a ' +
        'version with model.registry.version',
    );
    expectAllSent(handler, fixture);
  });

  it('retries a ThrottlingException and reads a ModelDataSource S3 object', async () => {
    const { registry, handler, fixture } = await setup('throttled');
    const version = await registry.resolve('iris', 'latest-approved');
    expect(version.artifactUri).toBe('s3://models-bucket/iris/4/model.onnx');
    expect(version.version).toBe(4);
    expectAllSent(handler, fixture);
    expect(handler.wire.map((w) => w.headers['amz-sdk-request'])).toEqual([
      'attempt=1; max=3',
      'attempt=2; max=3',
      'attempt=1; max=3',
    ]);
  });

  it('a package without an artifact URL is a ModelError naming the package', async () => {
    const { registry, handler, fixture } = await setup('missing-artifact');
    const err = await registry.resolve('iris', 'latest-approved').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect((err as Error).message).toContain(
      'model package arn:aws:sagemaker:eu-west-1:123456789012:model-package/iris/2 (group "iris" version 2) has no ' +
        'model artifact',
    );
    expectAllSent(handler, fixture);
  });

  it('a pinned version is found by listing, whatever its approval; an S3Prefix source holds model.onnx', async () => {
    const { registry, handler, fixture } = await setup('pinned-version');
    await expect(registry.resolve('iris', 3)).resolves.toMatchObject({
      version: 3,
      status: 'PendingManualApproval',
      artifactUri: 's3://models-bucket/iris/3/model.onnx',
    });
    expectAllSent(handler, fixture);
  });

  it('latest takes the newest package regardless of approval; a model.tar.gz is returned as an archive', async () => {
    const { registry, handler, fixture } = await setup('archive');
    await expect(registry.resolve('iris', 'latest')).resolves.toEqual({
      group: 'iris',
      version: 6,
      status: 'Rejected',
      artifactUri: 's3://models-bucket/iris/6/model.tar.gz',
      archive: true,
      createdAt: '2024-05-01T16:40:00.000Z',
      ref: 'arn:aws:sagemaker:eu-west-1:123456789012:model-package/iris/6',
    });
    expectAllSent(handler, fixture);
  });

  it('a Gzip ModelDataSource is an archive whatever its name; a Gzip S3Prefix is refused', async () => {
    const gzip = await setup('gzip-source');
    await expect(gzip.registry.resolve('iris', 'latest-approved')).resolves.toMatchObject({
      version: 7,
      artifactUri: 's3://models-bucket/iris/7/packed-model',
      archive: true,
    });
    expectAllSent(gzip.handler, gzip.fixture);

    const prefix = await setup('gzip-prefix');
    const err = await prefix.registry.resolve('iris', 'latest-approved').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect((err as Error).message).toContain(
      'has a Gzip-compressed S3Prefix model source (s3://models-bucket/iris/7/); a compressed model must be one S3Object',
    );
  });

  it('an empty or unknown group says so', async () => {
    const { registry, handler, fixture } = await setup('empty-group');
    await expect(registry.resolve('irsi', 'latest-approved')).rejects.toThrow(
      'model package group "irsi" (SageMaker Model Registry, eu-west-1) has no model packages or does not exist',
    );
    expectAllSent(handler, fixture);
  });
});
