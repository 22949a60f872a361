/**
 * `batchSize: auto`: a short probe on the shard's first records chooses the batch size. Sizes double from
 * MIN_BATCH; each is run a few times (after one warm-up run, which also makes ONNX Runtime allocate for the shape)
 * and the process's memory is read after it. The probe stops at the first size that
 * - would not fit the memory budget (resident memory after its runs plus the batches the pipeline holds at once),
 * - fails (on a GPU, most often out of memory),
 * - takes longer than MAX_RUN_MS per run (a larger batch would delay an interruption's drain), or
 * - is the second in a row to fall below CHOICE_TOLERANCE of the best throughput so far (and below
 *   FAST_ENOUGH_RECORDS_PER_SECOND),
 * or when the sample runs out or the probe's time is up. A size that is merely as fast as the smaller ones does not
 * stop the probe: the choice is the largest size (within the budget) whose throughput is within CHOICE_TOLERANCE of
 * the best measured or at least FAST_ENOUGH_RECORDS_PER_SECOND, because such sizes are equally fast for the shard
 * (the difference is noise, or inference is not what limits it) and a larger batch costs the pipeline less per record
 * (one thread round trip, one append and one post-processing call per batch), which the probe does not time. Measured on the text encoder, whose throughput is flat from 1 to 32 on one
 * CPU thread: stopping at the first flat sizes chose 2, 8 or 16 from run to run, and the worker's rate over its
 * inference thread's varied with it (0.80 at 2); at 32 it was 0.85-0.92.
 *
 * Only inference is timed (the feeds are built once from the sample): reading and decoding cost the same per record
 * whatever the batch size. A size's throughput is taken from the fastest run of each of its batches, not their
 * average: on a busy machine a run is only ever slowed down, and the average ranked sub-millisecond sizes by that
 * noise (a demo shard stopped at 64 and chose 16, 50x slower than its neighbours' 8,192, because a burst of load
 * made 32 and 64 measure below 16).
 */
import type * as ort from 'onnxruntime-node';
import type { BatchSizeProbe } from '../runs/types.js';
import type { InferenceThread } from './inference-thread.js';

export const MIN_BATCH = 1;
export const MAX_BATCH = 8192;
/** Batch size when the probe cannot measure anything (every run of the sample failed). */
export const FALLBACK_BATCH = 256;
const CHOICE_TOLERANCE = 0.95;
/**
 * Inference at least this fast (records per second) is never what limits a shard: the worker's data path is far
 * slower (reading, decoding and writing the rows; DuckDB's native CSV -> Parquet copy of the same rows, no model,
 * does about 300,000 rows/s on 2 cores). Sizes this fast count as equally fast, so the largest of them is chosen (it
 * costs the pipeline least per record), and one of them never counts as "falling": a run of such a size takes well
 * under a millisecond, and its measured rate is mostly the noise of the machine. Seen on a loaded machine: a 125,000
 * record shard of the breast-cancer MLP stopped at 256 because 512 and 1,024 measured 4.0 and 3.0 M/s against 4.7 M/s
 * at 256, where the same model in the next shard chose 2,048.
 */
export const FAST_ENOUGH_RECORDS_PER_SECOND = 2_000_000;
const MAX_RUN_MS = 2_000;
const PROBE_TIME_MS = 4_000;
/** Share of a shard's estimated inference time the probe may spend. */
const PROBE_SHARE = 0.03;
/** The probe always gets this long (two or three sizes of a fast model), however small the shard. */
const PROBE_MIN_MS = 100;
/** Time spent per size after its warm-up run. */
const MEASURE_MS = 60;
const MAX_REPEATS = 8;

/** The probe's sample: the first records of the shard, and a way to build a batch of them. */
export interface ProbeSample {
  /** Records in the sample that can become tensors. */
  readonly rows: number;
  /**
   * Feeds for sample records [start, start + count), in the order the worker forms batches (sorted by length when
   * it buckets by length), built as the worker builds a batch (padding to the batch's own longest record).
   */
  build(
    start: number,
    count: number,
  ): Promise<{ readonly feeds: Record<string, ort.Tensor>; readonly rows: number }>;
}

export interface ProbeOptions {
  readonly memoryBudgetBytes: number;
  /** Batches held at once by the pipeline (decoded, in inference, post-processing). */
  readonly inFlight: number;
  readonly maxBatch?: number;
  /** Abandon the probe (keeping what was measured) when this is aborted. */
  readonly signal?: AbortSignal;
  /** Resident memory of the process; injectable for tests. @default process.memoryUsage.rss */
  readonly rss?: () => number;
  /**
   * Records in the shard (the planner's estimate). The probe's runs are inference the shard does not keep, so
   * their total is held to PROBE_SHARE of the shard's estimated inference time (and PROBE_TIME_MS at most).
   */
  readonly shardRecords?: number;
  /**
   * The clock the probe's time budget is measured by, in milliseconds; injectable so a test decides when the time is
   * up instead of the machine's load. @default performance.now
   */
  readonly now?: () => number;
}

type Trial = { -readonly [K in keyof BatchSizeProbe['trials'][number]]: BatchSizeProbe['trials'][number][K] };

export async function probeBatchSize(
  thread: Pick<InferenceThread, 'run'>,
  sample: ProbeSample,
  options: ProbeOptions,
): Promise<BatchSizeProbe> {
  const now = options.now ?? (() => performance.now());
  const started = now();
  const rss = options.rss ?? (() => process.memoryUsage.rss());
  const maxBatch = Math.min(options.maxBatch ?? MAX_BATCH, sample.rows);
  const trials: Trial[] = [];
  let declining = 0;
  let best = 0;
  let timeBudget = PROBE_TIME_MS;

  const done = (): BatchSizeProbe => {
    const fitting = trials.filter(
      (t) => t.recordsPerSecond > 0 && t.estimatedBytes <= options.memoryBudgetBytes,
    );
    const top = Math.max(0, ...fitting.map((t) => t.recordsPerSecond));
    const measured = trials.filter((t) => t.recordsPerSecond > 0);
    const asFast = Math.min(CHOICE_TOLERANCE * top, FAST_ENOUGH_RECORDS_PER_SECOND);
    const chosen =
      fitting.filter((t) => t.recordsPerSecond >= asFast).at(-1)?.batchSize ??
      // Nothing fits the budget: the smallest size measured is the least memory we can ask for.
      measured[0]?.batchSize ??
      // Nothing could be measured (every run failed, or no sample): a moderate default.
      (sample.rows > 0 && sample.rows < MIN_BATCH ? sample.rows : FALLBACK_BATCH);
    return {
      chosen,
      memoryBudgetBytes: options.memoryBudgetBytes,
      sampleRecords: sample.rows,
      probeMs: Math.round(now() - started),
      trials,
    };
  };

  for (let size = Math.min(MIN_BATCH, maxBatch); size >= 1 && size <= maxBatch; size *= 2) {
    if (options.signal?.aborted) return done();
    // Batches from the start, the middle and the end of the sample: with length bucketing they are the short, the
    // typical and the long records, so the measure is not the shortest records' alone.
    const starts = [...new Set([0, Math.floor((sample.rows - size) / 2), sample.rows - size])];
    const batches = [];
    for (const start of starts) batches.push(await sample.build(start, size));
    // The feeds stay with the probe (it runs them again): copy them to the thread, do not move them. The first
    // size's first run warms the session up (first-run allocations) and is not counted; later sizes are measured
    // from their first run, as the shard will run them (a new shape per batch is the rule with text).
    const warm = await thread.run(batches[0]!.feeds, batches[0]!.rows, { isolate: false, transfer: false });
    const failed = warm.segments.find((s) => s.error !== undefined);
    if (failed) {
      trials.push({
        batchSize: size,
        recordsPerSecond: 0,
        estimatedBytes: 0,
        stoppedBecause: `run failed: ${failed.error}`,
      });
      return done();
    }
    const warmCounts = trials.length > 0;
    // The fastest run of each batch: interference from outside (another process, a garbage collection) only ever
    // adds time, so the minimum is the batch's own cost, and one slow run does not rank the size below its
    // neighbours. Sizes whose runs take a fraction of a millisecond are otherwise ranked by the machine's noise.
    const fastest = batches.map(() => Infinity);
    if (warmCounts) fastest[0] = warm.inferMs;
    let ms = warmCounts ? warm.inferMs : 0;
    let runs = warmCounts ? 1 : 0;
    let slow = warm.inferMs > MAX_RUN_MS;
    while (!slow && runs < MAX_REPEATS && (ms < MEASURE_MS || runs < batches.length)) {
      const b = runs % batches.length;
      const batch = batches[b]!;
      const result = await thread.run(batch.feeds, batch.rows, { isolate: false, transfer: false });
      if (result.segments.some((s) => s.error !== undefined)) break;
      ms += result.inferMs;
      fastest[b] = Math.min(fastest[b]!, result.inferMs);
      runs++;
      if (result.inferMs > MAX_RUN_MS) {
        slow = true;
        break;
      }
    }
    const inputBytesPerRow = Math.max(...batches.map((b) => feedBytes(b.feeds) / Math.max(1, b.rows)));
    const outputBytesPerRow = feedBytes(warm.segments[0]?.outputs ?? {}) / Math.max(1, batches[0]!.rows);
    let timedRows = 0;
    let timedMs = 0;
    batches.forEach((batch, b) => {
      if (!Number.isFinite(fastest[b]!)) return;
      timedRows += batch.rows;
      timedMs += fastest[b]!;
    });
    const recordsPerSecond = timedMs > 0 ? (timedRows * 1000) / timedMs : 0;
    const estimatedBytes = rss() + options.inFlight * size * (inputBytesPerRow + outputBytesPerRow);
    const trial: Trial = {
      batchSize: size,
      recordsPerSecond: Math.round(recordsPerSecond),
      estimatedBytes: Math.round(estimatedBytes),
    };
    trials.push(trial);
    if (estimatedBytes > options.memoryBudgetBytes) {
      trial.stoppedBecause = 'over the memory budget';
      return done();
    }
    if (slow) {
      trial.stoppedBecause = `a run takes over ${MAX_RUN_MS} ms`;
      return done();
    }
    if (recordsPerSecond < best * CHOICE_TOLERANCE && recordsPerSecond < FAST_ENOUGH_RECORDS_PER_SECOND) {
      declining++;
      if (declining >= 2) {
        trial.stoppedBecause = 'throughput is falling';
        return done();
      }
    } else {
      declining = 0;
    }
    best = Math.max(best, recordsPerSecond);
    if (trials.length === 1 && options.shardRecords !== undefined && recordsPerSecond > 0) {
      const shardMs = (options.shardRecords / recordsPerSecond) * 1000;
      timeBudget = Math.min(PROBE_TIME_MS, Math.max(PROBE_MIN_MS, PROBE_SHARE * shardMs));
    }
    if (now() - started > timeBudget) {
      trial.stoppedBecause = 'probe time is up';
      return done();
    }
    if (size * 2 > maxBatch) {
      // The sample (or the cap) ends before the next size: nothing larger can be measured.
      trial.stoppedBecause = size * 2 > sample.rows ? 'sample exhausted' : 'largest batch size';
    }
  }
  return done();
}

/** Bytes of the numeric data of some tensors (string tensors count their characters). */
export function feedBytes(feeds: Record<string, ort.Tensor>): number {
  let bytes = 0;
  for (const tensor of Object.values(feeds)) {
    const data = tensor.data;
    if (ArrayBuffer.isView(data)) bytes += data.byteLength;
    else for (const s of data as readonly string[]) bytes += s.length;
  }
  return bytes;
}

/**
 * The default memory budget: half of what the process may use (the cgroup limit in a container, else the machine's
 * memory), leaving the rest to the reader, the writer and the runtime.
 */
export async function defaultMemoryBudget(totalMemory: number): Promise<number> {
  const limit = await cgroupMemoryLimit();
  return Math.floor(Math.min(totalMemory, limit ?? Infinity) / 2);
}

async function cgroupMemoryLimit(): Promise<number | undefined> {
  const { readFile } = await import('node:fs/promises');
  for (const file of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    try {
      const text = (await readFile(file, 'utf8')).trim();
      const n = Number(text);
      // cgroup v2 says "max" for no limit; v1 reports a huge number.
      if (Number.isFinite(n) && n > 0 && n < 2 ** 60) return n;
    } catch {
      // Not in a cgroup that limits memory: no limit from here.
    }
  }
  return undefined;
}
