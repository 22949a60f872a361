/**
 * Real runs for worker tests: input files on disk, a plan made by the real planner, the real LocalObjectStore, and
 * worker processes started exactly as the local pool starts them. Outputs are read back with DuckDB.
 */
import '../../src/runtime/polyfills.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import YAML from 'yaml';
import { makeDemoInput } from '../../examples/breast-cancer/demo.js';
import { workerEntry } from '../../src/local/worker-pool.js';
import { planRun } from '../../src/planning/plan-run.js';
import { LocalModelRegistry } from '../../src/registry/local.js';
import { runLayout, type RunLayout } from '../../src/runs/layout.js';
import { WORKER_ENV } from '../../src/runs/tasks.js';
import { planSchema, shardMarkerSchema, type Plan, type ShardMarker } from '../../src/runs/types.js';
import type { JobSpecInput } from '../../src/spec/schema.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import { getJson, type ObjectStore } from '../../src/storage/object-store.js';
import { checkpointSchema, type Checkpoint } from '../../src/worker/checkpoint.js';
import { runWorkerTask, type WorkerDeps } from '../../src/worker/run-shard.js';
import { sql } from '../support/duckdb-sql.js';

export { sql };

export const repo = path.resolve(fileURLToPath(import.meta.url), '../../..');
export const example = path.join(repo, 'examples/breast-cancer');
export const registryUri = `${pathToFileURL(path.join(example, 'registry')).href}/`;
export const fixtureModel = (name: string): string => path.join(repo, 'test/fixtures/models', name);

export function tempDir(prefix = 'worker-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const SHIPPED_JOB = YAML.parse(readFileSync(path.join(example, 'job.yaml'), 'utf8')) as {
  model: { inputs: { from: { columns: string[] } }[] };
};

/** The feature columns of the shipped job (read from job.yaml, so the tests follow the example). */
export function breastCancerColumns(): string[] {
  return SHIPPED_JOB.model.inputs[0]!.from.columns;
}

/** A job over the demo-style breast-cancer CSV input, as demo.yaml declares it. */
export function breastCancerSpec(
  inputDir: string,
  outDir: string,
  run: Record<string, unknown> = {},
): JobSpecInput {
  return {
    name: 'worker_test',
    input: { uri: `${pathToFileURL(inputDir).href}/`, format: 'csv', id: 'patient_id' },
    model: {
      registry: { group: 'breast-cancer-mlp', version: 'latest-approved' },
      inputs: [{ tensor: 'features', dtype: 'float32', from: { columns: breastCancerColumns() } }],
      outputs: [
        {
          tensor: 'probabilities',
          postprocess: { argmax: { labels: 'labels.txt', as: 'label' }, keep: 'score' },
        },
      ],
    },
    output: {
      uri: `${pathToFileURL(outDir).href}/`,
      passthrough: ['diagnosis'],
      schema: { patient_id: 'string', diagnosis: 'string', label: 'string', score: 'float' },
    },
    run: { shards: { targetRecords: 100_000_000, targetBytes: '100GiB' }, ...run },
  };
}

/** Breast-cancer CSV input (the demo generator: deterministic, a few broken records). */
export async function breastCancerInput(
  dir: string,
  records: number,
  files = 1,
  badRecordEvery = 5_000,
): Promise<void> {
  await makeDemoInput({ dir, records, files, badRecordEvery });
}

export interface PlannedRun {
  readonly store: ObjectStore;
  readonly plan: Plan;
  readonly layout: RunLayout;
  readonly runUri: string;
}

/** Plans a run with the real planner (local store unless given, the example registry). */
export async function planWorkerRun(
  spec: JobSpecInput,
  runId = 'run-1',
  store: ObjectStore = new LocalObjectStore(),
): Promise<PlannedRun> {
  const state = await planRun(
    { runId, spec: spec },
    { store, registry: new LocalModelRegistry(store, registryUri) },
  );
  const plan = planSchema.parse(await getJson(store, `${state.runUri}plan.json`));
  return {
    store,
    plan,
    layout: runLayout(plan.spec.output.uri, plan.runId, plan.runDate),
    runUri: state.runUri,
  };
}

export async function readMarker(run: PlannedRun, shardId = 0): Promise<ShardMarker> {
  return shardMarkerSchema.parse(await getJson(run.store, run.layout.markerUri(shardId)));
}

export async function readCheckpointFile(run: PlannedRun, shardId = 0): Promise<Checkpoint | undefined> {
  const uri = run.layout.checkpointUri(shardId);
  if (!(await run.store.tryHead(uri))) return undefined;
  try {
    return checkpointSchema.parse(await getJson(run.store, uri));
  } catch {
    // Read while being replaced: the next poll sees the new one (writes are atomic renames).
    return undefined;
  }
}

export interface CapturedLog {
  readonly lines: { level: string; message: string; fields?: Record<string, unknown> }[];
  readonly log: WorkerDeps['log'];
}

/** A worker log that keeps its lines, for tests to read. */
export function captureLog(): CapturedLog {
  const lines: CapturedLog['lines'] = [];
  return {
    lines,
    log: {
      info: (message, fields) => lines.push({ level: 'info', message, ...(fields ? { fields } : {}) }),
      warn: (message, fields) => lines.push({ level: 'warn', message, ...(fields ? { fields } : {}) }),
    },
  };
}

/** Runs shard 0 of a planned run in this process (CPU, one intra-op thread unless `deps` says otherwise). */
export async function runShard(
  planned: { readonly runUri: string; readonly store: ObjectStore },
  deps: Partial<WorkerDeps> = {},
): Promise<ShardMarker> {
  return runWorkerTask(
    { runUri: planned.runUri, round: 0, arrayIndex: 0, attempt: 1 },
    { store: planned.store, log: captureLog().log, providers: ['cpu'], threads: 1, ...deps },
  );
}

export interface WorkerProcess {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

/**
 * Starts the worker entry as the local pool does (tsx loader, Batch's environment). `wrapper` is a command line the
 * worker runs under (e.g. `unshare --pid --fork`, to be PID 1 as in a container); `ipc` gives it an IPC channel, as
 * the local pool's fork does.
 */
export function startWorker(
  runUri: string,
  env: Record<string, string> = {},
  attempt = 1,
  wrapper: readonly string[] = [],
  options: { ipc?: boolean } = {},
): WorkerProcess {
  const entry = workerEntry();
  const command = [...wrapper, process.execPath, ...entry.execArgv, entry.file];
  const child = spawn(command[0]!, command.slice(1), {
    env: {
      ...process.env,
      [WORKER_ENV.runUri]: runUri,
      [WORKER_ENV.attempt]: String(attempt),
      [WORKER_ENV.executionProviders]: 'cpu',
      [WORKER_ENV.threads]: '1',
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: options.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
  const exited = options.ipc
    ? exitedWithOutput(child)
    : new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
        child.on('close', (code, signal) => resolve({ code, signal, at: performance.now() })),
      );
  return { child, output: () => out, exited };
}

/**
 * The process's exit once its output is read to the end: 'close' without the IPC channel, whose closing 'close' also
 * waits for and which a test that closed the channel itself (`child.disconnect()`) does not always see counted.
 */
async function exitedWithOutput(
  child: ChildProcess,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }> {
  const ended = (stream: NodeJS.ReadableStream | null): Promise<void> =>
    stream ? new Promise((resolve) => stream.once('close', () => resolve())) : Promise.resolve();
  const [exit] = await Promise.all([
    new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    ),
    ended(child.stdout),
    ended(child.stderr),
  ]);
  return { ...exit, at: performance.now() };
}

/** Polls until `check` returns a value (or the process exits first, or time runs out). */
export async function waitFor<T>(
  check: () => Promise<T | undefined>,
  options: { timeoutMs: number; intervalMs?: number; until?: Promise<unknown> },
): Promise<T | undefined> {
  let over = false;
  void options.until?.then(() => (over = true));
  const end = performance.now() + options.timeoutMs;
  while (performance.now() < end) {
    const value = await check();
    if (value !== undefined) return value;
    if (over) return undefined;
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 10));
  }
  return undefined;
}

/** `read_parquet` over a marker's output files. */
export function parquetOf(marker: ShardMarker): string {
  const files = marker.outputs.map((o) => `'${fileURLToPath(o.uri).replace(/'/g, "''")}'`);
  return `read_parquet([${files.join(', ')}])`;
}

/**
 * Checks that two shards wrote exactly the same prediction rows (every column, byte for byte as DuckDB reads
 * them, including lineage) and the same error rows. Returns the number of prediction rows.
 */
export async function expectSameOutput(
  a: ShardMarker,
  b: ShardMarker,
): Promise<{ rows: number; differences: number }> {
  const [diff] = await sql<{ rows: bigint; left_only: bigint; right_only: bigint; distinct_keys: bigint }>(`
    WITH a AS (SELECT * FROM ${parquetOf(a)}), b AS (SELECT * FROM ${parquetOf(b)})
    SELECT (SELECT count(*) FROM a) AS rows,
           (SELECT count(*) FROM (SELECT * FROM a EXCEPT ALL SELECT * FROM b)) AS left_only,
           (SELECT count(*) FROM (SELECT * FROM b EXCEPT ALL SELECT * FROM a)) AS right_only,
           (SELECT count(DISTINCT (_source, _offset)) FROM a) AS distinct_keys`);
  return {
    rows: Number(diff!.rows),
    differences:
      Number(diff!.left_only) + Number(diff!.right_only) + (Number(diff!.rows) - Number(diff!.distinct_keys)),
  };
}

export function errorLines(marker: ShardMarker): string[] {
  if (!marker.errorsFile) return [];
  return readFileSync(fileURLToPath(marker.errorsFile.uri), 'utf8').split('\n').filter(Boolean);
}

/** Files under a directory, recursively, relative to it. */
export function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

export function writeText(file: string, text: string): void {
  writeFileSync(file, text);
}

/** What two runs of the same shard must agree on, whichever data path read it: counts, summaries, columns. */
export function comparableMarker(marker: ShardMarker): Record<string, unknown> {
  return {
    records: marker.records,
    predictions: marker.predictions,
    errors: marker.errors,
    errorsByReason: marker.errorsByReason,
    summaries: marker.summaries,
    inputSummaries: marker.inputSummaries,
    columns: marker.columns,
  };
}

/**
 * `sum` and `sumSquares` of every summary in `value` to 12 significant digits: a resumed shard seals a shorter chunk,
 * so its sums are added in another grouping and agree up to the last bits of a double. Everything else is exact.
 */
export function roundedSums(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value), (key, v: unknown) =>
    (key === 'sum' || key === 'sumSquares') && typeof v === 'number' ? Number(v.toPrecision(12)) : v,
  ) as unknown;
}
