/**
 * Builds the stored files of a run (plan.json, shards.jsonl, markers) in a temporary directory, through the real
 * LocalObjectStore, so Reconcile and Finalize read exactly what a real run leaves behind.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeShardList } from '../../src/results/shard-list.js';
import { runLayout, type RunLayout } from '../../src/runs/layout.js';
import type { RunState } from '../../src/runs/tasks.js';
import {
  planSchema,
  type OutputFile,
  type Plan,
  type Shard,
  type ShardMarker,
} from '../../src/runs/types.js';
import { jobSpecSchema, type JobSpecInput } from '../../src/spec/schema.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import { putJson } from '../../src/storage/object-store.js';
import { writeScores } from './parquet-fixture.js';

export const SHA = 'a'.repeat(64);

export interface RunFixture {
  readonly dir: string;
  readonly store: LocalObjectStore;
  readonly layout: RunLayout;
  readonly plan: Plan;
  readonly shards: Shard[];
  readonly state: RunState;
  cleanup(): Promise<void>;
}

export interface RunFixtureOptions {
  readonly shardCount: number;
  readonly runId?: string;
  readonly runDate?: string;
  readonly maxRounds?: number;
  readonly spec?: Partial<JobSpecInput>;
  /** Merged into the spec's output section (whose uri is the fixture's own). */
  readonly output?: Partial<JobSpecInput['output']>;
  /** Records per shard in the plan; exact unless `recordsExact` is false. */
  readonly recordsPerShard?: number;
  readonly recordsExact?: boolean;
  /** An existing temp dir to reuse (e.g. to share a catalogue file). */
  readonly dir?: string;
  /**
   * `indexed` (default): shards.jsonl and shards.index.json, as Plan writes them. `legacy`: shards.jsonl alone, as
   * runs planned before the index existed have it.
   */
  readonly shardList?: 'indexed' | 'legacy';
  /** The shards of the plan, instead of one small range each. */
  readonly shards?: Shard[];
}

export async function tempDir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'batch-infer-results-'));
}

export function makeSpec(
  outputUri: string,
  overrides: Partial<JobSpecInput> = {},
  output: Partial<JobSpecInput['output']> = {},
): Plan['spec'] {
  return jobSpecSchema.parse({
    name: 'churn_scores',
    input: { uri: 's3://input-bucket/data/', format: 'jsonl' },
    model: {
      uri: 's3://models-bucket/churn/model.onnx',
      inputs: [{ tensor: 'x', from: { columns: ['a', 'b'] } }],
      outputs: [{ tensor: 'probs', postprocess: { argmax: { as: 'label' }, keep: 'score' } }],
    },
    output: { uri: outputUri, schema: { label: 'string', score: 'float' }, ...output },
    ...overrides,
  });
}

export async function makeRun(options: RunFixtureOptions): Promise<RunFixture> {
  const dir = options.dir ?? (await tempDir());
  const store = new LocalObjectStore();
  const runId = options.runId ?? 'run-0001';
  const runDate = options.runDate ?? '2024-05-06';
  const outputUri = `${pathToFileURL(path.join(dir, 'out')).href}/`;
  const layout = runLayout(outputUri, runId, runDate);
  const perShard = options.recordsPerShard ?? 3;
  const shards: Shard[] =
    options.shards ??
    Array.from({ length: options.shardCount }, (_, id) => ({
      id,
      ranges: [
        { uri: `s3://input-bucket/data/part-${id}.jsonl`, etag: `e${id}`, size: 100, start: 0, end: 100 },
      ],
      bytes: 100,
      records: perShard,
      recordsExact: options.recordsExact ?? true,
    }));
  const plan = planSchema.parse({
    version: 1,
    runId,
    runDate,
    createdAt: `${runDate}T10:00:00.000Z`,
    spec: makeSpec(outputUri, options.spec, options.output),
    model: {
      source: 'uri',
      artifactUri: 's3://models-bucket/churn/model.onnx',
      etag: 'model-etag',
      size: 1234,
      sha256: SHA,
      files: {},
    },
    input: {
      objects: options.shardCount,
      bytes: 100 * options.shardCount,
      snapshotSha256: 'b'.repeat(64),
      snapshotUri: `${layout.runUri}input-snapshot.jsonl`,
    },
    shardCount: options.shardCount,
    maxRounds: options.maxRounds ?? 2,
  });
  await putJson(store, layout.planUri, plan);
  if (options.shardList === 'legacy') {
    await store.put(layout.shardsUri, shards.map((s) => JSON.stringify(s)).join('\n') + '\n');
  } else {
    await writeShardList(store, layout, shards);
  }
  const state: RunState = {
    runId,
    runUri: layout.runUri,
    shardCount: options.shardCount,
    round: 0,
    maxRounds: plan.maxRounds,
    pending: options.shardCount,
    compute: 'cpu',
    next: 'finalize',
  };
  return {
    dir,
    store,
    layout,
    plan,
    shards,
    state,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** A consistent marker for a shard: `records` records, `errors` of them errors, one output file. */
export function makeMarker(
  layout: RunLayout,
  shardId: number,
  options: { records?: number; errors?: number; columns?: Record<string, string> } = {},
): ShardMarker {
  const records = options.records ?? 3;
  const errors = options.errors ?? 0;
  const predictions = records - errors;
  return {
    version: 1,
    runId: layout.runId,
    shardId,
    round: 0,
    attempt: 1,
    records,
    predictions,
    errors,
    errorsByReason: errors > 0 ? { INVALID_VALUE: errors } : {},
    outputs:
      predictions > 0
        ? [{ uri: layout.partUri(shardId, 0), rows: predictions, bytes: 500, etag: `etag-${shardId}` }]
        : [],
    ...(errors > 0 && {
      errorsFile: { uri: layout.errorsUri(shardId), rows: errors, bytes: 80, etag: `err-${shardId}` },
    }),
    columns: options.columns ?? { label: 'STRING', score: 'FLOAT' },
    timings: { readMs: 1, decodeMs: 2, inferMs: 3, writeMs: 4, totalMs: 10 },
    executionProvider: 'cpu',
    batchSize: 256,
    startedAt: `2024-05-06T10:0${shardId % 10}:00.000Z`,
    finishedAt: `2024-05-06T10:0${shardId % 10}:30.000Z`,
  };
}

/**
 * Writes a marker as a worker does: after its files. By default (`files: 'store'`) every output and errors file the
 * marker names is written first when it does not exist (placeholder bytes), and the marker records each file's
 * stored size and ETag, so the marker is consistent with storage. `files: 'as-is'` writes the marker untouched,
 * for markers whose files are meant to be missing or different.
 */
export async function writeMarker(
  fx: RunFixture,
  marker: ShardMarker | string,
  shardId?: number,
  options: { files?: 'store' | 'as-is' } = {},
): Promise<ShardMarker | undefined> {
  if (typeof marker === 'string') {
    await fx.store.put(fx.layout.markerUri(shardId ?? 0), marker);
    return undefined;
  }
  const stored = options.files === 'as-is' ? marker : await withStoredFiles(fx, marker);
  await putJson(fx.store, fx.layout.markerUri(shardId ?? marker.shardId), stored);
  return stored;
}

/** The marker with its files present in storage and their sizes and ETags as stored. */
export async function withStoredFiles(fx: RunFixture, marker: ShardMarker): Promise<ShardMarker> {
  const stored = async (file: OutputFile): Promise<OutputFile> => {
    const info =
      (await fx.store.tryHead(file.uri)) ??
      (await fx.store.put(file.uri, `placeholder for ${file.rows} rows of shard ${marker.shardId}\n`));
    return { ...file, bytes: info.size, etag: info.etag };
  };
  return {
    ...marker,
    outputs: await Promise.all(marker.outputs.map(stored)),
    ...(marker.errorsFile && { errorsFile: await stored(marker.errorsFile) }),
  };
}

/**
 * A completed shard: its Parquet file with the marker's row count (rows label-<shard>-<i>, score i/4), then its
 * marker, in that order, as a worker leaves them.
 */
export async function writeCompletedShard(fx: RunFixture, marker: ShardMarker): Promise<void> {
  const file = marker.outputs[0];
  if (file) {
    await writeScores(
      file.uri,
      Array.from({ length: file.rows }, (_, i) => ({ label: `label-${marker.shardId}-${i}`, score: i / 4 })),
    );
  }
  await writeMarker(fx, marker);
}
