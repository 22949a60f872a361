/**
 * The shard worker on the shipped tabular model (breast-cancer MLP, CSV in, Parquet out), measured against, in the
 * same run: raw ONNX Runtime on pre-built tensors at the worker's batch size (the ceiling), one session.run per
 * record, DuckDB's own CSV -> Parquet copy of the same file (the I/O floor), and the worker's peak RSS on a shard
 * ten times smaller (memory must stay flat as shards grow).
 *
 * The worker runs as the image runs it: src/worker/main.ts bundled by esbuild (as the Dockerfile does), in a child
 * process with Batch's environment. Its rate is records / the shard's time in the worker (the marker's totalMs:
 * plan and model load, the batch-size probe, reading, inference, writing, the marker), which leaves out only the
 * process start. Peak RSS is the child's VmHWM.
 *
 * Also exports the helpers the other worker suite uses.
 */
import { spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import type * as ort from 'onnxruntime-node';
import YAML from 'yaml';
import { makeDemoInput } from '../../examples/breast-cancer/demo.js';
import { readRange, type DecodedRecord } from '../../src/formats/index.js';
import { createFeatureBuilder, type FeatureBuilder } from '../../src/inference/features.js';
import { loadModelFiles } from '../../src/inference/model-files.js';
import { loadModel, type ModelSession } from '../../src/inference/session.js';
import { buildWorkerBundle } from '../../src/local/worker-bundle.js';
import { workerEntry } from '../../src/local/worker-pool.js';
import { planRun } from '../../src/planning/plan-run.js';
import { LocalModelRegistry } from '../../src/registry/local.js';
import { runLayout } from '../../src/runs/layout.js';
import { WORKER_ENV } from '../../src/runs/tasks.js';
import { CHUNK_RECORDS_ENV } from '../../src/worker/env.js';
import {
  planSchema,
  shardMarkerSchema,
  shardSchema,
  type Plan,
  type ShardMarker,
} from '../../src/runs/types.js';
import '../../src/runtime/polyfills.js';
import type { JobSpecInput } from '../../src/spec/schema.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import { getJson } from '../../src/storage/object-store.js';
import type { BenchContext, BenchResult, BenchSuite } from '../suite.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.join(here, '..', '..');
const example = path.join(repo, 'examples', 'breast-cancer');
export const CORES = os.availableParallelism();
/** ONNX Runtime threads for every measurement: the worker's default (a core left for reading and writing). */
export const THREADS = Math.max(1, CORES - 1);

// ---------------------------------------------------------------------------------------------------------------
// Helpers shared with worker-compute.ts

export interface PlannedShard {
  readonly store: LocalObjectStore;
  readonly plan: Plan;
  readonly runUri: string;
}

/** Plans a one-shard run with the real planner (local store; registry models from the shipped example). */
export async function planOneShard(spec: JobSpecInput, runId: string): Promise<PlannedShard> {
  const store = new LocalObjectStore();
  const registry = new LocalModelRegistry(store, `${pathToFileURL(path.join(example, 'registry')).href}/`);
  const state = await planRun({ runId, spec: spec }, { store, registry });
  if (state.shardCount !== 1) throw new Error(`expected one shard, the plan has ${state.shardCount}`);
  const plan = planSchema.parse(await getJson(store, `${state.runUri}plan.json`));
  return { store, plan, runUri: state.runUri };
}

export interface WorkerRun {
  readonly marker: ShardMarker;
  /** Records per second of shard time (marker totalMs). */
  readonly recordsPerSecond: number;
  readonly processWallMs: number;
  readonly peakRssBytes: number;
  /**
   * CPU time of the process, all threads (user + system, from /proc, sampled with the RSS: up to 25 ms short). On a
   * shared machine this moves far less than the wall time, so before/after comparisons use it too.
   */
  readonly cpuMs: number;
}

let bundled: Promise<string> | undefined;

/**
 * The worker as the image runs it: src/worker/main.ts and its threads' entries bundled by esbuild (the Dockerfile's
 * command line, native packages external), under bench/work/ so they resolve from this repository's node_modules.
 * A worker from source would pay tsx compiling every module in the process and again in each thread.
 */
export function workerBundle(): Promise<string> {
  bundled ??= buildWorkerBundle(repo, path.join(repo, 'bench', 'work')).then((file) => {
    if (!file) throw new Error('the benchmarks bundle the worker with esbuild, which is not installed');
    return file;
  });
  return bundled;
}

/** How to start the worker process, beyond its environment. */
export interface WorkerProcessOptions {
  /** Extra Node options (a profiler: `--cpu-prof`). */
  readonly nodeArgs?: readonly string[];
  /** Pin the process to these CPUs (`taskset -c`), e.g. "0" or "0,1". */
  readonly cpus?: string;
  /** Another worker bundle (an earlier version, for a before/after comparison). @default workerBundle() */
  readonly bundle?: string;
}

/** Runs the bundled worker in a child process on shard 0, sampling its peak RSS (VmHWM) until it exits. */
export async function runWorkerProcess(
  planned: PlannedShard,
  env: Record<string, string> = {},
  options: WorkerProcessOptions = {},
): Promise<WorkerRun> {
  const file = options.bundle ?? (await workerBundle());
  // The local pool's Node options (a larger young generation), without tsx.
  const execArgv = workerEntry().execArgv.filter(
    (a, k, all) => a !== '--import' && all[k - 1] !== '--import',
  );
  const started = performance.now();
  const args = [...execArgv, ...(options.nodeArgs ?? []), file];
  const [command, argv] = options.cpus
    ? ['taskset', ['-c', options.cpus, process.execPath, ...args]]
    : [process.execPath, args];
  const child = spawn(command, argv, {
    env: {
      ...process.env,
      [WORKER_ENV.runUri]: planned.runUri,
      [WORKER_ENV.executionProviders]: 'cpu',
      [WORKER_ENV.threads]: String(THREADS),
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr?.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-4000)));
  let peak = 0;
  let cpuTicks = 0;
  // taskset execs node in the same process, so the pid is the worker's either way.
  const sample = (): void => {
    try {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
      peak = Math.max(peak, kb * 1024);
      // Fields 14 and 15 of /proc/<pid>/stat (utime, stime), counted after the command name's closing parenthesis.
      const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      cpuTicks = Math.max(cpuTicks, Number(fields[11]) + Number(fields[12]));
    } catch {
      // The process has just exited: the last sample stands.
    }
  };
  const timer = setInterval(sample, 25);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearInterval(timer);
  const processWallMs = performance.now() - started;
  if (code !== 0) throw new Error(`worker exited with ${code}:\n${log}`);
  const layout = runLayout(planned.plan.spec.output.uri, planned.plan.runId, planned.plan.runDate);
  const marker = shardMarkerSchema.parse(await getJson(planned.store, layout.markerUri(0)));
  return {
    marker,
    recordsPerSecond: (marker.records * 1000) / marker.timings.totalMs,
    processWallMs,
    peakRssBytes: peak,
    // USER_HZ is 100 on Linux.
    cpuMs: cpuTicks * 10,
  };
}

/** The shard's records, decoded by the product's reader (untimed preparation for the raw loops). */
export async function readShardRecords(
  planned: PlannedShard,
  columns: readonly string[],
): Promise<DecodedRecord[]> {
  const layout = runLayout(planned.plan.spec.output.uri, planned.plan.runId, planned.plan.runDate);
  const text = await readFile(fileURLToPath(layout.shardsUri), 'utf8');
  const shard = shardSchema.parse(JSON.parse(text.split('\n')[0]!));
  const out: DecodedRecord[] = [];
  for (const range of shard.ranges) {
    for await (const batch of readRange(planned.store, planned.plan.spec.input.format, range, {
      batchSize: 4096,
      columns,
    })) {
      for (const rec of batch) if (!rec.error) out.push(rec);
    }
  }
  return out;
}

/** The feature builder the worker uses for this plan, with the model's own inputs. */
export async function featureBuilderFor(
  planned: PlannedShard,
  session: ModelSession,
): Promise<FeatureBuilder> {
  const files = await loadModelFiles(planned.store, planned.plan);
  return createFeatureBuilder(planned.plan.spec.model.inputs, session.inputs, {
    files,
    store: planned.store,
  });
}

export async function loadPlannedModel(planned: PlannedShard, threads = THREADS): Promise<ModelSession> {
  const bytes = new Uint8Array(await readFile(fileURLToPath(planned.plan.model.artifactUri)));
  return loadModel(bytes, { providers: ['cpu'], threads });
}

/**
 * One session.run per record, on a session with one intra-op thread: the fastest setting for single rows (more
 * threads only add synchronisation to a run this small), so the baseline is per-record inference at its best.
 */
export async function perRecordRate(
  planned: PlannedShard,
  records: readonly DecodedRecord[],
): Promise<number> {
  const session = await loadPlannedModel(planned, 1);
  try {
    const features = await featureBuilderFor(planned, session);
    return await timeRuns(session, await buildBatches(features, records, 1));
  } finally {
    await session.release();
  }
}

/** Feeds for every batch of `batchSize` records (records that cannot be built are left out, as the worker does). */
export async function buildBatches(
  features: FeatureBuilder,
  records: readonly DecodedRecord[],
  batchSize: number,
): Promise<{ feeds: Record<string, ort.Tensor>; rows: number }[]> {
  const batches: { feeds: Record<string, ort.Tensor>; rows: number }[] = [];
  for (let i = 0; i < records.length; i += batchSize) {
    const built = await features.build(records.slice(i, i + batchSize));
    if (built.included.length > 0) batches.push({ feeds: built.feeds, rows: built.included.length });
  }
  return batches;
}

/** session.run over the batches, after one warm-up run per distinct shape; records per second. */
export async function timeRuns(
  session: ModelSession,
  batches: readonly { feeds: Record<string, ort.Tensor>; rows: number }[],
): Promise<number> {
  if (batches[0]) await session.run(batches[0].feeds);
  let rows = 0;
  const started = performance.now();
  for (const batch of batches) {
    await session.run(batch.feeds);
    rows += batch.rows;
  }
  return (rows * 1000) / (performance.now() - started);
}

export const mib = (bytes: number): number => Math.round((bytes / 2 ** 20) * 10) / 10;
export const rate = (n: number): string => `${Math.round(n).toLocaleString('en-US')}/s`;

// ---------------------------------------------------------------------------------------------------------------
// The suite

const job = YAML.parse(readFileSync(path.join(example, 'job.yaml'), 'utf8')) as {
  model: JobSpecInput['model'];
  output: { passthrough: string[]; schema: Record<string, string> };
  input: { id: string };
};

export function tabularSpec(inputDir: string, outDir: string): JobSpecInput {
  return {
    name: 'bench_tabular',
    input: { uri: `${pathToFileURL(inputDir).href}/`, format: 'csv', id: job.input.id },
    model: job.model,
    output: { uri: `${pathToFileURL(outDir).href}/`, passthrough: job.output.passthrough },
    run: { batchSize: 'auto', shards: { targetRecords: 1e9, targetBytes: '1000GiB' } },
  };
}

async function duckdbCopyRate(csv: string, out: string, records: number): Promise<number> {
  const db = await DuckDBInstance.create(':memory:', { threads: String(CORES) });
  const connection = await db.connect();
  try {
    const q = (s: string): string => `'${s.replace(/'/g, "''")}'`;
    const started = performance.now();
    await connection.run(
      // ignore_errors: the input has a few deliberately broken records, which DuckDB would otherwise stop at.
      `COPY (SELECT * FROM read_csv(${q(csv)}, header = true, ignore_errors = true)) TO ${q(out)} ` +
        '(FORMAT parquet, COMPRESSION snappy)',
    );
    return (records * 1000) / (performance.now() - started);
  } finally {
    connection.closeSync();
    db.closeSync();
  }
}

/** Pairs of pinned runs (1 core, 2 cores) per benchmark run; the medians are reported. */
const PINNED_PAIRS = 3;

/** The run of median rate. */
function medianRate(runs: readonly WorkerRun[]): WorkerRun {
  const sorted = [...runs].sort((a, b) => a.recordsPerSecond - b.recordsPerSecond);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

export const suite: BenchSuite = {
  name: 'worker-tabular',
  description:
    'The shard worker on the breast-cancer MLP (CSV in, Parquet out) vs raw ONNX Runtime on pre-built tensors, ' +
    'one session.run per record, DuckDB CSV -> Parquet, and its peak RSS on a shard 10x smaller.',
  async run(ctx: BenchContext): Promise<BenchResult[]> {
    // Shards past the worker's warm-up (its young generation fills over the first ~100,000 records).
    const records = ctx.quick ? 200_000 : 1_000_000;
    const small = records / 10;
    const inputs = { large: path.join(ctx.workDir, 'in-large'), small: path.join(ctx.workDir, 'in-small') };
    ctx.log(`generating ${records.toLocaleString('en-US')} + ${small.toLocaleString('en-US')} CSV records`);
    await makeDemoInput({ dir: inputs.large, records, files: 1 });
    await makeDemoInput({ dir: inputs.small, records: small, files: 1 });
    const csv = path.join(inputs.large, 'part-00000.csv');
    const bytes = statSync(csv).size;

    // Memory: both shards span several chunks (a quarter of the small shard each), so the comparison shows what a
    // growing shard costs, not the growth of a first chunk.
    const chunkRecords = small / 4;
    const chunkEnv = { [CHUNK_RECORDS_ENV]: String(chunkRecords) };
    ctx.log(`worker on the small and the large shard, chunks of ${chunkRecords}`);
    const smallRun = await runWorkerProcess(
      await planOneShard(tabularSpec(inputs.small, path.join(ctx.workDir, 'out-small')), 'small'),
      chunkEnv,
    );
    const largeRun = await runWorkerProcess(
      await planOneShard(tabularSpec(inputs.large, path.join(ctx.workDir, 'out-chunked')), 'chunked'),
      chunkEnv,
    );
    ctx.log('worker on the large shard (default settings)');
    const planned = await planOneShard(
      tabularSpec(inputs.large, path.join(ctx.workDir, 'out-large')),
      'large',
    );
    const worker = await runWorkerProcess(planned);
    const batchSize = worker.marker.batchSize;
    ctx.log(
      `worker: ${rate(worker.recordsPerSecond)}, batch ${batchSize}, ${JSON.stringify(worker.marker.timings)}`,
    );

    // Scaling with cores: the same shard with the worker process pinned to one core, then to two (taskset), in
    // interleaved pairs; the median of each is reported. Single pairs gave 1.39x, 1.50x and 1.86x on three evenings
    // of the same code on the shared build machine.
    let pinned: { one: WorkerRun; two: WorkerRun; ones: WorkerRun[]; twos: WorkerRun[] } | undefined;
    if (CORES >= 2) {
      const ones: WorkerRun[] = [];
      const twos: WorkerRun[] = [];
      const pairs = ctx.quick ? 1 : PINNED_PAIRS;
      const pinnedRun = async (cpus: string, tag: string): Promise<WorkerRun> =>
        runWorkerProcess(
          await planOneShard(tabularSpec(inputs.large, path.join(ctx.workDir, `out-${tag}`)), tag),
          {},
          { cpus },
        );
      for (let pair = 1; pair <= pairs; pair++) {
        ctx.log(`pair ${pair} of ${pairs}: worker pinned to 1 core, then to 2 cores (taskset)`);
        ones.push(await pinnedRun('0', `one-core-${pair}`));
        twos.push(await pinnedRun('0,1', `two-cores-${pair}`));
        ctx.log(
          `  1 core: ${rate(ones.at(-1)!.recordsPerSecond)}, 2 cores: ${rate(twos.at(-1)!.recordsPerSecond)}`,
        );
      }
      pinned = { one: medianRate(ones), two: medianRate(twos), ones, twos };
    }

    ctx.log('raw ONNX Runtime loops');
    const session = await loadPlannedModel(planned);
    let raw: number;
    let perRecord: number;
    try {
      const features = await featureBuilderFor(planned, session);
      const all = await readShardRecords(planned, features.columns);
      raw = await timeRuns(session, await buildBatches(features, all, batchSize));
      await session.release();
      perRecord = await perRecordRate(planned, all.slice(0, ctx.quick ? 10_000 : 50_000));
    } finally {
      await session.release().catch(() => undefined);
    }
    ctx.log(`raw: ${rate(raw)}, per record: ${rate(perRecord)}`);
    const duck = await duckdbCopyRate(csv, path.join(ctx.workDir, 'duck.parquet'), records);
    ctx.log(`duckdb copy: ${rate(duck)}`);

    const t = worker.marker.timings;
    const shape =
      `${records.toLocaleString('en-US')} records (${mib(bytes)} MiB CSV), ${CORES} cores, ${THREADS} ONNX Runtime thread(s), batch ${batchSize} (auto), ` +
      `stage busy ms read ${Math.round(t.readMs)} / decode ${Math.round(t.decodeMs)} / infer ${Math.round(t.inferMs)} / ` +
      `write ${Math.round(t.writeMs)}, shard ${Math.round(t.totalMs)} ms, process ${Math.round(worker.processWallMs)} ms, ` +
      `process CPU ${Math.round(worker.cpuMs)} ms`;
    return [
      {
        name: 'tabular MLP: worker end to end vs raw ONNX Runtime (ceiling)',
        metric: 'records/s',
        value: worker.recordsPerSecond,
        baseline: { name: `session.run on pre-built tensors, batch ${batchSize}`, value: raw },
        higherIsBetter: true,
        notes: `${shape}. The ceiling leaves out reading, decoding and writing.`,
      },
      {
        name: 'tabular MLP: worker end to end vs per-record inference',
        metric: 'records/s',
        value: worker.recordsPerSecond,
        baseline: { name: 'one session.run per record (pre-built tensors)', value: perRecord },
        higherIsBetter: true,
        target: { ratio: 10 },
        notes: shape,
      },
      {
        name: 'tabular MLP: worker end to end vs DuckDB CSV -> Parquet copy',
        metric: 'records/s',
        value: worker.recordsPerSecond,
        baseline: { name: 'DuckDB COPY read_csv -> parquet (all columns)', value: duck },
        higherIsBetter: true,
        target: { ratio: 0.5 },
        notes: 'The I/O floor: parse the same CSV and write Parquet, no model.',
      },
      ...(pinned
        ? [
            {
              name: 'tabular MLP: worker on 2 cores vs 1 core (taskset)',
              metric: 'records/s',
              value: pinned.two.recordsPerSecond,
              baseline: { name: 'the same worker pinned to 1 core', value: pinned.one.recordsPerSecond },
              higherIsBetter: true,
              target: { ratio: 1.7 },
              notes:
                `median of ${pinned.ones.length} interleaved pairs (1 core ` +
                `${pinned.ones.map((r) => Math.round(r.recordsPerSecond)).join(' / ')}, 2 cores ` +
                `${pinned.twos.map((r) => Math.round(r.recordsPerSecond)).join(' / ')} records/s); ` +
                `${records.toLocaleString('en-US')} records, ${THREADS} ONNX Runtime thread(s) in both; CPU time ` +
                `${Math.round(pinned.one.cpuMs)} ms on 1 core, ${Math.round(pinned.two.cpuMs)} ms on 2 cores`,
            } satisfies BenchResult,
          ]
        : []),
      {
        name: 'tabular MLP: worker peak RSS, shard 10x larger',
        metric: 'MiB peak RSS',
        value: mib(largeRun.peakRssBytes),
        baseline: {
          name: `shard of ${small.toLocaleString('en-US')} records`,
          value: mib(smallRun.peakRssBytes),
        },
        higherIsBetter: false,
        target: { ratio: 0.8 },
        notes:
          `VmHWM of the worker process (Node, ONNX Runtime, DuckDB); chunks of ${chunkRecords.toLocaleString('en-US')} ` +
          `records: ${largeRun.marker.outputs.length} vs ${smallRun.marker.outputs.length}. With the default chunks ` +
          `(250,000 records) the ${records.toLocaleString('en-US')}-record shard peaked at ${mib(worker.peakRssBytes)} MiB.`,
      },
    ];
  },
};
