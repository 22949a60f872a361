/**
 * What time-based checkpoints cost (issue 11 item 4): the shard worker (bundled, in a child process, as the image
 * runs it) on the tabular benchmark (breast-cancer MLP, CSV -> Parquet) and the text benchmark (BERT-shaped encoder,
 * JSONL -> embeddings), each with `run.checkpoint.seconds` at its default (60), effectively off (86400: a day) and
 * short (a checkpoint every few seconds), in the same run. The measure is the shard's time in the worker (the
 * marker's totalMs); each setting runs `REPS` times, interleaved, and the fastest counts.
 *
 * A shard of this size takes seconds, less than the default interval: at the default the time checkpoint costs only
 * its clock read per batch. The short interval shows the cost of one checkpoint (time added / checkpoints added),
 * from which the overhead at one checkpoint a minute follows: cost per checkpoint / 60 s.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import YAML from 'yaml';
import { makeDemoInput } from '../../examples/breast-cancer/demo.js';
import { DEFAULT_CHECKPOINT_SECONDS, type JobSpecInput } from '../../src/spec/schema.js';
import type { BenchContext, BenchResult, BenchSuite } from '../suite.js';
import { writeSentences } from './worker-compute.js';
import { CORES, THREADS, planOneShard, runWorkerProcess, type WorkerRun } from './worker-tabular.js';

const repo = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const example = path.join(repo, 'examples', 'breast-cancer');
const textModels = path.join(repo, 'test', 'fixtures', 'models', 'text');
/** run.checkpoint.seconds that never fires in a benchmark shard: the time checkpoint "off". */
const OFF_SECONDS = 86_400;

const job = YAML.parse(readFileSync(path.join(example, 'job.yaml'), 'utf8')) as {
  model: JobSpecInput['model'];
  output: { passthrough: string[] };
  input: { id: string };
};

const run = (seconds: number) => ({
  batchSize: 'auto' as const,
  checkpoint: { seconds },
  shards: { targetRecords: 1e9, targetBytes: '1000GiB' },
});

function tabularSpec(input: string, out: string, seconds: number): JobSpecInput {
  return {
    name: 'bench_checkpoint_tabular',
    input: { uri: `${pathToFileURL(input).href}/`, format: 'csv', id: job.input.id },
    model: job.model,
    output: { uri: `${pathToFileURL(out).href}/`, passthrough: job.output.passthrough },
    run: run(seconds),
  };
}

function textSpec(input: string, out: string, seconds: number): JobSpecInput {
  return {
    name: 'bench_checkpoint_text',
    input: { uri: `${pathToFileURL(input).href}/`, format: 'jsonl', id: 'id' },
    model: {
      uri: pathToFileURL(path.join(textModels, 'encoder.onnx')).href,
      inputs: [{ from: { text: 'text', tokenizer: 'tokenizer.json', maxLength: 128 } }],
      outputs: [
        { tensor: 'last_hidden_state', as: 'embedding', postprocess: { pool: 'mean', normalize: true } },
      ],
    },
    output: { uri: `${pathToFileURL(out).href}/` },
    run: run(seconds),
  };
}

interface Setting {
  readonly label: string;
  readonly seconds: number;
}

interface Measured {
  readonly setting: Setting;
  /** The fastest run's shard time, ms. */
  readonly ms: number;
  /** Chunks (part files) of that run. */
  readonly chunks: number;
  readonly all: readonly number[];
}

/** Runs every setting `reps` times, interleaved (so drift in the machine's load hits them alike). */
async function measure(
  ctx: BenchContext,
  name: string,
  settings: readonly Setting[],
  reps: number,
  spec: (out: string, seconds: number) => JobSpecInput,
): Promise<Measured[]> {
  const runs = settings.map(() => [] as WorkerRun[]);
  for (let rep = 0; rep < reps; rep++) {
    for (const [k, setting] of settings.entries()) {
      const id = `${name}-${k}-${rep}`;
      const planned = await planOneShard(spec(path.join(ctx.workDir, `out-${id}`), setting.seconds), id);
      const result = await runWorkerProcess(planned);
      ctx.log(
        `${name}, ${setting.label}: ${Math.round(result.marker.timings.totalMs)} ms, ${result.marker.outputs.length} chunks`,
      );
      runs[k]!.push(result);
    }
  }
  return settings.map((setting, k) => {
    const best = runs[k]!.reduce((a, b) => (b.marker.timings.totalMs < a.marker.timings.totalMs ? b : a));
    return {
      setting,
      ms: best.marker.timings.totalMs,
      chunks: best.marker.outputs.length,
      all: runs[k]!.map((r) => Math.round(r.marker.timings.totalMs)),
    };
  });
}

/** The rows of one workload: the default and the short interval, each against "off". */
function results(workload: string, shape: string, [off, dflt, short]: readonly Measured[]): BenchResult[] {
  const seconds = (m: Measured): number => Math.round(m.ms) / 1000;
  const extra = short!.chunks - off!.chunks;
  // Below zero the noise is larger than the effect: no estimate.
  const perCheckpointMs = extra > 0 && short!.ms > off!.ms ? (short!.ms - off!.ms) / extra : undefined;
  const projected =
    perCheckpointMs === undefined ? undefined : (perCheckpointMs / (DEFAULT_CHECKPOINT_SECONDS * 1000)) * 100;
  const runsOf = (m: Measured): string =>
    `${m.setting.label}: ${m.chunks} chunks, runs ${m.all.join(' / ')} ms`;
  return [
    {
      name: `${workload}: time checkpoint at the default (${DEFAULT_CHECKPOINT_SECONDS} s) vs off`,
      metric: 's',
      value: seconds(dflt!),
      baseline: { name: `run.checkpoint.seconds ${OFF_SECONDS} (off)`, value: seconds(off!) },
      higherIsBetter: false,
      target: { ratio: 0.97 },
      notes:
        `${shape}; ${runsOf(dflt!)}; ${runsOf(off!)}. ` +
        (dflt!.chunks > off!.chunks
          ? `The shard ran past a minute: ${dflt!.chunks - off!.chunks} chunk(s) closed by time. `
          : 'The shard is shorter than a minute, so this is the cost of the clock read per batch. ') +
        'One checkpoint a minute costs the per-checkpoint time in the next row / 60 s' +
        (projected === undefined
          ? ' (not measurable in this run).'
          : ` = ${projected.toFixed(2)}% of shard time.`),
    },
    {
      name: `${workload}: time checkpoint every ${short!.setting.seconds} s vs off`,
      metric: 's',
      value: seconds(short!),
      baseline: { name: `run.checkpoint.seconds ${OFF_SECONDS} (off)`, value: seconds(off!) },
      higherIsBetter: false,
      notes:
        `${shape}; ${runsOf(short!)}; ${runsOf(off!)}` +
        (extra <= 0
          ? '; no checkpoint was added (the shard ended before the interval)'
          : perCheckpointMs === undefined
            ? `; ${extra} more checkpoints, and yet faster than off: the noise is larger than their cost`
            : `; ${extra} more checkpoints, ${Math.round(perCheckpointMs)} ms each`),
    },
  ];
}

export const suite: BenchSuite = {
  name: 'worker-checkpoint',
  description:
    'The shard worker on the tabular and the text benchmark with run.checkpoint.seconds at its default (60 s), ' +
    'off (a day) and short, in the same run: the overhead of time-based checkpoints and the cost of one.',
  async run(ctx: BenchContext): Promise<BenchResult[]> {
    const reps = 2;
    const tabularRecords = ctx.quick ? 200_000 : 1_000_000;
    const sentences = ctx.quick ? 4_000 : 20_000;

    const tabularIn = path.join(ctx.workDir, 'in-tabular');
    ctx.log(`generating ${tabularRecords.toLocaleString('en-US')} CSV records`);
    await makeDemoInput({ dir: tabularIn, records: tabularRecords, files: 1 });
    const tabular = await measure(
      ctx,
      'tabular',
      [
        { label: 'off', seconds: OFF_SECONDS },
        { label: 'default', seconds: DEFAULT_CHECKPOINT_SECONDS },
        { label: 'every 1 s', seconds: 1 },
      ],
      reps,
      (out, seconds) => tabularSpec(tabularIn, out, seconds),
    );

    const textIn = path.join(ctx.workDir, 'in-text');
    await writeSentences(path.join(textIn, 'part.jsonl'), sentences);
    const text = await measure(
      ctx,
      'text',
      [
        { label: 'off', seconds: OFF_SECONDS },
        { label: 'default', seconds: DEFAULT_CHECKPOINT_SECONDS },
        { label: 'every 5 s', seconds: 5 },
      ],
      reps,
      (out, seconds) => textSpec(textIn, out, seconds),
    );

    const machine = `${CORES} cores, ${THREADS} ONNX Runtime thread(s), best of ${reps}`;
    return [
      ...results(
        'tabular MLP',
        `${tabularRecords.toLocaleString('en-US')} CSV records, Parquet out, ${machine}`,
        tabular,
      ),
      ...results('text encoder', `${sentences.toLocaleString('en-US')} JSONL sentences, ${machine}`, text),
    ];
  },
};
