/**
 * A challenger beside the champion (docs/adr/0020): the shard worker scoring each decoded batch with two models
 * (the champion's table plus `<name>_challenger` and the comparison) against the same worker with the champion
 * alone, on the tabular suite's input (breast-cancer MLP v1 vs v2, CSV -> Parquet) and the text suite's
 * (BERT-shaped encoder, JSONL -> pooled embeddings; the challenger is a copy of the encoder, the same cost as a
 * retrained version). Measured in the same run, one after the other; the target is at most 1.5x the time
 * (throughput ratio >= 0.667), not the 2x of a second run.
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import YAML from 'yaml';
import { makeDemoInput } from '../../examples/breast-cancer/demo.js';
import { challengerLayoutOf } from '../../src/challenger/plan.js';
import { shardMarkerSchema, type ShardMarker } from '../../src/runs/types.js';
import type { JobSpecInput } from '../../src/spec/schema.js';
import { getJson } from '../../src/storage/object-store.js';
import type { BenchContext, BenchResult, BenchSuite } from '../suite.js';
import { CORES, THREADS, planOneShard, rate, runWorkerProcess, type WorkerRun } from './worker-tabular.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.join(here, '..', '..');
const example = path.join(repo, 'examples', 'breast-cancer');
const textModels = path.join(repo, 'test', 'fixtures', 'models', 'text');

const job = YAML.parse(readFileSync(path.join(example, 'job.yaml'), 'utf8')) as {
  model: JobSpecInput['model'];
  output: { passthrough: string[] };
  input: { id: string };
};

const WORDS =
  'the a model batch record shard output input token vector score label data lake run table'.split(' ');

/** Deterministic sentences of 3-60 words, one JSON line each. */
function sentences(count: number): string {
  let seed = 7;
  const next = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const n = 3 + Math.floor(next() * 58);
    const text = Array.from({ length: n }, () => WORDS[Math.floor(next() * WORDS.length)]!).join(' ');
    lines.push(JSON.stringify({ id: `s${i}`, text }));
  }
  return `${lines.join('\n')}\n`;
}

interface Pair {
  readonly alone: WorkerRun;
  readonly both: WorkerRun;
  /** The challenger's marker of the `both` run: its own inference time. */
  readonly challenger: ShardMarker;
}

async function pair(
  ctx: BenchContext,
  label: string,
  spec: (challenger: boolean) => JobSpecInput,
): Promise<Pair> {
  ctx.log(`${label}: champion alone`);
  const alone = await runWorkerProcess(await planOneShard(spec(false), `${label}-alone`));
  ctx.log(`${label}: ${rate(alone.recordsPerSecond)}; champion + challenger`);
  const planned = await planOneShard(spec(true), `${label}-both`);
  const both = await runWorkerProcess(planned);
  const layout = challengerLayoutOf(planned.plan);
  if (!layout) throw new Error(`${label}: the plan has no challenger`);
  const challenger = shardMarkerSchema.parse(await getJson(planned.store, layout.markerUri(0)));
  ctx.log(`${label}: ${rate(both.recordsPerSecond)}`);
  return { alone, both, challenger };
}

function result(name: string, records: number, runs: Pair): BenchResult {
  const a = runs.alone.marker.timings;
  const b = runs.both.marker.timings;
  const c = runs.challenger.timings;
  return {
    name,
    metric: 'records/s',
    value: runs.both.recordsPerSecond,
    baseline: { name: 'the same worker, champion alone', value: runs.alone.recordsPerSecond },
    higherIsBetter: true,
    target: { ratio: 1 / 1.5 },
    notes:
      `${records.toLocaleString('en-US')} records, ${CORES} cores, ${THREADS} ONNX Runtime thread(s) per model, ` +
      `batch ${runs.both.marker.batchSize} / ${runs.alone.marker.batchSize}; shard ms ${Math.round(b.totalMs)} vs ` +
      `${Math.round(a.totalMs)} (champion infer ${Math.round(b.inferMs)} vs ${Math.round(a.inferMs)}, challenger ` +
      `infer ${Math.round(c.inferMs)} in its own thread; write ` +
      `${Math.round(b.writeMs)} vs ${Math.round(a.writeMs)}, of which the challenger's ${Math.round(c.writeMs)}); ` +
      `process CPU ms ${runs.both.cpuMs} vs ${runs.alone.cpuMs}`,
  };
}

export const suite: BenchSuite = {
  name: 'worker-challenger',
  description:
    'The shard worker with a challenger model beside the champion vs the champion alone, on the tabular MLP ' +
    '(CSV -> Parquet) and the text encoder (JSONL -> embeddings); target: at most 1.5x the time.',
  async run(ctx: BenchContext): Promise<BenchResult[]> {
    const tabularRecords = ctx.quick ? 200_000 : 1_000_000;
    const tabularIn = path.join(ctx.workDir, 'tabular-in');
    ctx.log(`generating ${tabularRecords.toLocaleString('en-US')} CSV records`);
    await makeDemoInput({ dir: tabularIn, records: tabularRecords, files: 1 });
    const tabular = await pair(ctx, 'tabular', (challenger) => ({
      name: challenger ? 'bench_tabular_both' : 'bench_tabular_alone',
      input: { uri: `${pathToFileURL(tabularIn).href}/`, format: 'csv', id: job.input.id },
      model: {
        ...job.model,
        ...(challenger ? { challenger: { registry: { group: 'breast-cancer-mlp', version: 2 } } } : {}),
      },
      output: {
        uri: `${pathToFileURL(path.join(ctx.workDir, `tabular-out-${challenger}`)).href}/`,
        passthrough: job.output.passthrough,
      },
      run: { batchSize: 'auto', shards: { targetRecords: 1e9, targetBytes: '1000GiB' } },
    }));

    const textRecords = ctx.quick ? 4_000 : 50_000;
    const textIn = path.join(ctx.workDir, 'text-in');
    mkdirSync(textIn, { recursive: true });
    writeFileSync(path.join(textIn, 'part.jsonl'), sentences(textRecords));
    // The challenger: a copy of the encoder (and its tokenizer) under another name, as a retrained version would be.
    const copy = path.join(ctx.workDir, 'challenger-model');
    mkdirSync(copy, { recursive: true });
    for (const f of ['encoder.onnx', 'tokenizer.json'])
      copyFileSync(path.join(textModels, f), path.join(copy, f));
    const text = await pair(ctx, 'text', (challenger) => ({
      name: challenger ? 'bench_text_both' : 'bench_text_alone',
      input: { uri: `${pathToFileURL(textIn).href}/`, format: 'jsonl', id: 'id' },
      model: {
        uri: pathToFileURL(path.join(textModels, 'encoder.onnx')).href,
        inputs: [{ from: { text: 'text', tokenizer: 'tokenizer.json', maxLength: 128 } }],
        outputs: [
          {
            tensor: 'last_hidden_state',
            as: 'embedding',
            postprocess: { pool: 'mean', normalize: true },
          },
        ],
        ...(challenger ? { challenger: { uri: pathToFileURL(path.join(copy, 'encoder.onnx')).href } } : {}),
      },
      output: { uri: `${pathToFileURL(path.join(ctx.workDir, `text-out-${challenger}`)).href}/` },
      run: { batchSize: 'auto', shards: { targetRecords: 1e9, targetBytes: '1000GiB' } },
    }));

    return [
      result('tabular MLP: champion + challenger vs champion alone', tabularRecords, tabular),
      result('text encoder: champion + challenger vs champion alone', textRecords, text),
    ];
  },
};
