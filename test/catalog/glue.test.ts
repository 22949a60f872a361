/**
 * GlueCatalog against recorded Glue HTTP exchanges. The real GlueClient serializes each request and parses each
 * response: only the transport is replaced (a request handler that records what would go over the wire and
 * answers with the next fixture from test/fixtures/glue).
 */
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { GlueClient, type GlueClientConfig } from '@aws-sdk/client-glue';
import { describe, expect, it } from '@jest/globals';
import type { PublishedRun } from '../../src/catalog/catalog.js';
import { GlueCatalog, hiveType, PARTITION_BATCH, partitionInputOf } from '../../src/catalog/glue.js';

type HttpHandler = Extract<NonNullable<GlueClientConfig['requestHandler']>, { handle: unknown }>;
/** The parts of the SDK's HttpRequest this transport reads. */
interface WireRequest {
  readonly headers: Record<string, string>;
  readonly body?: unknown;
}
type HandlerOutput = Awaited<ReturnType<HttpHandler['handle']>>;

interface Fixture {
  readonly operation: string;
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: unknown;
}

function fixture(name: string): Fixture {
  return JSON.parse(
    readFileSync(new URL(`../fixtures/glue/${name}.json`, import.meta.url), 'utf8'),
  ) as Fixture;
}

interface Sent {
  readonly target: string;
  readonly contentType: string;
  readonly body: Record<string, unknown>;
}

/** Answers requests with recorded responses, in order, and keeps what the client sent. */
class RecordedGlue {
  readonly sent: Sent[] = [];
  private readonly queue: Fixture[];

  constructor(...names: string[]) {
    this.queue = names.map(fixture);
  }

  readonly handler: HttpHandler = {
    handle: async (request: WireRequest): Promise<HandlerOutput> => {
      const header = (name: string): string =>
        Object.entries(request.headers).find(([k]) => k.toLowerCase() === name)?.[1] ?? '';
      this.sent.push({
        target: header('x-amz-target'),
        contentType: header('content-type'),
        body: JSON.parse(bodyText(request.body)) as Record<string, unknown>,
      });
      const next = this.queue.shift();
      if (!next) throw new Error(`Unexpected request ${header('x-amz-target')}: no recorded response left`);
      if (next.operation !== 'any') expect(header('x-amz-target')).toBe(`AWSGlue.${next.operation}`);
      return {
        response: {
          statusCode: next.status,
          headers: { ...next.headers },
          body: Readable.from([Buffer.from(JSON.stringify(next.body))]),
        },
      };
    },
    updateHttpClientConfig: () => undefined,
    httpHandlerConfigs: () => ({}),
  };

  catalog(): GlueCatalog {
    const client = new GlueClient({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
      requestHandler: this.handler,
      maxAttempts: 3,
    });
    return new GlueCatalog({ database: 'predictions', client });
  }

  get targets(): string[] {
    return this.sent.map((s) => s.target.replace(/^AWSGlue\./, ''));
  }

  /** Every recorded response was used. */
  done(): void {
    expect(this.queue).toEqual([]);
  }
}

/** The serialized body: a string or bytes, depending on the SDK version. */
function bodyText(body: unknown): string {
  if (typeof body === 'string') return body;
  if (body instanceof Uint8Array) return new TextDecoder().decode(body);
  throw new Error(`Unexpected request body type ${typeof body}`);
}

const SHA = 'c'.repeat(64);

function run(overrides: Partial<PublishedRun> = {}): PublishedRun {
  return {
    table: 'churn_scores',
    runId: 'run-0002',
    runDate: '2024-05-06',
    outputUri: 's3://predictions-bucket/churn/',
    partitionUri: 's3://predictions-bucket/churn/run_date=2024-05-06/run_id=run-0002/',
    files: ['s3://predictions-bucket/churn/run_date=2024-05-06/run_id=run-0002/part-00000-0000.parquet'],
    columns: [
      { name: 'label', type: 'string' },
      { name: 'score', type: 'float' },
      { name: 'probabilities', type: 'array<float>' },
    ],
    model: { name: 'churn', version: 3, sha256: SHA },
    records: 10,
    predictions: 9,
    errors: 1,
    manifestUri: 's3://predictions-bucket/churn/_runs/run-0002/manifest.json',
    finishedAt: '2024-05-06T12:00:00.000Z',
    ...overrides,
  };
}

const PARQUET_SD = {
  InputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
  OutputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat',
  SerdeInfo: {
    SerializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe',
    Parameters: { 'serialization.format': '1' },
  },
  Compressed: false,
  StoredAsSubDirectories: false,
};

const COLUMNS = [
  { Name: 'label', Type: 'string' },
  { Name: 'score', Type: 'float' },
  { Name: 'probabilities', Type: 'array<float>' },
];

const PARTITION_BODY = {
  DatabaseName: 'predictions',
  TableName: 'churn_scores',
  PartitionInputList: [
    {
      Values: ['2024-05-06', 'run-0002'],
      Parameters: {
        classification: 'parquet',
        'batch_infer.model_name': 'churn',
        'batch_infer.model_version': '3',
        'batch_infer.model_sha256': SHA,
        'batch_infer.records': '10',
        'batch_infer.predictions': '9',
        'batch_infer.errors': '1',
        'batch_infer.manifest_uri': 's3://predictions-bucket/churn/_runs/run-0002/manifest.json',
        'batch_infer.finished_at': '2024-05-06T12:00:00.000Z',
      },
      StorageDescriptor: {
        Columns: COLUMNS,
        Location: 's3://predictions-bucket/churn/run_date=2024-05-06/run_id=run-0002/',
        ...PARQUET_SD,
      },
    },
  ],
};

describe('GlueCatalog', () => {
  it('creates a missing table, then adds the run partition', async () => {
    const glue = new RecordedGlue('get-table-not-found', 'create-table', 'batch-create-partition');

    await glue.catalog().publishRun(run());

    glue.done();
    expect(glue.targets).toEqual(['GetTable', 'CreateTable', 'BatchCreatePartition']);
    expect(glue.sent.every((s) => s.contentType === 'application/x-amz-json-1.1')).toBe(true);
    expect(glue.sent[0]!.body).toEqual({ DatabaseName: 'predictions', Name: 'churn_scores' });
    expect(glue.sent[1]!.body).toEqual({
      DatabaseName: 'predictions',
      TableInput: {
        Name: 'churn_scores',
        Description: 'Batch inference predictions of job churn_scores (one partition per validated run)',
        TableType: 'EXTERNAL_TABLE',
        Parameters: {
          EXTERNAL: 'TRUE',
          classification: 'parquet',
          'batch_infer.model_name': 'churn',
          'batch_infer.model_version': '3',
          'batch_infer.model_sha256': SHA,
          'batch_infer.defined_by_run_id': 'run-0002',
          'batch_infer.defined_at': '2024-05-06T12:00:00.000Z',
        },
        PartitionKeys: [
          { Name: 'run_date', Type: 'string' },
          { Name: 'run_id', Type: 'string' },
        ],
        StorageDescriptor: { Columns: COLUMNS, Location: 's3://predictions-bucket/churn/', ...PARQUET_SD },
      },
    });
    expect(glue.sent[2]!.body).toEqual(PARTITION_BODY);
  });

  it('updates a table whose model changed, keeping parameters it does not own, at the read version', async () => {
    const glue = new RecordedGlue('get-table', 'update-table', 'batch-create-partition');

    await glue.catalog().publishRun(run());

    glue.done();
    expect(glue.targets).toEqual(['GetTable', 'UpdateTable', 'BatchCreatePartition']);
    const update = glue.sent[1]!.body;
    expect(update.VersionId).toBe('3');
    expect(update.TableInput).toMatchObject({
      Name: 'churn_scores',
      TableType: 'EXTERNAL_TABLE',
      Retention: 0,
      Parameters: {
        EXTERNAL: 'TRUE',
        classification: 'parquet',
        owner_team: 'growth',
        'batch_infer.model_name': 'churn',
        'batch_infer.model_version': '3',
        'batch_infer.model_sha256': SHA,
        'batch_infer.defined_by_run_id': 'run-0002',
        'batch_infer.defined_at': '2024-05-06T12:00:00.000Z',
      },
      StorageDescriptor: {
        Columns: COLUMNS,
        Location: 's3://predictions-bucket/churn/',
        NumberOfBuckets: -1,
      },
    });
    // Read-only Table fields must not be sent back in a TableInput.
    expect(Object.keys(update.TableInput as object)).not.toContain('CreateTime');
    expect(Object.keys(update.TableInput as object)).not.toContain('DatabaseName');
  });

  it('leaves an up-to-date table alone and treats an existing partition as published', async () => {
    const glue = new RecordedGlue('get-table', 'batch-create-partition-already-exists');
    const same = run({
      runId: 'run-0001',
      finishedAt: '2024-05-05T12:00:00.000Z',
      columns: [
        { name: 'label', type: 'string' },
        { name: 'score', type: 'float' },
      ],
      model: { name: 'churn', version: 2, sha256: '1'.repeat(64) },
    });

    await glue.catalog().publishRun(same);

    glue.done();
    expect(glue.targets).toEqual(['GetTable', 'BatchCreatePartition']);
  });

  it('does not let an older run redefine a table defined by a newer one', async () => {
    const glue = new RecordedGlue('get-table', 'batch-create-partition');
    await glue.catalog().publishRun(run({ runId: 'run-0000', finishedAt: '2024-05-01T00:00:00.000Z' }));
    glue.done();
    expect(glue.targets).toEqual(['GetTable', 'BatchCreatePartition']);
  });

  it('throws on a partition error other than AlreadyExists', async () => {
    const glue = new RecordedGlue('get-table-not-found', 'create-table', 'batch-create-partition-invalid');
    await expect(glue.catalog().publishRun(run())).rejects.toThrow(
      'Glue refused 1 partition(s) of predictions.churn_scores: [2024-05-06, run-0002]: InvalidInputException ' +
        'Partition values do not match the partition keys.',
    );
  });

  it('retries throttled calls through the SDK', async () => {
    const glue = new RecordedGlue(
      'get-table-not-found',
      'create-table',
      'throttled',
      'batch-create-partition',
    );
    await glue.catalog().publishRun(run());
    glue.done();
    expect(glue.targets).toEqual(['GetTable', 'CreateTable', 'BatchCreatePartition', 'BatchCreatePartition']);
    expect(glue.sent[3]!.body).toEqual(glue.sent[2]!.body);
  });

  it('reads the table again when another writer changed it concurrently', async () => {
    const glue = new RecordedGlue(
      'get-table',
      'update-table-concurrent',
      'get-table',
      'update-table',
      'batch-create-partition',
    );
    await glue.catalog().publishRun(run());
    glue.done();
    expect(glue.targets).toEqual([
      'GetTable',
      'UpdateTable',
      'GetTable',
      'UpdateTable',
      'BatchCreatePartition',
    ]);
  });

  it('adds partitions in batches of 100', async () => {
    const glue = new RecordedGlue('batch-create-partition', 'batch-create-partition');
    const partitions = Array.from({ length: PARTITION_BATCH + 50 }, (_, i) =>
      partitionInputOf(
        run({
          runId: `run-${i}`,
          partitionUri: `s3://predictions-bucket/churn/run_date=2024-05-06/run_id=run-${i}/`,
        }),
      ),
    );
    await glue.catalog().addPartitions('churn_scores', partitions);
    glue.done();
    const sizes = glue.sent.map((s) => (s.body.PartitionInputList as unknown[]).length);
    expect(sizes).toEqual([100, 50]);
  });

  it('registers CSV and JSON Lines outputs with their SerDe, the CSV header skipped and arrays as strings', async () => {
    const glue = new RecordedGlue('get-table-not-found', 'create-table', 'batch-create-partition');
    await glue.catalog().publishRun(run({ format: 'csv' }));
    glue.done();
    const table = glue.sent[1]!.body.TableInput as Record<string, Record<string, unknown>>;
    expect(table.Parameters).toMatchObject({ classification: 'csv', 'skip.header.line.count': '1' });
    const csvSd = {
      InputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
      OutputFormat: 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat',
      SerdeInfo: {
        SerializationLibrary: 'org.apache.hadoop.hive.serde2.OpenCSVSerde',
        Parameters: { separatorChar: ',', quoteChar: '"', escapeChar: '\\' },
      },
    };
    const csvColumns = [
      { Name: 'label', Type: 'string' },
      { Name: 'score', Type: 'float' },
      { Name: 'probabilities', Type: 'string' },
    ];
    expect(table.StorageDescriptor).toMatchObject({ ...csvSd, Columns: csvColumns });
    const partition = (
      glue.sent[2]!.body.PartitionInputList as Record<string, Record<string, unknown>>[]
    )[0]!;
    expect(partition.Parameters).toMatchObject({ classification: 'csv' });
    expect(partition.StorageDescriptor).toMatchObject({ ...csvSd, Columns: csvColumns });

    const json = new RecordedGlue('get-table-not-found', 'create-table', 'batch-create-partition');
    await json.catalog().publishRun(run({ format: 'jsonl' }));
    const jsonTable = json.sent[1]!.body.TableInput as Record<string, Record<string, unknown>>;
    expect(jsonTable.Parameters).toMatchObject({ classification: 'json' });
    expect(jsonTable.Parameters).not.toHaveProperty('skip.header.line.count');
    expect(jsonTable.StorageDescriptor).toMatchObject({
      InputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
      SerdeInfo: { SerializationLibrary: 'org.openx.data.jsonserde.JsonSerDe' },
      Columns: COLUMNS,
    });
  });

  it('updates the table format when a run changes it, keeping the other storage settings', async () => {
    // get-table holds a Parquet table whose columns and model already match this run: only the format differs.
    const glue = new RecordedGlue('get-table', 'update-table', 'batch-create-partition');
    await glue
      .catalog()
      .publishRun(run({ format: 'jsonl', runId: 'run-0009', finishedAt: '2030-01-01T00:00:00.000Z' }));
    glue.done();
    expect(glue.targets).toEqual(['GetTable', 'UpdateTable', 'BatchCreatePartition']);
    const sd = (glue.sent[1]!.body.TableInput as Record<string, Record<string, unknown>>).StorageDescriptor!;
    expect(sd).toMatchObject({
      InputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
      SerdeInfo: { SerializationLibrary: 'org.openx.data.jsonserde.JsonSerDe' },
      Location: 's3://predictions-bucket/churn/',
      NumberOfBuckets: -1,
    });
  });

  it('refuses runs it cannot register, before calling Glue', async () => {
    const glue = new RecordedGlue();
    const catalog = glue.catalog();
    await expect(catalog.publishRun(run({ outputUri: 'file:///tmp/out/' }))).rejects.toThrow(
      /only registers S3/,
    );
    await expect(catalog.publishRun(run({ columns: [{ name: 'run_id', type: 'string' }] }))).rejects.toThrow(
      /clashes with a partition key/,
    );
    await expect(
      catalog.publishRun(run({ columns: [{ name: 'x', type: 'map<string,int>' }] })),
    ).rejects.toThrow(/no Hive equivalent/);
    expect(glue.sent).toEqual([]);
  });
});

describe('GlueCatalog.ensureRunsTable (Finalize owns the runs table, ADR 0017)', () => {
  const spec = {
    table: 'churn_runs',
    location: 's3://data-bucket/audit/runs/churn/',
    columns: [
      { name: 'run_id', type: 'string' },
      { name: 'status', type: 'string' },
      { name: 'records', type: 'bigint' },
    ],
  };
  const PARAMS = {
    EXTERNAL: 'TRUE',
    classification: 'json',
    'projection.enabled': 'true',
    'projection.run_date.type': 'date',
    'projection.run_date.format': 'yyyy-MM-dd',
    'projection.run_date.range': '2024-01-01,NOW',
    'projection.run_date.interval': '1',
    'projection.run_date.interval.unit': 'DAYS',
    'storage.location.template': 's3://data-bucket/audit/runs/churn/run_date=${run_date}/',
  };
  const JSON_SD = {
    InputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
    OutputFormat: 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat',
    SerdeInfo: {
      SerializationLibrary: 'org.openx.data.jsonserde.JsonSerDe',
      Parameters: { 'ignore.malformed.json': 'FALSE' },
    },
  };

  it('creates a missing runs table: JSON rows, run_date partitions by projection', async () => {
    const glue = new RecordedGlue('get-table-not-found', 'create-table');
    await glue.catalog().ensureRunsTable(spec);
    glue.done();
    expect(glue.targets).toEqual(['GetTable', 'CreateTable']);
    expect(glue.sent[1]!.body).toEqual({
      DatabaseName: 'predictions',
      TableInput: {
        Name: 'churn_runs',
        Description: 'Runs of pipeline churn: one row per finalized run (status, counts, model, timings)',
        TableType: 'EXTERNAL_TABLE',
        Parameters: PARAMS,
        PartitionKeys: [{ Name: 'run_date', Type: 'string' }],
        StorageDescriptor: {
          Columns: [
            { Name: 'run_id', Type: 'string' },
            { Name: 'status', Type: 'string' },
            { Name: 'records', Type: 'bigint' },
          ],
          Location: 's3://data-bucket/audit/runs/churn/',
          ...JSON_SD,
          Compressed: false,
          StoredAsSubDirectories: false,
        },
      },
    });
  });

  it("adds a new run record column to an existing runs table, keeping others' parameters, at the read version", async () => {
    const glue = new RecordedGlue('get-runs-table', 'update-table');
    await glue.catalog().ensureRunsTable(spec);
    glue.done();
    expect(glue.targets).toEqual(['GetTable', 'UpdateTable']);
    const update = glue.sent[1]!.body;
    expect(update.VersionId).toBe('7');
    expect(update.TableInput).toMatchObject({
      Name: 'churn_runs',
      Description: 'Runs of pipeline churn',
      Parameters: { ...PARAMS, owner_team: 'growth' },
      PartitionKeys: [{ Name: 'run_date', Type: 'string' }],
      StorageDescriptor: {
        Columns: [
          { Name: 'run_id', Type: 'string' },
          { Name: 'status', Type: 'string' },
          { Name: 'records', Type: 'bigint' },
        ],
        Location: 's3://data-bucket/audit/runs/churn/',
        NumberOfBuckets: -1,
      },
    });
    expect(Object.keys(update.TableInput as object)).not.toContain('CreateTime');
  });

  it('leaves a runs table that matches alone (one GetTable per Finalize)', async () => {
    const glue = new RecordedGlue('get-runs-table');
    await glue.catalog().ensureRunsTable({ ...spec, columns: spec.columns.slice(0, 2) });
    glue.done();
    expect(glue.targets).toEqual(['GetTable']);
  });

  it('refuses to take over a table that is not a runs table, and a location that is no s3:// prefix', async () => {
    const glue = new RecordedGlue('get-table');
    await expect(glue.catalog().ensureRunsTable({ ...spec, table: 'churn_scores' })).rejects.toThrow(
      'partitioned by (run_date, run_id), not (run_date)',
    );
    const none = new RecordedGlue();
    await expect(
      none.catalog().ensureRunsTable({ ...spec, location: 's3://data-bucket/audit/runs/churn' }),
    ).rejects.toThrow('must be an s3:// prefix ending in "/"');
  });
});

describe('hiveType', () => {
  it.each([
    ['string', 'string'],
    ['float', 'float'],
    ['double', 'double'],
    ['int', 'int'],
    ['bigint', 'bigint'],
    ['boolean', 'boolean'],
    ['array<float>', 'array<float>'],
    ['timestamp', 'timestamp'],
  ])('%s -> %s', (spec, hive) => {
    expect(hiveType(spec)).toBe(hive);
  });
});
