import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from '@jest/globals';
import type { DecodedRecord } from '../../src/formats/records.js';
import { createFeatureBuilder } from '../../src/inference/features.js';
import { createPostprocessor, parseLabels } from '../../src/inference/postprocess.js';
import { createOrtSession, loadModel, type SessionFactory } from '../../src/inference/session.js';
import { ModelError } from '../../src/spec/errors.js';
import type { InputTensorSpec, OutputTensorSpec } from '../../src/spec/schema.js';

const model = (name: string): Uint8Array =>
  readFileSync(new URL(`../fixtures/models/${name}`, import.meta.url));
const rec = (values: Record<string, unknown>, offset = 0): DecodedRecord => ({
  source: 'file:///in.jsonl',
  offset,
  values,
});
const affineInput: InputTensorSpec = {
  tensor: 'x',
  from: { columns: ['a', 'b', 'c'] },
  dtype: 'float32',
  missing: 'error',
};

describe('loadModel', () => {
  it('runs on the CPU provider and reports the model inputs and outputs', async () => {
    const session = await loadModel(model('affine.onnx'));
    expect(session.executionProvider).toBe('cpu');
    expect(session.inputs.map((i) => [i.name, i.type])).toEqual([['x', 'float32']]);
    expect(session.outputs.map((o) => o.name)).toEqual(['y']);
    await session.release();
  });

  it('falls back from CUDA to CPU and logs why (CUDA made to fail, GPU or not)', async () => {
    const lines: { message: string; fields?: Record<string, unknown> }[] = [];
    const tried: unknown[] = [];
    // Real ONNX Runtime sessions; only the CUDA attempt fails, as it does where CUDA is missing.
    const createSession: SessionFactory = async (bytes, options) => {
      tried.push(options.executionProviders);
      if (options.executionProviders?.[0] === 'cuda')
        throw new Error('libcudart.so.12: cannot open shared object');
      return createOrtSession(bytes, options);
    };
    const session = await loadModel(model('affine.onnx'), {
      providers: ['cuda', 'cpu'],
      log: (message, fields) => lines.push({ message, ...(fields ? { fields } : {}) }),
      createSession,
    });
    expect(tried).toEqual([['cuda'], ['cpu']]);
    expect(session.executionProvider).toBe('cpu');
    expect(lines).toEqual([
      {
        message:
          'execution provider cuda unavailable, falling back to cpu: libcudart.so.12: cannot open shared object',
        fields: { provider: 'cuda', fallback: 'cpu' },
      },
      {
        message: 'execution provider fallback: running on cpu',
        fields: { failures: ['cuda: libcudart.so.12: cannot open shared object'] },
      },
    ]);
    const out = await session.run({ x: new ort.Tensor('float32', Float32Array.from([1, 2, 3]), [1, 3]) });
    expect(Array.from(out.y!.data as Float32Array)).toEqual([20, -2]);
    await session.release();
  });

  it('with real ONNX Runtime, asking for CUDA first runs on CUDA, or on CPU with the fallback logged', async () => {
    const lines: string[] = [];
    const session = await loadModel(model('affine.onnx'), {
      providers: ['cuda', 'cpu'],
      log: (message) => lines.push(message),
    });
    const fellBack = lines.some((l) => /execution provider cuda unavailable, falling back to cpu/.test(l));
    expect(fellBack).toBe(session.executionProvider === 'cpu');
    expect(lines.some((l) => l === 'execution provider fallback: running on cpu')).toBe(fellBack);
    await session.release();
  });

  it('rejects bytes that are not an ONNX model with a ModelError', async () => {
    await expect(loadModel(new TextEncoder().encode('not a model'))).rejects.toBeInstanceOf(ModelError);
  });
});

describe('feature building', () => {
  it('builds a [n, columns] float32 tensor from numbers and numeric strings, in record order', async () => {
    const session = await loadModel(model('affine.onnx'));
    const builder = createFeatureBuilder([affineInput], session.inputs);
    const batch = await builder.build([rec({ a: 1, b: 2, c: 3 }), rec({ a: '4', b: ' 5 ', c: 6.5 })]);
    expect(batch.included).toEqual([0, 1]);
    const x = batch.feeds.x!;
    expect(x.dims).toEqual([2, 3]);
    expect(Array.from(x.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6.5]);
    // y = x @ W + b with W = [[1,2],[0,-1],[3,1]], b = [10,-5]
    const out = await session.run(batch.feeds);
    expect(Array.from(out.y!.data as Float32Array)).toEqual([20, -2, 33.5, 4.5]);
    await session.release();
  });

  it('rejects hex, octal, binary and other non-decimal spellings instead of reading 0x10 as 16 (issue 17)', async () => {
    const session = await loadModel(model('affine.onnx'));
    const builder = createFeatureBuilder([affineInput], session.inputs);
    const odd = ['0x10', '0o7', '0b1', 'Infinity', '-Infinity', 'NaN', '1_000'];
    const batch = await builder.build([
      ...odd.map((a, i) => rec({ a, b: 2, c: 3 }, i)),
      rec({ a: '-1.5e2', b: '+2', c: '.5' }, 99),
    ]);
    expect(batch.included).toEqual([odd.length]);
    expect(batch.issues.map((i) => i.reason)).toEqual(odd.map(() => 'INVALID_VALUE'));
    expect(batch.issues[0]!.message).toBe('column "a" is not a number: "0x10"');
    expect(Array.from(batch.feeds.x!.data as Float32Array)).toEqual([-150, 2, 0.5]);
    await session.release();
  });

  it('sets aside records with missing or non-numeric values and keeps the others in order', async () => {
    const session = await loadModel(model('affine.onnx'));
    const builder = createFeatureBuilder([affineInput], session.inputs);
    const batch = await builder.build([
      rec({ a: 1, b: 2, c: 3 }),
      rec({ a: 1, b: null, c: 3 }),
      rec({ a: 'n/a', b: 2, c: 3 }),
      rec({ a: 1, b: 2, c: Infinity }),
      rec({ a: 7, b: 8, c: 9 }),
    ]);
    expect(batch.included).toEqual([0, 4]);
    expect(batch.issues.map((i) => [i.index, i.reason])).toEqual([
      [1, 'MISSING_VALUE'],
      [2, 'INVALID_VALUE'],
      [3, 'INVALID_VALUE'],
    ]);
    expect(batch.issues[1]!.message).toContain('"a"');
    expect(Array.from(batch.feeds.x!.data as Float32Array)).toEqual([1, 2, 3, 7, 8, 9]);
    await session.release();
  });

  it('fills missing values when the spec says so', async () => {
    const session = await loadModel(model('affine.onnx'));
    const builder = createFeatureBuilder([{ ...affineInput, missing: { fill: -1 } }], session.inputs);
    const batch = await builder.build([rec({ a: 1, c: 3 })]);
    expect(Array.from(batch.feeds.x!.data as Float32Array)).toEqual([1, -1, 3]);
    await session.release();
  });

  it('builds int64 and float64 tensors for models that take them', async () => {
    const ints = await loadModel(model('int64_identity.onnx'));
    const cols = ['c1', 'c2', 'c3', 'c4', 'c5'];
    const intBuilder = createFeatureBuilder(
      [{ tensor: 'ids', from: { columns: cols }, dtype: 'int64', missing: 'error' }],
      ints.inputs,
    );
    const batch = await intBuilder.build([
      rec({ c1: 1, c2: '2', c3: 3n, c4: 4, c5: 2 ** 40 }),
      rec({ c1: 1.5, c2: 0, c3: 0, c4: 0, c5: 0 }),
    ]);
    expect(batch.issues.map((i) => i.reason)).toEqual(['INVALID_VALUE']);
    const out = await ints.run(batch.feeds);
    expect(Array.from(out.ids_out!.data as BigInt64Array)).toEqual([1n, 2n, 3n, 4n, 2n ** 40n]);
    await ints.release();

    const doubles = await loadModel(model('double_sum.onnx'));
    const dBuilder = createFeatureBuilder(
      [{ tensor: 'x', from: { columns: ['p', 'q'] }, dtype: 'float64', missing: 'error' }],
      doubles.inputs,
    );
    const dOut = await doubles.run((await dBuilder.build([rec({ p: 0.1, q: 0.2 })])).feeds);
    expect((dOut.s!.data as Float64Array)[0]).toBe(0.1 + 0.2);
    await doubles.release();
  });

  it('fails fast with the fix when the spec does not match the model', async () => {
    const session = await loadModel(model('affine.onnx'));
    expect(() => createFeatureBuilder([{ ...affineInput, tensor: 'features' }], session.inputs)).toThrow(
      /declares tensor "features" but the model's inputs are x/,
    );
    expect(() => createFeatureBuilder([{ ...affineInput, dtype: 'float64' }], session.inputs)).toThrow(
      /set dtype: float32/,
    );
    // The tensor is declared (with a wrong dtype): saying it "is not fed" would send the user the wrong way.
    expect(() => createFeatureBuilder([{ ...affineInput, dtype: 'float64' }], session.inputs)).not.toThrow(
      /is not fed/,
    );
    expect(() =>
      createFeatureBuilder([{ ...affineInput, from: { columns: ['a', 'b'] } }], session.inputs),
    ).toThrow(/takes 3 values per record but 2 columns/);
    await session.release();
  });
});

describe('post-processing', () => {
  const twoOutputs: OutputTensorSpec[] = [
    {
      tensor: 'logits',
      postprocess: {
        softmax: true,
        argmax: { labels: 'labels.txt', as: 'label' },
        keep: ['score', 'probabilities'],
      },
    },
    { tensor: 'embedding', as: 'vec' },
  ];

  it('applies softmax, argmax with labels, score and raw vectors to several outputs at once', async () => {
    const session = await loadModel(model('two_outputs.onnx'));
    const post = createPostprocessor(twoOutputs, session.outputs, {
      labels: new Map([['labels.txt', ['cat', 'dog', 'eel']]]),
    });
    expect(post.columns).toEqual([
      { name: 'label', type: 'string' },
      { name: 'score', type: 'float' },
      { name: 'logits', type: 'array<float>' },
      { name: 'vec', type: 'array<float>' },
    ]);
    // logits = x @ W with W = [[1,0,2],[0,1,-1],[1,1,0],[-2,0,1]]: x=[1,0,0,0] -> [1,0,2]; x=[0,1,0,0] -> [0,1,-1]
    const x = new ort.Tensor('float32', Float32Array.from([1, 0, 0, 0, 0, 1, 0, 0]), [2, 4]);
    const result = await post.apply(await session.run({ x }), 2);
    expect(result.issues).toEqual([]);
    const [label, score, probs, vec] = result.values;
    expect(label).toEqual(['eel', 'dog']);
    const e = [Math.exp(1), Math.exp(0), Math.exp(2)];
    const sum = e[0]! + e[1]! + e[2]!;
    expect(score![0]).toBeCloseTo(e[2]! / sum, 6);
    expect((probs![1] as number[]).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    expect(vec).toEqual([
      [2, 0, 0, 0],
      [0, 2, 0, 0],
    ]);
    await session.release();
  });

  it('writes the argmax index when there is no labels file, and flags indexes the labels file lacks', async () => {
    const session = await loadModel(model('two_outputs.onnx'));
    const noLabels = createPostprocessor(
      [{ tensor: 'logits', postprocess: { softmax: false, argmax: { as: 'cls' }, keep: [] } }],
      session.outputs,
      { labels: new Map() },
    );
    const x = new ort.Tensor('float32', Float32Array.from([1, 0, 0, 0, 0, 1, 0, 0]), [2, 4]);
    const outputs = await session.run({ x });
    expect((await noLabels.apply(outputs, 2)).values[0]).toEqual([2, 1]);

    const shortLabels = createPostprocessor(
      [
        {
          tensor: 'logits',
          postprocess: { softmax: false, argmax: { labels: 'l.txt', as: 'cls' }, keep: [] },
        },
      ],
      session.outputs,
      { labels: new Map([['l.txt', ['a', 'b']]]) },
    );
    const result = await shortLabels.apply(outputs, 2);
    expect(result.issues.map((i) => [i.row, i.reason])).toEqual([[0, 'POSTPROCESS_ERROR']]);
    expect(result.values[0]).toEqual([undefined, 'b']);
    await session.release();
  });

  it('turns non-finite model outputs into INFERENCE_ERROR rows instead of predictions', async () => {
    const session = await loadModel(model('affine.onnx'));
    const post = createPostprocessor([{ tensor: 'y' }], session.outputs, { labels: new Map() });
    const x = new ort.Tensor('float32', Float32Array.from([1, 1, 1, NaN, 0, 0]), [2, 3]);
    const result = await post.apply(await session.run({ x }), 2);
    expect(result.issues.map((i) => [i.row, i.reason])).toEqual([[1, 'INFERENCE_ERROR']]);
    expect(result.values[0]).toEqual([[14, -3], undefined]);
    await session.release();
  });

  it('parses labels files with CRLF and trailing blank lines', () => {
    expect(parseLabels('malignant\r\nbenign\r\n\r\n')).toEqual(['malignant', 'benign']);
  });
});
