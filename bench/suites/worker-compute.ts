/**
 * The shard worker on a compute-bound model: the BERT-shaped text encoder of the tests (test/fixtures/models/text:
 * 4 layers, hidden 128, WordPiece tokenizer), sentence embeddings (mean pooling, L2-normalised) from JSONL. In the
 * same run:
 * - raw ONNX Runtime on pre-built tensors: the worker's own batches (same size, same length bucketing), so only
 *   reading, tokenizing, post-processing and writing separate the two (the ceiling);
 * - one session.run per record;
 * - @huggingface/transformers' feature-extraction pipeline on the same texts, batched at the worker's batch size in
 *   input order, as it is used (a model folder built from the same ONNX file and tokenizer, offline).
 */
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { DecodedRecord } from '../../src/formats/index.js';
import type { JobSpecInput } from '../../src/spec/schema.js';
import { BUCKET_BATCHES } from '../../src/worker/run-shard.js';
import type { BenchContext, BenchResult, BenchSuite } from '../suite.js';
import {
  buildBatches,
  CORES,
  THREADS,
  featureBuilderFor,
  loadPlannedModel,
  perRecordRate,
  planOneShard,
  rate,
  readShardRecords,
  runWorkerProcess,
  timeRuns,
} from './worker-tabular.js';

const repo = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const textModels = path.join(repo, 'test', 'fixtures', 'models', 'text');
const MAX_LENGTH = 128;

/** Sentences of 3 to 60 words from the tokenizer's vocabulary list (deterministic). */
export async function writeSentences(file: string, count: number): Promise<string[]> {
  const words = (await readFile(path.join(repo, 'scripts', 'data', 'text_words.txt'), 'utf8'))
    .split('\n')
    .filter((w) => w && !w.startsWith('#'));
  let seed = 7;
  const random = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  const texts: string[] = [];
  for (let i = 0; i < count; i++) {
    const length = 3 + Math.floor(random() * 58);
    texts.push(Array.from({ length }, () => words[Math.floor(random() * words.length)]).join(' '));
  }
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `${texts.map((text, i) => JSON.stringify({ id: `s${i}`, text })).join('\n')}\n`);
  return texts;
}

/** The worker's batches: windows of BUCKET_BATCHES batches in input order, each sorted by text length. */
function workerOrder(records: readonly DecodedRecord[], batchSize: number): DecodedRecord[] {
  const window = batchSize * BUCKET_BATCHES;
  const out: DecodedRecord[] = [];
  for (let i = 0; i < records.length; i += window) {
    const part = records.slice(i, i + window);
    const length = (r: DecodedRecord): number => (r.values.text as string).length;
    out.push(
      ...part
        .map((r, k) => ({ r, k }))
        .sort((a, b) => length(a.r) - length(b.r) || a.k - b.k)
        .map((x) => x.r),
    );
  }
  return out;
}

/** A transformers.js model folder from the test encoder: config, tokenizer, onnx/model.onnx. */
async function transformersFolder(root: string): Promise<void> {
  const dir = path.join(root, 'bench-encoder');
  await mkdir(path.join(dir, 'onnx'), { recursive: true });
  await copyFile(path.join(textModels, 'encoder.onnx'), path.join(dir, 'onnx', 'model.onnx'));
  await copyFile(path.join(textModels, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  await writeFile(
    path.join(dir, 'config.json'),
    JSON.stringify({
      model_type: 'bert',
      architectures: ['BertModel'],
      hidden_size: 128,
      num_attention_heads: 4,
      num_hidden_layers: 4,
      intermediate_size: 512,
      max_position_embeddings: MAX_LENGTH,
      type_vocab_size: 2,
    }),
  );
  await writeFile(
    path.join(dir, 'tokenizer_config.json'),
    JSON.stringify({
      tokenizer_class: 'BertTokenizer',
      do_lower_case: true,
      model_max_length: MAX_LENGTH,
      pad_token: '[PAD]',
      unk_token: '[UNK]',
      cls_token: '[CLS]',
      sep_token: '[SEP]',
      mask_token: '[MASK]',
    }),
  );
}

async function transformersRate(root: string, texts: readonly string[], batchSize: number): Promise<number> {
  const { env, pipeline } = await import('@huggingface/transformers');
  env.allowRemoteModels = false;
  env.localModelPath = `${root}/`;
  const extractor = await pipeline('feature-extraction', 'bench-encoder', {
    dtype: 'fp32',
    device: 'cpu',
    session_options: { intraOpNumThreads: THREADS, interOpNumThreads: 1 },
  });
  const options = { pooling: 'mean' as const, normalize: true };
  await extractor([...texts.slice(0, batchSize)], options);
  const started = performance.now();
  for (let i = 0; i < texts.length; i += batchSize)
    await extractor([...texts.slice(i, i + batchSize)], options);
  const seconds = (performance.now() - started) / 1000;
  await extractor.dispose();
  return texts.length / seconds;
}

export const suite: BenchSuite = {
  name: 'worker-compute',
  description:
    'The shard worker on a BERT-shaped text encoder (JSONL sentences -> mean-pooled embeddings) vs raw ONNX ' +
    'Runtime on its own pre-built batches, one session.run per record, and the transformers.js pipeline.',
  async run(ctx: BenchContext): Promise<BenchResult[]> {
    // 50,000 sentences: a shard long enough (about 30 s on two cores) that the once-per-shard costs (thread start,
    // model load, the batch-size probe, the last chunk's write: about 1.5 s) weigh as little as they do on a
    // production shard (a million records by default), so the ratio shows the steady state. They are in the notes.
    const count = ctx.quick ? 4_000 : 50_000;
    const input = path.join(ctx.workDir, 'in');
    const texts = await writeSentences(path.join(input, 'part.jsonl'), count);
    const spec = {
      name: 'bench_text',
      input: { uri: `${pathToFileURL(input).href}/`, format: 'jsonl', id: 'id' },
      model: {
        uri: pathToFileURL(path.join(textModels, 'encoder.onnx')).href,
        inputs: [{ from: { text: 'text', tokenizer: 'tokenizer.json', maxLength: MAX_LENGTH } }],
        outputs: [
          { tensor: 'last_hidden_state', as: 'embedding', postprocess: { pool: 'mean', normalize: true } },
        ],
      },
      output: { uri: `${pathToFileURL(path.join(ctx.workDir, 'out')).href}/` },
      run: { batchSize: 'auto', shards: { targetRecords: 1e9, targetBytes: '1000GiB' } },
    } as JobSpecInput;

    ctx.log(`worker on ${count} sentences`);
    const planned = await planOneShard(spec, 'text');
    const worker = await runWorkerProcess(planned);
    const batchSize = worker.marker.batchSize;
    const t = worker.marker.timings;
    ctx.log(`worker: ${rate(worker.recordsPerSecond)}, batch ${batchSize}, ${JSON.stringify(t)}`);

    const session = await loadPlannedModel(planned);
    let raw: number;
    let rawInputOrder: number;
    let perRecord: number;
    try {
      const features = await featureBuilderFor(planned, session);
      const records = await readShardRecords(planned, features.columns);
      raw = await timeRuns(session, await buildBatches(features, workerOrder(records, batchSize), batchSize));
      rawInputOrder = await timeRuns(session, await buildBatches(features, records, batchSize));
      await session.release();
      perRecord = await perRecordRate(planned, records.slice(0, ctx.quick ? 300 : 1000));
    } finally {
      await session.release().catch(() => undefined);
    }
    ctx.log(`raw: ${rate(raw)} (input order ${rate(rawInputOrder)}), per record: ${rate(perRecord)}`);
    const hfRoot = path.join(ctx.workDir, 'hf');
    await transformersFolder(hfRoot);
    const hf = await transformersRate(hfRoot, texts, batchSize);
    ctx.log(`transformers.js: ${rate(hf)}`);

    const probeMs = worker.marker.batchSizeProbe?.probeMs ?? 0;
    const shape =
      `${count.toLocaleString('en-US')} sentences of 3-60 words, ${CORES} cores, ${THREADS} ONNX Runtime thread(s), batch ${batchSize} (auto, probe ` +
      `${Math.round(probeMs)} ms), stage busy ms read ${Math.round(t.readMs)} / decode ${Math.round(t.decodeMs)} / ` +
      `infer ${Math.round(t.inferMs)} / write ${Math.round(t.writeMs)}, shard ${Math.round(t.totalMs)} ms`;
    return [
      {
        name: 'text encoder: worker end to end vs raw ONNX Runtime (ceiling)',
        metric: 'records/s',
        value: worker.recordsPerSecond,
        baseline: { name: `session.run on the worker's pre-built batches (${batchSize})`, value: raw },
        higherIsBetter: true,
        target: { ratio: 0.9 },
        notes: `${shape}. Raw loop in input order (no length bucketing): ${rate(rawInputOrder)}.`,
      },
      {
        name: 'text encoder: worker end to end vs per-record inference',
        metric: 'records/s',
        value: worker.recordsPerSecond,
        baseline: { name: 'one session.run per record (pre-built tensors)', value: perRecord },
        higherIsBetter: true,
        notes: shape,
      },
      {
        name: 'text encoder: worker end to end vs transformers.js pipeline',
        metric: 'records/s',
        value: worker.recordsPerSecond,
        baseline: { name: `feature-extraction pipeline, batches of ${batchSize}, mean pooling`, value: hf },
        higherIsBetter: true,
        target: { ratio: 1.5 },
        notes:
          'Same ONNX file, tokenizer and thread count; the pipeline tokenizes and pads each batch in input order.',
      },
    ];
  },
};
