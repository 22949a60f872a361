/**
 * Loading a job spec: YAML or JSON text -> schema validation -> cross-field checks -> paths made absolute.
 * Every problem is reported at once, each naming the field, the value and the fix.
 */
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import type { z } from 'zod';
import { pathToFileURL } from 'node:url';
import { dirnameUri, normalizeUri, parseUri, prefixesOverlap, UriError } from '../storage/uri.js';
import { SpecError, type SpecIssue } from './errors.js';
import { isTextInput, type OutputTensorSpec } from './model-io.js';
import { challengerSpecIssues, challengerSpecOf } from './challenger.js';
import { jobSpecSchema, type JobSpec } from './schema.js';
import { parseTriggers } from './triggers.js';

export interface ParseOptions {
  /** Shown in error messages: the file the spec came from. */
  readonly source?: string;
  /**
   * Directory that relative paths in the spec are relative to. Without it (a spec sent to the Plan Lambda), every
   * location must already be an s3:// or file:// URI.
   */
  readonly baseDir?: string;
}

/** Parses YAML (JSON is YAML) text into a validated spec. */
export function parseJobSpecText(text: string, options: ParseOptions = {}): JobSpec {
  let raw: unknown;
  try {
    raw = YAML.parse(text, { prettyErrors: true });
  } catch (err) {
    throw new SpecError(
      [
        {
          path: '',
          value: 'unparseable text',
          message: `is not valid YAML or JSON: ${(err as Error).message}`,
        },
      ],
      options.source,
    );
  }
  return parseJobSpec(raw, options);
}

export async function loadJobSpecFile(file: string): Promise<JobSpec> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new SpecError([{ path: '', value: file, message: unreadableSpecMessage(file, err) }], file);
  }
  return parseJobSpecText(text, { source: file, baseDir: path.dirname(path.resolve(file)) });
}

/** Why a job spec file could not be read, and what to do: for a missing file, the specs that are in its folder. */
function unreadableSpecMessage(file: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EISDIR') return 'is a folder: give the path of a job spec file (.yaml, .yml or .json) in it';
  if (code === 'EACCES') return 'cannot be read: permission denied';
  if (code !== 'ENOENT') return `cannot be read: ${code ?? String(err)}`;
  let nearby: string[] = [];
  try {
    const folder = path.dirname(path.resolve(file));
    nearby = readdirSync(folder)
      .filter((name) => /\.(ya?ml|json)$/i.test(name))
      .sort()
      .slice(0, 8)
      .map((name) => path.join(path.dirname(file), name));
  } catch {
    return 'no such file, and its folder does not exist either: check the path';
  }
  return nearby.length > 0
    ? `no such file; job specs in that folder: ${nearby.join(', ')}`
    : 'no such file, and no job spec (.yaml, .yml or .json) in that folder: check the path';
}

/**
 * The folder of a job spec, as a URI ending in `/`: where Plan looks for companion files (a processor module,
 * labels, a tokenizer) that are not next to the model artifact. `spec` is a file path (relative to the working
 * directory) or a `file://` / `s3://` URI of the spec.
 */
export function specFolderUri(spec: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) return dirnameUri(spec);
  return `${pathToFileURL(path.dirname(path.resolve(spec))).href}/`;
}

/** Validates an already-parsed value (e.g. the `spec` of an execution input). */
export function parseJobSpec(raw: unknown, options: ParseOptions = {}): JobSpec {
  const result = jobSpecSchema.safeParse(raw);
  if (!result.success) {
    throw new SpecError(
      result.error.issues.map((issue) => toSpecIssue(issue, raw)),
      options.source,
    );
  }
  const spec = result.data;
  const issues = [
    ...crossFieldIssues(spec),
    ...challengerIssues(spec),
    // Deployment-only, but checked here too so that `validate` finds a broken trigger before `cdk synth` does.
    ...parseTriggers(spec.triggers).issues,
    ...normalizeLocations(spec, options.baseDir),
  ];
  if (issues.length > 0) throw new SpecError(issues, options.source);
  return spec;
}

/** The columns a run writes, in order, from a resolved spec. Also used to check for clashes. */
export function outputColumnNames(spec: JobSpec): string[] {
  const names: string[] = [];
  if (spec.input.id) names.push(spec.input.id);
  names.push(...spec.output.passthrough.filter((c) => c !== spec.input.id));
  for (const out of spec.model.outputs) names.push(...outputTensorColumnNames(out));
  // A processor's postprocess columns come after the declared outputs' (the postprocessor writes them in this order).
  names.push(...Object.keys(spec.model.processor?.columns ?? {}));
  return names;
}

/** The columns one `model.outputs` entry writes, in order. */
export function outputTensorColumnNames(out: OutputTensorSpec): string[] {
  const vector = out.as ?? out.tensor;
  const pp = out.postprocess;
  if (!pp) return [vector];
  const names: string[] = [];
  if (pp.argmax) names.push(pp.argmax.as);
  for (const k of pp.keep) names.push(k === 'score' ? 'score' : vector);
  if (pp.topK) names.push(pp.topK.as.labels, pp.topK.as.scores);
  // The (activated or pooled) vector itself, unless the entry turns it into labels.
  if (!pp.argmax && !pp.topK) names.push(vector);
  return names;
}

/** What a model companion file is for: the worker loads each kind its own way. */
export type ModelFileKind = 'labels' | 'tokenizer' | 'processor';

/**
 * Files the model section refers to (labels, tokenizers, the processor module), each with the field it comes from
 * and its kind. A relative reference is looked up inside the model archive, then next to the model artifact, then
 * next to the job spec (`specFolderUri`); Plan resolves and checks them all, records which place each was found
 * in, and workers find them in `plan.model.files` under the same reference (`loadModelFiles` in src/inference
 * loads them).
 */
export function modelFileReferences(
  spec: JobSpec,
): { readonly ref: string; readonly field: string; readonly kind: ModelFileKind }[] {
  const refs: { ref: string; field: string; kind: ModelFileKind }[] = [];
  spec.model.inputs.forEach((input, i) => {
    if (isTextInput(input)) {
      refs.push({ ref: input.from.tokenizer, field: `model.inputs[${i}].from.tokenizer`, kind: 'tokenizer' });
    }
  });
  spec.model.outputs.forEach((output, i) => {
    const labels = output.postprocess?.argmax?.labels;
    if (labels !== undefined)
      refs.push({ ref: labels, field: `model.outputs[${i}].postprocess.argmax.labels`, kind: 'labels' });
    const topLabels = output.postprocess?.topK?.labels;
    // topK.labels defaults to argmax.labels: listing the same file twice would only repeat the check.
    if (topLabels !== undefined && topLabels !== labels)
      refs.push({ ref: topLabels, field: `model.outputs[${i}].postprocess.topK.labels`, kind: 'labels' });
  });
  if (spec.model.processor) {
    refs.push({ ref: spec.model.processor.module, field: 'model.processor.module', kind: 'processor' });
  }
  return refs;
}

function crossFieldIssues(spec: JobSpec): SpecIssue[] {
  const issues: SpecIssue[] = [];
  const seen = new Set<string>();
  for (const name of outputColumnNames(spec)) {
    if (seen.has(name) || name.startsWith('_')) {
      issues.push({
        path: 'model.outputs',
        value: JSON.stringify(name),
        message: name.startsWith('_')
          ? 'output columns may not start with "_" (reserved for _shard, _source, _offset); rename it with "as"'
          : 'is produced twice (check input.id, output.passthrough and each output\'s "as"); give each column a unique name',
      });
    }
    seen.add(name);
  }
  if (spec.output.schema) {
    for (const name of Object.keys(spec.output.schema)) {
      if (!seen.has(name)) {
        issues.push({
          path: `output.schema.${name}`,
          value: JSON.stringify(name),
          message: `is not a column this job writes (it writes ${[...seen].join(', ')}); fix the name or remove it`,
        });
      }
    }
  }
  return issues;
}

/** Makes input/output/model locations absolute URIs and rejects an input that overlaps the output. */
function normalizeLocations(spec: JobSpec, baseDir: string | undefined): SpecIssue[] {
  const issues: SpecIssue[] = [];
  const fix = (field: string, value: string): string => {
    try {
      if (baseDir === undefined && !/^(s3|file):\/\//.test(value)) {
        throw new UriError(
          'relative paths are only allowed in a spec file; use an s3:// or file:// URI here',
        );
      }
      const uri = normalizeUri(value, baseDir ?? '/');
      parseUri(uri); // an s3:// URI must name a valid bucket: found here, not when Plan lists it
      return uri;
    } catch (err) {
      issues.push({ path: field, value: JSON.stringify(value), message: (err as Error).message });
      return value;
    }
  };
  spec.input.uri = fix('input.uri', spec.input.uri);
  spec.output.uri = fix('output.uri', spec.output.uri);
  if (!spec.output.uri.endsWith('/')) spec.output.uri += '/';
  if (spec.model.uri) spec.model.uri = fix('model.uri', spec.model.uri);
  const challenger = spec.model.challenger;
  if (challenger?.uri) challenger.uri = fix('model.challenger.uri', challenger.uri);
  if (issues.length === 0 && prefixesOverlap(spec.input.uri, spec.output.uri)) {
    issues.push({
      path: 'output.uri',
      value: JSON.stringify(spec.output.uri),
      message: `overlaps input.uri ${spec.input.uri}; a run would read its own output. Write predictions to a separate prefix`,
    });
  }
  return issues;
}

function toSpecIssue(issue: z.core.$ZodIssue, raw: unknown): SpecIssue {
  const pathText = issue.path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`))
    .join('');
  let value = valueAt(raw, issue.path);
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    message = `has unknown field(s) ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}; check the spelling against the job spec reference`;
    value = issue.keys.join(', ');
  } else if (value === 'undefined' && issue.code !== 'custom') {
    message = `is required: ${issue.message.replace(/^Invalid input: /, '')}`;
  }
  return { path: pathText, value, message };
}

function valueAt(raw: unknown, keys: readonly PropertyKey[]): string {
  let cur: unknown = raw;
  for (const key of keys) {
    if (cur === null || typeof cur !== 'object') return 'undefined';
    cur = (cur as Record<PropertyKey, unknown>)[key];
  }
  if (cur === undefined) return 'undefined';
  const text = JSON.stringify(cur);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** model.challenger / validation.challenger: their own rules, and the challenger's columns checked like the champion's. */
function challengerIssues(spec: JobSpec): SpecIssue[] {
  const challenger = challengerSpecOf(spec);
  const own = challenger
    ? crossFieldIssues(challenger).map((issue) => ({
        ...issue,
        path: issue.path.replace(/^model\.outputs/, 'model.challenger.outputs'),
      }))
    : [];
  return [...challengerSpecIssues(spec), ...own];
}
