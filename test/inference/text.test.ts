/**
 * Text through the real tokenizer and the real encoder/classifier of test/fixtures/models/text, against the
 * independent Python tokenizer and numpy reference of scripts/make_text_models.py (expected.json).
 */
import { readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { createFeatureBuilder } from '../../src/inference/features.js';
import type { ModelFiles } from '../../src/inference/model-files.js';
import { createPostprocessor, parseLabels } from '../../src/inference/postprocess.js';
import type { ModelSession } from '../../src/inference/session.js';
import { loadTokenizer, type TextTokenizer } from '../../src/inference/text.js';
import { ModelError } from '../../src/spec/errors.js';
import { fixture, fixtureJson, input, maxAbsDiff, output, rec, session } from './helpers.js';

interface Expected {
  readonly truncateAt: number;
  readonly hidden: number;
  readonly sentences: readonly {
    readonly text: string;
    readonly ids: number[];
    readonly idsTruncated: number[];
    readonly meanNormalized: number[];
    readonly cls: number[];
    readonly logits: number[];
  }[];
  readonly firstHidden: number[][];
}

const expected = fixtureJson<Expected>('text/expected.json');
const sentences = expected.sentences;
const TOKENIZER = 'tokenizer.json';
let tokenizer: TextTokenizer;
let files: ModelFiles;
let encoder: ModelSession;
let classifier: ModelSession;

const textInput = (maxLength = 64, extra: Record<string, unknown> = {}) =>
  input({ from: { text: 'sentence', tokenizer: TOKENIZER, maxLength }, ...extra });
const records = (texts: readonly string[]) => texts.map((sentence, i) => rec({ sentence }, i * 100));
const ints = (data: unknown): number[] => Array.from(data as BigInt64Array, Number);

beforeAll(async () => {
  tokenizer = loadTokenizer(JSON.parse(readFileSync(fixture('text/tokenizer.json'), 'utf8')), TOKENIZER);
  files = {
    tokenizers: new Map([[TOKENIZER, tokenizer]]),
    labels: new Map([['labels.txt', parseLabels(readFileSync(fixture('text/labels.txt'), 'utf8'))]]),
  };
  [encoder, classifier] = await Promise.all([session('text/encoder.onnx'), session('text/classifier.onnx')]);
});
afterAll(async () => {
  await encoder?.release();
  await classifier?.release();
});

describe('the tokenizer (tokenizer.json through @huggingface/tokenizers)', () => {
  it('produces the ids of an independent WordPiece implementation: accents, case, punctuation, subwords, [UNK]', () => {
    for (const s of sentences) expectIn(tokenizer.encode(s.text, 512).ids, s.text).toEqual(s.ids);
    // Spot checks a reader can verify against tokenizer.json by hand: [CLS] = 2, [SEP] = 3, [UNK] = 1.
    expect(sentences[4]!.ids).toHaveLength(3);
    expect(tokenizer.encode('hello', 512).ids[0]).toBe(2);
    expect(tokenizer.encode('☃', 512).ids).toEqual([2, 1, 3]);
    expect(tokenizer.padId).toBe(0);
  });

  it('truncates to maxLength with the special tokens kept at both ends', () => {
    for (const s of sentences) {
      const ids = tokenizer.encode(s.text, expected.truncateAt).ids;
      expectIn(ids, s.text).toEqual(s.idsTruncated);
      expect(ids.length).toBeLessThanOrEqual(expected.truncateAt);
    }
    expect(tokenizer.encode('a b c d e', 2).ids).toEqual([2, 3]);
  });

  it('rejects a file that is not a tokenizer.json with a ModelError naming it', () => {
    expect(() => loadTokenizer({ nothing: true }, 'bad.json')).toThrow(
      /tokenizer "bad.json" is not a usable/,
    );
  });
});

describe('text inputs into the BERT-shaped encoder', () => {
  it('pads to the longest text of the batch, not to maxLength, with mask 0 and the pad id on padding', async () => {
    const builder = createFeatureBuilder([textInput(128)], encoder.inputs, { files });
    expect(builder.columns).toEqual(['sentence']);
    const short = await builder.build(records(['hello', 'The cat sat on the table.']));
    const longest = sentences[0]!.ids.length;
    expect(short.feeds.input_ids!.dims).toEqual([2, longest]);
    expect(short.feeds.attention_mask!.dims).toEqual([2, longest]);
    expect(short.feeds.token_type_ids!.dims).toEqual([2, longest]);
    const ids = ints(short.feeds.input_ids!.data);
    expect(ids.slice(0, longest)).toEqual([...sentences[4]!.ids, ...new Array<number>(longest - 3).fill(0)]);
    expect(ints(short.feeds.attention_mask!.data).slice(0, longest)).toEqual([
      1,
      1,
      1,
      ...new Array<number>(longest - 3).fill(0),
    ]);
    expect(ints(short.feeds.token_type_ids!.data).every((v) => v === 0)).toBe(true);
    // A batch of one short text is short: the tensor follows the batch, not maxLength (128).
    expect((await builder.build(records(['hello']))).feeds.input_ids!.dims).toEqual([1, 3]);
  });

  it('truncates long texts to maxLength in the tensors', async () => {
    const builder = createFeatureBuilder([textInput(expected.truncateAt)], encoder.inputs, { files });
    const long = sentences[7]!;
    const batch = await builder.build(records([long.text, 'hello']));
    expect(batch.feeds.input_ids!.dims).toEqual([2, expected.truncateAt]);
    expect(ints(batch.feeds.input_ids!.data).slice(0, expected.truncateAt)).toEqual(long.idsTruncated);
  });

  it('matches the numpy reference hidden states, and mean-pooled normalised embeddings whatever the padding', async () => {
    const builder = createFeatureBuilder([textInput()], encoder.inputs, { files });
    const post = createPostprocessor(
      [
        output({
          tensor: 'last_hidden_state',
          as: 'embedding',
          postprocess: { pool: 'mean', normalize: true },
        }),
        output({ tensor: 'last_hidden_state', as: 'cls', postprocess: { pool: 'cls' } }),
      ],
      encoder.outputs,
      files,
    );
    expect(post.columns).toEqual([
      { name: 'embedding', type: 'array<float>' },
      { name: 'cls', type: 'array<float>' },
    ]);
    const texts = sentences.map((s) => s.text);
    const batch = await builder.build(records(texts));
    expect(batch.included).toHaveLength(texts.length);
    const out = await encoder.run(batch.feeds);
    const hidden = out.last_hidden_state!;
    const width = Math.max(...sentences.map((s) => s.ids.length));
    expect(hidden.dims).toEqual([texts.length, width, expected.hidden]);
    // The first sentence's real tokens, padded in this batch, equal the unpadded numpy reference.
    const first = (hidden.data as Float32Array).subarray(0, sentences[0]!.ids.length * expected.hidden);
    expect(maxAbsDiff(first, expected.firstHidden.flat())).toBeLessThan(1e-4);

    const result = await post.apply(out, texts.length, { feeds: batch.feeds });
    expect(result.issues).toEqual([]);
    const [embeddings, cls] = result.values as number[][][];
    sentences.forEach((s, i) => {
      expectIn(maxAbsDiff(embeddings![i]!, s.meanNormalized), s.text).toBeLessThan(1e-4);
      expectIn(maxAbsDiff(cls![i]!, s.cls), s.text).toBeLessThan(1e-4);
      expect(Math.hypot(...embeddings![i]!)).toBeCloseTo(1, 5);
    });

    // Alone (no padding at all), a sentence's embedding is the same as in the padded batch.
    const alone = await builder.build(records([sentences[4]!.text]));
    const aloneOut = await post.apply(await encoder.run(alone.feeds), 1, { feeds: alone.feeds });
    expect(maxAbsDiff(aloneOut.values[0]![0] as number[], embeddings![4]!)).toBeLessThan(1e-5);
  });

  it('fails pooling that has no attention mask to read, and a text entry naming graph inputs the model lacks', async () => {
    const post = createPostprocessor(
      [output({ tensor: 'last_hidden_state', postprocess: { pool: 'mean', mask: 'mask_of_nothing' } })],
      encoder.outputs,
      files,
    );
    const builder = createFeatureBuilder([textInput()], encoder.inputs, { files });
    const batch = await builder.build(records(['hello']));
    const out = await encoder.run(batch.feeds);
    await expect(post.apply(out, 1, { feeds: batch.feeds })).rejects.toThrow(
      /feeds have no "mask_of_nothing"/,
    );
    expect(() =>
      createFeatureBuilder(
        [textInput(64, { tensors: { inputIds: 'input_ids', attentionMask: 'mask' } })],
        encoder.inputs,
        { files },
      ),
    ).toThrow(ModelError);
  });

  it('a text input that does not fit its (default) tensors says why, never that they are "not fed" (issue 17)', () => {
    // The encoder's token tensors as float32: declared through the text input, only of the wrong type.
    const wrongTypes = encoder.inputs.map((i) => ({ ...i, type: 'float32' as const }));
    const build = (): unknown => createFeatureBuilder([textInput()], wrongTypes, { files });
    expect(build).toThrow(/tensor "input_ids" is float32 in the model; a text input feeds int64 or int32/);
    expect(build).not.toThrow(/is not fed/);
  });

  it('reads text from bytes (a files record) and sets aside missing or non-text values', async () => {
    const builder = createFeatureBuilder([textInput()], encoder.inputs, { files });
    const batch = await builder.build([
      rec({ sentence: new TextEncoder().encode('\uFEFFThe cat sat on the table.') }),
      rec({ sentence: null }),
      rec({ sentence: 42 }),
      rec({ other: 'x' }),
    ]);
    expect(batch.included).toEqual([0]);
    expect(batch.issues.map((i) => [i.index, i.reason])).toEqual([
      [1, 'MISSING_VALUE'],
      [2, 'INVALID_VALUE'],
      [3, 'MISSING_VALUE'],
    ]);
    expect(ints(batch.feeds.input_ids!.data)).toEqual(sentences[0]!.ids);
  });
});

describe('agreement with @huggingface/transformers', () => {
  it('gives the embeddings its feature-extraction pipeline gives (mean pooling, normalised)', async () => {
    // The Hugging Face layout transformers.js loads: <dir>/<model>/{config.json, tokenizer*.json, onnx/model.onnx}.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'hf-'));
    try {
      await mkdir(path.join(dir, 'mini-bert', 'onnx'), { recursive: true });
      for (const name of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) {
        await copyFile(fixture(`text/${name}`), path.join(dir, 'mini-bert', name));
      }
      await copyFile(fixture('text/encoder.onnx'), path.join(dir, 'mini-bert', 'onnx', 'model.onnx'));
      const { env, pipeline } = await import('@huggingface/transformers');
      env.allowRemoteModels = false;
      env.localModelPath = `${dir}/`;
      const extractor = await pipeline('feature-extraction', 'mini-bert', { dtype: 'fp32' });
      const texts = sentences.map((s) => s.text);
      const theirs = await extractor(texts, { pooling: 'mean', normalize: true });
      await extractor.dispose();

      const builder = createFeatureBuilder([textInput(128)], encoder.inputs, { files });
      const post = createPostprocessor(
        [output({ tensor: 'last_hidden_state', postprocess: { pool: 'mean', normalize: true } })],
        encoder.outputs,
        files,
      );
      const batch = await builder.build(records(texts));
      const ours = (await post.apply(await encoder.run(batch.feeds), texts.length, { feeds: batch.feeds }))
        .values[0] as number[][];
      expect(theirs.dims).toEqual([texts.length, expected.hidden]);
      expect(maxAbsDiff(theirs.data as Float32Array, ours.flat())).toBeLessThan(1e-5);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('text classification head', () => {
  it('feeds only the inputs the model has, and turns logits into labels, top-k and sigmoid scores', async () => {
    // The classifier takes input_ids and attention_mask only: the default tensors skip token_type_ids.
    const builder = createFeatureBuilder([textInput()], classifier.inputs, { files });
    const texts = sentences.map((s) => s.text);
    const batch = await builder.build(records(texts));
    expect(Object.keys(batch.feeds).sort()).toEqual(['attention_mask', 'input_ids']);
    const out = await classifier.run(batch.feeds);
    sentences.forEach((s, i) => {
      expect(
        maxAbsDiff((out.logits!.data as Float32Array).subarray(i * 3, i * 3 + 3), s.logits),
      ).toBeLessThan(1e-4);
    });

    const post = createPostprocessor(
      [
        output({
          tensor: 'logits',
          postprocess: { softmax: true, argmax: { labels: 'labels.txt' }, keep: 'score', topK: { k: 2 } },
        }),
        output({ tensor: 'logits', as: 'sig', postprocess: { sigmoid: true } }),
        output({
          tensor: 'logits',
          as: 'over',
          postprocess: {
            sigmoid: true,
            topK: {
              k: 3,
              labels: 'labels.txt',
              minScore: 0.5,
              as: { labels: 'over_labels', scores: 'over_scores' },
            },
          },
        }),
      ],
      classifier.outputs,
      files,
    );
    expect(post.columns.map((c) => `${c.name}:${c.type}`)).toEqual([
      'label:string',
      'score:float',
      'top_labels:array<string>',
      'top_scores:array<float>',
      'sig:array<float>',
      'over_labels:array<string>',
      'over_scores:array<float>',
    ]);
    const result = await post.apply(out, texts.length, { feeds: batch.feeds });
    const [label, score, topLabels, topScores, sig, overLabels, overScores] = result.values;
    const labels = ['negative', 'neutral', 'positive'];
    // The fixture's sentences land in different classes, so a constant answer would not pass.
    expect(new Set(label).size).toBeGreaterThan(1);
    expect(overLabels!.some((l) => (l as string[]).length > 0)).toBe(true);
    sentences.forEach((s, i) => {
      const exps = s.logits.map(Math.exp);
      const sum = exps.reduce((a, b) => a + b, 0);
      const probs = exps.map((e) => e / sum);
      const order = [0, 1, 2].sort((a, b) => probs[b]! - probs[a]!);
      expect(label![i]).toBe(labels[order[0]!]);
      expect(score![i]).toBeCloseTo(probs[order[0]!]!, 5);
      expect(topLabels![i]).toEqual(order.slice(0, 2).map((k) => labels[k]));
      expect((topScores![i] as number[]).map((v) => v.toFixed(5))).toEqual(
        order.slice(0, 2).map((k) => probs[k]!.toFixed(5)),
      );
      const sigmoid = s.logits.map((x) => 1 / (1 + Math.exp(-x)));
      expect(maxAbsDiff(sig![i] as number[], sigmoid)).toBeLessThan(1e-6);
      const over = [0, 1, 2].filter((k) => sigmoid[k]! >= 0.5).sort((a, b) => sigmoid[b]! - sigmoid[a]!);
      expect(overLabels![i]).toEqual(over.map((k) => labels[k]));
      expect(overScores![i]).toHaveLength(over.length);
    });
  });
});
