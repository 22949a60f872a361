import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { describe, expect, it } from '@jest/globals';
import { SpecError } from '../../src/spec/errors.js';
import {
  loadJobSpecFile,
  modelFileReferences,
  outputColumnNames,
  parseJobSpec,
} from '../../src/spec/load.js';
import { jobSpecSchema } from '../../src/spec/schema.js';

const base = {
  name: 'embeddings',
  input: { uri: 's3://lake/docs/', format: 'jsonl' },
  model: { uri: 's3://models/encoder/model.onnx' },
  output: { uri: 's3://lake/out/' },
};
const spec = (model: Record<string, unknown>, extra: Record<string, unknown> = {}): unknown => ({
  ...base,
  ...extra,
  model: { ...base.model, ...model },
});

function issuesOf(raw: unknown): SpecError['issues'] {
  try {
    parseJobSpec(raw);
  } catch (err) {
    if (err instanceof SpecError) return err.issues;
    throw err;
  }
  throw new Error('expected the spec to be rejected');
}

const textInput = {
  from: { text: 'sentence', tokenizer: 'tokenizer.json', maxLength: 64 },
};
const pooled = {
  tensor: 'last_hidden_state',
  as: 'embedding',
  postprocess: { pool: 'mean', normalize: true },
};

describe('model.inputs kinds', () => {
  it('resolves a text, an image, an array and a tabular entry with their defaults', () => {
    const parsed = parseJobSpec(
      spec({
        inputs: [
          textInput,
          {
            tensor: 'pixels',
            from: { image: 'photo', resize: { shorterSide: 40 }, crop: { height: 32, width: 32 } },
          },
          { tensor: 'extra', from: { array: 'vec' }, dtype: 'float16', shape: [-1, 4] },
          { tensor: 'tab', from: { columns: ['a', 'b'] } },
        ],
        outputs: [pooled],
      }),
    );
    const [text, image, array, tab] = parsed.model.inputs;
    expect(text).toEqual(textInput);
    expect(image).toEqual({
      tensor: 'pixels',
      dtype: 'float32',
      from: {
        image: 'photo',
        resize: { shorterSide: 40 },
        crop: { height: 32, width: 32 },
        layout: 'NCHW',
        channels: 'RGB',
        resample: 'linear',
        rescale: 1 / 255,
        mean: [0, 0, 0],
        std: [1, 1, 1],
      },
    });
    expect(array).toEqual({ tensor: 'extra', from: { array: 'vec' }, dtype: 'float16', shape: [-1, 4] });
    expect(tab).toEqual({ tensor: 'tab', from: { columns: ['a', 'b'] }, dtype: 'float32', missing: 'error' });
    expect(parsed.model.outputs[0]!.postprocess).toMatchObject({
      pool: 'mean',
      mask: 'attention_mask',
      normalize: true,
    });
    expect(outputColumnNames(parsed)).toEqual(['embedding']);
    // A resolved spec parses again to itself: plan.json stores it and every worker re-validates it.
    expect(jobSpecSchema.parse(JSON.parse(JSON.stringify(parsed)))).toEqual(parsed);
  });

  it('names the field, value and fix of a bad text entry', () => {
    const issues = issuesOf(
      spec({
        inputs: [
          { tensor: 'input_ids', from: { text: 'sentence', tokenizer: 'tokenizer.json', maxLength: 1 } },
        ],
        outputs: [pooled],
      }),
    );
    const byPath = new Map(issues.map((i) => [i.path, i]));
    expect(byPath.get('model.inputs[0].tensor')!.message).toMatch(/tensors: \{ inputIds/);
    expect(byPath.get('model.inputs[0].from.maxLength')).toMatchObject({ value: '1' });
    expect(byPath.get('model.inputs[0].from.maxLength')!.message).toMatch(/at least 2/);
  });

  it('rejects an entry with no source or two sources, and fields of another kind', () => {
    const none = issuesOf(spec({ inputs: [{ tensor: 'x', from: { colums: ['a'] } }], outputs: [pooled] }));
    expect(none[0]).toMatchObject({ path: 'model.inputs[0].from' });
    expect(none[0]!.message).toMatch(/columns \(tabular\), array .* text .* image/);
    const two = issuesOf(
      spec({ inputs: [{ tensor: 'x', from: { columns: ['a'], array: 'b' } }], outputs: [pooled] }),
    );
    expect(two[0]!.message).toMatch(/names columns and array/);
    const misplaced = issuesOf(
      spec({ inputs: [{ tensor: 'x', from: { array: 'v' }, missing: 'error' }], outputs: [pooled] }),
    );
    expect(misplaced[0]).toMatchObject({ path: 'model.inputs[0].missing' });
    expect(misplaced[0]!.message).toMatch(/does not apply to array inputs .*tabular inputs/);
  });

  it('requires an image size every record shares, and float-only normalisation', () => {
    const noCrop = issuesOf(
      spec({
        inputs: [{ tensor: 'p', from: { image: 'i', resize: { shorterSide: 256 } } }],
        outputs: [pooled],
      }),
    );
    expect(noCrop[0]).toMatchObject({ path: 'model.inputs[0].from.crop' });
    const none = issuesOf(spec({ inputs: [{ tensor: 'p', from: { image: 'i' } }], outputs: [pooled] }));
    expect(none[0]!.message).toMatch(/every image of a batch needs the same size/);
    const uint8 = issuesOf(
      spec({
        inputs: [
          { tensor: 'p', dtype: 'uint8', from: { image: 'i', resize: { height: 2, width: 2 }, mean: 0.5 } },
        ],
        outputs: [pooled],
      }),
    );
    expect(uint8[0]).toMatchObject({ path: 'model.inputs[0].from.mean', value: '0.5' });
    const channels = issuesOf(
      spec({
        inputs: [{ tensor: 'p', from: { image: 'i', resize: { height: 2, width: 2 }, std: [1, 2] } }],
        outputs: [pooled],
      }),
    );
    expect(channels[0]!.message).toMatch(/must have 3 value\(s\)/);
  });

  it('checks array shapes and pad values against the dtype', () => {
    const issues = issuesOf(
      spec({
        inputs: [{ tensor: 'x', from: { array: 'v' }, dtype: 'int8', shape: [2, 0], pad: 0.5 }],
        outputs: [pooled],
      }),
    );
    expect(issues.map((i) => i.path).sort()).toEqual([
      'model.inputs[0].pad',
      'model.inputs[0].shape[0]',
      'model.inputs[0].shape[1]',
    ]);
  });

  it('rejects a graph input fed twice, including by a text entry', () => {
    const issues = issuesOf(
      spec({
        inputs: [textInput, { tensor: 'input_ids', from: { array: 'ids' }, dtype: 'int64' }],
        outputs: [pooled],
      }),
    );
    expect(issues[0]).toMatchObject({ path: 'model.inputs[1]' });
    expect(issues[0]!.message).toMatch(/"input_ids", which model.inputs\[0\] feeds already/);
  });
});

describe('model.outputs post-processing and model.processor', () => {
  it('lists top-k, argmax and processor columns in the order the worker writes them', () => {
    const parsed = parseJobSpec(
      spec({
        inputs: [textInput],
        outputs: [
          {
            tensor: 'logits',
            postprocess: {
              sigmoid: true,
              argmax: { labels: 'labels.txt' },
              keep: 'score',
              topK: { k: 3, as: { scores: 'top3' } },
            },
          },
          pooled,
        ],
        processor: { module: 'processors/post.mjs', columns: { extra: 'array<string>' } },
      }),
    );
    expect(parsed.model.outputs[0]!.postprocess!.topK).toEqual({
      k: 3,
      labels: 'labels.txt',
      as: { labels: 'top_labels', scores: 'top3' },
    });
    expect(outputColumnNames(parsed)).toEqual(['label', 'score', 'top_labels', 'top3', 'embedding', 'extra']);
    expect(modelFileReferences(parsed)).toEqual([
      { ref: 'tokenizer.json', field: 'model.inputs[0].from.tokenizer', kind: 'tokenizer' },
      { ref: 'labels.txt', field: 'model.outputs[0].postprocess.argmax.labels', kind: 'labels' },
      { ref: 'processors/post.mjs', field: 'model.processor.module', kind: 'processor' },
    ]);
  });

  it('takes a processor as a bare module path, and then needs no declared inputs', () => {
    const parsed = parseJobSpec(spec({ processor: 'processors/pre.mjs', outputs: [{ tensor: 'y' }] }));
    expect(parsed.model.processor).toEqual({ module: 'processors/pre.mjs' });
    expect(parsed.model.inputs).toEqual([]);
    const [bad] = issuesOf(spec({ processor: 'processors/pre.py', outputs: [{ tensor: 'y' }] }));
    expect(bad).toMatchObject({ path: 'model.processor', value: '"processors/pre.py"' });
    expect(bad!.message).toMatch(/JavaScript module/);
    const [noOutputs] = issuesOf(spec({ processor: 'processors/pre.mjs' }));
    expect(noOutputs).toMatchObject({ path: 'model.outputs' });
    expect(noOutputs!.message).toMatch(/model.processor.columns/);
  });

  it('rejects contradictory post-processing, naming the field', () => {
    const bad = (postprocess: Record<string, unknown>): SpecError['issues'] =>
      issuesOf(spec({ inputs: [textInput], outputs: [{ tensor: 'y', postprocess }] }));
    expect(bad({ softmax: true, sigmoid: true })[0]).toMatchObject({
      path: 'model.outputs[0].postprocess.sigmoid',
    });
    expect(bad({ pool: 'mean', argmax: {} })[0]!.message).toMatch(/second entry for the same tensor/);
    expect(bad({ pool: 'cls', mask: 'm' })[0]).toMatchObject({ path: 'model.outputs[0].postprocess.mask' });
    expect(bad({ topK: { k: 0 } })[0]).toMatchObject({
      path: 'model.outputs[0].postprocess.topK.k',
      value: '0',
    });
  });

  it('accepts list column types in output.schema', () => {
    const parsed = parseJobSpec(
      spec(
        { inputs: [textInput], outputs: [{ tensor: 'logits', postprocess: { topK: { k: 2 } } }] },
        {
          output: { uri: 's3://lake/out/', schema: { top_labels: 'array<int>', top_scores: 'array<float>' } },
        },
      ),
    );
    expect(parsed.output.schema).toEqual({ top_labels: 'array<int>', top_scores: 'array<float>' });
  });
});

describe('the text-embeddings example', () => {
  const example = (name: string): string =>
    fileURLToPath(new URL(`../../examples/text-embeddings/${name}`, import.meta.url));

  it('ships a valid job spec', async () => {
    const job = await loadJobSpecFile(example('job.yaml'));
    expect(outputColumnNames(job)).toEqual(['id', 'text', 'embedding']);
    expect(modelFileReferences(job).map((r) => r.ref)).toEqual(['tokenizer.json']);
  });

  it('documents a model section that validates as written', () => {
    const readme = readFileSync(example('README.md'), 'utf8');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(readme)![1]!;
    const parsed = parseJobSpec(
      { ...base, ...(YAML.parse(yaml) as Record<string, unknown>) },
      { baseDir: '/specs' },
    );
    expect(parsed.model.inputs).toHaveLength(4);
    expect(outputColumnNames(parsed)).toEqual([
      'embedding',
      'label',
      'score',
      'logits',
      'top_labels',
      'top_scores',
      'sentence_embedding',
      'verdict',
      'confidence',
    ]);
  });
});
