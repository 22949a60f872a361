/**
 * `batch-infer inspect <model.onnx | registry ref>`: the model's inputs and outputs (names, element types, shapes),
 * read from the ONNX protobuf (src/preflight/onnx-signature.ts, no ONNX Runtime), and a starter `model:` section to
 * paste into a job spec. A registry reference (`<group>`, `<group>:<version>`, a SageMaker model package ARN) is
 * resolved first, its artifact fetched (a model.tar.gz extracted), and the starter names the registry version.
 */
import type { Command } from 'commander';
import { z } from 'zod';
import type { GraphTensor } from '../../preflight/onnx-signature.js';
import type { VersionSelector } from '../../registry/model-registry.js';
import { createObjectStore } from '../../storage/index.js';
import { LocalObjectStore } from '../../storage/local.js';
import { jsonOption, s3EndpointOption, registryLookupOption } from '../common.js';
import type { CommandContext } from '../context.js';
import { EXIT } from '../errors.js';
import { writeJson } from '../io.js';
import { resolveModel, type ResolvedModel } from '../model-artifact.js';
import { describeLocation, type RegistryDeps } from '../model-source.js';
import { registryLocationSchema } from './models.js';

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
  /** The artifact read: the model file, or the registry version's artifact. */
  artifactUri: z.string().optional(),
  /** For a registry reference: the version it resolved to, and where. */
  registry: z
    .strictObject({
      location: registryLocationSchema,
      group: z.string(),
      version: z.number().int().positive(),
      status: z.enum(['Approved', 'PendingManualApproval', 'Rejected']),
      createdAt: z.string().optional(),
      ref: z.string().optional(),
    })
    .optional(),
});
export type ModelInfo = z.infer<typeof modelInfoSchema>;
type TensorInfo = z.infer<typeof tensorInfoSchema>;

function tensorInfo(t: GraphTensor): TensorInfo {
  return { name: t.name, ...(t.type !== undefined && { type: t.type }), shape: [...(t.shape ?? [])] };
}

/** Reads a local model file's inputs and outputs; a file that is not an ONNX model is one line (CliError). */
export async function inspectModel(file: string): Promise<ModelInfo> {
  const resolved = await resolveModel(
    file,
    {},
    { stdout: { write: () => true }, stderr: { write: () => true }, env: {}, cwd: process.cwd() },
    {
      store: new LocalObjectStore(),
    },
  );
  return modelInfoOf(resolved);
}

/** The model info of a resolved model: its signature, the starter section, and the registry version. */
export function modelInfoOf(resolved: ResolvedModel): ModelInfo {
  const inputs = resolved.signature.inputs.map(tensorInfo);
  const outputs = resolved.signature.outputs.map(tensorInfo);
  const source = 'uri' in resolved.source ? resolved.given : resolved.source.registry;
  const registry = resolved.registry;
  return {
    model: resolved.given,
    inputs,
    outputs,
    starter: starterModelSection(source, inputs, outputs),
    artifactUri: resolved.artifactUri,
    ...(registry && {
      registry: {
        location: registry.location,
        group: registry.version.group,
        version: registry.version.version,
        status: registry.version.status,
        ...(registry.version.createdAt !== undefined && { createdAt: registry.version.createdAt }),
        ...(registry.version.ref !== undefined && { ref: registry.version.ref }),
      },
    }),
  };
}

/**
 * A `model:` section: each input read from columns (one per element of a fixed last dimension: rename them to the
 * data's columns), each output kept as is. Other input kinds (text, image, array) are in the README.
 */
export function starterModelSection(
  source: string | { readonly group: string; readonly version: VersionSelector },
  inputs: readonly TensorInfo[],
  outputs: readonly TensorInfo[],
): string {
  const lines = ['model:'];
  if (typeof source === 'string') lines.push(`  uri: ${source}`);
  else lines.push('  registry:', `    group: ${source.group}`, `    version: ${source.version}`);
  lines.push('  inputs:');
  for (const input of inputs) {
    const last = input.shape.at(-1);
    const width = typeof last === 'number' && last > 0 && input.shape.length === 2 ? last : 1;
    lines.push(`    - tensor: ${input.name}`);
    if (input.type) lines.push(`      dtype: ${input.type}`);
    lines.push('      from:', '        columns:');
    for (let i = 0; i < width; i++) lines.push(`          - ${input.name}_${i}`);
  }
  lines.push('  outputs:');
  for (const output of outputs) lines.push(`    - tensor: ${output.name}`);
  return `${lines.join('\n')}\n`;
}

export interface InspectOptions {
  readonly json?: boolean;
  readonly registry?: string;
  readonly s3Endpoint?: string;
}

export function registerInspect(program: Command, ctx: CommandContext): void {
  program
    .command('inspect')
    .description(
      "a model's inputs and outputs (names, element types, shapes) and a starter model: section; the model is a " +
        'file or a registry version',
    )
    .argument(
      '<model>',
      'model.onnx or model.tar.gz (path or URI), or a registry reference: <group>, <group>:<version>, or a ' +
        'SageMaker model package ARN',
    )
    .addOption(registryLookupOption())
    .addOption(s3EndpointOption())
    .addOption(jsonOption())
    .addHelpText(
      'after',
      '\nSageMaker: region and credentials from AWS_REGION / AWS_PROFILE (an ARN names its own region).\n' +
        'Exit 2 when the model cannot be found or is not an ONNX model.',
    )
    .action(async (model: string, options: InspectOptions) => {
      ctx.exit(await inspectCommand(model, options, ctx));
    });
}

const dims = (t: TensorInfo) => `[${t.shape.join(', ')}]`;

export async function inspectCommand(
  model: string,
  options: InspectOptions,
  ctx: CommandContext,
  deps?: Partial<RegistryDeps>,
): Promise<number> {
  const store =
    deps?.store ??
    createObjectStore({ s3Endpoint: options.s3Endpoint ?? ctx.io.env.BATCH_INFER_S3_ENDPOINT });
  const shown = modelInfoOf(await resolveModel(model, options, ctx.io, { ...deps, store }));
  if (options.json) {
    writeJson(ctx.io.stdout, shown);
    return EXIT.ok;
  }
  const lines: string[] = [];
  if (shown.registry) {
    const r = shown.registry;
    lines.push(
      `${r.group} version ${r.version} (${r.status}${r.createdAt ? `, created ${r.createdAt}` : ''}) in ` +
        `${describeLocation(r.location)}`,
      `artifact: ${shown.artifactUri ?? '-'}`,
      '',
    );
  }
  lines.push('inputs:');
  for (const t of shown.inputs) lines.push(`  ${t.name}  ${t.type ?? '(not a tensor)'} ${dims(t)}`);
  lines.push('outputs:');
  for (const t of shown.outputs) lines.push(`  ${t.name}  ${t.type ?? '(not a tensor)'} ${dims(t)}`);
  lines.push('', shown.starter);
  ctx.io.stdout.write(`${lines.join('\n')}`);
  return EXIT.ok;
}
