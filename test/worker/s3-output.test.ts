/**
 * The worker with its input and output on S3: a real S3-compatible server (s3rver) on the loopback interface, the
 * real S3ObjectStore behind the routing store every entry point uses, a plan made by the real planner. A chunk
 * larger than a multipart part is uploaded as a multipart upload, and the rows written to S3 are exactly those of
 * the same shard written to local files.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { encodeParquet } from '../../src/formats/parquet-write.js';
import { planRun } from '../../src/planning/plan-run.js';
import { LocalModelRegistry } from '../../src/registry/local.js';
import { runLayout } from '../../src/runs/layout.js';
import { planSchema, shardMarkerSchema, type ShardMarker } from '../../src/runs/types.js';
import type { JobSpecInput } from '../../src/spec/schema.js';
import { LocalObjectStore, RoutingObjectStore, type ObjectStore } from '../../src/storage/index.js';
import { getJson } from '../../src/storage/object-store.js';
import { createS3Client, S3_PART_SIZE, S3ObjectStore } from '../../src/storage/s3.js';
import { startS3Server, useS3TestEnv, type S3TestServer } from '../support/s3-server.js';
import { errorLines, fixtureModel, parquetOf, registryUri, runShard, sql, tempDir } from './helpers.js';

/** Values per record: [1000, 2] for padded_identity.onnx, written back as a list of 2000 floats. */
const WIDTH = 2000;
const RECORDS = 1300;
const MISSING = new Set([17, 640, 1299]);
/** Every column a part holds (the local files' paths would add Hive partition columns). */
const COLUMNS = 'id, "values", _shard, _source, _offset';

let server: S3TestServer;
let restoreEnv: () => void;
let client: S3Client;
let sent: { name: string; input: Record<string, unknown> }[];
let store: ObjectStore;
let tmp: { dir: string; cleanup: () => void };

beforeAll(async () => {
  tmp = tempDir('s3-output-');
  server = await startS3Server();
  restoreEnv = useS3TestEnv(server.endpoint);
  await server.createBucket('lake');
  client = createS3Client({ endpoint: server.endpoint });
  sent = [];
  // Observes the commands the worker's client sends; every request still reaches the server.
  client.middlewareStack.add(
    (next, context) => async (args) => {
      sent.push({ name: context.commandName ?? '?', input: args.input as Record<string, unknown> });
      return next(args);
    },
    { step: 'initialize', name: 'testCommandRecorder' },
  );
  store = new RoutingObjectStore({ file: () => new LocalObjectStore(), s3: () => new S3ObjectStore(client) });

  // Random float32 values: the Parquet chunk does not compress below a multipart part.
  let seed = 7;
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const ids: string[] = [];
  const values: (number[] | null)[] = [];
  for (let i = 0; i < RECORDS; i++) {
    ids.push(`v${i}`);
    values.push(MISSING.has(i) ? null : Array.from({ length: WIDTH }, () => Math.fround(random() * 2 - 1)));
  }
  await store.put(
    's3://lake/in/part-0.parquet',
    encodeParquet(
      [
        { name: 'id', type: 'string', values: ids },
        { name: 'seq', type: 'array<float>', values },
      ],
      { rowGroupSize: 400 },
    ),
  );
}, 120_000);

afterAll(async () => {
  client?.destroy();
  await server?.stop();
  restoreEnv?.();
  tmp?.cleanup();
});

const spec = (outputUri: string): JobSpecInput => ({
  name: 's3_output',
  input: { uri: 's3://lake/in/', format: 'parquet', id: 'id' },
  model: {
    uri: pathToFileURL(fixtureModel('tensor/padded_identity.onnx')).href,
    inputs: [{ tensor: 'seq', from: { array: 'seq' }, shape: [-1, WIDTH / 2, 2] }],
    outputs: [{ tensor: 'seq_out', as: 'values' }],
  },
  output: { uri: outputUri },
  run: { batchSize: 100 },
});

async function planAndRun(outputUri: string, runId: string): Promise<ShardMarker> {
  const state = await planRun(
    { runId, spec: spec(outputUri) },
    { store, registry: new LocalModelRegistry(store, registryUri) },
  );
  const plan = planSchema.parse(await getJson(store, `${state.runUri}plan.json`));
  expect(plan.shardCount).toBe(1);
  await runShard({ runUri: state.runUri, store });
  const layout = runLayout(plan.spec.output.uri, plan.runId, plan.runDate);
  return shardMarkerSchema.parse(await getJson(store, layout.markerUri(0)));
}

describe('a worker writing its output to S3', () => {
  it('uploads a chunk larger than a part as a multipart upload, with exactly the rows of a local run', async () => {
    const local = await planAndRun(`${pathToFileURL(path.join(tmp.dir, 'local')).href}/`, 'run-local');
    sent.length = 0;
    const marker = await planAndRun('s3://lake/out/', 'run-s3');

    expect(marker.records).toBe(RECORDS);
    expect(marker.predictions).toBe(RECORDS - MISSING.size);
    expect(marker.errorsByReason).toEqual({ MISSING_VALUE: MISSING.size });
    expect(marker.outputs).toHaveLength(1);
    const [part] = marker.outputs;
    expect(part!.uri).toMatch(/^s3:\/\/lake\/out\/_staging\/run_id=run-s3\/part-0+-0+\.parquet\.staged$/);
    expect(part!.bytes).toBeGreaterThan(S3_PART_SIZE);

    // The part went up in pieces: a multipart upload of more than one part, completed.
    const key = part!.uri.slice('s3://lake/'.length);
    const forPart = sent.filter((c) => c.input.Key === key);
    expect(forPart.map((c) => c.name)).toContain('CreateMultipartUploadCommand');
    expect(forPart.filter((c) => c.name === 'UploadPartCommand').length).toBe(
      Math.ceil(part!.bytes / S3_PART_SIZE),
    );
    expect(forPart.at(-1)!.name).toBe('CompleteMultipartUploadCommand');
    expect(forPart.some((c) => c.name === 'PutObjectCommand')).toBe(false);
    // The marker names the object as it is.
    const head = await store.head(part!.uri);
    expect([head.size, head.etag]).toEqual([part!.bytes, part!.etag]);
    // The input was read with ranged GETs, never whole.
    const inputGets = sent.filter(
      (c) => c.name === 'GetObjectCommand' && c.input.Key === 'in/part-0.parquet',
    );
    expect(inputGets.length).toBeGreaterThan(1);
    expect(inputGets.every((c) => typeof c.input.Range === 'string')).toBe(true);

    // Exactly the rows of the same shard written locally (same input object, so the same lineage too).
    const downloaded = path.join(tmp.dir, 'downloaded');
    mkdirSync(downloaded, { recursive: true });
    const file = path.join(downloaded, 'part.parquet');
    writeFileSync(file, await store.get(part!.uri));
    const [diff] = await sql<{ s3: bigint; left_only: bigint; right_only: bigint; width: number }>(`
      WITH s AS (SELECT ${COLUMNS} FROM read_parquet('${file}')), l AS (SELECT ${COLUMNS} FROM ${parquetOf(local)})
      SELECT (SELECT count(*) FROM s) AS s3,
             (SELECT count(*) FROM (SELECT * FROM s EXCEPT ALL SELECT * FROM l)) AS left_only,
             (SELECT count(*) FROM (SELECT * FROM l EXCEPT ALL SELECT * FROM s)) AS right_only,
             (SELECT min(len("values")) FROM s) AS width`);
    expect(Number(diff!.s3)).toBe(local.predictions);
    expect([Number(diff!.left_only), Number(diff!.right_only), Number(diff!.width)]).toEqual([0, 0, WIDTH]);

    // The errors file is on S3 too, with the same rows.
    expect(marker.errorsFile?.uri).toMatch(/^s3:\/\/lake\/out\/_errors\/run_id=run-s3\/part-0+\.jsonl$/);
    const s3Errors = new TextDecoder().decode(await store.get(marker.errorsFile!.uri));
    expect(s3Errors.split('\n').filter(Boolean)).toEqual(errorLines(local));
    // Nothing of the shard's working state is left: no checkpoint, no error pieces.
    const left: string[] = [];
    for await (const info of store.list('s3://lake/out/_runs/run-s3/')) left.push(info.uri);
    expect(left.filter((u) => /checkpoints|pieces/.test(u))).toEqual([]);
  });
});
