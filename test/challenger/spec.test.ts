/**
 * model.challenger and validation.challenger in the job spec (src/spec/challenger.ts): what is accepted, each rule
 * with its message, and the spec as the challenger alone would run it.
 */
import { describe, expect, it } from '@jest/globals';
import { challengerOutputUri, challengerSpecOf } from '../../src/spec/challenger.js';
import { SpecError } from '../../src/spec/errors.js';
import { parseJobSpec } from '../../src/spec/load.js';

const base = {
  name: 'churn',
  input: { uri: 's3://lake/in/', format: 'csv', id: 'customer_id' },
  model: {
    registry: { group: 'churn-model', version: 1 },
    inputs: [{ tensor: 'features', from: { columns: ['a', 'b'] } }],
    outputs: [
      {
        tensor: 'probabilities',
        postprocess: { argmax: { labels: 'labels.txt', as: 'label' }, keep: ['score'] },
      },
    ],
  },
  output: {
    uri: 's3://lake/out/',
    passthrough: ['region'],
    schema: { customer_id: 'string', label: 'string', score: 'float' },
  },
};

function issuesOf(raw: unknown): { path: string; message: string }[] {
  try {
    parseJobSpec(raw);
    return [];
  } catch (err) {
    if (err instanceof SpecError) return err.issues.map((i) => ({ path: i.path, message: i.message }));
    throw err;
  }
}

const withChallenger = (challenger: unknown, validation?: unknown) => ({
  ...base,
  model: { ...base.model, challenger },
  ...(validation ? { validation: { challenger: validation } } : {}),
});

describe('model.challenger', () => {
  it('accepts a registry version or a URI, with thresholds', () => {
    const spec = parseJobSpec(
      withChallenger({ registry: { group: 'churn-model', version: 2 } }, { minAgreement: 0.98 }),
    );
    expect(spec.model.challenger?.registry).toEqual({ group: 'churn-model', version: 2 });
    expect(spec.validation.challenger).toEqual({ minAgreement: 0.98 });
    expect(
      parseJobSpec(withChallenger({ uri: 's3://models/churn/v3/model.onnx' })).model.challenger?.uri,
    ).toBe('s3://models/churn/v3/model.onnx');
  });

  it('rejects both or neither of registry and uri, the champion itself, and an unknown field', () => {
    expect(issuesOf(withChallenger({}))).toEqual([
      {
        path: 'model.challenger',
        message: expect.stringContaining('exactly one of model.challenger.registry'),
      },
    ]);
    expect(issuesOf(withChallenger({ registry: { group: 'churn-model', version: 1 } }))).toEqual([
      { path: 'model.challenger.registry', message: expect.stringContaining('is the champion itself') },
    ]);
    expect(issuesOf(withChallenger({ uri: 's3://models/x.onnx', versoin: 2 }))[0]?.message).toContain(
      'unknown field',
    );
  });

  it('rejects validation.challenger without a challenger, and out-of-range thresholds', () => {
    expect(issuesOf({ ...base, validation: { challenger: { minAgreement: 0.9 } } })).toEqual([
      { path: 'validation.challenger', message: expect.stringContaining('model.challenger is not set') },
    ]);
    expect(issuesOf(withChallenger({ uri: 's3://models/x.onnx' }, { minAgreement: 1.5 }))[0]?.path).toBe(
      'validation.challenger.minAgreement',
    );
  });

  it("checks the challenger's own output columns like the champion's", () => {
    const issues = issuesOf(
      withChallenger({ uri: 's3://models/x.onnx', outputs: [{ tensor: 'p', as: '_bad' }] }),
    );
    expect(issues).toEqual([
      { path: 'model.challenger.outputs', message: expect.stringContaining('may not start with "_"') },
    ]);
  });
});

describe('challengerSpecOf', () => {
  it('is the spec as the challenger alone would run it: its model, the sibling table under _challenger/', () => {
    const spec = parseJobSpec(
      withChallenger({ registry: { group: 'churn-model', version: 2 } }, { minAgreement: 0.9 }),
    );
    const challenger = challengerSpecOf(spec)!;
    expect(challenger.name).toBe('churn_challenger');
    expect(challenger.output.uri).toBe('s3://lake/out/_challenger/');
    expect(challengerOutputUri('s3://lake/out')).toBe('s3://lake/out/_challenger/');
    expect(challenger.model.registry).toEqual({ group: 'churn-model', version: 2 });
    expect(challenger.model.challenger).toBeUndefined();
    expect(challenger.model.inputs).toEqual(spec.model.inputs);
    expect(challenger.model.outputs).toEqual(spec.model.outputs);
    expect(challenger.output.schema).toEqual(spec.output.schema);
    expect(challenger.validation.challenger).toBeUndefined();
    expect(challengerSpecOf(parseJobSpec(base))).toBeUndefined();
  });

  it('keeps only the identity columns of output.schema when the challenger has outputs of its own', () => {
    const spec = parseJobSpec(
      withChallenger({ uri: 's3://models/x.onnx', outputs: [{ tensor: 'logits', as: 'raw' }] }),
    );
    const challenger = challengerSpecOf(spec)!;
    expect(challenger.model.uri).toBe('s3://models/x.onnx');
    expect(challenger.model.registry).toBeUndefined();
    expect(challenger.model.outputs.map((o) => o.tensor)).toEqual(['logits']);
    expect(challenger.output.schema).toEqual({ customer_id: 'string' });
  });
});
