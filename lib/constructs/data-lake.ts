/**
 * Where runs read and write data, and where validated runs are catalogued: the data bucket (or an imported one), a
 * bucket for its server access logs, and the Glue database where Finalize creates, per pipeline, the predictions table
 * and the runs (audit) table. The tables are Finalize's alone (src/catalog/glue.ts): CloudFormation owns at most the
 * database, so a deploy never reverts a table Finalize updated (ADR 0017).
 */
import { Duration, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import * as glue from 'aws-cdk-lib/aws-glue';
import type * as iam from 'aws-cdk-lib/aws-iam';
import * as lakeformation from 'aws-cdk-lib/aws-lakeformation';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

/** Glue database and table names: lowercase letters, digits and underscores (Athena and Glue both accept these). */
const GLUE_NAME = /^[a-z0-9_]{1,255}$/;

export interface DataLakeProps {
  /**
   * Name of the Glue database where Finalize creates each pipeline's tables. Lowercase letters, digits, underscores;
   * may be a token (the stack appends a suffix unique to the stack's creation).
   */
  readonly databaseName: string;

  /**
   * Use the database `databaseName`, which exists already (retained by an earlier stack, or made by a data team),
   * instead of creating it: the construct then creates nothing in Glue.
   *
   * @default false
   */
  readonly useExistingDatabase?: boolean;

  /**
   * An existing bucket to use as the data bucket. Its encryption, policy, versioning and lifecycle stay its owner's
   * business, and it must send events to EventBridge for S3 and volume triggers to fire.
   *
   * @default - a new bucket, configured by this construct
   */
  readonly bucket?: s3.IBucket;

  /**
   * What happens to the buckets and the Glue database when the stack is deleted. With DESTROY, the buckets are
   * emptied first (a custom resource), so the stack can be deleted in one step.
   *
   * @default RemovalPolicy.RETAIN - the bucket holds outputs and audit manifests.
   */
  readonly removalPolicy?: RemovalPolicy;

  /**
   * How long overwritten or deleted object versions are kept (versioning protects outputs from accidental
   * overwrites; old versions should not be kept forever). Whole days, at least one.
   *
   * @default Duration.days(30)
   */
  readonly noncurrentVersionExpiration?: Duration;

  /**
   * Key prefix of temporary run data (scratch files, uploads made for one-off runs): expired by a lifecycle rule.
   *
   * @default 'tmp/'
   */
  readonly tempPrefix?: string;

  /**
   * How long objects under `tempPrefix` live. Whole days, at least one.
   *
   * @default Duration.days(7)
   */
  readonly tempDataExpiration?: Duration;

  /**
   * How long server access logs are kept. Whole days, at least one.
   *
   * @default Duration.days(365)
   */
  readonly accessLogsExpiration?: Duration;
  /**
   * How long the predictions of a run that never published (failed, cancelled, killed: `<output>_staging/`, docs/adr/
   * 0014 §9) are kept for inspection before they expire, per pipeline registered with `expireUnpublishedPredictions`.
   * Whole days.
   * @default Duration.days(30)
   */
  readonly unpublishedDataExpiration?: Duration;
}

/** A pipeline's two tables, as `reservePipelineTables` takes them. */
export interface PipelineTablesProps {
  /**
   * The pipeline's name: the predictions table's name; the runs table is `<name>_runs`, a challenger's table
   * `<name>_challenger`.
   */
  readonly name: string;
}

/** The Lake Formation permissions Finalize needs to publish (src/catalog/glue.ts), per resource. */
export const LAKE_FORMATION_PUBLISH = {
  /** GetTable of a missing table, CreateTable. */
  database: ['CREATE_TABLE', 'DESCRIBE'],
  /** GetTable, UpdateTable (columns, model parameters), BatchCreatePartition. */
  tables: ['ALTER', 'DESCRIBE', 'INSERT'],
  /** CreateTable or UpdateTable with a location inside a registered location. */
  dataLocation: ['DATA_LOCATION_ACCESS'],
} as const;

export class DataLake extends Construct {
  /** The data bucket: inputs, outputs, run files, audit records. */
  readonly bucket: s3.IBucket;
  /** Receives the data bucket's server access logs; absent when the data bucket is imported. */
  readonly accessLogsBucket?: s3.Bucket;
  /** The Glue database's name (a reference to the database resource when the construct creates it). */
  readonly databaseName: string;
  /** ARNs of the Glue catalog, the database, and every table of the database, for least-privilege grants. */
  readonly glueArns: { readonly catalog: string; readonly database: string; readonly tables: string };
  /** The prefix whose objects expire. */
  readonly tempPrefix: string;

  /** The database resource; absent when `useExistingDatabase` is set. */
  readonly database?: glue.CfnDatabase;
  private readonly removalPolicy: RemovalPolicy;
  private lakeFormationGrants = 0;
  private readonly tableNames = new Set<string>();
  /** The data bucket when this construct created it (lifecycle rules can only be added to it then). */
  private readonly ownedBucket?: s3.Bucket;
  private readonly unpublishedDays: number;
  private readonly expiringPrefixes = new Set<string>();

  constructor(scope: Construct, id: string, props: DataLakeProps) {
    super(scope, id);

    if (!Token.isUnresolved(props.databaseName) && !GLUE_NAME.test(props.databaseName)) {
      throw new Error(
        `DataLake databaseName "${props.databaseName}" is not a valid Glue database name: ` +
          'use 1-255 lowercase letters, digits and underscores.',
      );
    }
    const noncurrent = wholeDays('noncurrentVersionExpiration', props.noncurrentVersionExpiration, 30);
    const tempDays = wholeDays('tempDataExpiration', props.tempDataExpiration, 7);
    const logDays = wholeDays('accessLogsExpiration', props.accessLogsExpiration, 365);
    this.unpublishedDays = wholeDays('unpublishedDataExpiration', props.unpublishedDataExpiration, 30);
    this.tempPrefix = props.tempPrefix ?? 'tmp/';
    if (!/^[^/].*\/$/.test(this.tempPrefix)) {
      throw new Error(
        `DataLake tempPrefix "${this.tempPrefix}" must be a key prefix ending in "/" and not starting with "/", e.g. "tmp/".`,
      );
    }
    this.removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const destroy = this.removalPolicy === RemovalPolicy.DESTROY;

    if (props.bucket) {
      this.bucket = props.bucket;
    } else {
      const common: s3.BucketProps = {
        // SSE-S3: the only encryption S3 server access logging can deliver to, and enough for the data bucket
        // (no key policy to manage; a customer managed key can be set on an imported bucket).
        encryption: s3.BucketEncryption.S3_MANAGED,
        enforceSSL: true,
        blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
        objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        versioned: true,
        removalPolicy: this.removalPolicy,
        autoDeleteObjects: destroy,
      };
      this.accessLogsBucket = new s3.Bucket(this, 'AccessLogs', {
        ...common,
        lifecycleRules: [
          {
            id: 'expire-access-logs',
            expiration: Duration.days(logDays),
            noncurrentVersionExpiration: Duration.days(1),
          },
          { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
        ],
      });
      const bucket = new s3.Bucket(this, 'Bucket', {
        ...common,
        serverAccessLogsBucket: this.accessLogsBucket,
        serverAccessLogsPrefix: 'data/',
        lifecycleRules: [
          { id: 'expire-noncurrent-versions', noncurrentVersionExpiration: Duration.days(noncurrent) },
          // Large outputs are written with multipart uploads; a crashed worker leaves parts that are billed.
          { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
          { id: 'expire-temporary-data', prefix: this.tempPrefix, expiration: Duration.days(tempDays) },
        ],
      });
      // S3 "Object Created" events go to EventBridge, where the S3 and volume triggers filter them. Set on the
      // resource itself: the `eventBridgeEnabled` prop adds a custom resource (a Lambda function with a broad
      // role) that only imported buckets need.
      (bucket.node.defaultChild as s3.CfnBucket).notificationConfiguration = {
        eventBridgeConfiguration: { eventBridgeEnabled: true },
      };
      this.bucket = bucket;
      this.ownedBucket = bucket;
    }

    const stack = Stack.of(this);
    if (props.useExistingDatabase) {
      if (Token.isUnresolved(props.databaseName)) {
        throw new Error('DataLake useExistingDatabase needs the database name itself, not a token.');
      }
      this.databaseName = props.databaseName;
    } else {
      this.database = new glue.CfnDatabase(this, 'Database', {
        catalogId: stack.account,
        databaseInput: {
          name: props.databaseName,
          description:
            'Batch inference: per pipeline, a predictions table (one partition per validated run) and a runs table, ' +
            'both created and updated by the Finalize function',
        },
      });
      this.database.applyRemovalPolicy(this.removalPolicy);
      // The database's Ref is its name: consumers of `databaseName` (function environments, outputs) then depend on
      // the database, so nothing runs against a catalog database that does not exist yet.
      this.databaseName = this.database.ref;
    }

    const arn = (resource: string, resourceName?: string): string =>
      stack.formatArn({ service: 'glue', resource, resourceName });
    this.glueArns = {
      catalog: arn('catalog'),
      database: arn('database', this.databaseName),
      tables: arn('table', `${this.databaseName}/*`),
    };
  }

  /**
   * Reserves a pipeline's two table names: the predictions table `<name>` and the runs table `<name>_runs`. Finalize
   * creates and updates both (ADR 0017): declaring them here too would give each table two owners, and a deploy
   * would revert what Finalize wrote. Returns the two names.
   */
  reservePipelineTables(props: PipelineTablesProps): { readonly table: string; readonly runsTable: string } {
    const table = props.name;
    const runsTable = `${props.name}_runs`;
    // A challenger model's predictions go to `<name>_challenger` (docs/adr/0020): reserved whether or not the spec
    // has one today, so adding a challenger later cannot collide with another pipeline's table.
    const challengerTable = `${props.name}_challenger`;
    for (const tableName of [table, runsTable, challengerTable]) {
      if (!GLUE_NAME.test(tableName)) {
        throw new Error(
          `DataLake table name "${tableName}" is not a valid Glue table name: use lowercase letters, digits, _.`,
        );
      }
      if (this.tableNames.has(tableName)) {
        throw new Error(
          `DataLake already has a table "${tableName}": pipeline names must be unique, and none may be <other>_runs or <other>_challenger.`,
        );
      }
    }
    for (const tableName of [table, runsTable, challengerTable]) this.tableNames.add(tableName);
    return { table, runsTable };
  }

  /**
   * Expires the staged predictions of runs that never published under a pipeline's output prefix (the champion's
   * `_staging/` and the challenger's `_challenger/_staging/`) after `unpublishedDataExpiration`. A published run's
   * files have been moved out of staging by Finalize, so only unpublished ones expire. An imported bucket is left as
   * it is (its lifecycle belongs to its owner); returns the prefixes given a rule.
   */
  expireUnpublishedPredictions(outputKeyPrefix: string): readonly string[] {
    if (!/^([^/*].*\/)?$/.test(outputKeyPrefix) || outputKeyPrefix.includes('*')) {
      throw new Error(
        `DataLake expireUnpublishedPredictions needs an output key prefix ending in "/" without wildcards (got "${outputKeyPrefix}").`,
      );
    }
    if (!this.ownedBucket) return [];
    const prefixes = [`${outputKeyPrefix}_staging/`, `${outputKeyPrefix}_challenger/_staging/`];
    // Pipelines may share an output prefix; a rule id appears once in a bucket's configuration.
    for (const prefix of prefixes.filter((p) => !this.expiringPrefixes.has(p))) {
      this.expiringPrefixes.add(prefix);
      this.ownedBucket.addLifecycleRule({
        id: `expire-unpublished-${prefix.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '')}`,
        prefix,
        expiration: Duration.days(this.unpublishedDays),
      });
    }
    return prefixes;
  }

  /**
   * Grants `role` the Lake Formation permissions to publish runs in this database (LAKE_FORMATION_PUBLISH), for a
   * Data Catalog under Lake Formation, where IAM alone is not enough: CREATE_TABLE and DESCRIBE on the database,
   * ALTER, DESCRIBE and INSERT on every table of it (tables created before the grant included), and
   * DATA_LOCATION_ACCESS on each registered location (an S3 ARN) that holds a table's location.
   */
  grantLakeFormationPublish(role: iam.IRole, dataLocationArns: readonly string[] = []): void {
    const stack = Stack.of(this);
    const principal = { dataLakePrincipalIdentifier: role.roleArn };
    const grant = (
      id: string,
      permissions: readonly string[],
      resource: lakeformation.CfnPrincipalPermissions.ResourceProperty,
    ) => {
      const permission = new lakeformation.CfnPrincipalPermissions(this, id, {
        principal,
        resource,
        permissions: [...permissions],
        permissionsWithGrantOption: [],
      });
      // Granted once the database exists; revoked before it is deleted.
      if (this.database) permission.addDependency(this.database);
      return permission;
    };
    const n = this.lakeFormationGrants++;
    const suffix = n === 0 ? '' : String(n);
    grant(`LakeFormationDatabase${suffix}`, LAKE_FORMATION_PUBLISH.database, {
      database: { catalogId: stack.account, name: this.databaseName },
    });
    grant(`LakeFormationTables${suffix}`, LAKE_FORMATION_PUBLISH.tables, {
      table: { catalogId: stack.account, databaseName: this.databaseName, tableWildcard: {} },
    });
    dataLocationArns.forEach((resourceArn, i) => {
      if (!Token.isUnresolved(resourceArn) && !/^arn:aws[a-z-]*:s3:::[^/]+(\/.*)?$/.test(resourceArn)) {
        throw new Error(
          `DataLake Lake Formation data location "${resourceArn}" is not an S3 ARN (arn:aws:s3:::bucket[/prefix]).`,
        );
      }
      grant(`LakeFormationLocation${suffix}${i}`, LAKE_FORMATION_PUBLISH.dataLocation, {
        dataLocation: { catalogId: stack.account, resourceArn },
      });
    });
  }
}

/** A Duration prop as whole days (at least one), or the default. */
function wholeDays(name: string, value: Duration | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const days = value.toDays({ integral: false });
  if (!Number.isInteger(days) || days < 1) {
    throw new Error(
      `DataLake ${name} must be a whole number of days, at least 1 (S3 lifecycle rules count in days).`,
    );
  }
  return days;
}
