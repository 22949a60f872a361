import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parse as parseYaml } from 'yaml';
import { preflight, type Problem } from '../../src/preflight/index.js';
import { checkModel } from '../../src/preflight/model-check.js';
import { readOnnxSignature } from '../../src/preflight/onnx-signature.js';
import { didYouMean } from '../../src/preflight/problems.js';
import { LocalModelRegistry } from '../../src/registry/local.js';
import { parseJobSpec } from '../../src/spec/load.js';
import type { JobSpec } from '../../src/spec/schema.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import { expectIn } from '../support/expect-in.js';
import { at, edit } from './helpers.js';

const store = new LocalObjectStore();
let root: string;
let registry: LocalModelRegistry;
let base: Record<string, unknown>;

/** The shipped breast-cancer example (CSV input, 30 columns, a [N, 2] output with 2 labels), changed by `edit`. */
function spec(change: (raw: Record<string, unknown>) => void = () => {}): JobSpec {
  const raw = structuredClone(base);
  change(raw);
  return parseJobSpec(raw, { baseDir: root });
}
const check = (s: JobSpec): Promise<Problem[]> =>
  preflight(s, { store, registry, specFolder: pathToFileURL(root).href + '/' });

beforeAll(() => {
  root = mkdtempSync(path.join(tmpdir(), 'preflight-'));
  cpSync(path.resolve('examples/breast-cancer'), root, { recursive: true });
  registry = new LocalModelRegistry(store, pathToFileURL(path.join(root, 'registry')).href + '/');
  base = parseYaml(readFileSync(path.join(root, 'job.yaml'), 'utf8')) as Record<string, unknown>;
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('preflight on the shipped example', () => {
  it('finds nothing wrong with the example as shipped', async () => {
    expect(await check(spec())).toEqual([]);
  });

  it('names the model inputs for a wrong tensor name, with a did-you-mean', async () => {
    const problems = await check(spec((r) => edit(r, ['model', 'inputs', 0, 'tensor'], 'featurez')));
    expectIn(problems, 'problems').toHaveLength(2); // the unknown name, and the model input nobody feeds
    expect(problems[0]).toMatchObject({
      code: 'UnknownTensor',
      field: 'model.inputs[0].tensor',
      value: '"featurez"',
    });
    expect(problems[0]!.found).toContain('"features" (float32 [N, 30])');
    expect(problems[0]!.fix).toContain('did you mean "features"?');
    expect(problems[1]).toMatchObject({ code: 'UnfedTensor' });
  });

  it('names the CSV header for a missing column', async () => {
    const problems = await check(
      spec((r) => edit(r, ['model', 'inputs', 0, 'from', 'columns', 3], 'mean_areaa')),
    );
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({
      code: 'MissingColumn',
      field: 'model.inputs[0].from.columns[3]',
      value: '"mean_areaa"',
    });
    expect(problems[0]!.found).toContain('"mean_area"');
    expect(problems[0]!.fix).toContain('did you mean "mean_area"?');
  });

  it('checks input.id and output.passthrough too', async () => {
    const problems = await check(
      spec((r) => {
        edit(r, ['input', 'id'], 'patient');
        edit(r, ['output', 'passthrough'], ['diagnosys']);
        edit(r, ['output', 'schema'], { patient: 'string', label: 'string', score: 'float' });
      }),
    );
    expect(problems.map((p) => [p.code, p.field])).toEqual([
      ['MissingColumn', 'input.id'],
      ['MissingColumn', 'output.passthrough[0]'],
    ]);
  });

  it('names the model dtype for a wrong dtype', async () => {
    const problems = await check(spec((r) => edit(r, ['model', 'inputs', 0, 'dtype'], 'float64')));
    expect(problems).toEqual([
      {
        code: 'DtypeMismatch',
        field: 'model.inputs[0].dtype',
        value: 'float64',
        found: `the model's input "features" is float32`,
        fix: 'set model.inputs[0].dtype: float32',
      },
    ]);
  });

  it('counts a labels file against the output width', async () => {
    writeFileSync(path.join(root, 'three-labels.txt'), 'malignant\nbenign\nunknown\n');
    const problems = await check(
      spec((r) =>
        edit(
          r,
          ['model', 'outputs', 0, 'postprocess', 'argmax', 'labels'],
          path.join(root, 'three-labels.txt'),
        ),
      ),
    );
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({
      code: 'LabelCount',
      field: 'model.outputs[0].postprocess.argmax.labels',
    });
    expect(problems[0]!.found).toContain('has 3 labels');
    expect(problems[0]!.found).toContain('[N, 2]: 2 classes');
  });

  it('checks output.schema against the columns and types the job writes', async () => {
    const problems = await check(
      spec((r) =>
        edit(r, ['output', 'schema'], {
          patient_id: 'string',
          diagnosis: 'string',
          label: 'int',
          score: 'double',
        }),
      ),
    );
    expect(problems.map((p) => [p.code, p.field])).toEqual([
      ['SchemaType', 'output.schema.label'],
      ['SchemaType', 'output.schema.score'],
    ]);
    expect(problems[0]!.found).toContain('writes "label" as string');
    expect(problems[0]!.fix).toBe('declare label: string, or change the postprocess that makes it');
    expect(problems[1]!.found).toContain('writes "score" as float');
  });

  it('counts columns against the last dimension', async () => {
    const problems = await check(
      spec((r) => (at(r, ['model', 'inputs', 0, 'from', 'columns']) as string[]).pop()),
    );
    expect(problems.map((p) => p.code)).toEqual(['ColumnCount']);
    expect(problems[0]!.fix).toBe('list exactly 30 columns, in the order the model was trained on');
  });

  it('reports a corrupt model artifact as unreadable', async () => {
    writeFileSync(path.join(root, 'broken.onnx'), 'not a model');
    const problems = await check(
      spec((r) => {
        edit(r, ['model', 'registry'], undefined);
        edit(r, ['model', 'uri'], path.join(root, 'broken.onnx'));
        edit(
          r,
          ['model', 'outputs', 0, 'postprocess', 'argmax', 'labels'],
          path.join(root, 'registry/breast-cancer-mlp/1/labels.txt'),
        );
      }),
    );
    expect(problems.map((p) => p.code)).toEqual(['ModelUnreadable']);
  });
});

describe('preflight on other inputs', () => {
  it('reads the Parquet schema and a sample of JSON lines', async () => {
    const columns = at(base, ['model', 'inputs', 0, 'from', 'columns']) as string[];
    const parquetDir = path.join(root, 'pq');
    mkdirSync(parquetDir);
    const data = [
      { name: 'patient_id', data: ['a'], type: 'STRING' as const },
      ...columns.slice(1).map((c) => ({ name: c, data: [1], type: 'FLOAT' as const })),
    ];
    writeFileSync(
      path.join(parquetDir, 'a.parquet'),
      new Uint8Array(parquetWriteBuffer({ columnData: data })),
    );
    const pq = await check(
      spec((r) => {
        edit(r, ['input'], { uri: parquetDir, format: 'parquet', id: 'patient_id' });
        edit(r, ['output', 'passthrough'], []);
        edit(r, ['output', 'schema'], undefined);
      }),
    );
    expect(pq.map((p) => [p.code, p.field])).toEqual([['MissingColumn', 'model.inputs[0].from.columns[0]']]);

    const jsonDir = path.join(root, 'jl');
    mkdirSync(jsonDir);
    const record = Object.fromEntries(columns.map((c) => [c, 1]));
    writeFileSync(path.join(jsonDir, 'a.jsonl'), `${JSON.stringify(record)}\n${JSON.stringify(record)}\n`);
    const jl = await check(
      spec((r) => {
        edit(r, ['input'], { uri: jsonDir, format: 'jsonl', id: 'patient_id' });
        edit(r, ['output', 'passthrough'], []);
        edit(r, ['output', 'schema'], undefined);
      }),
    );
    expect(jl.map((p) => [p.code, p.field])).toEqual([['MissingColumn', 'input.id']]);
  });
});

describe('model checks', () => {
  it('checks pooling against the output rank', async () => {
    const signature = await readOnnxSignature(
      store,
      pathToFileURL(path.resolve('test/fixtures/models/two_outputs.onnx')).href,
    );
    const s = parseJobSpec({
      name: 'p',
      input: { uri: 'file:///in/', format: 'jsonl' },
      model: {
        uri: 'file:///m/two_outputs.onnx',
        inputs: [{ tensor: 'x', from: { columns: ['a', 'b', 'c', 'd'] } }],
        outputs: [{ tensor: 'embedding', postprocess: { pool: 'cls' } }],
      },
      output: { uri: 'file:///out/' },
    });
    expect(checkModel(s, signature).map((p) => [p.code, p.field])).toEqual([
      ['PoolingRank', 'model.outputs[0].postprocess.pool'],
    ]);
  });

  it('suggests near names only', () => {
    expect(didYouMean('featurez', ['features', 'mask'])).toBe('features');
    expect(didYouMean('Features', ['features'])).toBe('features');
    expect(didYouMean('zzz', ['features', 'mask'])).toBeUndefined();
  });
});
