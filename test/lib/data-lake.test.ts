/**
 * DataLake: the data bucket and its access logs bucket (encryption, TLS only, no public access, versioning, access
 * logs, lifecycle, EventBridge notifications), the Glue database and each pipeline's two tables; one test per rule.
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { DataLake, type DataLakeProps, type PipelineTablesProps } from '../../lib/constructs/data-lake.js';
import { synthConstruct } from './helpers.js';

const RUNS_COLUMNS = [
  { name: 'run_id', type: 'string' },
  { name: 'records', type: 'bigint' },
];

function tables(name: string, extra: Partial<PipelineTablesProps> = {}): PipelineTablesProps {
  return {
    name,
    outputUri: `s3://data/predictions/${name}/`,
    runsUri: `s3://data/audit/runs/${name}/`,
    runsColumns: RUNS_COLUMNS,
    ...extra,
  };
}

function lake(props: Partial<DataLakeProps> = {}, add?: (lake: DataLake) => void): Template {
  return synthConstruct((stack) => {
    const created = new DataLake(stack, 'DataLake', { databaseName: 'batch_infer_test', ...props });
    add?.(created);
  });
}

describe('DataLake buckets', () => {
  let template: Template;
  beforeAll(() => {
    template = lake({}, (l) =>
      l.addPipelineTables(tables('scores', { columns: [{ name: 'score', type: 'float' }] })),
    );
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
});

describe('DataLake catalog', () => {
  let template: Template;
  beforeAll(() => {
    template = lake({}, (l) => {
      l.addPipelineTables(
        tables('scores', {
          columns: [
            { name: 'label', type: 'string' },
            { name: 'score', type: 'float' },
          ],
        }),
      );
      l.addPipelineTables(tables('embeddings', { format: 'jsonl' }));
    });
  });

  it('creates the Glue database', () => {
    template.hasResourceProperties('AWS::Glue::Database', {
      CatalogId: { Ref: 'AWS::AccountId' },
      DatabaseInput: { Name: 'batch_infer_test' },
    });
  });

  it('declares each pipeline predictions table: external Parquet, partitioned by run_date and run_id', () => {
    template.hasResourceProperties('AWS::Glue::Table', {
      DatabaseName: { Ref: Match.stringLikeRegexp('DataLakeDatabase') },
      TableInput: {
        Name: 'scores',
        TableType: 'EXTERNAL_TABLE',
        Parameters: { EXTERNAL: 'TRUE', classification: 'parquet' },
        PartitionKeys: [
          { Name: 'run_date', Type: 'string' },
          { Name: 'run_id', Type: 'string' },
        ],
        StorageDescriptor: Match.objectLike({
          Location: 's3://data/predictions/scores/',
          Columns: [
            { Name: 'label', Type: 'string' },
            { Name: 'score', Type: 'float' },
          ],
          InputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
          SerdeInfo: Match.objectLike({
            SerializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe',
          }),
        }),
      },
    });
  });

  it('matches the SerDe to the output format', () => {
    template.hasResourceProperties('AWS::Glue::Table', {
      TableInput: Match.objectLike({
        Name: 'embeddings',
        StorageDescriptor: Match.objectLike({
          SerdeInfo: { SerializationLibrary: 'org.openx.data.jsonserde.JsonSerDe' },
        }),
      }),
    });
  });

  it('declares each pipeline runs table: JSON rows, run_date partitions by projection', () => {
    template.hasResourceProperties('AWS::Glue::Table', {
      TableInput: {
        Name: 'scores_runs',
        TableType: 'EXTERNAL_TABLE',
        Parameters: Match.objectLike({
          classification: 'json',
          'projection.enabled': 'true',
          'projection.run_date.type': 'date',
          'projection.run_date.format': 'yyyy-MM-dd',
          'storage.location.template': 's3://data/audit/runs/scores/run_date=${run_date}/',
        }),
        PartitionKeys: [{ Name: 'run_date', Type: 'string' }],
        StorageDescriptor: Match.objectLike({
          Location: 's3://data/audit/runs/scores/',
          Columns: RUNS_COLUMNS.map((c) => ({ Name: c.name, Type: c.type })),
        }),
      },
    });
  });

  it('keeps the tables with the database on stack deletion by default', () => {
    for (const table of Object.values(template.findResources('AWS::Glue::Table'))) {
      expect(table).toMatchObject({ DeletionPolicy: 'Retain' });
    }
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
  it('rule: tempPrefix is a key prefix ending in "/"', () => {
    expect(build({ tempPrefix: '/tmp' })).toThrow(/tempPrefix "\/tmp" must be a key prefix ending in "\/"/);
  });
  it('rule: table names are Glue names', () => {
    expect(build({}, (l) => l.addPipelineTables(tables('Scores')))).toThrow(
      /table name "Scores" is not a valid Glue table name/,
    );
  });
  it('rule: a table is declared once', () => {
    expect(
      build({}, (l) => {
        l.addPipelineTables(tables('scores'));
        l.addPipelineTables(tables('scores_runs'));
      }),
    ).toThrow(/already has a table "scores_runs"/);
  });
  it('rule: locations are s3:// prefixes', () => {
    expect(
      build({}, (l) => l.addPipelineTables(tables('scores', { outputUri: 's3://data/predictions' }))),
    ).toThrow(
      /outputUri "s3:\/\/data\/predictions" of pipeline scores must be an s3:\/\/ prefix ending in "\/"/,
    );
  });
  it('rule: no column is named like a partition key', () => {
    expect(
      build({}, (l) =>
        l.addPipelineTables(tables('scores', { columns: [{ name: 'run_id', type: 'string' }] })),
      ),
    ).toThrow(/column "run_id" of pipeline scores clashes with a partition key/);
  });
});
