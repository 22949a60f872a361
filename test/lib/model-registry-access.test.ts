/**
 * ModelRegistryAccess: Plan may list and describe the configured model package groups and read their artifacts;
 * the workers may read the artifacts; nothing more. One test per rule.
 */
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { Stack } from 'aws-cdk-lib';
import { describe, expect, it } from '@jest/globals';
import {
  ModelRegistryAccess,
  type ModelRegistryAccessProps,
} from '../../lib/constructs/model-registry-access.js';
import { actionsOf, iamStatements, synthConstruct } from './helpers.js';

function access(props: (stack: Stack) => Partial<ModelRegistryAccessProps> = () => ({})) {
  return synthConstruct(
    (stack) => {
      const plan = new iam.Role(stack, 'Plan', {
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      });
      const worker = new iam.Role(stack, 'Worker', {
        assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      });
      new ModelRegistryAccess(stack, 'Models', {
        resolvers: [plan],
        artifactReaders: [worker],
        modelPackageGroups: ['Breast-Cancer-MLP', 'iris'],
        artifactLocations: [
          { bucket: s3.Bucket.fromBucketName(stack, 'Artifacts', 'ml-models'), keyPrefix: 'models/' },
        ],
        ...props(stack),
      });
    },
    { env: { account: '123456789012', region: 'eu-west-1' } },
  );
}

describe('ModelRegistryAccess', () => {
  const statements = iamStatements(access().toJSON());
  const of = (role: string) =>
    statements
      .filter((s) => s.policy.startsWith(role))
      .map((s) => ({ actions: actionsOf(s), resource: s.Resource }));

  it('lets Plan list versions and describe the packages of the configured groups only (both spellings)', () => {
    expect(of('Plan')).toEqual(
      expect.arrayContaining([
        { actions: ['sagemaker:ListModelPackages'], resource: '*' },
        {
          actions: ['sagemaker:DescribeModelPackage'],
          resource: ['Breast-Cancer-MLP', 'breast-cancer-mlp', 'iris'].map((group) => ({
            'Fn::Join': [
              '',
              [
                'arn:',
                { Ref: 'AWS::Partition' },
                `:sagemaker:eu-west-1:123456789012:model-package/${group}/*`,
              ],
            ],
          })),
        },
      ]),
    );
  });

  it('lets Plan and the workers read the artifact prefix, read-only', () => {
    for (const role of ['Plan', 'Worker']) {
      const s3Grants = of(role).filter((s) => s.actions.some((a) => a.startsWith('s3:')));
      expect(s3Grants).toEqual([
        {
          actions: ['s3:ListBucket'],
          resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':s3:::ml-models']] },
        },
        {
          actions: ['s3:GetObject'],
          resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':s3:::ml-models/models/*']] },
        },
      ]);
    }
  });

  it('gives the workers no SageMaker access and nobody any write or other SageMaker action', () => {
    expect(
      of('Worker')
        .flatMap((s) => s.actions)
        .filter((a) => a.startsWith('sagemaker:')),
    ).toEqual([]);
    const all = statements.flatMap((s) => actionsOf(s));
    expect(new Set(all)).toEqual(
      new Set([
        'sagemaker:ListModelPackages',
        'sagemaker:DescribeModelPackage',
        's3:ListBucket',
        's3:GetObject',
      ]),
    );
  });
});

describe('ModelRegistryAccess rules', () => {
  it('rule: at least one resolver', () => {
    expect(() => access(() => ({ resolvers: [] }))).toThrow(/needs at least one resolver/);
  });
  it('rule: group names are SageMaker names', () => {
    expect(() => access(() => ({ modelPackageGroups: ['bad_group'] }))).toThrow(
      /model package group "bad_group" is not a SageMaker group name/,
    );
  });
  it('rule: at least one artifact location', () => {
    expect(() => access(() => ({ artifactLocations: [] }))).toThrow(/needs at least one artifact location/);
  });
});
