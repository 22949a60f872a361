/**
 * `inspect <registry ref>`: SageMaker at the request level (aws-sdk-client-mock, response shapes from the SageMaker API
 * reference: ListModelPackages, DescribeModelPackage), the artifacts on a real S3-compatible server (s3rver on
 * loopback): a model.tar.gz with the model and its labels, a bare .onnx, and an object that is not a model.
 */
import { readFileSync } from 'node:fs';
import {
  DescribeModelPackageCommand,
  ListModelPackagesCommand,
  SageMakerClient,
  type DescribeModelPackageCommandOutput,
} from '@aws-sdk/client-sagemaker';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { mockClient } from 'aws-sdk-client-mock';
import { inspectCommand, modelInfoSchema } from '../../src/cli/commands/inspect.js';
import type { CommandContext } from '../../src/cli/context.js';
import { CliError, exitCodeOf } from '../../src/cli/errors.js';
import { main } from '../../src/cli/main.js';
import { createObjectStore } from '../../src/storage/index.js';
import type { ObjectStore } from '../../src/storage/object-store.js';
import { tarGz } from '../registry/tar-fixture.js';
import { startS3Server, useS3TestEnv, type S3TestServer } from '../support/s3-server.js';

const MODELS = new URL('../fixtures/models/', import.meta.url).pathname;
const ARN = (v: number): string => `arn:aws:sagemaker:eu-west-1:123456789012:model-package/iris/${v}`;
const sagemaker = mockClient(SageMakerClient);

let server: S3TestServer;
let restoreEnv: () => void;
let store: ObjectStore;

beforeAll(async () => {
  server = await startS3Server();
  restoreEnv = useS3TestEnv(server.endpoint);
  await server.createBucket('models-bucket');
  store = createObjectStore({ s3Endpoint: server.endpoint });
  const model = readFileSync(`${MODELS}two_outputs.onnx`);
  await store.put(
    's3://models-bucket/iris/5/model.tar.gz',
    tarGz([
      { path: './model/model.onnx', content: model },
      { path: './model/labels.txt', content: 'setosa\nversicolor\nvirginica\n' },
    ]),
  );
  await store.put('s3://models-bucket/iris/3/model.onnx', readFileSync(`${MODELS}affine.onnx`));
  await store.put('s3://models-bucket/iris/4/model.onnx', 'name,score\nx,1\n');
}, 60_000);

afterAll(async () => {
  restoreEnv();
  await server.stop();
});

beforeEach(() => {
  sagemaker.reset();
});

function summary(version: number, approval: string) {
  return {
    ModelPackageName: 'iris',
    ModelPackageGroupName: 'iris',
    ModelPackageVersion: version,
    ModelPackageArn: ARN(version),
    CreationTime: new Date(Date.UTC(2024, 4, 1, version)),
    ModelPackageStatus: 'Completed' as const,
    ModelApprovalStatus: approval as 'Approved',
  };
}

function describedPackage(
  version: number,
  approval: string,
  container: Record<string, unknown>,
): DescribeModelPackageCommandOutput {
  return {
    $metadata: {},
    ModelPackageName: 'iris',
    ModelPackageGroupName: 'iris',
    ModelPackageVersion: version,
    ModelPackageArn: ARN(version),
    CreationTime: new Date(Date.UTC(2024, 4, 1, version)),
    ModelPackageStatus: 'Completed',
    ModelPackageStatusDetails: { ValidationStatuses: [], ImageScanStatuses: [] },
    ModelApprovalStatus: approval as 'Approved',
    InferenceSpecification: {
      Containers: [{ Image: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/worker:1', ...container }],
      SupportedContentTypes: ['application/x-parquet'],
      SupportedResponseMIMETypes: ['application/x-parquet'],
    },
  };
}

function context(env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const ctx: CommandContext = {
    io: {
      stdout: { write: (t: string) => out.push(t), isTTY: false },
      stderr: { write: (t: string) => err.push(t), isTTY: false },
      env: { NO_COLOR: '1', BATCH_INFER_S3_ENDPOINT: server.endpoint, ...env },
      cwd: MODELS,
    },
    exit: () => undefined,
    interrupted: new AbortController().signal,
  };
  return { ctx, out, err };
}

const deps = (regions: (string | undefined)[] = []) => ({
  store,
  sagemaker: (region: string | undefined) => {
    regions.push(region);
    return new SageMakerClient({ region: region ?? 'eu-west-1' });
  },
});

describe('inspect <registry ref> on SageMaker', () => {
  it('<group>: the latest approved version, its model.tar.gz fetched and read; the starter names the registry', async () => {
    sagemaker
      .on(ListModelPackagesCommand)
      .resolves({ ModelPackageSummaryList: [summary(5, 'Approved'), summary(3, 'Approved')] });
    sagemaker
      .on(DescribeModelPackageCommand)
      .resolves(describedPackage(5, 'Approved', { ModelDataUrl: 's3://models-bucket/iris/5/model.tar.gz' }));
    const { ctx, out } = context();
    expect(await inspectCommand('iris', { json: true }, ctx, deps())).toBe(0);
    expect(out).toHaveLength(1);
    const info = modelInfoSchema.parse(JSON.parse(out[0]!));
    expect(info.inputs).toEqual([{ name: 'x', type: 'float32', shape: ['N', 4] }]);
    expect(info.outputs.map((o) => [o.name, o.shape])).toEqual([
      ['logits', ['N', 3]],
      ['embedding', ['N', 4]],
    ]);
    expect(info.artifactUri).toBe('s3://models-bucket/iris/5/model.tar.gz');
    expect(info.registry).toEqual({
      location: { kind: 'sagemaker', region: 'eu-west-1' },
      group: 'iris',
      version: 5,
      status: 'Approved',
      createdAt: '2024-05-01T05:00:00.000Z',
      ref: ARN(5),
    });
    expect(info.starter).toMatch(
      /^model:\n {2}registry:\n {4}group: iris\n {4}version: latest-approved\n {2}inputs:\n/,
    );
    expect(sagemaker.commandCalls(ListModelPackagesCommand).map((c) => c.args[0].input)).toEqual([
      {
        ModelPackageGroupName: 'iris',
        ModelApprovalStatus: 'Approved',
        SortBy: 'CreationTime',
        SortOrder: 'Descending',
        MaxResults: 100,
      },
    ]);
    expect(sagemaker.commandCalls(DescribeModelPackageCommand).map((c) => c.args[0].input)).toEqual([
      { ModelPackageName: ARN(5) },
    ]);
  });

  it('an ARN is described directly in its own region; the starter pins its version; text output', async () => {
    sagemaker.on(DescribeModelPackageCommand, { ModelPackageName: ARN(3) }).resolves(
      describedPackage(3, 'PendingManualApproval', {
        ModelDataSource: {
          S3DataSource: {
            S3Uri: 's3://models-bucket/iris/3/model.onnx',
            S3DataType: 'S3Object',
            CompressionType: 'None',
          },
        },
      }),
    );
    const regions: (string | undefined)[] = [];
    const { ctx, out } = context();
    expect(await inspectCommand(ARN(3), {}, ctx, deps(regions))).toBe(0);
    expect(regions).toEqual(['eu-west-1']);
    expect(sagemaker.commandCalls(ListModelPackagesCommand)).toHaveLength(0);
    expect(out.join('')).toBe(
      [
        'iris version 3 (PendingManualApproval, created 2024-05-01T03:00:00.000Z) in SageMaker Model Registry (eu-west-1)',
        'artifact: s3://models-bucket/iris/3/model.onnx',
        '',
        'inputs:',
        '  x  float32 [N, 3]',
        'outputs:',
        '  y  float32 [N, 2]',
        '',
        'model:',
        '  registry:',
        '    group: iris',
        '    version: 3',
        '  inputs:',
        '    - tensor: x',
        '      dtype: float32',
        '      from:',
        '        columns:',
        '          - x_0',
        '          - x_1',
        '          - x_2',
        '  outputs:',
        '    - tensor: y',
        '',
      ].join('\n'),
    );
  });

  it('no approved version: one line naming the group, its versions and the fix; exit 2', async () => {
    // Nothing Approved; the unfiltered listing (for the message) has two versions.
    sagemaker.on(ListModelPackagesCommand).callsFake((input: { ModelApprovalStatus?: string }) => ({
      ModelPackageSummaryList:
        input.ModelApprovalStatus === 'Approved'
          ? []
          : [summary(2, 'PendingManualApproval'), summary(1, 'Rejected')],
    }));
    const { ctx } = context();
    const err = await inspectCommand('iris', {}, ctx, deps()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect(exitCodeOf(err)).toBe(2);
    expect((err as Error).message).toBe(
      'model package group "iris" (SageMaker Model Registry, eu-west-1) has no Approved version that is Completed ' +
        '(it has versions 1 (Rejected), 2 (PendingManualApproval)). Approve a version in SageMaker Model Registry ' +
        '(UpdateModelPackage ModelApprovalStatus=Approved), or pin a version with model.registry.version',
    );
  });

  it('an artifact that is not an ONNX model: one line naming the version and the artifact; exit 2', async () => {
    sagemaker.on(ListModelPackagesCommand).resolves({ ModelPackageSummaryList: [summary(4, 'Approved')] });
    sagemaker
      .on(DescribeModelPackageCommand)
      .resolves(describedPackage(4, 'Approved', { ModelDataUrl: 's3://models-bucket/iris/4/model.onnx' }));
    const { ctx } = context();
    const err = await inspectCommand('iris:latest', {}, ctx, deps()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect(exitCodeOf(err)).toBe(2);
    expect((err as Error).message).toMatch(
      /^the artifact of model "iris" version 4 is not an ONNX model \(.+\): give an \.onnx file, a model\.tar\.gz/,
    );
    expect((err as Error).message).not.toContain('\n');
    // `latest` lists without the approval filter.
    expect(
      sagemaker.commandCalls(ListModelPackagesCommand)[0]?.args[0].input.ModelApprovalStatus,
    ).toBeUndefined();
  });

  it('through main: an unknown group and an unknown ARN are one line on stderr, exit 2', async () => {
    sagemaker.on(ListModelPackagesCommand).resolves({ ModelPackageSummaryList: [] });
    sagemaker
      .on(DescribeModelPackageCommand)
      .rejects(
        Object.assign(new Error(`ModelPackage ${ARN(9)} does not exist.`), { name: 'ValidationException' }),
      );
    const unknown = context();
    expect(await main(['inspect', 'irsi'], unknown.ctx.io)).toBe(2);
    expect(unknown.err.join('')).toBe(
      'model package group "irsi" (SageMaker Model Registry, us-east-1) has no model packages or does not exist; ' +
        'check model.registry.group and the region\n',
    );
    expect(unknown.out).toEqual([]);

    const arn = context();
    expect(await main(['inspect', ARN(9)], arn.ctx.io)).toBe(2);
    expect(arn.err.join('')).toBe(
      `model package ${ARN(9)}: ModelPackage ${ARN(9)} does not exist. Check the ARN (list a group's versions with ` +
        '`batch-infer models <group>`)\n',
    );
  });

  it('help inspect names the reference forms; a malformed reference is a usage error', async () => {
    const help = context();
    expect(await main(['help', 'inspect'], help.ctx.io)).toBe(0);
    expect(help.out.join('')).toContain('<group>:<version>');
    const bad = context();
    expect(await main(['inspect', 'iris:newest'], bad.ctx.io)).toBe(2);
    expect(bad.err.join('')).toMatch(
      /^"iris:newest": the version after ":" must be latest-approved, latest or a version number/,
    );
    expect(bad.err.join('')).toContain('Usage: batch-infer inspect');
  });
});
