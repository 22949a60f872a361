/**
 * Finalize as deployed (src/results/finalize.ts with the GlueCatalog the Finalize Lambda builds) on a run with a
 * challenger (docs/adr/0020), Glue mocked at the request level with aws-sdk-client-mock. Responses follow the AWS
 * Glue API reference: GetTable returns `{ Table }` or fails with EntityNotFoundException, CreateTable and
 * UpdateTable return `{}`, BatchCreatePartition returns `{ Errors: [] }`. The run itself is real: planned by the
 * planner, its shard run by the worker core (both models, the example registry's versions 1 and 2), reconciled.
 */
import {
  BatchCreatePartitionCommand,
  CreateTableCommand,
  EntityNotFoundException,
  GetTableCommand,
  GlueClient,
  UpdateTableCommand,
  type StorageDescriptor,
  type Table,
  type TableInput,
} from '@aws-sdk/client-glue';
import { mockClient } from 'aws-sdk-client-mock';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { GlueCatalog } from '../../src/catalog/glue.js';
import { challengerLayoutOf } from '../../src/challenger/plan.js';
import { LocalModelRegistry } from '../../src/registry/local.js';
import { finalizeRun } from '../../src/results/finalize.js';
import { reconcileRun } from '../../src/results/reconcile.js';
import { planRun } from '../../src/planning/plan-run.js';
import type { RunState } from '../../src/runs/tasks.js';
import { planSchema, type Plan } from '../../src/runs/types.js';
import { LocalObjectStore, RoutingObjectStore, type ObjectStore } from '../../src/storage/index.js';
import { createS3Client, S3ObjectStore } from '../../src/storage/s3.js';
import { startS3Server, useS3TestEnv, type S3TestServer } from '../support/s3-server.js';
import { getJson } from '../../src/storage/object-store.js';
import { breastCancerInput, breastCancerSpec, registryUri, runShard, tempDir } from '../worker/helpers.js';

const glue = mockClient(GlueClient);
const NOW = () => new Date('2026-12-06T12:00:00.000Z');
const IDENTITY = ['patient_id', 'diagnosis', '_shard', '_source', '_offset'];

let tmp: { dir: string; cleanup: () => void };
let inputDir: string;
let server: S3TestServer;
let restoreEnv: () => void;
let store: ObjectStore;

beforeAll(async () => {
  tmp = tempDir('challenger-glue-');
  inputDir = path.join(tmp.dir, 'in');
  await breastCancerInput(inputDir, 1_000, 1, 0);
  // Glue registers S3 locations only: the tables go to an S3 server on loopback, the input and models stay local.
  server = await startS3Server();
  restoreEnv = useS3TestEnv(server.endpoint);
  await server.createBucket('lake');
  const s3 = createS3Client({ endpoint: server.endpoint });
  store = new RoutingObjectStore({ file: () => new LocalObjectStore(), s3: () => new S3ObjectStore(s3) });
}, 60_000);
afterAll(async () => {
  glue.restore();
  restoreEnv();
  await server.stop();
  tmp.cleanup();
});
beforeEach(() => {
  glue.reset();
});

interface Ran {
  readonly store: ObjectStore;
  readonly plan: Plan;
  readonly state: RunState;
}

/** Plans a one-shard run with a challenger, runs its shard and reconciles it: ready for Finalize. */
async function ranWithChallenger(name: string, validation: Record<string, unknown>): Promise<Ran> {
  const base = breastCancerSpec(inputDir, path.join(tmp.dir, name));
  const spec = {
    ...base,
    name,
    output: { ...base.output, uri: `s3://lake/${name}/` },
    model: { ...base.model, challenger: { registry: { group: 'breast-cancer-mlp', version: 2 } } },
    validation,
  };
  const planned = await planRun(
    { runId: `${name}-run`, spec },
    { store, registry: new LocalModelRegistry(store, registryUri) },
  );
  const plan = planSchema.parse(await getJson(store, `${planned.runUri}plan.json`));
  expect(plan.shardCount).toBe(1);
  await runShard({ runUri: planned.runUri, store });
  const state = await reconcileRun(planned, { store });
  expect(state.next).toBe('finalize');
  return { store, plan, state };
}

const finalize = (ran: Ran) =>
  finalizeRun(ran.state, {
    store: ran.store,
    catalog: new GlueCatalog({ database: 'predictions', client: new GlueClient({ region: 'eu-west-1' }) }),
    now: NOW,
  });

const createdTables = (): TableInput[] =>
  glue.commandCalls(CreateTableCommand).map((c) => c.args[0].input.TableInput!);
const columnNames = (t: { readonly StorageDescriptor?: StorageDescriptor }): string[] =>
  (t.StorageDescriptor?.Columns ?? []).map((c) => c.Name!);
const identityOf = (t: { readonly StorageDescriptor?: StorageDescriptor }) =>
  (t.StorageDescriptor?.Columns ?? []).filter((c) => IDENTITY.includes(c.Name!));

describe('Finalize with Glue, a run with a challenger that passes', () => {
  it('creates <name>_challenger beside the table, with the same identity columns, and adds its partition', async () => {
    const ran = await ranWithChallenger('bc_glue', { maxErrorRate: 0.01, challenger: { minAgreement: 0.5 } });
    glue
      .on(GetTableCommand)
      .rejects(new EntityNotFoundException({ message: 'Table bc_glue not found.', $metadata: {} }));
    glue.on(CreateTableCommand).resolves({});
    glue.on(BatchCreatePartitionCommand).resolves({ Errors: [] });

    const result = await finalize(ran);
    expectIn(result.status, result).toBe('SUCCEEDED');

    const tables = createdTables();
    expect(tables.map((t) => t.Name)).toEqual(['bc_glue', 'bc_glue_challenger']);
    const [champion, challenger] = tables as [TableInput, TableInput];
    expect(identityOf(challenger)).toEqual(identityOf(champion));
    expect(columnNames(challenger)).toEqual(columnNames(champion));
    expect(identityOf(challenger).map((c) => c.Name)).toEqual(IDENTITY);
    const layout = challengerLayoutOf(ran.plan)!;
    expect(challenger.StorageDescriptor?.Location).toBe(layout.outputUri);
    expect(challenger.StorageDescriptor?.Location).toMatch(/\/_challenger\/$/);
    // The challenger model's version, not the champion's.
    expect(challenger.Parameters?.['batch_infer.model_version']).toBe('2');
    expect(champion.Parameters?.['batch_infer.model_version']).toBe('1');

    const partitions = glue.commandCalls(BatchCreatePartitionCommand).map((c) => c.args[0].input);
    expect(partitions.map((p) => p.TableName)).toEqual(['bc_glue', 'bc_glue_challenger']);
    const partition = partitions[1]!.PartitionInputList![0]!;
    expect(partition.Values).toEqual([ran.plan.runDate, ran.plan.runId]);
    expect(partition.StorageDescriptor?.Location).toBe(layout.partitionUri);
    expect(columnNames(partition)).toEqual(columnNames(challenger));
  }, 120_000);

  it('updates an existing <name>_challenger table (optimistically, by its VersionId) defined by an earlier model', async () => {
    const ran = await ranWithChallenger('bc_glue_update', { maxErrorRate: 0.01 });
    // An earlier run's challenger table, as GetTable returns it: defined by model version 1 the day before.
    const column = (Name: string, Type: string) => ({ Name, Type });
    const existing: Table = {
      Name: 'bc_glue_update_challenger',
      DatabaseName: 'predictions',
      CreateTime: new Date('2026-12-05T12:00:00.000Z'),
      UpdateTime: new Date('2026-12-05T12:00:00.000Z'),
      Retention: 0,
      TableType: 'EXTERNAL_TABLE',
      PartitionKeys: [column('run_date', 'string'), column('run_id', 'string')],
      StorageDescriptor: {
        Columns: [
          column('patient_id', 'string'),
          column('diagnosis', 'string'),
          column('label', 'string'),
          column('score', 'float'),
          column('_shard', 'int'),
          column('_source', 'string'),
          column('_offset', 'bigint'),
        ],
        Location: 's3://lake/bc_glue_update/_challenger/',
        InputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
        OutputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat',
        SerdeInfo: { SerializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe' },
        Compressed: false,
        StoredAsSubDirectories: false,
      },
      Parameters: {
        EXTERNAL: 'TRUE',
        'batch_infer.model_name': 'breast-cancer-mlp',
        'batch_infer.model_version': '1',
        'batch_infer.defined_by_run_id': 'earlier-run',
        'batch_infer.defined_at': '2026-12-05T12:00:00.000Z',
      },
      VersionId: '7',
      CatalogId: '123456789012',
      IsRegisteredWithLakeFormation: false,
    };
    // The generic answer first: aws-sdk-client-mock lets a later, more specific one take precedence.
    glue.on(GetTableCommand).rejects(new EntityNotFoundException({ message: 'not found', $metadata: {} }));
    glue.on(GetTableCommand, { Name: 'bc_glue_update_challenger' }).resolves({ Table: existing });
    glue.on(CreateTableCommand).resolves({});
    glue.on(UpdateTableCommand).resolves({});
    glue.on(BatchCreatePartitionCommand).resolves({ Errors: [] });

    const result = await finalize(ran);
    expectIn(result.status, result).toBe('SUCCEEDED');
    const updates = glue.commandCalls(UpdateTableCommand).map((c) => c.args[0].input);
    expect(updates.map((u) => u.TableInput?.Name)).toEqual(['bc_glue_update_challenger']);
    expect(updates[0]!.VersionId).toBe('7');
    expect(updates[0]!.TableInput?.Parameters?.['batch_infer.model_version']).toBe('2');
    const [champion] = createdTables() as [TableInput];
    expect(champion.Name).toBe('bc_glue_update');
    expect(identityOf(updates[0]!.TableInput!)).toEqual(identityOf(champion));
    expect(identityOf(updates[0]!.TableInput!).map((c) => c.Name)).toEqual(IDENTITY);
    // Everything else about the table is kept (its location, its storage).
    expect(updates[0]!.TableInput?.StorageDescriptor?.Location).toBe(existing.StorageDescriptor!.Location);
    expect(glue.commandCalls(BatchCreatePartitionCommand).map((c) => c.args[0].input.TableName)).toEqual([
      'bc_glue_update',
      'bc_glue_update_challenger',
    ]);
  }, 120_000);
});

describe('Finalize with Glue, a run whose challenger fails validation.challenger', () => {
  it('fails the run and publishes neither table nor partition', async () => {
    const ran = await ranWithChallenger('bc_glue_gated', {
      maxErrorRate: 0.01,
      challenger: { minAgreement: 1 },
    });
    glue.on(GetTableCommand).rejects(new EntityNotFoundException({ message: 'not found', $metadata: {} }));
    glue.on(CreateTableCommand).resolves({});
    glue.on(UpdateTableCommand).resolves({});
    glue.on(BatchCreatePartitionCommand).resolves({ Errors: [] });

    const result = await finalize(ran);
    expect(result).toMatchObject({ status: 'FAILED', reason: 'ValidationFailed' });
    expect(result.message).toMatch(/below validation\.challenger\.minAgreement 100\.00%/);
    expect(glue.commandCalls(CreateTableCommand)).toHaveLength(0);
    expect(glue.commandCalls(UpdateTableCommand)).toHaveLength(0);
    expect(glue.commandCalls(BatchCreatePartitionCommand)).toHaveLength(0);
  }, 120_000);
});
