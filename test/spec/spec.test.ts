import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { SpecError } from '../../src/spec/errors.js';
import { loadJobSpecFile, outputColumnNames, parseJobSpec, parseJobSpecText } from '../../src/spec/load.js';
import { parseByteSize } from '../../src/spec/schema.js';

const valid = {
  name: 'churn_scoring',
  input: { uri: 's3://lake/raw/customers/', format: 'parquet', id: 'customer_id' },
  model: {
    registry: { group: 'churn-model' },
    inputs: [{ tensor: 'features', from: { columns: ['age', 'tenure'] } }],
    outputs: [{ tensor: 'probabilities', postprocess: { argmax: { labels: 'labels.txt' }, keep: 'score' } }],
  },
  output: { uri: 's3://lake/predictions/churn/', passthrough: ['region'] },
};

function issuesOf(raw: unknown): SpecError['issues'] {
  try {
    parseJobSpec(raw);
  } catch (err) {
    if (err instanceof SpecError) return err.issues;
    throw err;
  }
  throw new Error('expected the spec to be rejected');
}

const withPatch = (patch: (s: Record<string, unknown>) => void): unknown => {
  const copy = structuredClone(valid) as Record<string, unknown>;
  patch(copy);
  return copy;
};

describe('job spec', () => {
  it('run.cpuFallback: a boolean, off by default', () => {
    expect(parseJobSpec(withPatch((s) => (s.run = { cpuFallback: true }))).run.cpuFallback).toBe(true);
    const issues = issuesOf(withPatch((s) => (s.run = { cpuFallback: 'yes' })));
    expect(issues.map((i) => i.path)).toContain('run.cpuFallback');
  });

  it('triggers: checked with the spec (validate finds them before cdk synth), each problem naming its field', () => {
    const issues = issuesOf(
      withPatch(
        (s) => (s.triggers = [{ s3: { prefix: 123 } }, { schedule: { cron: 'every day' } }, { email: {} }]),
      ),
    );
    expect(issues.map((i) => i.path)).toEqual([
      'triggers[0].s3.prefix',
      'triggers[1].schedule.cron',
      'triggers[2]',
    ]);
    expect(issues[2]!.message).toMatch(/exactly one key, the trigger kind: s3, schedule, volume/);
    // Valid triggers are kept as written: local runs ignore them.
    const spec = parseJobSpec(withPatch((s) => (s.triggers = [{ schedule: { rate: '1 day' } }])));
    expect(spec.triggers).toEqual([{ schedule: { rate: '1 day' } }]);
  });

  it('applies every default so later stages read one resolved spec', () => {
    const spec = parseJobSpec(valid);
    expect(spec.input.manifest).toBe('auto');
    expect(spec.model.registry).toEqual({ group: 'churn-model', version: 'latest-approved' });
    expect(spec.model.inputs[0]).toMatchObject({ dtype: 'float32', missing: 'error' });
    expect(spec.model.outputs[0]!.postprocess).toEqual({
      softmax: false,
      argmax: { labels: 'labels.txt', as: 'label' },
      keep: ['score'],
    });
    expect(spec.output.format).toBe('parquet');
    expect(spec.run).toEqual({
      batchSize: 'auto',
      checkpoint: { records: 250_000, seconds: 60 },
      shards: { targetRecords: 1_000_000, targetBytes: 1024 ** 3, max: 10_000 },
      compute: 'gpu',
      cpuFallback: false,
      maxRounds: 2,
    });
    expect(spec.validation).toEqual({ maxErrorRate: 0.001, maxFailedShards: 0 });
    expect(outputColumnNames(spec)).toEqual(['customer_id', 'region', 'label', 'score']);
  });

  it('names the field, the value and the fix for a bad table name', () => {
    const [issue] = issuesOf(withPatch((s) => (s.name = 'Churn-Scoring')));
    expect(issue).toMatchObject({ path: 'name', value: '"Churn-Scoring"' });
    expect(issue!.message).toMatch(/lowercase letter.*underscores/);
  });

  it('names the exact nested path of a bad enum value and lists the allowed values', () => {
    const [issue] = issuesOf(
      withPatch((s) => ((s.model as { inputs: { dtype?: string }[] }).inputs[0]!.dtype = 'float8')),
    );
    expect(issue).toMatchObject({ path: 'model.inputs[0].dtype', value: '"float8"' });
    expect(issue!.message).toContain('float32, float64, int32, int64');
  });

  it('reports a missing required field as required', () => {
    const [issue] = issuesOf(withPatch((s) => delete (s.input as Record<string, unknown>).format));
    expect(issue).toMatchObject({ path: 'input.format', value: 'undefined' });
    expect(issue!.message).toMatch(/required/);
  });

  it('rejects unknown fields, naming them (typos must not be ignored silently)', () => {
    const [issue] = issuesOf(withPatch((s) => ((s.output as Record<string, unknown>).passtrough = ['x'])));
    expect(issue!.path).toBe('output');
    expect(issue!.message).toContain('"passtrough"');
  });

  it('requires exactly one of model.registry and model.uri', () => {
    const both = issuesOf(withPatch((s) => ((s.model as Record<string, unknown>).uri = 's3://m/model.onnx')));
    expect(both[0]!.message).toMatch(/exactly one of model.registry .* or model.uri/);
    const neither = issuesOf(withPatch((s) => delete (s.model as Record<string, unknown>).registry));
    expect(neither[0]!.path).toBe('model');
  });

  it('rejects keep without argmax, pointing at postprocess.keep', () => {
    const [issue] = issuesOf(
      withPatch(
        (s) =>
          ((s.model as Record<string, unknown>).outputs = [{ tensor: 'p', postprocess: { keep: 'score' } }]),
      ),
    );
    expect(issue!.path).toBe('model.outputs[0].postprocess.keep');
  });

  it('rejects an output column produced twice', () => {
    const issues = issuesOf(
      withPatch((s) => ((s.output as Record<string, unknown>).passthrough = ['label'])),
    );
    expect(issues[0]!.value).toBe('"label"');
    expect(issues[0]!.message).toMatch(/produced twice/);
  });

  it('rejects more shards than AWS Batch can run in one array job', () => {
    const [issue] = issuesOf(withPatch((s) => (s.run = { shards: { max: 20_000 } })));
    expect(issue).toMatchObject({ path: 'run.shards.max', value: '20000' });
    expect(issue!.message).toMatch(/10000/);
  });

  it('rejects an output that overlaps the input, so a run never reads its own output', () => {
    const [issue] = issuesOf(
      withPatch((s) => ((s.output as Record<string, unknown>).uri = 's3://lake/raw/customers/out/')),
    );
    expect(issue!.path).toBe('output.uri');
    expect(issue!.message).toMatch(/overlaps input.uri/);
  });

  it('rejects relative paths where there is no spec file to resolve them against', () => {
    const [issue] = issuesOf(withPatch((s) => ((s.input as Record<string, unknown>).uri = 'data/')));
    expect(issue!.path).toBe('input.uri');
    expect(issue!.message).toMatch(/relative paths are only allowed in a spec file/);
  });

  it('reports every problem at once', () => {
    const issues = issuesOf(
      withPatch((s) => {
        s.name = '1bad';
        s.validation = { maxErrorRate: 2 };
      }),
    );
    expect(issues.map((i) => i.path).sort()).toEqual(['name', 'validation.maxErrorRate']);
  });

  it('loads YAML files and resolves relative paths against the spec file', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'spec-'));
    const file = path.join(dir, 'job.yaml');
    writeFileSync(
      file,
      [
        'name: demo',
        'input: { uri: data/, format: csv }',
        'model:',
        '  uri: models/m.onnx',
        '  inputs: [{ tensor: x, from: { columns: [a] } }]',
        '  outputs: [{ tensor: y }]',
        'output: { uri: out }',
        'run: { shards: { targetBytes: 64MiB } }',
      ].join('\n'),
    );
    const spec = await loadJobSpecFile(file);
    expect(spec.input.uri).toBe(`file://${dir}/data/`);
    expect(spec.output.uri).toBe(`file://${dir}/out/`);
    expect(spec.model.uri).toBe(`file://${dir}/models/m.onnx`);
    expect(spec.run.shards.targetBytes).toBe(64 * 2 ** 20);
  });

  it('reports unparseable YAML and unreadable files as spec errors naming the file', async () => {
    expect(() => parseJobSpecText('name: [unclosed', { source: 'job.yaml' })).toThrow(
      /Invalid job spec job.yaml/,
    );
    await expect(loadJobSpecFile('/nonexistent/job.yaml')).rejects.toThrow(
      /no such file, and its folder does not exist either: check the path/,
    );
  });

  it('says of a missing spec file which specs its folder holds, and of a folder that it needs a file', async () => {
    const folder = mkdtempSync(path.join(os.tmpdir(), 'spec-missing-'));
    try {
      writeFileSync(path.join(folder, 'demo.yaml'), 'name: x\n');
      writeFileSync(path.join(folder, 'job.json'), '{}');
      writeFileSync(path.join(folder, 'notes.txt'), 'not a spec');
      await expect(loadJobSpecFile(path.join(folder, 'demo.yml'))).rejects.toThrow(
        `no such file; job specs in that folder: ${path.join(folder, 'demo.yaml')}, ${path.join(folder, 'job.json')}`,
      );
      await expect(loadJobSpecFile(folder)).rejects.toThrow(/is a folder: give the path of a job spec file/);
      rmSync(path.join(folder, 'demo.yaml'));
      rmSync(path.join(folder, 'job.json'));
      await expect(loadJobSpecFile(path.join(folder, 'demo.yml'))).rejects.toThrow(
        /no such file, and no job spec \(\.yaml, \.yml or \.json\) in that folder: check the path/,
      );
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it('parses byte sizes with binary and decimal units', () => {
    expect(parseByteSize('1GiB')).toBe(2 ** 30);
    expect(parseByteSize('1.5 MB')).toBe(1_500_000);
    expect(parseByteSize(4096)).toBe(4096);
    expect(parseByteSize('12 parsecs')).toBeUndefined();
    expect(parseByteSize('-1')).toBeUndefined();
  });
});

describe('the README job spec reference', () => {
  it('validates as written, with every default it documents', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('## Job spec reference'));
    const yaml = /```yaml\n([\s\S]*?)```/.exec(section)![1]!;
    const spec = parseJobSpecText(yaml, { baseDir: '/specs' });
    expect(spec).toMatchObject({
      input: { manifest: 'auto', format: 'csv', id: 'patient_id' },
      model: { registry: { group: 'breast-cancer-mlp', version: 'latest-approved' } },
      output: { format: 'parquet', singleFile: false },
      run: { batchSize: 'auto', compute: 'gpu', maxRounds: 2 },
      validation: { maxErrorRate: 0.001, maxFailedShards: 0 },
    });
  });
});
