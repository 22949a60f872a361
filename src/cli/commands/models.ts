/**
 * `batch-infer models <group>`: a model group's versions, newest first, with approval status, creation time and
 * artifact URI: what `model.registry.version` can pin, and what `latest-approved` resolves to. SageMaker Model
 * Registry (ListModelPackages, page by page, and one BatchDescribeModelPackage per page for the artifacts), or the
 * local registry (see ../model-source.ts for which).
 */
import type { Command } from 'commander';
import { z } from 'zod';
import type { ListedModelVersion } from '../../registry/model-registry.js';
import { ModelError } from '../../spec/errors.js';
import { createObjectStore } from '../../storage/index.js';
import { jsonOption, positiveInt, registryLookupOption } from '../common.js';
import type { CommandContext } from '../context.js';
import { CliError, EXIT } from '../errors.js';
import { writeJson } from '../io.js';
import {
  describeLocation,
  explainAwsError,
  registryFor,
  type RegistryDeps,
  type RegistryLocation,
} from '../model-source.js';

export const registryLocationSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('local'), uri: z.string() }),
  z.strictObject({ kind: z.literal('sagemaker'), region: z.string() }),
]);

const listedVersionSchema = z.strictObject({
  group: z.string(),
  version: z.number().int().positive(),
  status: z.enum(['Approved', 'PendingManualApproval', 'Rejected']),
  createdAt: z.string().optional(),
  artifactUri: z.string().optional(),
  packageStatus: z.string().optional(),
  ref: z.string().optional(),
  problem: z.string().optional(),
});

/** `models --json`: exactly this object. */
export const modelListSchema = z.strictObject({
  group: z.string(),
  registry: registryLocationSchema,
  /** The version `latest-approved` resolves to (the newest Approved one), when there is one in the list. */
  latestApproved: z.number().int().positive().optional(),
  versions: z.array(listedVersionSchema),
});
export type ModelList = z.infer<typeof modelListSchema>;

export interface ModelsOptions {
  readonly json?: boolean;
  readonly approved?: boolean;
  readonly limit?: string;
  readonly registry?: string;
  readonly s3Endpoint?: string;
}

export function registerModels(program: Command, ctx: CommandContext): void {
  program
    .command('models')
    .description("a model group's versions, newest first: approval status, creation time, artifact")
    .argument('<group>', 'model package group (SageMaker Model Registry, or a folder of the local registry)')
    .option('--approved', 'only Approved versions')
    .option('--limit <n>', 'at most n versions (the newest)')
    .addOption(registryLookupOption())
    .option('--s3-endpoint <url>', 'S3-compatible endpoint for an s3:// local registry')
    .addOption(jsonOption())
    .addHelpText(
      'after',
      '\nSageMaker: region and credentials from AWS_REGION / AWS_PROFILE. Exit 2 when the group is unknown.',
    )
    .action(async (group: string, options: ModelsOptions) => {
      ctx.exit(await modelsCommand(group, options, ctx));
    });
}

export async function listModels(
  group: string,
  options: ModelsOptions,
  ctx: CommandContext,
  deps?: Partial<RegistryDeps>,
): Promise<ModelList> {
  const limit = positiveInt('--limit', options.limit);
  const store =
    deps?.store ??
    createObjectStore({ s3Endpoint: options.s3Endpoint ?? ctx.io.env.BATCH_INFER_S3_ENDPOINT });
  try {
    const { registry, location } = await registryFor(group, options, ctx.io, { ...deps, store });
    const versions = await registry.list(group, {
      ...(options.approved && { approvedOnly: true }),
      ...(limit !== undefined && { limit }),
    });
    const latestApproved = versions.find((v) => v.status === 'Approved' && usable(v, location));
    return {
      group,
      registry: location,
      ...(latestApproved && { latestApproved: latestApproved.version }),
      versions,
    };
  } catch (err) {
    // An unknown group, a registry that cannot be read: nothing to list, say what to fix (exit 2).
    if (err instanceof ModelError) throw new CliError(err.message);
    throw explainAwsError(err);
  }
}

/** `latest-approved` skips SageMaker packages that are not Completed (see registry/sagemaker.ts). */
function usable(v: ListedModelVersion, location: RegistryLocation): boolean {
  return location.kind === 'local' || v.packageStatus === 'Completed';
}

export async function modelsCommand(
  group: string,
  options: ModelsOptions,
  ctx: CommandContext,
  deps?: Partial<RegistryDeps>,
): Promise<number> {
  const list = await listModels(group, options, ctx, deps);
  if (options.json) {
    writeJson(ctx.io.stdout, list);
    return EXIT.ok;
  }
  ctx.io.stdout.write(`${renderModelList(list).join('\n')}\n`);
  return EXIT.ok;
}

export function renderModelList(list: ModelList): string[] {
  const where = describeLocation(list.registry);
  const count = `${list.versions.length} version${list.versions.length === 1 ? '' : 's'}`;
  const head =
    `Model group "${list.group}" in ${where}: ${count}` +
    (list.latestApproved !== undefined
      ? ` · latest-approved = ${list.latestApproved}`
      : ' · no version latest-approved can use');
  if (list.versions.length === 0) return [head];
  const sagemaker = list.registry.kind === 'sagemaker';
  const header = ['VERSION', 'STATUS', ...(sagemaker ? ['PACKAGE'] : []), 'CREATED', 'ARTIFACT'];
  const rows = list.versions.map((v) => [
    String(v.version),
    v.status,
    ...(sagemaker ? [v.packageStatus ?? '-'] : []),
    v.createdAt?.replace(/\.\d+Z$/, 'Z') ?? '-',
    v.artifactUri ?? `- (${v.problem ?? 'no artifact'})`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [head, '', line(header), ...rows.map(line)];
}
