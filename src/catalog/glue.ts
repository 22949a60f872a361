/**
 * The AWS catalogue: one Glue table per job (an external table at the job's output prefix, partitioned by run_date
 * and run_id, in the job's output format: Parquet, JSON Lines or CSV), one partition per published run. Athena and
 * Spark read validated runs through it. Each partition carries its own storage settings, so a job whose format
 * changed still reads its older runs.
 *
 * Table definition (columns and model parameters) follows the newest published run: a table is only updated when
 * something changed, and never by a run older than the one that last defined it, so re-publishing an old run
 * (a retried Finalize, a backfill) does not roll the schema or the model lineage back.
 *
 * Finalize is the only owner of both tables of a pipeline (the predictions table and the runs table, see
 * `ensureRunsTable`); CloudFormation owns only the database (ADR 0017), so a deploy never reverts what Finalize wrote.
 */
import {
  AlreadyExistsException,
  BatchCreatePartitionCommand,
  ConcurrentModificationException,
  CreateTableCommand,
  EntityNotFoundException,
  GetTableCommand,
  GlueClient,
  UpdateTableCommand,
  type Column,
  type PartitionInput,
  type StorageDescriptor,
  type Table,
  type TableInput,
} from '@aws-sdk/client-glue';
import type { Catalog, CatalogColumn, PublishedRun } from './catalog.js';
import { awsHttpOptions } from '../runtime/aws-http.js';

/** BatchCreatePartition accepts at most 100 partitions per call. */
export const PARTITION_BATCH = 100;

/** SDK attempts per call; throttling (ThrottlingException, 429, 5xx) is retried with backoff by the SDK. */
export const DEFAULT_MAX_ATTEMPTS = 8;

/** Create/update races with another Finalize (ConcurrentModificationException, AlreadyExists) are retried. */
const TABLE_RACE_ATTEMPTS = 4;

export const PARTITION_KEYS: readonly Column[] = [
  { Name: 'run_date', Type: 'string' },
  { Name: 'run_id', Type: 'string' },
];

type FileFormat = NonNullable<PublishedRun['format']>;

/**
 * How Athena, Spark and Glue read each output format. JSON Lines use the OpenX JSON SerDe (column names match the
 * JSON keys); CSV uses OpenCSVSerde, which handles quoted fields, with the header line skipped by the table
 * parameter `skip.header.line.count`.
 */
const TEXT_IO = {
  InputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
  OutputFormat: 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat',
} as const;
const STORAGE: Readonly<Record<FileFormat, StorageDescriptor>> = {
  parquet: {
    InputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
    OutputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat',
    SerdeInfo: {
      SerializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe',
      Parameters: { 'serialization.format': '1' },
    },
  },
  jsonl: {
    ...TEXT_IO,
    SerdeInfo: {
      SerializationLibrary: 'org.openx.data.jsonserde.JsonSerDe',
      Parameters: { 'ignore.malformed.json': 'FALSE' },
    },
  },
  csv: {
    ...TEXT_IO,
    SerdeInfo: {
      SerializationLibrary: 'org.apache.hadoop.hive.serde2.OpenCSVSerde',
      Parameters: { separatorChar: ',', quoteChar: '"', escapeChar: '\\' },
    },
  },
};
const CLASSIFICATION: Readonly<Record<FileFormat, string>> = {
  parquet: 'parquet',
  jsonl: 'json',
  csv: 'csv',
};

/** A fresh copy of the storage settings of a format (the SDK must not share nested objects between requests). */
function storageOf(format: FileFormat): StorageDescriptor {
  const sd = STORAGE[format];
  return { ...sd, SerdeInfo: { ...sd.SerdeInfo, Parameters: { ...sd.SerdeInfo?.Parameters } } };
}

function formatOf(run: PublishedRun): FileFormat {
  return run.format ?? 'parquet';
}

/** Table parameters this catalogue owns; any other parameter (set by people or tools) is kept as it is. */
export const PARAM = {
  classification: 'classification',
  modelName: 'batch_infer.model_name',
  modelVersion: 'batch_infer.model_version',
  modelSha256: 'batch_infer.model_sha256',
  /** The run whose columns and model define the table now, and when it finished. */
  definedByRun: 'batch_infer.defined_by_run_id',
  definedAt: 'batch_infer.defined_at',
} as const;

export interface GlueCatalogOptions {
  /** Glue database holding the job tables. */
  readonly database: string;
  /** Account of the Data Catalog; the caller's by default. */
  readonly catalogId?: string;
  /** A configured client; built from `region` and `maxAttempts` when absent. */
  readonly client?: GlueClient;
  readonly region?: string;
  readonly maxAttempts?: number;
}

export class GlueCatalog implements Catalog {
  readonly database: string;
  private readonly catalogId: string | undefined;
  private readonly client: GlueClient;

  constructor(options: GlueCatalogOptions) {
    this.database = options.database;
    this.catalogId = options.catalogId;
    this.client =
      options.client ??
      new GlueClient({
        ...(options.region !== undefined && { region: options.region }),
        maxAttempts: options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
        ...awsHttpOptions(),
      });
  }

  async publishRun(run: PublishedRun): Promise<void> {
    checkRun(run);
    await this.ensureTable(run);
    await this.addPartitions(run.table, [partitionInputOf(run)]);
  }

  /**
   * Adds partitions in batches of PARTITION_BATCH. A partition that already exists counts as added (publishing
   * is idempotent); any other per-partition error fails the call, naming the partitions.
   */
  async addPartitions(table: string, partitions: readonly PartitionInput[]): Promise<void> {
    for (let i = 0; i < partitions.length; i += PARTITION_BATCH) {
      const batch = partitions.slice(i, i + PARTITION_BATCH);
      const out = await this.client.send(
        new BatchCreatePartitionCommand({
          ...this.catalog(),
          DatabaseName: this.database,
          TableName: table,
          PartitionInputList: batch,
        }),
      );
      const failures = (out.Errors ?? []).filter(
        (e) => e.ErrorDetail?.ErrorCode !== 'AlreadyExistsException',
      );
      if (failures.length > 0) {
        const list = failures
          .map(
            (e) =>
              `[${(e.PartitionValues ?? []).join(', ')}]: ${e.ErrorDetail?.ErrorCode ?? 'Error'} ` +
              `${e.ErrorDetail?.ErrorMessage ?? ''}`.trim(),
          )
          .join('; ');
        throw new Error(`Glue refused ${failures.length} partition(s) of ${this.database}.${table}: ${list}`);
      }
    }
  }

  /** Creates the job's table, or updates it when this run changes its definition. */
  private async ensureTable(run: PublishedRun): Promise<void> {
    await this.createOrUpdateTable(
      run.table,
      () => newTableInput(run),
      (existing) => updatedTableInput(existing, run, this.database),
    );
  }

  /**
   * Creates a pipeline's runs table (one JSON row per finalized run, run_date partitions by projection, so no
   * partition is ever registered) when it is missing, or brings its columns, location and projection parameters to
   * `spec` when they differ (a new Finalize version added a column). Other parameters are kept.
   */
  async ensureRunsTable(spec: RunsTableSpec): Promise<void> {
    checkRunsTable(spec); // before anything is read or written
    await this.createOrUpdateTable(
      spec.table,
      () => runsTableInput(spec),
      (existing) => updatedRunsTableInput(existing, spec, this.database),
    );
  }

  /**
   * Creates table `name` with `create()` when it is missing, else applies `update(existing)` unless that says
   * nothing changed (undefined). The update is optimistic (VersionId): when another Finalize created or changed the
   * table between our read and our write, Glue refuses it and the table is read again, up to TABLE_RACE_ATTEMPTS.
   */
  private async createOrUpdateTable(
    name: string,
    create: () => TableInput,
    update: (existing: Table) => TableInput | undefined,
  ): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        const existing = await this.getTable(name);
        if (!existing) {
          await this.client.send(
            new CreateTableCommand({ ...this.catalog(), DatabaseName: this.database, TableInput: create() }),
          );
          return;
        }
        const changed = update(existing);
        if (!changed) return;
        await this.client.send(
          new UpdateTableCommand({
            ...this.catalog(),
            DatabaseName: this.database,
            TableInput: changed,
            ...(existing.VersionId !== undefined && { VersionId: existing.VersionId }),
          }),
        );
        return;
      } catch (err) {
        const race = err instanceof AlreadyExistsException || err instanceof ConcurrentModificationException;
        if (!race || attempt >= TABLE_RACE_ATTEMPTS) throw err;
      }
    }
  }

  private async getTable(name: string): Promise<Table | undefined> {
    try {
      const out = await this.client.send(
        new GetTableCommand({ ...this.catalog(), DatabaseName: this.database, Name: name }),
      );
      return out.Table;
    } catch (err) {
      if (err instanceof EntityNotFoundException) return undefined;
      throw err;
    }
  }

  private catalog(): { CatalogId?: string } {
    return this.catalogId !== undefined ? { CatalogId: this.catalogId } : {};
  }
}

const HIVE_SCALARS: Readonly<Record<string, string>> = {
  string: 'string',
  float: 'float',
  double: 'double',
  int: 'int',
  bigint: 'bigint',
  boolean: 'boolean',
};

/** Hive types with no spec name that a catalogue column may still carry (lower-cased writer types). */
const OTHER_HIVE = /^(?:tinyint|smallint|timestamp|date|binary|decimal\(\d+,\d+\))$/;

/**
 * The Hive type of a catalogue column: spec types map one to one (string, float, double, int, bigint, boolean,
 * array<float>), and a few other Hive types pass through. Anything else is refused rather than registered as a
 * type Athena cannot read.
 */
export function hiveType(type: string): string {
  const t = type.replace(/\s+/g, '').toLowerCase();
  const scalar = HIVE_SCALARS[t];
  if (scalar) return scalar;
  const element = /^array<(.+)>$/.exec(t)?.[1];
  if (element !== undefined) return `array<${hiveType(element)}>`;
  if (OTHER_HIVE.test(t)) return t;
  throw new Error(`Column type "${type}" has no Hive equivalent; the Glue catalogue cannot register it`);
}

export function glueColumns(columns: readonly CatalogColumn[], format: FileFormat = 'parquet'): Column[] {
  // CSV holds arrays as JSON text in one field: OpenCSVSerde reads it as a string.
  return columns.map((c) => {
    const type = hiveType(c.type);
    return { Name: c.name, Type: format === 'csv' && type.startsWith('array<') ? 'string' : type };
  });
}

/** The parameters this catalogue sets on a table for a run. */
export function tableParameters(run: PublishedRun): Record<string, string> {
  return {
    [PARAM.classification]: CLASSIFICATION[formatOf(run)],
    ...(formatOf(run) === 'csv' && { 'skip.header.line.count': '1' }),
    [PARAM.modelName]: run.model.name,
    ...(run.model.version !== undefined && { [PARAM.modelVersion]: String(run.model.version) }),
    [PARAM.modelSha256]: run.model.sha256,
    [PARAM.definedByRun]: run.runId,
    [PARAM.definedAt]: run.finishedAt,
  };
}

export function newTableInput(run: PublishedRun): TableInput {
  return {
    Name: run.table,
    Description: `Batch inference predictions of job ${run.table} (one partition per validated run)`,
    TableType: 'EXTERNAL_TABLE',
    Parameters: { EXTERNAL: 'TRUE', ...tableParameters(run) },
    PartitionKeys: PARTITION_KEYS.map((k) => ({ ...k })),
    StorageDescriptor: {
      Columns: glueColumns(run.columns, formatOf(run)),
      Location: run.outputUri,
      ...storageOf(formatOf(run)),
      Compressed: false,
      StoredAsSubDirectories: false,
    },
  };
}

/**
 * The TableInput to update `existing` with for `run`, or undefined when the table needs no change: the columns
 * and model parameters already match, or a newer run defined the table. Everything else about the table
 * (description, other parameters, location, storage settings) is carried over as it is.
 */
export function updatedTableInput(existing: Table, run: PublishedRun, database = ''): TableInput | undefined {
  const keys = (existing.PartitionKeys ?? []).map((k) => k.Name ?? '');
  if (keys.join(',') !== PARTITION_KEYS.map((k) => k.Name).join(',')) {
    throw new Error(
      `Glue table ${database}.${run.table} exists but is partitioned by (${keys.join(', ')}), not (run_date, run_id); ` +
        'it was not created by batch-infer: drop it or use another job name',
    );
  }
  const params = existing.Parameters ?? {};
  const definedAt = params[PARAM.definedAt];
  if (definedAt !== undefined && Date.parse(definedAt) > Date.parse(run.finishedAt)) return undefined;

  const format = formatOf(run);
  const columns = glueColumns(run.columns, format);
  const desired = tableParameters(run);
  const sameColumns = sameColumnList(existing.StorageDescriptor?.Columns ?? [], columns);
  const sameModel = [PARAM.modelName, PARAM.modelVersion, PARAM.modelSha256].every(
    (k) => params[k] === desired[k],
  );
  const sameFormat =
    existing.StorageDescriptor?.SerdeInfo?.SerializationLibrary ===
    STORAGE[format].SerdeInfo?.SerializationLibrary;
  if (sameColumns && sameModel && sameFormat) return undefined;

  const parameters: Record<string, string> = { ...params, ...desired };
  if (run.model.version === undefined) delete parameters[PARAM.modelVersion];
  if (format !== 'csv') delete parameters['skip.header.line.count'];
  return {
    Name: existing.Name ?? run.table,
    ...(existing.Description !== undefined && { Description: existing.Description }),
    ...(existing.Owner !== undefined && { Owner: existing.Owner }),
    ...(existing.Retention !== undefined && { Retention: existing.Retention }),
    TableType: existing.TableType ?? 'EXTERNAL_TABLE',
    Parameters: parameters,
    PartitionKeys: existing.PartitionKeys,
    StorageDescriptor: {
      ...existing.StorageDescriptor,
      ...(sameFormat ? {} : storageOf(format)),
      Columns: columns,
    },
  };
}

export function partitionInputOf(run: PublishedRun): PartitionInput {
  return {
    Values: [run.runDate, run.runId],
    Parameters: {
      [PARAM.classification]: CLASSIFICATION[formatOf(run)],
      [PARAM.modelName]: run.model.name,
      ...(run.model.version !== undefined && { [PARAM.modelVersion]: String(run.model.version) }),
      [PARAM.modelSha256]: run.model.sha256,
      'batch_infer.records': String(run.records),
      'batch_infer.predictions': String(run.predictions),
      'batch_infer.errors': String(run.errors),
      'batch_infer.manifest_uri': run.manifestUri,
      'batch_infer.finished_at': run.finishedAt,
    },
    StorageDescriptor: {
      Columns: glueColumns(run.columns, formatOf(run)),
      Location: run.partitionUri,
      ...storageOf(formatOf(run)),
      Compressed: false,
      StoredAsSubDirectories: false,
    },
  };
}

function sameColumnList(a: readonly Column[], b: readonly Column[]): boolean {
  return (
    a.length === b.length &&
    a.every(
      (c, i) => c.Name === b[i]?.Name && (c.Type ?? '').toLowerCase() === (b[i]?.Type ?? '').toLowerCase(),
    )
  );
}

function checkRun(run: PublishedRun): void {
  glueColumns(run.columns); // throws on a type Glue cannot take, before anything is written
  for (const uri of [run.outputUri, run.partitionUri]) {
    if (!uri.startsWith('s3://')) {
      throw new Error(
        `The Glue catalogue only registers S3 locations; ${uri} is not one (use the local catalogue)`,
      );
    }
  }
  const clash = run.columns.find((c) => PARTITION_KEYS.some((k) => k.Name === c.name));
  if (clash) {
    throw new Error(
      `Output column "${clash.name}" clashes with a partition key of table ${run.table}; rename it`,
    );
  }
}

/** The first day the runs tables' partition projection covers. */
export const RUNS_PROJECTION_START = '2024-01-01';

/** A pipeline's runs table: `<pipeline>_runs`, reading the run records under `location`. */
export interface RunsTableSpec {
  readonly table: string;
  /** `<auditRunsUri><pipeline>/`, an s3:// prefix ending in "/". */
  readonly location: string;
  /** The run record's columns with their Hive types, in order. */
  readonly columns: readonly CatalogColumn[];
}

/** The parameters a runs table must have: JSON rows, run_date partitions computed by partition projection. */
export function runsTableParameters(location: string): Record<string, string> {
  return {
    EXTERNAL: 'TRUE',
    classification: 'json',
    'projection.enabled': 'true',
    'projection.run_date.type': 'date',
    'projection.run_date.format': 'yyyy-MM-dd',
    'projection.run_date.range': `${RUNS_PROJECTION_START},NOW`,
    'projection.run_date.interval': '1',
    'projection.run_date.interval.unit': 'DAYS',
    'storage.location.template': `${location}run_date=\${run_date}/`,
  };
}

function checkRunsTable(spec: RunsTableSpec): void {
  if (!/^s3:\/\/[^/]+\/(.*\/)?$/.test(spec.location)) {
    throw new Error(
      `Runs table ${spec.table}: location "${spec.location}" must be an s3:// prefix ending in "/"`,
    );
  }
}

export function runsTableInput(spec: RunsTableSpec): TableInput {
  checkRunsTable(spec);
  return {
    Name: spec.table,
    Description: `Runs of pipeline ${spec.table.replace(/_runs$/, '')}: one row per finalized run (status, counts, model, timings)`,
    TableType: 'EXTERNAL_TABLE',
    Parameters: runsTableParameters(spec.location),
    PartitionKeys: [{ Name: 'run_date', Type: 'string' }],
    StorageDescriptor: {
      Columns: glueColumns(spec.columns, 'jsonl'),
      Location: spec.location,
      ...storageOf('jsonl'),
      Compressed: false,
      StoredAsSubDirectories: false,
    },
  };
}

/**
 * The TableInput to update an existing runs table with, or undefined when its columns, location and projection
 * parameters already match `spec`. Parameters set by others are kept.
 */
export function updatedRunsTableInput(
  existing: Table,
  spec: RunsTableSpec,
  database = '',
): TableInput | undefined {
  checkRunsTable(spec);
  const keys = (existing.PartitionKeys ?? []).map((k) => k.Name ?? '');
  if (keys.join(',') !== 'run_date') {
    throw new Error(
      `Glue table ${database}.${spec.table} exists but is partitioned by (${keys.join(', ')}), not (run_date); ` +
        'it is not a batch-infer runs table: drop it or rename the pipeline',
    );
  }
  const columns = glueColumns(spec.columns, 'jsonl');
  const desired = runsTableParameters(spec.location);
  const params = existing.Parameters ?? {};
  const sameParams = Object.entries(desired).every(([k, v]) => params[k] === v);
  const sameColumns = sameColumnList(existing.StorageDescriptor?.Columns ?? [], columns);
  const sameLocation = existing.StorageDescriptor?.Location === spec.location;
  if (sameParams && sameColumns && sameLocation) return undefined;
  return {
    Name: existing.Name ?? spec.table,
    ...(existing.Description !== undefined && { Description: existing.Description }),
    ...(existing.Owner !== undefined && { Owner: existing.Owner }),
    ...(existing.Retention !== undefined && { Retention: existing.Retention }),
    TableType: existing.TableType ?? 'EXTERNAL_TABLE',
    Parameters: { ...params, ...desired },
    PartitionKeys: existing.PartitionKeys,
    StorageDescriptor: {
      ...existing.StorageDescriptor,
      ...storageOf('jsonl'),
      Columns: columns,
      Location: spec.location,
    },
  };
}
