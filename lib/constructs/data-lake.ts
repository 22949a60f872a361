/**
 * Where runs read and write data, and where validated runs are catalogued: one S3 bucket and one Glue database.
 */
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as glue from 'aws-cdk-lib/aws-glue';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

/** Glue database names: lowercase letters, digits and underscores (Athena and Glue both accept these). */
const GLUE_DATABASE_NAME = /^[a-z0-9_]{1,255}$/;

export interface DataLakeProps {
  /** Name of the Glue database where each job's table is created. Lowercase letters, digits, underscores. */
  readonly databaseName: string;

  /**
   * What happens to the bucket when the stack is deleted.
   *
   * @default RemovalPolicy.RETAIN - the bucket holds outputs and audit manifests.
   */
  readonly removalPolicy?: RemovalPolicy;

  /**
   * How long overwritten or deleted object versions are kept (versioning protects outputs from accidental
   * overwrites; old versions should not be kept forever).
   *
   * @default Duration.days(30)
   */
  readonly noncurrentVersionExpiration?: Duration;
}

export class DataLake extends Construct {
  readonly bucket: s3.Bucket;
  /** The Glue database's name (a reference to the database resource). */
  readonly databaseName: string;
  /** ARNs of the Glue catalog, the database, and every table of the database, for least-privilege grants. */
  readonly glueArns: { readonly catalog: string; readonly database: string; readonly tables: string };

  constructor(scope: Construct, id: string, props: DataLakeProps) {
    super(scope, id);

    if (!GLUE_DATABASE_NAME.test(props.databaseName)) {
      throw new Error(
        `DataLake databaseName "${props.databaseName}" is not a valid Glue database name: ` +
          'use 1-255 lowercase letters, digits and underscores.',
      );
    }

    this.bucket = new s3.Bucket(this, 'Bucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: true,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
      lifecycleRules: [
        {
          id: 'expire-noncurrent-versions',
          noncurrentVersionExpiration: props.noncurrentVersionExpiration ?? Duration.days(30),
        },
        // Large outputs are written with multipart uploads; a crashed worker leaves parts that are billed.
        { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(7) },
      ],
    });

    const stack = Stack.of(this);
    const database = new glue.CfnDatabase(this, 'Database', {
      catalogId: stack.account,
      databaseInput: {
        name: props.databaseName,
        description: 'Batch inference outputs: one table per job, one partition per validated run',
      },
    });

    // The database's Ref is its name: consumers of `databaseName` (function environments, outputs) then depend on
    // the database, so nothing runs against a catalog database that does not exist yet.
    this.databaseName = database.ref;

    const arn = (resource: string, resourceName?: string): string =>
      stack.formatArn({ service: 'glue', resource, resourceName });
    this.glueArns = {
      catalog: arn('catalog'),
      database: arn('database', props.databaseName),
      tables: arn('table', `${props.databaseName}/*`),
    };
  }
}
