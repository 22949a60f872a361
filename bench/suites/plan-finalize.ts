/**
 * Plan and Finalize at data-lake scale:
 * - plan 1,000,000 input objects named by a list manifest (JSONL with size and ETag per line, as an S3 Inventory
 *   export gives them: no HEAD per object), in a child process so its peak RSS is the plan's own;
 * - plan 10,000 objects found by prefix listing on the loopback S3 server (s3rver), with the parallel listing
 *   (one level with Delimiter "/", then the folders concurrently) against the sequential listing;
 * - reconcile that 1M-object plan in a child process (peak RSS against a Lambda's 512 MB; bytes of shards.jsonl
 *   read: none, the shard index is enough), against the same run without its index (shards.jsonl streamed);
 * - finalize 10,000 shard markers (each with a real Parquet file), the local DuckDB catalogue included.
 *
 * Targets (the issue's): the 1M plan in < 20 s and < 1 GiB peak RSS; the 10,000-shard finalize in < 30 s.
 * `--quick` runs a tenth of each.
 *
 * This file is also the child process of the first measurement: `node --import tsx plan-finalize.ts --plan-child
 * <dir> <count>` plans the manifest written in <dir> and prints one JSON line with its timings and peak RSS.
 */
import { spawn } from 'node:child_process';
import { copyFile, mkdir, rename } from 'node:fs/promises';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  listManifestPlanRequest,
  UNUSED_REGISTRY,
  writeListManifestInput,
} from '../../test/support/list-manifest.js';
import type { BenchContext, BenchResult, BenchSuite } from '../suite.js';

const here = fileURLToPath(import.meta.url);

/** Latency added to each LIST request in the second prefix measurement (S3's is typically 20-100 ms a page). */
const LIST_LATENCY_MS = 50;

interface PlanChildResult {
  readonly seconds: number;
  readonly cpuSeconds: number;
  readonly peakRssMiB: number;
  readonly shards: number;
  readonly objects: number;
}

/** Writes a JSONL list manifest of `count` objects (deterministic sizes 1 KB..8 MB, ETags), in reverse order. */
/** The child: plans the manifest in `dir` and prints its measurements. */
async function planChild(dir: string, count: number): Promise<void> {
  const { planRun } = await import('../../src/planning/plan-run.js');
  const { LocalObjectStore } = await import('../../src/storage/local.js');
  const cpu = process.cpuUsage();
  const started = performance.now();
  const state = await planRun(listManifestPlanRequest(dir, 'bench'), {
    store: new LocalObjectStore(),
    registry: UNUSED_REGISTRY,
  });
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const result: PlanChildResult = {
    seconds,
    cpuSeconds: (used.user + used.system) / 1e6,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    shards: state.shardCount,
    objects: count,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

/** Runs this file as a child process with `args` and parses the one JSON line it prints last. */
async function runChild<T>(args: readonly string[]): Promise<T> {
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  const child = spawn(process.execPath, ['--import', tsx, here, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`${args[0]} child exited with ${code}: ${stderr.slice(-2000)}`);
  const line = stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as T;
}

async function runPlanChild(dir: string, count: number): Promise<PlanChildResult> {
  return runChild<PlanChildResult>(['--plan-child', dir, String(count)]);
}

interface ReconcileChildResult {
  readonly seconds: number;
  readonly peakRssMiB: number;
  /** Bytes of shards.jsonl that Reconcile read. */
  readonly listBytesRead: number;
  /** Bytes of shards.jsonl a worker read for the last shard. */
  readonly workerBytesRead: number;
  readonly listBytes: number;
  readonly shards: number;
}

/**
 * The child: Reconcile round 0 of the run planned in `dir` (no markers: every shard missing), in a process of its
 * own so its peak RSS is Reconcile's (a Lambda has 512 MB), then one worker's read of the last shard's line.
 * Bytes read from shards.jsonl are counted on the way.
 */
async function reconcileChild(dir: string): Promise<void> {
  const { reconcileRun } = await import('../../src/results/reconcile.js');
  const { readShardLine } = await import('../../src/results/shard-list.js');
  const { readPlan } = await import('../../src/results/run-files.js');
  const { LocalObjectStore } = await import('../../src/storage/local.js');
  const { Readable } = await import('node:stream');
  const local = new LocalObjectStore();
  const runUri = `${pathToFileURL(path.join(dir, 'out')).href}/_runs/bench/`;
  const { plan, layout } = await readPlan(local, runUri, 'bench');
  let listBytesRead = 0;
  const store: typeof local = Object.assign(Object.create(local) as typeof local, {
    get: async (uri: string, range?: { start: number; end: number }) => {
      const bytes = await local.get(uri, range);
      if (uri === layout.shardsUri) listBytesRead += bytes.byteLength;
      return bytes;
    },
    getStream: async (uri: string, range?: { start: number; end: number }) => {
      const source = await local.getStream(uri, range);
      if (uri !== layout.shardsUri) return source;
      return Readable.from(
        (async function* () {
          for await (const chunk of source as AsyncIterable<Buffer>) {
            listBytesRead += chunk.byteLength;
            yield chunk;
          }
        })(),
      );
    },
  });
  const started = performance.now();
  await reconcileRun(
    {
      runId: 'bench',
      runUri,
      shardCount: plan.shardCount,
      round: 0,
      maxRounds: plan.maxRounds,
      pending: plan.shardCount,
      compute: 'gpu',
      next: 'infer',
    },
    { store },
  );
  const seconds = (performance.now() - started) / 1000;
  const reconcileBytes = listBytesRead;
  listBytesRead = 0;
  await readShardLine(store, layout, plan.shardCount - 1);
  const result: ReconcileChildResult = {
    seconds,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    listBytesRead: reconcileBytes,
    workerBytesRead: listBytesRead,
    listBytes: (await local.head(layout.shardsUri)).size,
    shards: plan.shardCount,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

/**
 * Reconcile over the 1M-object plan: with shards.index.json (what Plan writes) against the same run without it
 * (shards.jsonl streamed, as for runs planned before the index), each in a child process.
 */
async function reconcileLargePlan(context: BenchContext, dir: string, count: number): Promise<BenchResult[]> {
  const indexFile = path.join(dir, 'out', '_runs', 'bench', 'shards.index.json');
  const indexed = await runChild<ReconcileChildResult>(['--reconcile-child', dir]);
  await rename(indexFile, `${indexFile}.moved`);
  let streamed: ReconcileChildResult;
  try {
    streamed = await runChild<ReconcileChildResult>(['--reconcile-child', dir]);
  } finally {
    await rename(`${indexFile}.moved`, indexFile);
  }
  const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;
  context.log(
    `reconcile: ${indexed.peakRssMiB.toFixed(0)} MiB peak RSS, ${mib(indexed.listBytesRead)} of shards.jsonl read ` +
      `(streamed without the index: ${streamed.peakRssMiB.toFixed(0)} MiB, ${mib(streamed.listBytesRead)}); ` +
      `a worker reads ${indexed.workerBytesRead} bytes of it`,
  );
  const size = `${count.toLocaleString('en-US')}-object plan, ${indexed.shards.toLocaleString('en-US')} shards, shards.jsonl ${mib(indexed.listBytes)}`;
  return [
    {
      name: `reconcile a ${context.quick ? '100k' : '1M'}-object plan`,
      metric: 'MiB peak RSS',
      value: indexed.peakRssMiB,
      baseline: { name: 'shards.jsonl streamed (no index)', value: streamed.peakRssMiB },
      higherIsBetter: false,
      target: { max: 512 },
      notes:
        `${size}; reads shards.index.json only (${mib(indexed.listBytesRead)} of shards.jsonl; streamed: ` +
        `${mib(streamed.listBytesRead)}), ${indexed.seconds.toFixed(2)} s; a worker's read of its shard: one ranged ` +
        `GET of ${indexed.workerBytesRead} bytes; child process, Node + tsx included (a Lambda has 512 MB)`,
    },
  ];
}

async function planListManifest(context: BenchContext): Promise<BenchResult[]> {
  const count = context.quick ? 100_000 : 1_000_000;
  const dir = path.join(context.workDir, 'plan-list');
  await mkdir(dir, { recursive: true });
  await writeListManifestInput(dir, count);
  context.log(`planning ${count.toLocaleString('en-US')} objects from a list manifest (child process)`);
  const result = await runPlanChild(dir, count);
  const reconciled = await reconcileLargePlan(context, dir, count);
  context.log(
    `${result.seconds.toFixed(2)} s wall, ${result.cpuSeconds.toFixed(2)} s CPU, ${result.peakRssMiB.toFixed(0)} MiB peak RSS, ${result.shards} shards`,
  );
  const size = `${count.toLocaleString('en-US')} objects (JSONL list manifest with size+ETag), ${result.shards.toLocaleString('en-US')} shards`;
  return [
    {
      name: `plan ${context.quick ? '100k' : '1M'} objects from a list manifest`,
      metric: 's',
      value: result.seconds,
      higherIsBetter: false,
      target: { max: 20 },
      notes: `${size}; ${result.cpuSeconds.toFixed(1)} s CPU; plan.json, input.jsonl and shards.jsonl written`,
    },
    {
      name: `plan ${context.quick ? '100k' : '1M'} objects from a list manifest`,
      metric: 'MiB peak RSS',
      value: result.peakRssMiB,
      higherIsBetter: false,
      target: { max: 1024 },
      notes: `child process (Node + tsx included); ${size}`,
    },
    ...reconciled,
  ];
}

async function planPrefixOnS3(context: BenchContext): Promise<BenchResult[]> {
  const { startS3Server, useS3TestEnv } = await import('../../test/support/s3-server.js');
  const { planRun } = await import('../../src/planning/plan-run.js');
  const { S3ObjectStore, createS3Client } = await import('../../src/storage/s3.js');
  const count = context.quick ? 2_000 : 10_000;
  // A day-partitioned prefix: 20 folders of 500 objects (quick: 100).
  const folders = 20;
  const server = await startS3Server();
  const restore = useS3TestEnv(server.endpoint);
  const client = createS3Client({ endpoint: server.endpoint });
  try {
    await server.createBucket('lake');
    const line = '{"a":1,"b":2}\n';
    const objects: [string, string][] = Array.from({ length: count }, (_, i) => [
      `in/dt=${String(i % folders).padStart(3, '0')}/part-${String(i).padStart(6, '0')}.jsonl`,
      line.repeat(1 + (i % 5)),
    ]);
    objects.push(['model/model.onnx', 'model']);
    context.log(`seeding ${count.toLocaleString('en-US')} objects into s3rver`);
    await server.putObjects('lake', objects, 16);

    // S3 answers a LIST page in tens of milliseconds; s3rver on loopback in about one. The second measurement adds
    // LIST_LATENCY_MS to every ListObjectsV2 request (an SDK middleware sleeping before the request goes out), which
    // is what parallel listing exists to hide.
    let listLatencyMs = 0;
    let listRequests = 0;
    client.middlewareStack.add(
      (next, ctx) => async (args) => {
        if (ctx.commandName === 'ListObjectsV2Command') {
          listRequests++;
          if (listLatencyMs > 0) await new Promise((resolve) => setTimeout(resolve, listLatencyMs));
        }
        return next(args);
      },
      { step: 'finalizeRequest', name: 'benchListLatency' },
    );
    const s3 = new S3ObjectStore(client);
    const sequential = {
      head: s3.head.bind(s3),
      tryHead: s3.tryHead.bind(s3),
      get: s3.get.bind(s3),
      getStream: s3.getStream.bind(s3),
      put: s3.put.bind(s3),
      putStream: s3.putStream.bind(s3),
      list: s3.list.bind(s3),
      delete: s3.delete.bind(s3),
    };
    const plan = async (
      store: typeof sequential,
      runId: string,
    ): Promise<{ seconds: number; shards: number; lists: number }> => {
      listRequests = 0;
      const started = performance.now();
      const state = await planRun(
        {
          runId,
          spec: {
            name: 'bench_prefix',
            input: { uri: 's3://lake/in/', format: 'jsonl', manifest: 'prefix' },
            model: {
              uri: 's3://lake/model/model.onnx',
              inputs: [{ tensor: 'x', from: { columns: ['a'] } }],
              outputs: [{ tensor: 'y' }],
            },
            output: { uri: 's3://lake/out/' },
            run: { shards: { targetBytes: '64KiB' } },
          },
        },
        { store, registry: { resolve: () => Promise.reject(new Error('not used')) } },
      );
      return { seconds: (performance.now() - started) / 1000, shards: state.shardCount, lists: listRequests };
    };
    // Warm-up (connections, s3rver's caches), then the best of two runs of each.
    await plan(s3, 'warmup');
    const best = async (store: typeof sequential, id: string): Promise<Awaited<ReturnType<typeof plan>>> => {
      const a = await plan(store, `${id}-a`);
      const b = await plan(store, `${id}-b`);
      return a.seconds <= b.seconds ? a : b;
    };
    const results: BenchResult[] = [];
    const parallel = await best(s3, 'parallel');
    const baseline = await best(sequential, 'sequential');
    context.log(
      `plan: parallel listing ${parallel.seconds.toFixed(2)} s (${parallel.lists} LIST requests), ` +
        `sequential ${baseline.seconds.toFixed(2)} s (${baseline.lists})`,
    );
    results.push({
      name: `plan ${count.toLocaleString('en-US')} objects by prefix listing (s3rver)`,
      metric: 's',
      value: parallel.seconds,
      baseline: { name: 'plan with sequential ListObjectsV2', value: baseline.seconds },
      higherIsBetter: false,
      notes:
        `${folders} folders of ${count / folders}, ${parallel.shards} shards; ${parallel.lists} LIST requests ` +
        `(sequential: ${baseline.lists}); listing, snapshot, 8 sampled GETs and the plan files written to S3 on ` +
        'loopback s3rver (one Node process sharing the cores)',
    });
    // The listing alone, with S3-like latency on every LIST request: what the parallel listing is for.
    const { listInput } = await import('../../src/manifest/list-input.js');
    const input = { uri: 's3://lake/in/', format: 'jsonl', manifest: 'prefix' } as const;
    const time = async (store: typeof sequential): Promise<number> => {
      let fastest = Infinity;
      for (let i = 0; i < 3; i++) {
        const started = performance.now();
        const objects = await listInput(store, input);
        if (objects.length !== count) throw new Error(`listed ${objects.length} of ${count} objects`);
        fastest = Math.min(fastest, (performance.now() - started) / 1000);
      }
      return fastest;
    };
    listLatencyMs = LIST_LATENCY_MS;
    const listParallel = await time(s3);
    const listSequential = await time(sequential);
    listLatencyMs = 0;
    context.log(
      `listing with +${LIST_LATENCY_MS} ms per LIST: parallel ${listParallel.toFixed(2)} s, sequential ${listSequential.toFixed(2)} s`,
    );
    results.push({
      name: `list ${count.toLocaleString('en-US')} objects by prefix, +${LIST_LATENCY_MS} ms per LIST request`,
      metric: 's',
      value: listParallel,
      baseline: { name: 'sequential ListObjectsV2', value: listSequential },
      higherIsBetter: false,
      notes:
        `listInput alone (best of 3) on s3rver with ${LIST_LATENCY_MS} ms added to every ListObjectsV2 request, ` +
        "standing for S3's per-page latency; same objects and order in both",
    });
    return results;
  } finally {
    client.destroy();
    await server.stop();
    restore();
  }
}

async function finalizeMarkers(context: BenchContext): Promise<BenchResult[]> {
  const { makeMarker, makeRun, writeMarker } = await import('../../test/results/run-fixture.js');
  const { writeScores } = await import('../../test/results/parquet-fixture.js');
  const { forEachLimit } = await import('../../src/results/run-files.js');
  const { finalizeRun } = await import('../../src/results/finalize.js');
  const { reconcileRun } = await import('../../src/results/reconcile.js');
  const { LocalCatalog } = await import('../../src/catalog/local.js');
  const shards = context.quick ? 1_000 : 10_000;
  const fx = await makeRun({ shardCount: shards, dir: path.join(context.workDir, 'finalize') });
  const template = path.join(fx.dir, 'template.parquet');
  await writeScores(pathToFileURL(template).href, [
    { label: 'a', score: 0.5 },
    { label: 'b', score: 0.25 },
    { label: 'c', score: 1 },
  ]);
  // Workers write to the run's staging folder; Finalize moves the files into the partition (docs/adr/0014 §9).
  await mkdir(fileURLToPath(fx.layout.stagingUri), { recursive: true });
  context.log(`writing ${shards.toLocaleString('en-US')} Parquet files and markers`);
  await forEachLimit(
    Array.from({ length: shards }, (_, i) => i),
    32,
    async (id) => {
      await copyFile(template, fileURLToPath(fx.layout.partUri(id, 0)));
      await writeMarker(fx, makeMarker(fx.layout, id));
    },
  );
  let started = performance.now();
  await reconcileRun(fx.state, { store: fx.store });
  const reconcileSeconds = (performance.now() - started) / 1000;
  started = performance.now();
  const result = await finalizeRun(fx.state, {
    store: fx.store,
    catalog: new LocalCatalog({ path: path.join(fx.dir, 'catalog.duckdb') }),
  });
  const seconds = (performance.now() - started) / 1000;
  if (result.status !== 'SUCCEEDED') throw new Error(`finalize failed: ${result.message}`);
  context.log(`reconcile ${reconcileSeconds.toFixed(2)} s, finalize ${seconds.toFixed(2)} s`);
  return [
    {
      name: `finalize ${shards.toLocaleString('en-US')} shard markers`,
      metric: 's',
      value: seconds,
      higherIsBetter: false,
      target: { max: 30 },
      notes:
        `local store; markers listed once and read 32 at a time, every output file checked against one listing, ` +
        `manifest written, ${shards.toLocaleString('en-US')} files published to the DuckDB catalogue; ` +
        `Reconcile of the same run: ${reconcileSeconds.toFixed(1)} s`,
    },
  ];
}

export const suite: BenchSuite = {
  name: 'plan-finalize',
  description:
    'Plan from a 1M-object list manifest (time, peak RSS) and reconcile it (peak RSS), plan 10,000 objects by prefix listing on the loopback S3 ' +
    'server (parallel vs sequential listing), finalize 10,000 shard markers.',
  async run(context) {
    return [
      ...(await planListManifest(context)),
      ...(await planPrefixOnS3(context)),
      ...(await finalizeMarkers(context)),
    ];
  },
};

if (process.argv[1] === here && process.argv[2] === '--plan-child') {
  await planChild(process.argv[3]!, Number(process.argv[4]));
}
if (process.argv[1] === here && process.argv[2] === '--reconcile-child') {
  await reconcileChild(process.argv[3]!);
}
