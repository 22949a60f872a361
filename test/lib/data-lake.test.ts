/**
 * DataLake: the data bucket and its access logs bucket (encryption, TLS only, no public access, versioning, access
 * logs, lifecycle, EventBridge notifications), the Glue database (and no table: Finalize owns them, ADR 0017), Lake
 * Formation grants; one test per rule.
 */
import { Aws, Duration, Fn, RemovalPolicy } from 'aws-cdk-lib';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { beforeAll, describe, expect, it } from '@jest/globals';
import * as iam from 'aws-cdk-lib/aws-iam';
import { DataLake, type DataLakeProps } from '../../lib/constructs/data-lake.js';
import { synthConstruct } from './helpers.js';

function lake(props: Partial<DataLakeProps> = {}, add?: (lake: DataLake) => void): Template {
  return synthConstruct((stack) => {
    const created = new DataLake(stack, 'DataLake', { databaseName: 'batch_infer_test', ...props });
    add?.(created);
  });
}

describe('DataLake buckets', () => {
  let template: Template;
  beforeAll(() => {
    template = lake({}, (l) => l.reservePipelineTables({ name: 'scores' }));
  });

  it('creates the data bucket and its access logs bucket, retained on stack deletion', () => {
    template.resourceCountIs('AWS::S3::Bucket', 2);
    for (const bucket of Object.values(template.findResources('AWS::S3::Bucket'))) {
      expect(bucket).toMatchObject({ DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    }
  });

  it('encrypts, versions and blocks public access on both buckets, with ACLs disabled', () => {
    for (const bucket of Object.values(template.findResources('AWS::S3::Bucket'))) {
      expect(bucket).toMatchObject({
        Properties: {
          BucketEncryption: {
            ServerSideEncryptionConfiguration: [
              { ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } },
            ],
          },
          VersioningConfiguration: { Status: 'Enabled' },
          PublicAccessBlockConfiguration: {
            BlockPublicAcls: true,
            BlockPublicPolicy: true,
            IgnorePublicAcls: true,
            RestrictPublicBuckets: true,
          },
          OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
        },
      });
    }
  });

  it('denies every request that does not use TLS, on both buckets', () => {
    const policies = Object.values(template.findResources('AWS::S3::BucketPolicy'));
    expect(policies).toHaveLength(2);
    for (const policy of policies) {
      expect(policy).toMatchObject({
        Properties: {
          PolicyDocument: {
            Statement: expect.arrayContaining([
              expect.objectContaining({
                Effect: 'Deny',
                Action: 's3:*',
                Principal: { AWS: '*' },
                Condition: { Bool: { 'aws:SecureTransport': 'false' } },
              }),
            ]) as unknown,
          },
        },
      });
    }
  });

  it('logs data bucket access to the logs bucket, which S3 logging may write to (bucket policy, no ACL)', () => {
    const [logsId] = Object.keys(
      template.findResources('AWS::S3::Bucket', { Properties: { LoggingConfiguration: Match.absent() } }),
    );
    template.hasResourceProperties('AWS::S3::Bucket', {
      LoggingConfiguration: { DestinationBucketName: { Ref: logsId }, LogFilePrefix: 'data/' },
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: logsId },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Allow',
            Principal: { Service: 'logging.s3.amazonaws.com' },
            Action: 's3:PutObject',
          }),
        ]),
      },
    });
  });

  it('aborts incomplete multipart uploads, expires old versions and temporary run data', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: {
        Rules: [
          {
            Id: 'expire-noncurrent-versions',
            Status: 'Enabled',
            NoncurrentVersionExpiration: { NoncurrentDays: 30 },
          },
          {
            Id: 'abort-incomplete-uploads',
            Status: 'Enabled',
            AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
          },
          { Id: 'expire-temporary-data', Status: 'Enabled', Prefix: 'tmp/', ExpirationInDays: 7 },
        ],
      },
    });
  });

  it('expires access logs after a year', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: {
        Rules: Match.arrayWith([Match.objectLike({ Id: 'expire-access-logs', ExpirationInDays: 365 })]),
      },
    });
  });

  it('sends object events to EventBridge natively, without a notifications custom resource', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      NotificationConfiguration: { EventBridgeConfiguration: { EventBridgeEnabled: true } },
    });
    template.resourceCountIs('Custom::S3BucketNotifications', 0);
    template.resourceCountIs('AWS::Lambda::Function', 0);
  });

  it('with RemovalPolicy.DESTROY, deletes the buckets and empties them first', () => {
    const destroyed = lake({ removalPolicy: RemovalPolicy.DESTROY });
    for (const bucket of Object.values(destroyed.findResources('AWS::S3::Bucket'))) {
      expect(bucket).toMatchObject({ DeletionPolicy: 'Delete' });
    }
    destroyed.resourceCountIs('Custom::S3AutoDeleteObjects', 2);
  });

  it('uses an imported bucket as it is: no bucket, no policy created', () => {
    const imported = synthConstruct((stack) => {
      new DataLake(stack, 'DataLake', {
        databaseName: 'batch_infer_test',
        bucket: s3.Bucket.fromBucketName(stack, 'Existing', 'corp-ml-data'),
      });
    });
    imported.resourceCountIs('AWS::S3::Bucket', 0);
    imported.resourceCountIs('AWS::S3::BucketPolicy', 0);
    imported.resourceCountIs('AWS::Glue::Database', 1);
  });

  it("expires a registered output prefix's unpublished predictions (champion and challenger staging)", () => {
    let prefixes: readonly string[] = [];
    const template = lake({ unpublishedDataExpiration: Duration.days(14) }, (l) => {
      prefixes = l.expireUnpublishedPredictions('predictions/scores/');
      l.expireUnpublishedPredictions('predictions/scores/'); // a second pipeline writing there: no second rule
    });
    expect(prefixes).toEqual(['predictions/scores/_staging/', 'predictions/scores/_challenger/_staging/']);
    template.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({
            Prefix: 'predictions/scores/_staging/',
            ExpirationInDays: 14,
            Status: 'Enabled',
          }),
          Match.objectLike({
            Prefix: 'predictions/scores/_challenger/_staging/',
            ExpirationInDays: 14,
            Status: 'Enabled',
          }),
        ]),
      },
    });
    // Nothing published expires: no rule reaches the partitions or the whole output prefix.
    const rules = Object.values(template.findResources('AWS::S3::Bucket')).flatMap(
      (b) =>
        (b as { Properties: { LifecycleConfiguration?: { Rules: { Prefix?: string }[] } } }).Properties
          .LifecycleConfiguration?.Rules ?? [],
    );
    expect(rules.filter((r) => r.Prefix?.startsWith('predictions/')).map((r) => r.Prefix)).toEqual(prefixes);
  });

  it("leaves an imported bucket's lifecycle to its owner", () => {
    let prefixes: readonly string[] = ['not called'];
    const imported = synthConstruct((stack) => {
      const l = new DataLake(stack, 'DataLake', {
        databaseName: 'batch_infer_test',
        bucket: s3.Bucket.fromBucketName(stack, 'Existing', 'corp-ml-data'),
      });
      prefixes = l.expireUnpublishedPredictions('predictions/scores/');
    });
    expect(prefixes).toEqual([]);
    imported.resourceCountIs('AWS::S3::Bucket', 0);
  });
});

describe('DataLake catalog', () => {
  let template: Template;
  beforeAll(() => {
    template = lake({}, (l) => {
      l.reservePipelineTables({ name: 'scores' });
      l.reservePipelineTables({ name: 'embeddings' });
    });
  });

  it('creates the Glue database, retained on stack deletion by default', () => {
    template.hasResourceProperties('AWS::Glue::Database', {
      CatalogId: { Ref: 'AWS::AccountId' },
      DatabaseInput: Match.objectLike({ Name: 'batch_infer_test' }),
    });
    for (const db of Object.values(template.findResources('AWS::Glue::Database'))) {
      expect(db).toMatchObject({ DeletionPolicy: 'Retain' });
    }
  });

  it('declares no table: Finalize is the only owner of the predictions and runs tables (ADR 0017)', () => {
    template.resourceCountIs('AWS::Glue::Table', 0);
  });

  it('uses an existing database by name and then creates nothing in Glue', () => {
    const existing = lake({ databaseName: 'batch_infer_prod', useExistingDatabase: true }, (l) =>
      l.reservePipelineTables({ name: 'scores' }),
    );
    existing.resourceCountIs('AWS::Glue::Database', 0);
    existing.resourceCountIs('AWS::Glue::Table', 0);
  });
});

describe('DataLake Lake Formation grants', () => {
  const roleArn = 'arn:aws:iam::123456789012:role/finalize';
  function granted(props: Partial<DataLakeProps>, locations: string[] = []): Template {
    return lake(props, (l) =>
      l.grantLakeFormationPublish(iam.Role.fromRoleArn(l, 'Finalize', roleArn), locations),
    );
  }

  it('grants CREATE_TABLE, DESCRIBE on the database and ALTER, DESCRIBE, INSERT on all its tables', () => {
    const template = granted({});
    template.resourceCountIs('AWS::LakeFormation::PrincipalPermissions', 2);
    const db = { Ref: Match.stringLikeRegexp('DataLakeDatabase') };
    template.hasResourceProperties('AWS::LakeFormation::PrincipalPermissions', {
      Principal: { DataLakePrincipalIdentifier: roleArn },
      Resource: { Database: { CatalogId: { Ref: 'AWS::AccountId' }, Name: db } },
      Permissions: ['CREATE_TABLE', 'DESCRIBE'],
      PermissionsWithGrantOption: [],
    });
    template.hasResourceProperties('AWS::LakeFormation::PrincipalPermissions', {
      Principal: { DataLakePrincipalIdentifier: roleArn },
      Resource: { Table: { CatalogId: { Ref: 'AWS::AccountId' }, DatabaseName: db, TableWildcard: {} } },
      Permissions: ['ALTER', 'DESCRIBE', 'INSERT'],
      PermissionsWithGrantOption: [],
    });
    // Granted after the database exists (and revoked before it goes).
    for (const grant of Object.values(template.findResources('AWS::LakeFormation::PrincipalPermissions'))) {
      expect(grant).toMatchObject({ DependsOn: [expect.stringMatching(/^DataLakeDatabase/)] });
    }
  });

  it('grants DATA_LOCATION_ACCESS on each registered location, and names an existing database as it is', () => {
    const template = granted({ databaseName: 'corp_lake', useExistingDatabase: true }, [
      'arn:aws:s3:::corp-data/predictions',
    ]);
    template.resourceCountIs('AWS::LakeFormation::PrincipalPermissions', 3);
    template.hasResourceProperties('AWS::LakeFormation::PrincipalPermissions', {
      Resource: { Database: { CatalogId: { Ref: 'AWS::AccountId' }, Name: 'corp_lake' } },
    });
    template.hasResourceProperties('AWS::LakeFormation::PrincipalPermissions', {
      Principal: { DataLakePrincipalIdentifier: roleArn },
      Resource: {
        DataLocation: {
          CatalogId: { Ref: 'AWS::AccountId' },
          ResourceArn: 'arn:aws:s3:::corp-data/predictions',
        },
      },
      Permissions: ['DATA_LOCATION_ACCESS'],
    });
  });

  it('makes no grant unless asked', () => {
    lake({}).resourceCountIs('AWS::LakeFormation::PrincipalPermissions', 0);
  });
});

describe('DataLake rules', () => {
  const build =
    (props: Partial<DataLakeProps> = {}, add?: (l: DataLake) => void) =>
    () =>
      lake(props, add);

  it('rule: databaseName is a Glue name', () => {
    expect(build({ databaseName: 'Batch-Infer' })).toThrow(
      /databaseName "Batch-Infer" is not a valid Glue database name/,
    );
  });
  it('rule: noncurrentVersionExpiration is whole days, at least one', () => {
    expect(build({ noncurrentVersionExpiration: Duration.hours(12) })).toThrow(
      /noncurrentVersionExpiration must be a whole number of days/,
    );
  });
  it('rule: tempDataExpiration is whole days, at least one', () => {
    expect(build({ tempDataExpiration: Duration.days(0) })).toThrow(
      /tempDataExpiration must be a whole number of days/,
    );
  });
  it('rule: accessLogsExpiration is whole days, at least one', () => {
    expect(build({ accessLogsExpiration: Duration.minutes(90) })).toThrow(
      /accessLogsExpiration must be a whole number of days/,
    );
  });
  it('rule: unpublishedDataExpiration is whole days, at least one', () => {
    expect(build({ unpublishedDataExpiration: Duration.hours(36) })).toThrow(
      /unpublishedDataExpiration must be a whole number of days/,
    );
  });
  it('rule: unpublished predictions expire under a key prefix ending in "/", without wildcards', () => {
    expect(build({}, (l) => l.expireUnpublishedPredictions('adhoc/*/'))).toThrow(
      /needs an output key prefix ending in "\/" without wildcards \(got "adhoc\/\*\/"\)/,
    );
    expect(build({}, (l) => l.expireUnpublishedPredictions('predictions/scores'))).toThrow(
      /needs an output key prefix ending in "\/"/,
    );
  });
  it('rule: tempPrefix is a key prefix ending in "/"', () => {
    expect(build({ tempPrefix: '/tmp' })).toThrow(/tempPrefix "\/tmp" must be a key prefix ending in "\/"/);
  });
  it('rule: table names are Glue names', () => {
    expect(build({}, (l) => l.reservePipelineTables({ name: 'Scores' }))).toThrow(
      /table name "Scores" is not a valid Glue table name/,
    );
  });
  it('rule: a table is reserved once', () => {
    expect(
      build({}, (l) => {
        l.reservePipelineTables({ name: 'scores' });
        l.reservePipelineTables({ name: 'scores_runs' });
      }),
    ).toThrow(/already has a table "scores_runs"/);
  });
  it("rule: a pipeline may not be named like another's challenger table", () => {
    expect(
      build({}, (l) => {
        l.reservePipelineTables({ name: 'scores' });
        l.reservePipelineTables({ name: 'scores_challenger' });
      }),
    ).toThrow(/already has a table "scores_challenger"/);
  });
  it('rule: an existing database is named by its name, not a token', () => {
    expect(build({ databaseName: Fn.join('_', ['a', Aws.STACK_NAME]), useExistingDatabase: true })).toThrow(
      /useExistingDatabase needs the database name itself/,
    );
  });
  it('rule: Lake Formation data locations are S3 ARNs', () => {
    expect(
      build({}, (l) =>
        l.grantLakeFormationPublish(iam.Role.fromRoleArn(l, 'R', 'arn:aws:iam::123456789012:role/r'), [
          's3://corp-data/predictions/',
        ]),
      ),
    ).toThrow(/data location "s3:\/\/corp-data\/predictions\/" is not an S3 ARN/);
  });
});
