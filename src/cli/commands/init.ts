/**
 * `batch-infer init <model> <sample data>`: a starter job spec from the model's signature and the sample's shape.
 * It picks what it can decide from the two (the format, `input.id`, the columns a tabular input reads, the text or
 * image column, argmax over labels.txt, pooled embeddings) and writes a `# TODO:` comment where it cannot, so the
 * file `validate` accepts is one review away from a run. Something the model needs that the sample cannot give (no
 * numeric columns for a tabular input, no text for a text model) is an error naming both sides.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { z } from 'zod';
import type { GraphTensor } from '../../preflight/onnx-signature.js';
import { createObjectStore } from '../../storage/index.js';
import { normalizeUri } from '../../storage/uri.js';
import { jsonOption, s3EndpointOption, registryLookupOption } from '../common.js';
import type { CommandContext } from '../context.js';
import { CliError, EXIT, UsageError } from '../errors.js';
import { writeJson } from '../io.js';
import { resolveModel, type ResolvedModel } from '../model-artifact.js';
import type { RegistryDeps } from '../model-source.js';
import { readSampleShape, type SampleColumn, type SampleShape } from '../sample-shape.js';

/** `init --json`: exactly this object. */
export const initResultSchema = z.strictObject({
  /** The file written; absent with --stdout. */
  file: z.string().optional(),
  /** The job spec (YAML, with its TODO comments). */
  spec: z.string(),
  /** Each decision left to the user (the TODO comments' text). */
  todos: z.array(z.string()),
  sample: z.strictObject({
    format: z.enum(['csv', 'parquet', 'jsonl', 'files']),
    uri: z.string(),
    columns: z.array(z.string()),
  }),
});
export type InitResult = z.infer<typeof initResultSchema>;

export interface InitOptions {
  readonly output?: string;
  readonly stdout?: boolean;
  readonly force?: boolean;
  readonly name?: string;
  readonly json?: boolean;
  readonly registry?: string;
  readonly s3Endpoint?: string;
}

export function registerInit(program: Command, ctx: CommandContext): void {
  program
    .command('init')
    .description("write a starter job spec from a model's signature and a sample of the input")
    .argument(
      '<model>',
      'model.onnx / model.tar.gz (path or URI), or a registry reference (<group>[:<version>], an ARN)',
    )
    .argument(
      '<sample>',
      'a CSV, Parquet or JSON lines file, or a folder of them, of images or of text files',
    )
    .option('-o, --output <file>', 'where to write the spec', 'job.yaml')
    .option('--stdout', 'print the spec instead of writing it')
    .option('--force', 'overwrite the output file if it exists')
    .option('--name <name>', 'the job name (default: from the sample)')
    .addOption(registryLookupOption())
    .addOption(s3EndpointOption())
    .addOption(jsonOption())
    .addHelpText(
      'after',
      '\nThen: review the TODO comments, and check the spec with `batch-infer validate <file>`.\n' +
        'Exit 2 when the model or sample cannot be read, or the sample has nothing the model can read.',
    )
    .action(async (model: string, sample: string, options: InitOptions) => {
      ctx.exit(await initCommand(model, sample, options, ctx));
    });
}

export async function initCommand(
  modelArg: string,
  sampleArg: string,
  options: InitOptions,
  ctx: CommandContext,
  deps?: Partial<RegistryDeps>,
): Promise<number> {
  const { io } = ctx;
  const file = path.resolve(io.cwd, options.output ?? 'job.yaml');
  if (!options.stdout && existsSync(file) && !options.force) {
    throw new UsageError(
      `${options.output ?? 'job.yaml'} exists; pass --force to overwrite it, or -o <file>`,
    );
  }
  if (options.name !== undefined && !/^[a-z][a-z0-9_]*$/.test(options.name)) {
    throw new UsageError(
      `--name "${options.name}" must start with a lowercase letter and hold only lowercase letters, digits and _`,
    );
  }
  const store =
    deps?.store ?? createObjectStore({ s3Endpoint: options.s3Endpoint ?? io.env.BATCH_INFER_S3_ENDPOINT });
  const model = await resolveModel(modelArg, options, io, { ...deps, store });
  const sample = await readSampleShape(store, sampleArg, io.cwd);
  const specDir = path.dirname(file);
  const starter = buildStarterSpec(model, sample, {
    specDir,
    ...(options.name !== undefined && { name: options.name }),
    command: `batch-infer init ${modelArg} ${sampleArg}`,
  });
  if (!options.stdout) {
    mkdirSync(specDir, { recursive: true });
    writeFileSync(file, starter.yaml);
  }
  if (options.json) {
    const result: InitResult = {
      ...(!options.stdout && { file }),
      spec: starter.yaml,
      todos: starter.todos,
      sample: { format: sample.format, uri: sample.uri, columns: sample.columns.map((c) => c.name) },
    };
    writeJson(io.stdout, result);
    return EXIT.ok;
  }
  if (options.stdout) {
    io.stdout.write(starter.yaml);
    return EXIT.ok;
  }
  const relative = path.relative(io.cwd, file);
  const shown = relative && !relative.startsWith('..') ? relative : file;
  io.stdout.write(
    `Wrote ${shown} (${sample.format} input, ${model.signature.inputs.length} model input(s)).\n` +
      (starter.todos.length > 0
        ? `${starter.todos.length} TODO(s) to review:\n${starter.todos.map((t) => `  - ${t}`).join('\n')}\n`
        : '') +
      `Next: batch-infer validate ${shown}\n`,
  );
  return EXIT.ok;
}

// ---------------------------------------------------------------------------------------------------------------
// The spec itself: lines of YAML, built from the model's signature and the sample's columns.

export interface StarterOptions {
  /** The folder the spec will be in: relative paths are written relative to it. */
  readonly specDir: string;
  readonly name?: string;
  /** The command line, for the header comment. */
  readonly command: string;
}

interface Starter {
  readonly yaml: string;
  readonly todos: string[];
}

const TEXT_NAMES = [
  'text',
  'sentence',
  'body',
  'content',
  'review',
  'document',
  'comment',
  'message',
  'title',
];
const IMAGE_NAMES = ['image', 'img', 'picture', 'photo', 'content', 'bytes'];
const GENERIC_FOLDERS = new Set(['data', 'input', 'inputs', 'sample', 'samples', 'raw']);
const TABULAR_TYPES = new Set(['float32', 'float64', 'int32', 'int64']);

/** A YAML scalar: plain when it is safe, else double-quoted (JSON's escaping is valid YAML). */
function q(value: string): string {
  return /^[A-Za-z_./][A-Za-z0-9_./-]*$/.test(value) && !/^(true|false|null|yes|no|on|off)$/i.test(value)
    ? value
    : JSON.stringify(value);
}

/** A URI as the spec should say it: a path relative to the spec's folder for local files, else the URI. */
function specPath(uri: string, specDir: string): string {
  if (!uri.startsWith('file://')) return uri;
  const abs = fileURLToPath(uri);
  let rel = path.relative(specDir, abs) || '.';
  // Only the filesystem root in common: the absolute path reads better than a climb to it.
  if (
    rel.split(path.sep).filter((p) => p === '..').length >= specDir.split(path.sep).filter(Boolean).length
  ) {
    rel = abs.replace(/\/+$/, '');
  }
  return uri.endsWith('/') ? `${rel}/` : rel;
}

function nameFrom(sample: SampleShape): string {
  // A tabular sample is named after its file; a folder of files after the folder.
  const parts = (sample.format === 'files' ? sample.uri : sample.objectUri).replace(/\/+$/, '').split('/');
  let base = parts.pop() ?? 'job';
  // A folder called data/ says little: its parent usually names the dataset.
  if (GENERIC_FOLDERS.has(base.toLowerCase()) && parts.length > 3) base = parts.pop()!;
  const name = base
    .replace(/\.(csv|parquet|jsonl|ndjson)$/i, '')
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/^_+|_+$/g, '');
  return /^[a-z]/.test(name) ? name.slice(0, 128) : `job_${name}`.slice(0, 128);
}

function idColumn(sample: SampleShape): SampleColumn | undefined {
  if (sample.format === 'files') return undefined;
  // Matched on the name as written (customerId) and lowercased (customer_id, ID).
  const named = (test: (n: string) => boolean) =>
    sample.columns.find(
      (c) => (test(c.name) || test(c.name.toLowerCase())) && (c.kind === 'string' || c.kind === 'number'),
    );
  return (
    named((n) => n === 'id') ??
    named((n) => n.endsWith('_id') || /[a-z]Id$/.test(n)) ??
    named((n) => n === 'uuid' || n === 'key' || n === 'guid')
  );
}

const isTextModelInput = (t: GraphTensor): boolean => t.name === 'input_ids';
const TOKEN_INPUTS = new Set(['input_ids', 'attention_mask', 'token_type_ids']);

/** NCHW or NHWC image input: 4 dimensions with 1 or 3 channels next to the batch or last. */
function imageLayoutOf(
  t: GraphTensor,
): { layout: 'NCHW' | 'NHWC'; channels: number; h: number | string; w: number | string } | undefined {
  const s = t.shape;
  if (!s || s.length !== 4 || (t.type !== 'float32' && t.type !== 'uint8')) return undefined;
  if (s[1] === 3 || s[1] === 1) return { layout: 'NCHW', channels: s[1], h: s[2]!, w: s[3]! };
  if (s[3] === 3 || s[3] === 1) return { layout: 'NHWC', channels: s[3], h: s[1]!, w: s[2]! };
  return undefined;
}

export function buildStarterSpec(
  model: ResolvedModel,
  sample: SampleShape,
  options: StarterOptions,
): Starter {
  const todos: string[] = [];
  const lines: string[] = [];
  const todo = (indent: string, text: string): void => {
    todos.push(text);
    lines.push(`${indent}# TODO: ${text}`);
  };
  const columnNames = sample.columns.map((c) => c.name);
  const listed = columnNames.slice(0, 12).join(', ') + (columnNames.length > 12 ? ', ...' : '');
  const { inputs, outputs } = model.signature;

  lines.push(
    `# Written by \`${options.command}\`. Review the TODO comments, then check it with \`batch-infer validate\`.`,
    `name: ${options.name ?? nameFrom(sample)}`,
    'input:',
    `  uri: ${q(specPath(sample.uri, options.specDir))}`,
    `  format: ${sample.format}`,
  );
  const id = idColumn(sample);
  if (id) lines.push(`  id: ${q(id.name)}`);
  else if (sample.format !== 'files') {
    todo(
      '  ',
      `set input.id to the column that identifies a record (columns: ${listed}); without it rows are identified ` +
        'by source object and offset',
    );
  }

  lines.push('model:');
  if ('uri' in model.source) {
    lines.push(`  uri: ${q(specPath(model.source.uri, options.specDir))}`);
  } else {
    const { group, version } = model.source.registry;
    lines.push('  registry:', `    group: ${q(group)}`, `    version: ${version}`);
    const location = model.registry?.location;
    if (location?.kind === 'local') {
      const expected = normalizeUri(`${path.join(options.specDir, 'registry')}/`, options.specDir);
      if (location.uri !== expected) {
        todo(
          '  ',
          `the registry is ${location.uri}: run and validate this spec with --registry ${location.uri}`,
        );
      }
    }
  }

  // ---- inputs
  lines.push('  inputs:');
  const usedColumns = new Set<string>(id ? [id.name] : []);
  const textInput = inputs.some(isTextModelInput);
  let fed = 0;
  if (textInput) {
    const column = pickColumn(
      sample,
      TEXT_NAMES,
      (c) => c.kind === 'string' || c.kind === 'bytes',
      usedColumns,
    );
    if (!column) {
      throw new CliError(
        `the model reads tokenized text (input_ids) but sample ${sample.objectUri} has no text column (columns: ${listed}); ` +
          'give a JSON lines/CSV sample with a text column, or a folder of text files',
      );
    }
    usedColumns.add(column.pick);
    const ids = inputs.find(isTextModelInput)!;
    const seq = ids.shape?.[1];
    lines.push('    - from:', `        text: ${q(column.pick)}`);
    if (model.companions.includes('tokenizer.json')) lines.push('        tokenizer: tokenizer.json');
    else {
      lines.push('        tokenizer: tokenizer.json');
      todo(
        '        ',
        "no tokenizer.json next to the model: point tokenizer at the model's Hugging Face tokenizer.json",
      );
    }
    if (typeof seq === 'number' && seq > 1) lines.push(`        maxLength: ${seq}`);
    else {
      lines.push('        maxLength: 128');
      todo(
        '        ',
        'the model takes any sequence length: set maxLength to what it was trained with (512 for BERT)',
      );
    }
    if (column.others.length > 0) {
      todo('        ', `text column chosen from several: ${[column.pick, ...column.others].join(', ')}`);
    }
    fed += inputs.filter((t) => TOKEN_INPUTS.has(t.name)).length;
  }
  const rest = inputs.filter((t) => !(textInput && TOKEN_INPUTS.has(t.name)));
  // Single-column inputs named like a column ([N] or [N, 1]): that column.
  const byName = new Map(sample.columns.map((c) => [c.name, c]));
  const tabular = rest.filter((t) => !imageLayoutOf(t));
  const singles = tabular.filter((t) => {
    const c = byName.get(t.name);
    return c && c.kind === 'number' && (t.shape?.length === 1 || (t.shape?.length === 2 && t.shape[1] === 1));
  });
  for (const t of singles) {
    usedColumns.add(t.name);
    lines.push(
      `    - tensor: ${q(t.name)}`,
      `      dtype: ${tabularType(t)}`,
      '      from:',
      '        columns:',
      `          - ${q(t.name)}`,
    );
    fed++;
  }
  for (const t of rest) {
    if (singles.includes(t)) continue;
    const image = imageLayoutOf(t);
    if (image) {
      const column = pickColumn(
        sample,
        IMAGE_NAMES,
        (c) => c.kind === 'bytes' || c.kind === 'string',
        usedColumns,
      );
      if (!column || (sample.format === 'files' && sample.files !== 'image')) {
        throw new CliError(
          `the model input "${t.name}" ${shapeText(t)} is an image but sample ${sample.objectUri} has no image column ` +
            `(columns: ${listed}); give a folder of images, or data with an image column (bytes or a location)`,
        );
      }
      usedColumns.add(column.pick);
      lines.push(
        `    - tensor: ${q(t.name)}`,
        `      dtype: ${t.type}`,
        '      from:',
        `        image: ${q(column.pick)}`,
      );
      const fixed = typeof image.h === 'number' && image.h > 0 && typeof image.w === 'number' && image.w > 0;
      lines.push(
        '        resize:',
        `          height: ${fixed ? image.h : 224}`,
        `          width: ${fixed ? image.w : 224}`,
      );
      if (!fixed)
        todo('          ', `the model takes any image size: set the size "${t.name}" was trained with`);
      if (image.layout !== 'NCHW') lines.push(`        layout: ${image.layout}`);
      if (image.channels === 1) lines.push('        channels: L');
      if (t.type === 'float32') {
        todo(
          '        ',
          'check the normalisation the model expects (rescale 1/255 by default; mean, std per channel)',
        );
      }
      fed++;
      continue;
    }
    if (t.type !== undefined && TABULAR_TYPES.has(t.type) && (t.shape?.length ?? 2) <= 2) {
      const width =
        t.shape?.length === 2 && typeof t.shape[1] === 'number' && t.shape[1] > 0 ? t.shape[1] : undefined;
      const numeric = sample.columns.filter((c) => c.kind === 'number' && !usedColumns.has(c.name));
      if (numeric.length === 0 || (width !== undefined && numeric.length < width)) {
        throw new CliError(
          `the model input "${t.name}" ${shapeText(t)} takes ${width ?? 'some'} numeric column(s), but sample ` +
            `${sample.objectUri} has ${numeric.length} (${numeric.map((c) => c.name).join(', ') || 'none'}; all columns: ` +
            `${listed}); give a sample with the model's feature columns`,
        );
      }
      const chosen = width !== undefined ? numeric.slice(0, width) : numeric;
      chosen.forEach((c) => usedColumns.add(c.name));
      lines.push(`    - tensor: ${q(t.name)}`, `      dtype: ${tabularType(t)}`, '      from:');
      if (width !== undefined && numeric.length > width) {
        todo(
          '        ',
          `the sample has ${numeric.length} numeric columns and "${t.name}" takes ${width}: these are the first ` +
            `${width}; list the ones the model was trained on, in its order (others: ${numeric
              .slice(width)
              .map((c) => c.name)
              .join(', ')})`,
        );
      } else if (width === undefined) {
        todo('        ', `"${t.name}" takes any number of columns: check this list and its order`);
      }
      lines.push('        columns:', ...chosen.map((c) => `          - ${q(c.name)}`));
      fed++;
      continue;
    }
    // An input of another shape or type: one array column of the same name if there is one.
    const column = byName.get(t.name);
    if (!column || (column.kind !== 'array' && column.kind !== 'string')) {
      throw new CliError(
        `the model input "${t.name}" ${shapeText(t)} needs a column holding its whole tensor (an array), but sample ` +
          `${sample.objectUri} has no column "${t.name}" (columns: ${listed})`,
      );
    }
    usedColumns.add(column.name);
    lines.push(
      `    - tensor: ${q(t.name)}`,
      `      dtype: ${t.type ?? 'float32'}`,
      '      from:',
      `        array: ${q(column.name)}`,
    );
    fed++;
  }
  if (fed === 0)
    throw new CliError(
      `the model declares no inputs the job spec can feed (inputs: ${inputs.map((t) => t.name).join(', ') || 'none'})`,
    );

  // ---- outputs
  lines.push('  outputs:');
  let labelled = false;
  for (const t of outputs) {
    const s = t.shape;
    lines.push(`    - tensor: ${q(t.name)}`);
    const classes = s?.length === 2 && (typeof s[1] !== 'number' || s[1] > 1);
    if (classes && !labelled && model.companions.includes('labels.txt') && t.type?.startsWith('float')) {
      labelled = true;
      lines.push(
        '      postprocess:',
        '        argmax:',
        '          labels: labels.txt',
        '          as: label',
        '        keep: score',
      );
    } else if (textInput && s?.length === 3 && t.type?.startsWith('float')) {
      lines.push(
        '      as: embedding',
        '      postprocess:',
        '        pool: mean',
        '        normalize: true',
      );
    }
  }
  if (!labelled && outputs.some((t) => t.shape?.length === 2) && !model.companions.includes('labels.txt')) {
    todo(
      '    ',
      'no labels.txt next to the model: outputs are kept as raw values (add postprocess.argmax for labels)',
    );
  }

  lines.push('output:', `  uri: out/${options.name ?? nameFrom(sample)}/`, '  format: parquet');
  const unused = columnNames.filter((c) => !usedColumns.has(c) && sample.format !== 'files');
  if (unused.length > 0 && unused.length <= 5) {
    lines.push(`  passthrough: [${unused.map(q).join(', ')}]`);
  } else if (unused.length > 5) {
    todo(
      '  ',
      `copy input columns to the output with passthrough: [...] (not read by the model: ${unused.slice(0, 8).join(', ')}${unused.length > 8 ? ', ...' : ''})`,
    );
  }
  return { yaml: `${lines.join('\n')}\n`, todos };
}

function tabularType(t: GraphTensor): string {
  return t.type !== undefined && TABULAR_TYPES.has(t.type) ? t.type : 'float32';
}

function shapeText(t: GraphTensor): string {
  return `(${t.type ?? 'not a tensor'} [${(t.shape ?? []).join(', ')}])`;
}

/** The column a text or image input reads: a preferred name, else the only candidate; the others for a TODO. */
function pickColumn(
  sample: SampleShape,
  preferred: readonly string[],
  fits: (c: SampleColumn) => boolean,
  used: ReadonlySet<string>,
): { pick: string; others: string[] } | undefined {
  if (sample.format === 'files') return { pick: 'content', others: [] };
  const candidates = sample.columns.filter((c) => fits(c) && !used.has(c.name));
  if (candidates.length === 0) return undefined;
  const named = preferred
    .map((p) => candidates.find((c) => c.name.toLowerCase() === p))
    .find((c) => c !== undefined);
  const pick = named ?? candidates[0]!;
  return { pick: pick.name, others: named ? [] : candidates.slice(1).map((c) => c.name) };
}
