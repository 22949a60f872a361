/**
 * `batch-infer inspect <model.onnx>`: the model's inputs and outputs (names, element types, shapes) from
 * onnxruntime's session metadata, and a starter `model:` section to paste into a job spec.
 */
import path from 'node:path';
import type { Command } from 'commander';
import * as ort from 'onnxruntime-node';
import { z } from 'zod';
import { jsonOption } from '../common.js';
import type { CommandContext } from '../context.js';
import { CliError, EXIT } from '../errors.js';
import { writeJson } from '../io.js';

const tensorInfoSchema = z.strictObject({
  name: z.string(),
  /** The element type (`float32`, `int64`...); absent for a non-tensor value (a sequence, a map). */
  type: z.string().optional(),
  /** Each dimension: a size, or the name of a symbolic one (the batch, usually). */
  shape: z.array(z.union([z.number(), z.string()])),
});
export const modelInfoSchema = z.strictObject({
  model: z.string(),
  inputs: z.array(tensorInfoSchema),
  outputs: z.array(tensorInfoSchema),
  /** A starter `model:` section (YAML) for a job spec. */
  starter: z.string(),
});
export type ModelInfo = z.infer<typeof modelInfoSchema>;
type TensorInfo = z.infer<typeof tensorInfoSchema>;

function tensorInfo(meta: ort.InferenceSession.ValueMetadata): TensorInfo {
  return meta.isTensor
    ? { name: meta.name, type: meta.type, shape: [...meta.shape] }
    : { name: meta.name, shape: [] };
}

/** Reads a model's inputs and outputs with onnxruntime; a file that is not an ONNX model is one line. */
export async function inspectModel(file: string): Promise<ModelInfo> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(file);
  } catch (err) {
    throw new CliError(
      `${file} is not an ONNX model onnxruntime can load: ${(err as Error).message.split('\n')[0]}`,
    );
  }
  try {
    const inputs = session.inputMetadata.map(tensorInfo);
    const outputs = session.outputMetadata.map(tensorInfo);
    return { model: file, inputs, outputs, starter: starterModelSection(file, inputs, outputs) };
  } finally {
    await session.release();
  }
}

/**
 * A `model:` section: each input read from columns (one per element of a fixed last dimension: rename them to the
 * data's columns), each output kept as is. Other input kinds (text, image, array) are in the README.
 */
export function starterModelSection(
  uri: string,
  inputs: readonly TensorInfo[],
  outputs: readonly TensorInfo[],
): string {
  const lines = ['model:', `  uri: ${uri}`, '  inputs:'];
  for (const input of inputs) {
    const last = input.shape.at(-1);
    const width = typeof last === 'number' && input.shape.length === 2 ? last : 1;
    lines.push(`    - tensor: ${input.name}`);
    if (input.type) lines.push(`      dtype: ${input.type}`);
    lines.push('      from:', '        columns:');
    for (let i = 0; i < width; i++) lines.push(`          - ${input.name}_${i}`);
  }
  lines.push('  outputs:');
  for (const output of outputs) lines.push(`    - tensor: ${output.name}`);
  return `${lines.join('\n')}\n`;
}

export function registerInspect(program: Command, ctx: CommandContext): void {
  program
    .command('inspect')
    .description("a model's inputs and outputs (names, element types, shapes) and a starter model: section")
    .argument('<model.onnx>')
    .addOption(jsonOption())
    .action(async (model: string, options: { json?: boolean }) => {
      ctx.exit(await inspectCommand(model, options, ctx));
    });
}

const dims = (t: TensorInfo) => `[${t.shape.join(', ')}]`;

export async function inspectCommand(
  model: string,
  options: { json?: boolean },
  ctx: CommandContext,
): Promise<number> {
  const info = await inspectModel(path.resolve(ctx.io.cwd, model));
  const shown = { ...info, model, starter: starterModelSection(model, info.inputs, info.outputs) };
  if (options.json) {
    writeJson(ctx.io.stdout, shown);
    return EXIT.ok;
  }
  const lines = ['inputs:'];
  for (const t of shown.inputs) lines.push(`  ${t.name}  ${t.type ?? '(not a tensor)'} ${dims(t)}`);
  lines.push('outputs:');
  for (const t of shown.outputs) lines.push(`  ${t.name}  ${t.type ?? '(not a tensor)'} ${dims(t)}`);
  lines.push('', shown.starter);
  ctx.io.stdout.write(`${lines.join('\n')}`);
  return EXIT.ok;
}
