/** `inspect` on the fixture models (their ONNX protobuf read as is): inputs, outputs and a starter that parses. */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { inspectCommand, inspectModel, modelInfoSchema } from '../../src/cli/commands/inspect.js';
import type { CommandContext } from '../../src/cli/context.js';
import { CliError } from '../../src/cli/errors.js';
import { loadJobSpecFile } from '../../src/spec/load.js';

const MODELS = new URL('../fixtures/models/', import.meta.url).pathname;

function context() {
  const out: string[] = [];
  const ctx: CommandContext = {
    io: {
      stdout: { write: (t: string) => out.push(t), isTTY: false },
      stderr: { write: () => true, isTTY: false },
      env: { NO_COLOR: '1' },
      cwd: MODELS,
    },
    exit: () => undefined,
    interrupted: new AbortController().signal,
  };
  return { ctx, out };
}

describe('inspect', () => {
  it("gives each input's and output's name, element type and shape", async () => {
    const info = await inspectModel(`${MODELS}two_outputs.onnx`);
    expect(info.inputs).toEqual([{ name: 'x', type: 'float32', shape: ['N', 4] }]);
    expect(info.outputs).toEqual([
      { name: 'logits', type: 'float32', shape: ['N', 3] },
      { name: 'embedding', type: 'float32', shape: ['N', 4] },
    ]);
    const int64 = await inspectModel(`${MODELS}int64_identity.onnx`);
    expect(int64.inputs.map((t) => t.type)).toEqual(['int64']);
  });

  it('prints a starter model: section that a job spec accepts', async () => {
    const { ctx, out } = context();
    expect(await inspectCommand('affine.onnx', { json: true }, ctx)).toBe(0);
    const info = modelInfoSchema.parse(JSON.parse(out.join('')));
    // Next to the model, as a user would save it: relative paths resolve against the spec's folder.
    const dir = mkdtempSync(path.join(tmpdir(), 'inspect-'));
    copyFileSync(`${MODELS}affine.onnx`, path.join(dir, 'affine.onnx'));
    const file = path.join(dir, 'job.yaml');
    writeFileSync(
      file,
      [
        'name: starter',
        'input:',
        '  uri: data/',
        '  format: csv',
        info.starter.trimEnd(),
        'output:',
        '  uri: out/',
        '',
      ].join('\n'),
    );
    const spec = await loadJobSpecFile(file);
    rmSync(dir, { recursive: true });
    expect(spec.model.uri).toBe(`file://${path.join(path.dirname(file), 'affine.onnx')}`);
    expect(spec.model.inputs).toEqual([
      expect.objectContaining({ tensor: 'x', dtype: 'float32', from: { columns: ['x_0', 'x_1', 'x_2'] } }),
    ]);
    expect(spec.model.outputs?.map((o) => o.tensor)).toEqual(['y']);
  });

  it('says a file that is not a model is not one, in one line', async () => {
    const err = await inspectModel(`${MODELS}README.md`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect((err as Error).message).toMatch(/README\.md is not an ONNX model \(.+\): give an \.onnx file/);
    expect((err as Error).message).not.toContain('\n');
  });

  it("<group>:<version> in the example's ./registry: that version's signature and a registry starter", async () => {
    const example = new URL('../../examples/breast-cancer/', import.meta.url).pathname;
    const out: string[] = [];
    const ctx: CommandContext = {
      io: {
        stdout: { write: (t: string) => out.push(t), isTTY: false },
        stderr: { write: () => true, isTTY: false },
        env: { NO_COLOR: '1' },
        cwd: example,
      },
      exit: () => undefined,
      interrupted: new AbortController().signal,
    };
    expect(await inspectCommand('breast-cancer-mlp:2', { json: true }, ctx)).toBe(0);
    const info = modelInfoSchema.parse(JSON.parse(out.join('')));
    expect(info.inputs).toEqual([{ name: 'features', type: 'float32', shape: ['N', 30] }]);
    expect(info.registry).toMatchObject({
      location: { kind: 'local', uri: `file://${example}registry/` },
      group: 'breast-cancer-mlp',
      version: 2,
      status: 'PendingManualApproval',
    });
    expect(info.artifactUri).toBe(`file://${example}registry/breast-cancer-mlp/2/model.onnx`);
    expect(info.starter).toContain('  registry:\n    group: breast-cancer-mlp\n    version: 2\n');
  });
});
