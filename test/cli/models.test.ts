/**
 * `models <group>` at the request level: a real SageMakerClient (serialization, retries, deserialization) over a
 * request handler that answers with the response shapes of the SageMaker API reference (ListModelPackages,
 * BatchDescribeModelPackage; awsJson1_1, timestamps as epoch seconds) and keeps every request. aws-sdk-client-mock
 * stubs `send` above the retry middleware, so it could not show the throttling retry. The local registry is the
 * shipped example's.
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { SageMakerClient } from '@aws-sdk/client-sagemaker';
import { afterAll, describe, expect, it } from '@jest/globals';
import type { HttpRequest, HttpResponse } from '@smithy/types';
import { listModels, modelListSchema, modelsCommand } from '../../src/cli/commands/models.js';
import type { CommandContext } from '../../src/cli/context.js';
import { CliError } from '../../src/cli/errors.js';
import { main } from '../../src/cli/main.js';
import { LocalObjectStore } from '../../src/storage/local.js';

const ARN = (v: number): string => `arn:aws:sagemaker:eu-west-1:123456789012:model-package/iris/${v}`;
const EXAMPLE = new URL('../../examples/breast-cancer/', import.meta.url).pathname;

interface Sent {
  readonly target: string;
  readonly body: Record<string, unknown>;
  readonly attempt: string | undefined;
}

function answer(status: number, body: unknown): { response: HttpResponse } {
  return {
    response: {
      statusCode: status,
      headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': 'req-1' },
      body: Readable.from([Buffer.from(JSON.stringify(body))]),
    },
  };
}

/** A client whose requests are answered, in order, by `answers`; `sent` records each request. */
function scriptedClient(answers: { response: HttpResponse }[]): { client: SageMakerClient; sent: Sent[] } {
  const sent: Sent[] = [];
  const client = new SageMakerClient({
    region: 'eu-west-1',
    credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
    requestHandler: {
      handle: async (request: HttpRequest) => {
        const raw =
          request.body instanceof Uint8Array ? new TextDecoder().decode(request.body) : String(request.body);
        sent.push({
          target: request.headers['x-amz-target'] ?? '',
          body: JSON.parse(raw) as Record<string, unknown>,
          attempt: request.headers['amz-sdk-request'],
        });
        const next = answers.shift();
        if (!next) throw new Error(`unexpected request ${raw}`);
        return next;
      },
    },
  });
  return { client, sent };
}

function summary(
  version: number,
  approval: string,
  status = 'Completed',
  time = 1714570800 + version * 3600,
) {
  return {
    ModelPackageName: 'iris',
    ModelPackageGroupName: 'iris',
    ModelPackageVersion: version,
    ModelPackageArn: ARN(version),
    ModelPackageDescription: `iris classifier, training run ${version}`,
    CreationTime: time,
    ModelPackageStatus: status,
    ModelApprovalStatus: approval,
  };
}

/** A BatchDescribeModelPackageSummary with the artifact as ModelDataUrl. */
function described(version: number, approval: string, status = 'Completed') {
  return {
    ModelPackageGroupName: 'iris',
    ModelPackageVersion: version,
    ModelPackageArn: ARN(version),
    CreationTime: 1714570800 + version * 3600,
    InferenceSpecification: {
      Containers: [
        {
          Image: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/batch-infer-worker:latest',
          ModelDataUrl: `s3://models-bucket/iris/${version}/model.tar.gz`,
        },
      ],
      SupportedContentTypes: ['application/x-parquet'],
      SupportedResponseMIMETypes: ['application/x-parquet'],
    },
    ModelPackageStatus: status,
    ModelApprovalStatus: approval,
  };
}

function context(cwd = tmpdir(), env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const ctx: CommandContext = {
    io: {
      stdout: { write: (t: string) => out.push(t), isTTY: false },
      stderr: { write: (t: string) => err.push(t), isTTY: false },
      env: { NO_COLOR: '1', ...env },
      cwd,
    },
    exit: () => undefined,
    interrupted: new AbortController().signal,
  };
  return { ctx, out, err };
}

const LIST = 'SageMaker.ListModelPackages';
const BATCH = 'SageMaker.BatchDescribeModelPackage';

describe('models <group> on SageMaker', () => {
  it('pages ListModelPackages newest first, describes each page once, and retries a throttled request', async () => {
    const { client, sent } = scriptedClient([
      answer(200, {
        ModelPackageSummaryList: [summary(7, 'PendingManualApproval', 'InProgress'), summary(6, 'Approved')],
        NextToken: 'page-2',
      }),
      answer(200, {
        ModelPackageSummaries: {
          [ARN(7)]: described(7, 'PendingManualApproval', 'InProgress'),
          [ARN(6)]: described(6, 'Approved'),
        },
        BatchDescribeModelPackageErrorMap: {},
      }),
      answer(400, { __type: 'ThrottlingException', message: 'Rate exceeded' }),
      answer(200, { ModelPackageSummaryList: [summary(5, 'Rejected')] }),
      answer(200, {
        ModelPackageSummaries: {},
        BatchDescribeModelPackageErrorMap: {
          [ARN(5)]: { ErrorCode: 'AccessDenied', ErrorResponse: 'not authorized to describe' },
        },
      }),
    ]);
    const { ctx, out } = context();
    expect(await modelsCommand('iris', { json: true }, ctx, { sagemaker: () => client })).toBe(0);

    const list = modelListSchema.parse(JSON.parse(out.join('')));
    expect(out.join('').trim().split('\n')).toHaveLength(1);
    expect(list.registry).toEqual({ kind: 'sagemaker', region: 'eu-west-1' });
    expect(list.versions.map((v) => [v.version, v.status, v.packageStatus])).toEqual([
      [7, 'PendingManualApproval', 'InProgress'],
      [6, 'Approved', 'Completed'],
      [5, 'Rejected', 'Completed'],
    ]);
    expect(list.versions[1]).toEqual({
      group: 'iris',
      version: 6,
      status: 'Approved',
      createdAt: '2024-05-01T19:40:00.000Z',
      artifactUri: 's3://models-bucket/iris/6/model.tar.gz',
      packageStatus: 'Completed',
      ref: ARN(6),
    });
    expect(list.versions[2]?.artifactUri).toBeUndefined();
    expect(list.versions[2]?.problem).toBe(
      'BatchDescribeModelPackage: AccessDenied: not authorized to describe',
    );
    // latest-approved skips packages that are not Completed.
    expect(list.latestApproved).toBe(6);

    const listBody = {
      ModelPackageGroupName: 'iris',
      SortBy: 'CreationTime',
      SortOrder: 'Descending',
      MaxResults: 100,
    };
    expect(sent.map((s) => [s.target, s.body])).toEqual([
      [LIST, listBody],
      [BATCH, { ModelPackageArnList: [ARN(7), ARN(6)] }],
      [LIST, { ...listBody, NextToken: 'page-2' }],
      [LIST, { ...listBody, NextToken: 'page-2' }],
      [BATCH, { ModelPackageArnList: [ARN(5)] }],
    ]);
    expect(sent.map((s) => s.attempt)).toEqual([
      'attempt=1; max=3',
      'attempt=1; max=3',
      'attempt=1; max=3',
      'attempt=2; max=3',
      'attempt=1; max=3',
    ]);
  });

  it('--approved filters on the server; --limit stops paging once it has enough', async () => {
    const { client, sent } = scriptedClient([
      answer(200, {
        ModelPackageSummaryList: [summary(6, 'Approved'), summary(4, 'Approved')],
        NextToken: 'more',
      }),
      answer(200, { ModelPackageSummaries: { [ARN(6)]: described(6, 'Approved') } }),
    ]);
    const { ctx } = context();
    const list = await listModels('iris', { approved: true, limit: '1' }, ctx, { sagemaker: () => client });
    expect(list.versions.map((v) => v.version)).toEqual([6]);
    expect(sent.map((s) => [s.target, s.body])).toEqual([
      [
        LIST,
        {
          ModelPackageGroupName: 'iris',
          ModelApprovalStatus: 'Approved',
          SortBy: 'CreationTime',
          SortOrder: 'Descending',
          MaxResults: 100,
        },
      ],
      [BATCH, { ModelPackageArnList: [ARN(6)] }],
    ]);
  });

  it('renders a table with the package status column', async () => {
    const { client } = scriptedClient([
      answer(200, { ModelPackageSummaryList: [summary(2, 'Approved')] }),
      answer(200, { ModelPackageSummaries: { [ARN(2)]: described(2, 'Approved') } }),
    ]);
    const { ctx, out } = context();
    expect(await modelsCommand('iris', {}, ctx, { sagemaker: () => client })).toBe(0);
    expect(out.join('').split('\n')).toEqual([
      'Model group "iris" in SageMaker Model Registry (eu-west-1): 1 version · latest-approved = 2',
      '',
      'VERSION  STATUS    PACKAGE    CREATED               ARTIFACT',
      '2        Approved  Completed  2024-05-01T15:40:00Z  s3://models-bucket/iris/2/model.tar.gz',
      '',
    ]);
  });

  it('an unknown group is one line naming the group and region, exit 2', async () => {
    const { client, sent } = scriptedClient([answer(200, { ModelPackageSummaryList: [] })]);
    const { ctx } = context();
    const err = await listModels('irsi', {}, ctx, { sagemaker: () => client }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(2);
    expect((err as Error).message).toBe(
      'model package group "irsi" (SageMaker Model Registry, eu-west-1) has no model packages or does not exist; ' +
        'check model.registry.group and the region',
    );
    expect(sent).toHaveLength(1);
  });

  it('--approved with none approved lists nothing when the group exists', async () => {
    const { client, sent } = scriptedClient([
      answer(200, { ModelPackageSummaryList: [] }),
      answer(200, { ModelPackageSummaryList: [summary(1, 'PendingManualApproval')] }),
    ]);
    const { ctx, out } = context();
    expect(await modelsCommand('iris', { approved: true }, ctx, { sagemaker: () => client })).toBe(0);
    expect(out.join('')).toBe(
      'Model group "iris" in SageMaker Model Registry (eu-west-1): 0 versions · no version latest-approved can use\n',
    );
    expect(sent[1]?.body).toEqual({ ModelPackageGroupName: 'iris', MaxResults: 1 });
  });
});

describe('models <group> on the local registry', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it("lists the example's versions newest first from ./registry", async () => {
    const { ctx, out } = context(EXAMPLE);
    expect(
      await modelsCommand('breast-cancer-mlp', { json: true }, ctx, { store: new LocalObjectStore() }),
    ).toBe(0);
    const list = modelListSchema.parse(JSON.parse(out.join('')));
    expect(list.registry).toEqual({ kind: 'local', uri: `file://${EXAMPLE}registry/` });
    expect(list.latestApproved).toBe(1);
    expect(list.versions.map((v) => [v.version, v.status, v.createdAt])).toEqual([
      [2, 'PendingManualApproval', '2024-06-01T09:00:00.000Z'],
      [1, 'Approved', '2024-05-01T09:00:00.000Z'],
    ]);
    expect(list.versions[1]?.artifactUri).toBe(`file://${EXAMPLE}registry/breast-cancer-mlp/1/model.onnx`);
  });

  it('--registry points elsewhere; a version without a model file says so', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'models-'));
    dirs.push(root);
    cpSync(`${EXAMPLE}registry/`, root, { recursive: true });
    rmSync(path.join(root, 'breast-cancer-mlp/2/model.onnx'));
    writeFileSync(
      path.join(root, 'breast-cancer-mlp/2/metadata.json'),
      JSON.stringify({ status: 'Approved' }),
    );
    const { ctx } = context(tmpdir());
    const list = await listModels('breast-cancer-mlp', { registry: root, approved: true }, ctx, {
      store: new LocalObjectStore(),
    });
    expect(list.versions.map((v) => v.version)).toEqual([2, 1]);
    expect(list.versions[0]?.artifactUri).toBeUndefined();
    expect(list.versions[0]?.problem).toMatch(/holds neither model\.onnx nor model\.tar\.gz$/);
  });

  it('through main: help, an unknown group in one line with exit 2, a bad --limit with the usage', async () => {
    const help = context(EXAMPLE);
    expect(await main(['help', 'models'], help.ctx.io)).toBe(0);
    expect(help.out.join('')).toContain('Usage: batch-infer models [options] <group>');
    expect(help.out.join('')).toContain('--approved');

    const unknown = context(EXAMPLE);
    expect(await main(['models', 'nope', '--registry', 'registry'], unknown.ctx.io)).toBe(2);
    expect(unknown.err.join('')).toMatch(/^model group "nope" has no versions in the local registry .*\n$/);
    expect(unknown.err.join('').split('\n')).toHaveLength(2);

    const limit = context(EXAMPLE);
    expect(await main(['models', 'breast-cancer-mlp', '--limit', '0'], limit.ctx.io)).toBe(2);
    expect(limit.err.join('')).toContain('--limit must be a positive integer (got "0")');
    expect(limit.err.join('')).toContain('Usage: batch-infer models');
  });
});
