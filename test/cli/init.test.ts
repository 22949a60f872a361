/**
 * `init <model> <sample>` on the shipped examples, checked by the real `validate` (schema, real model signature, the
 * sample's columns): the tabular CSV example through its local registry, the text example with its encoder. And the
 * inputs init must refuse with a precise line: a model that is not ONNX, a sample it cannot read, a sample without
 * the columns the model needs.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { buildStarterSpec, initCommand, initResultSchema } from '../../src/cli/commands/init.js';
import { validateCommand } from '../../src/cli/commands/validate.js';
import type { CommandContext } from '../../src/cli/context.js';
import { CliError, exitCodeOf } from '../../src/cli/errors.js';
import { main } from '../../src/cli/main.js';
import { loadJobSpecFile } from '../../src/spec/load.js';
import { expectIn } from '../support/expect-in.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const EXAMPLES = `${ROOT}examples/`;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'init-'));
  dirs.push(dir);
  return dir;
}

function context(cwd: string) {
  const out: string[] = [];
  const err: string[] = [];
  const ctx: CommandContext = {
    io: {
      stdout: { write: (t: string) => out.push(t), isTTY: false },
      stderr: { write: (t: string) => err.push(t), isTTY: false },
      env: { NO_COLOR: '1' },
      cwd,
    },
    exit: () => undefined,
    interrupted: new AbortController().signal,
  };
  return { ctx, out, err };
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  const err = await promise.then(
    () => new Error('expected a failure'),
    (e: unknown) => e as Error,
  );
  expect(err).toBeInstanceOf(CliError);
  expect(exitCodeOf(err)).toBe(2);
  expect(err.message).not.toContain('\n');
  return err;
}

describe('init on the shipped examples, then validate', () => {
  it('breast-cancer (CSV, local registry): id, the 30 feature columns, argmax over labels.txt; validate exits 0', async () => {
    const dir = tempDir();
    cpSync(`${EXAMPLES}breast-cancer/data`, path.join(dir, 'data'), { recursive: true });
    cpSync(`${EXAMPLES}breast-cancer/registry`, path.join(dir, 'registry'), { recursive: true });
    const { ctx, out } = context(dir);
    expect(await initCommand('breast-cancer-mlp', 'data/', { json: true }, ctx)).toBe(0);
    const result = initResultSchema.parse(JSON.parse(out.join('')));
    expect(result.file).toBe(path.join(dir, 'job.yaml'));
    expect(result.todos).toEqual([]);
    expect(readFileSync(path.join(dir, 'job.yaml'), 'utf8')).toBe(result.spec);

    const spec = await loadJobSpecFile(path.join(dir, 'job.yaml'));
    const example = await loadJobSpecFile(`${EXAMPLES}breast-cancer/job.yaml`);
    expect(spec.name).toBe('breast_cancer');
    expect(spec.input).toMatchObject({ format: 'csv', id: 'patient_id' });
    expect(spec.model.registry).toEqual({ group: 'breast-cancer-mlp', version: 'latest-approved' });
    // The same columns, in the same order, as the hand-written example.
    expect(spec.model.inputs).toEqual(example.model.inputs);
    expect(spec.model.outputs).toEqual(example.model.outputs);
    expect(spec.output.passthrough).toEqual(['diagnosis']);

    const check = context(dir);
    const code = await validateCommand(path.join(dir, 'job.yaml'), check.ctx);
    expectIn(code, check.err.join('')).toBe(0);
    expect(check.out.join('')).toContain('job.yaml is valid.');
  });

  it('text-embeddings (JSON lines, model file with tokenizer.json): a text entry and pooled embeddings; validate exits 0', async () => {
    const dir = tempDir();
    const model = `${ROOT}test/fixtures/models/text/encoder.onnx`;
    const { ctx, out } = context(dir);
    const code = await initCommand(
      model,
      `${EXAMPLES}text-embeddings/data/`,
      { stdout: true, name: 'embeddings' },
      ctx,
    );
    expect(code).toBe(0);
    expect(existsSync(path.join(dir, 'job.yaml'))).toBe(false);
    const yaml = out.join('');
    expect(yaml).toContain('# TODO: the model takes any sequence length');
    writeFileSync(path.join(dir, 'embeddings.yaml'), yaml);
    const spec = await loadJobSpecFile(path.join(dir, 'embeddings.yaml'));
    expect(spec.name).toBe('embeddings');
    expect(spec.input).toMatchObject({
      format: 'jsonl',
      id: 'id',
      uri: `file://${EXAMPLES}text-embeddings/data/`,
    });
    expect(spec.model.inputs).toEqual([
      { from: { text: 'text', tokenizer: 'tokenizer.json', maxLength: 128 } },
    ]);
    expect(spec.model.outputs).toEqual([
      expect.objectContaining({
        tensor: 'last_hidden_state',
        as: 'embedding',
        postprocess: expect.objectContaining({ pool: 'mean', normalize: true }),
      }),
    ]);

    const check = context(dir);
    const valid = await validateCommand(path.join(dir, 'embeddings.yaml'), check.ctx);
    expectIn(valid, check.err.join('')).toBe(0);
  });

  it('more numeric columns than the model takes: the first ones, and a TODO naming the rest', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'rows.csv'), 'key,a,b,c,d\nk1,1,2,3,4\nk2,5,6,7,8\n');
    const { ctx, out } = context(dir);
    expect(
      await initCommand(
        `${ROOT}test/fixtures/models/affine.onnx`,
        'rows.csv',
        { json: true, stdout: true },
        ctx,
      ),
    ).toBe(0);
    const result = initResultSchema.parse(JSON.parse(out.join('')));
    expect(result.file).toBeUndefined();
    expect(result.spec).toContain('  id: key\n');
    expect(result.spec).toMatch(/columns:\n {10}- a\n {10}- b\n {10}- c\n/);
    expect(result.todos).toEqual([
      expect.stringContaining('the sample has 4 numeric columns and "x" takes 3: these are the first 3'),
      expect.stringContaining('no labels.txt next to the model'),
    ]);
  });
});

describe('init refuses what it cannot use, in one line (exit 2)', () => {
  const model = `${EXAMPLES}breast-cancer/registry/breast-cancer-mlp/1/model.onnx`;

  it('a model that is not ONNX', async () => {
    const dir = tempDir();
    const err = await failure(
      initCommand(
        `${EXAMPLES}breast-cancer/data/breast_cancer.csv`,
        `${EXAMPLES}breast-cancer/data/`,
        {},
        context(dir).ctx,
      ),
    );
    expect(err.message).toMatch(/breast_cancer\.csv is not an ONNX model \(.+\): give an \.onnx file/);
  });

  it('a sample that does not exist, or is not a data file', async () => {
    const dir = tempDir();
    const missing = await failure(initCommand(model, 'nowhere/', {}, context(dir).ctx));
    expect(missing.message).toBe(
      'sample nowhere/ does not exist or is an empty folder; give a CSV, Parquet or JSON lines file, or a folder of ' +
        'them, of images or of text files',
    );
    writeFileSync(path.join(dir, 'notes.pdf'), '%PDF-1.4');
    const wrong = await failure(initCommand(model, 'notes.pdf', {}, context(dir).ctx));
    expect(wrong.message).toMatch(/^sample notes\.pdf is not CSV, Parquet or JSON lines/);
    writeFileSync(path.join(dir, 'broken.jsonl'), '{"id": 1, "x": [1,2\n');
    const broken = await failure(initCommand(model, 'broken.jsonl', {}, context(dir).ctx));
    expect(broken.message).toMatch(/^sample broken\.jsonl (cannot be read as jsonl|has no columns)/);
  });

  it('a sample without the columns the model needs names both sides', async () => {
    const dir = tempDir();
    const err = await failure(initCommand(model, `${EXAMPLES}text-embeddings/data/`, {}, context(dir).ctx));
    expect(err.message).toBe(
      `the model input "features" (float32 [N, 30]) takes 30 numeric column(s), but sample ` +
        `file://${EXAMPLES}text-embeddings/data/sentences.jsonl has 0 (none; all columns: id, text); give a sample ` +
        "with the model's feature columns",
    );
    writeFileSync(path.join(dir, 'numbers.csv'), 'a,b\n1,2\n3,4\n');
    const text = await failure(
      initCommand(`${ROOT}test/fixtures/models/text/encoder.onnx`, 'numbers.csv', {}, context(dir).ctx),
    );
    expect(text.message).toMatch(
      /^the model reads tokenized text \(input_ids\) but sample .* has no text column/,
    );
  });

  it('through main: help init, an existing job.yaml without --force', async () => {
    const dir = tempDir();
    const help = context(dir);
    expect(await main(['help', 'init'], help.ctx.io)).toBe(0);
    expect(help.out.join('')).toContain('Usage: batch-infer init [options] <model> <sample>');
    writeFileSync(path.join(dir, 'job.yaml'), 'name: mine\n');
    const exists = context(dir);
    expect(await main(['init', model, `${EXAMPLES}breast-cancer/data/`], exists.ctx.io)).toBe(2);
    expect(exists.err.join('')).toMatch(/^job\.yaml exists; pass --force to overwrite it, or -o <file>\n/);
    expect(readFileSync(path.join(dir, 'job.yaml'), 'utf8')).toBe('name: mine\n');
  });
});

describe('init for an image model (no shipped image example: the spec is checked by the job spec schema)', () => {
  it('a folder of images feeds an NCHW input from content, resized to the fixed size', async () => {
    const dir = tempDir();
    const yaml = buildStarterSpec(
      {
        given: 'cnn.onnx',
        source: { uri: `file://${dir}/cnn.onnx` },
        artifactUri: `file://${dir}/cnn.onnx`,
        signature: {
          inputs: [{ name: 'pixels', type: 'float32', shape: ['N', 3, 32, 32] }],
          outputs: [{ name: 'logits', type: 'float32', shape: ['N', 4] }],
        },
        companions: ['labels.txt'],
      },
      {
        format: 'files',
        uri: `file://${dir}/photos/`,
        objectUri: `file://${dir}/photos/a.png`,
        columns: [
          { name: 'uri', kind: 'string' },
          { name: 'name', kind: 'string' },
          { name: 'size', kind: 'number' },
          { name: 'content', kind: 'bytes' },
        ],
        files: 'image',
        records: 0,
      },
      { specDir: dir, command: 'batch-infer init cnn.onnx photos/' },
    );
    expect(yaml.todos).toEqual([expect.stringContaining('check the normalisation the model expects')]);
    writeFileSync(path.join(dir, 'job.yaml'), yaml.yaml);
    const spec = await loadJobSpecFile(path.join(dir, 'job.yaml'));
    expect(spec.name).toBe('photos');
    expect(spec.input).toMatchObject({ format: 'files', uri: `file://${dir}/photos/` });
    expect(spec.input.id).toBeUndefined();
    expect(spec.model.inputs).toEqual([
      expect.objectContaining({
        tensor: 'pixels',
        dtype: 'float32',
        from: expect.objectContaining({
          image: 'content',
          resize: { height: 32, width: 32 },
          layout: 'NCHW',
        }),
      }),
    ]);
    expect(spec.model.outputs).toEqual([
      expect.objectContaining({
        tensor: 'logits',
        postprocess: expect.objectContaining({ argmax: expect.anything() }),
      }),
    ]);
  });
});
