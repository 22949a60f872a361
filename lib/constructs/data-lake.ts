/**
 * Where runs read and write data, and where validated runs are catalogued: the data bucket (or an imported one), a
 * bucket for its server access logs, and a Glue database holding, per pipeline, the predictions table and the runs
 * (audit) table.
 */
import { Duration, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import * as glue from 'aws-cdk-lib/aws-glue';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

/** Glue database and table names: lowercase letters, digits and underscores (Athena and Glue both accept these). */
const GLUE_NAME = /^[a-z0-9_]{1,255}$/;

/** Partition keys of every predictions table, as src/catalog/glue.ts writes partitions. */
export const PREDICTION_PARTITION_KEYS = ['run_date', 'run_id'] as const;

/** The first day the runs tables' partition projection covers. */
const PROJECTION_START = '2024-01-01';

/** Storage formats a predictions table can have (the spec's output.format). */
export type OutputFormat = 'parquet' | 'jsonl' | 'csv';

/** SerDe and formats per output format: Hive's standard classes, which Athena and Spark read. */
const STORAGE: Readonly<
  Record<
    OutputFormat,
    { inputFormat: string; outputFormat: string; serde: string; params?: Record<string, string> }
  >
> = {
  parquet: {
    inputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
    outputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat',
    serde: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe',
    params: { 'serialization.format': '1' },
  },
  jsonl: {
    inputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
    outputFormat: 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat',
    serde: 'org.openx.data.jsonserde.JsonSerDe',
  },
  csv: {
    inputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
    outputFormat: 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat',
    serde: 'org.apache.hadoop.hive.serde2.OpenCSVSerde',
  },
};

export interface DataLakeProps {
  /** Name of the Glue database where each pipeline's tables are created. Lowercase letters, digits, underscores. */
  readonly databaseName: string;

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
}

/** A pipeline's two tables, as `addPipelineTables` takes them. */
export interface PipelineTablesProps {
  /** The pipeline's name: the predictions table's name; the runs table is `<name>_runs`. */
  readonly name: string;
  /** The predictions location (`output.uri`), an s3:// prefix; may contain tokens (the data bucket's name). */
  readonly outputUri: string;
  /** @default 'parquet' */
  readonly format?: OutputFormat;
  /**
   * Declared columns (the spec's output.schema, as Hive types). Finalize rewrites the columns from what runs wrote.
   *
   * @default - none until the first published run
   */
  readonly columns?: readonly { readonly name: string; readonly type: string }[];
  /** Where the runs table reads run records, an s3:// prefix (`<audit prefix><name>/`). */
  readonly runsUri: string;
  /** The runs table's columns, in order (see lambdas/finalize/run-record.ts). */
  readonly runsColumns: readonly { readonly name: string; readonly type: string }[];
}

export class DataLake extends Construct {
  /** The data bucket: inputs, outputs, run files, audit records. */
  readonly bucket: s3.IBucket;
  /** Receives the data bucket's server access logs; absent when the data bucket is imported. */
  readonly accessLogsBucket?: s3.Bucket;
  /** The Glue database's name (a reference to the database resource). */
  readonly databaseName: string;
  /** ARNs of the Glue catalog, the database, and every table of the database, for least-privilege grants. */
  readonly glueArns: { readonly catalog: string; readonly database: string; readonly tables: string };
  /** The prefix whose objects expire. */
  readonly tempPrefix: string;

  private readonly database: glue.CfnDatabase;
  private readonly removalPolicy: RemovalPolicy;
  private readonly tableNames = new Set<string>();

  constructor(scope: Construct, id: string, props: DataLakeProps) {
    super(scope, id);

    if (!GLUE_NAME.test(props.databaseName)) {
      throw new Error(
        `DataLake databaseName "${props.databaseName}" is not a valid Glue database name: ` +
          'use 1-255 lowercase letters, digits and underscores.',
      );
    }
    const noncurrent = wholeDays('noncurrentVersionExpiration', props.noncurrentVersionExpiration, 30);
    const tempDays = wholeDays('tempDataExpiration', props.tempDataExpiration, 7);
    const logDays = wholeDays('accessLogsExpiration', props.accessLogsExpiration, 365);
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
    }

    const stack = Stack.of(this);
    this.database = new glue.CfnDatabase(this, 'Database', {
      catalogId: stack.account,
      databaseInput: {
        name: props.databaseName,
        description:
          'Batch inference: per pipeline, a predictions table (one partition per validated run) and a runs table',
      },
    });
    this.database.applyRemovalPolicy(this.removalPolicy);

    // The database's Ref is its name: consumers of `databaseName` (function environments, outputs) then depend on
    // the database, so nothing runs against a catalog database that does not exist yet.
    this.databaseName = this.database.ref;

    const arn = (resource: string, resourceName?: string): string =>
      stack.formatArn({ service: 'glue', resource, resourceName });
    this.glueArns = {
      catalog: arn('catalog'),
      database: arn('database', props.databaseName),
      tables: arn('table', `${props.databaseName}/*`),
    };
  }

  /**
   * Declares a pipeline's predictions table (external, partitioned by run_date and run_id: Finalize adds one
   * partition per validated run) and its runs table (one JSON row per finalized run, partitioned by run_date with
   * partition projection, so no partition is ever registered). Returns the two table names.
   */
  addPipelineTables(props: PipelineTablesProps): { readonly table: string; readonly runsTable: string } {
    const table = props.name;
    const runsTable = `${props.name}_runs`;
    for (const name of [table, runsTable]) {
      if (!GLUE_NAME.test(name)) {
        throw new Error(
          `DataLake table name "${name}" is not a valid Glue table name: use lowercase letters, digits, _.`,
        );
      }
      if (this.tableNames.has(name)) {
        throw new Error(
          `DataLake already has a table "${name}": pipeline names must be unique, and none may be <other>_runs.`,
        );
      }
    }
    for (const [what, uri] of [
      ['outputUri', props.outputUri],
      ['runsUri', props.runsUri],
    ] as const) {
      if (!Token.isUnresolved(uri) && !/^s3:\/\/[^/]+\/(.*\/)?$/.test(uri)) {
        throw new Error(
          `DataLake ${what} "${uri}" of pipeline ${props.name} must be an s3:// prefix ending in "/".`,
        );
      }
    }
    const clash = (props.columns ?? []).find((c) =>
      (PREDICTION_PARTITION_KEYS as readonly string[]).includes(c.name),
    );
    if (clash) {
      throw new Error(
        `DataLake column "${clash.name}" of pipeline ${props.name} clashes with a partition key: rename it.`,
      );
    }
    this.tableNames.add(table);
    this.tableNames.add(runsTable);

    const id = props.name.replace(/(^|_)([a-z0-9])/g, (_m, _s: string, c: string) => c.toUpperCase());
    const stack = Stack.of(this);
    const storage = STORAGE[props.format ?? 'parquet'];
    const predictions = new glue.CfnTable(this, `${id}Table`, {
      catalogId: stack.account,
      databaseName: this.databaseName,
      tableInput: {
        name: table,
        description: `Batch inference predictions of pipeline ${props.name} (one partition per validated run)`,
        tableType: 'EXTERNAL_TABLE',
        parameters: {
          EXTERNAL: 'TRUE',
          classification: props.format === 'jsonl' ? 'json' : (props.format ?? 'parquet'),
        },
        partitionKeys: PREDICTION_PARTITION_KEYS.map((name) => ({ name, type: 'string' })),
        storageDescriptor: {
          location: props.outputUri,
          columns: (props.columns ?? []).map((c) => ({ name: c.name, type: c.type })),
          inputFormat: storage.inputFormat,
          outputFormat: storage.outputFormat,
          serdeInfo: {
            serializationLibrary: storage.serde,
            ...(storage.params ? { parameters: storage.params } : {}),
          },
        },
      },
    });
    const runs = new glue.CfnTable(this, `${id}RunsTable`, {
      catalogId: stack.account,
      databaseName: this.databaseName,
      tableInput: {
        name: runsTable,
        description: `Runs of pipeline ${props.name}: one row per finalized run (status, counts, model, timings)`,
        tableType: 'EXTERNAL_TABLE',
        parameters: {
          EXTERNAL: 'TRUE',
          classification: 'json',
          // Partition projection: Athena computes the run_date partitions, nobody has to register them.
          'projection.enabled': 'true',
          'projection.run_date.type': 'date',
          'projection.run_date.format': 'yyyy-MM-dd',
          'projection.run_date.range': `${PROJECTION_START},NOW`,
          'projection.run_date.interval': '1',
          'projection.run_date.interval.unit': 'DAYS',
          'storage.location.template': `${props.runsUri}run_date=\${run_date}/`,
        },
        partitionKeys: [{ name: 'run_date', type: 'string' }],
        storageDescriptor: {
          location: props.runsUri,
          columns: props.runsColumns.map((c) => ({ name: c.name, type: c.type })),
          inputFormat: STORAGE.jsonl.inputFormat,
          outputFormat: STORAGE.jsonl.outputFormat,
          serdeInfo: { serializationLibrary: STORAGE.jsonl.serde },
        },
      },
    });
    for (const resource of [predictions, runs]) {
      resource.applyRemovalPolicy(this.removalPolicy);
    }
    return { table, runsTable };
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
