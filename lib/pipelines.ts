/**
 * The pipelines of a deployment: one YAML file per pipeline in the deployment's `pipelinesDir`, each a job spec
 * (src/spec/schema.ts) with its `triggers` (src/spec/triggers.ts). Loaded and validated at `cdk synth`: an invalid
 * pipeline fails the synth with the file, the field, the value and the fix.
 *
 * Paths in a deployed pipeline must be s3:// URIs (relative paths and file:// only make sense on one machine). The
 * data bucket the stack creates is written `${dataBucket}`; it is replaced by a stand-in name for validation here,
 * and by the real bucket's name when the stack renders a pipeline's execution input.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';
import { SpecError, type SpecIssue } from '../src/spec/errors.js';
import { parseJobSpec } from '../src/spec/load.js';
import type { JobSpec } from '../src/spec/schema.js';
import { parseTriggers, type Trigger } from '../src/spec/triggers.js';
import { MANIFEST_EXTENSIONS } from '../src/manifest/list-input.js';
import { parseUri } from '../src/storage/uri.js';
import { DATA_BUCKET_PLACEHOLDER } from './config.js';

/**
 * The stand-in for `${dataBucket}` while a pipeline is validated: a syntactically valid bucket name that cannot be
 * a real one (`.invalid` is a reserved top-level domain, and S3 names ending in it are refused).
 */
export const DATA_BUCKET_STANDIN = 'data-bucket.batch-infer.invalid';

/**
 * An EventBridge input transformer's template holds at most 8192 characters (Scheduler target inputs are held to the
 * same bound), and the pipeline's spec is embedded in them (ADR 0003). The rest of the trigger input takes well under
 * 1 KiB, and the data bucket's real name may be longer than the stand-in.
 */
export const MAX_EMBEDDED_SPEC_CHARS = 7000;

/**
 * The pipeline file's key naming where the objects of a manifest input live (`s3://` prefixes). A deployment-only
 * key, next to `triggers`: a manifest names objects anywhere, and the stack can only grant what it is told, so Plan
 * and the workers get read access to exactly these prefixes.
 */
export const MANIFEST_OBJECTS_KEY = 'manifestObjects';

/** A pipeline, validated. */
export interface Pipeline {
  /** The job spec's name: the pipeline's name, its Glue table's name and its metrics dimension. */
  readonly name: string;
  /** The file it was read from. */
  readonly file: string;
  /** The normalized spec (defaults applied), without `triggers`: what every run of the pipeline receives. */
  readonly spec: JobSpec;
  readonly triggers: readonly Trigger[];
  /**
   * Where the objects named by the pipeline's manifest input live (`manifestObjects`: s3:// prefixes, the data
   * bucket written as the stand-in): read-only for Plan and the workers. Empty when not declared.
   */
  readonly manifestObjects: readonly string[];
}

/** Pipelines with no findings, or every finding of every file. */
export class PipelineError extends Error {
  override readonly name = 'PipelineError';
}

/** `breast_cancer` -> `BreastCancer`: the stable part of a pipeline's construct ids and stack output names. */
export function pascalCase(name: string): string {
  return name
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((part) => part[0]!.toUpperCase() + part.slice(1))
    .join('');
}

/** The stack output keys of a pipeline, so the CLI can find a pipeline's resources by its name. */
export function pipelineOutputKeys(name: string): {
  readonly stateMachineArn: string;
  readonly table: string;
  readonly runsTable: string;
} {
  const id = pascalCase(name);
  return {
    stateMachineArn: `Pipeline${id}StateMachineArn`,
    table: `Pipeline${id}Table`,
    runsTable: `Pipeline${id}RunsTable`,
  };
}

/** The Glue table of a pipeline's run records. */
export function runsTableName(name: string): string {
  return `${name}_runs`;
}

/** The bucket of an s3:// URI, and its key. */
export function s3Location(uri: string): { readonly bucket: string; readonly key: string } {
  const { bucket, key } = parseUri(uri);
  return { bucket, key };
}

/** True when the bucket is the stack's data bucket (written `${dataBucket}`). */
export function isDataBucket(bucket: string): boolean {
  return bucket === DATA_BUCKET_STANDIN;
}

/** Replaces `${dataBucket}` with the stand-in name, everywhere in a text. */
export function withDataBucketStandin(text: string): string {
  return text.split(DATA_BUCKET_PLACEHOLDER).join(DATA_BUCKET_STANDIN);
}

/** The key prefix a trigger watches: its own, else the key prefix of input.uri. */
export function triggerKeyPrefix(spec: JobSpec, prefix: string | undefined): string {
  if (prefix !== undefined) return prefix;
  const { key } = s3Location(spec.input.uri);
  return key.endsWith('/') || key === '' ? key : key.slice(0, key.lastIndexOf('/') + 1);
}

/** The prefix a trigger declares (s3 and volume triggers), if any. */
export function declaredPrefix(trigger: Trigger): string | undefined {
  if (trigger.kind === 's3') return trigger.s3.prefix;
  if (trigger.kind === 'volume') return trigger.volume.prefix;
  return undefined;
}

/** The JSON a run of the pipeline is started with (`spec` of the execution input), stand-in bucket included. */
export function embeddedSpecJson(pipeline: Pipeline): string {
  return JSON.stringify(pipeline.spec);
}

function issue(path: string, value: unknown, message: string): SpecIssue {
  return { path, value: value === undefined ? 'undefined' : JSON.stringify(value), message };
}

/** A name `manifest: auto` reads as a manifest whatever the data format (see AUTO_MANIFEST_RULE). */
function isManifestName(name: string): boolean {
  const lower = name.toLowerCase();
  return lower === 'manifest.json' || MANIFEST_EXTENSIONS.some((ext) => lower.endsWith(ext));
}

/**
 * Why a pipeline's runs read a manifest (a file naming the input objects) rather than the objects themselves, or
 * undefined when they do not: `input.manifest` is `list` or `s3-inventory`; or it is `auto` and input.uri, or the
 * objects an S3 trigger passes (by its suffix), have a manifest's name (`manifest.json`, `.manifest`, `.txt`).
 */
export function manifestInputReason(spec: JobSpec, triggers: readonly Trigger[]): string | undefined {
  const { manifest, uri } = spec.input;
  if (manifest === 'list') return `input.uri ${uri} is a list manifest (input.manifest: list)`;
  if (manifest === 's3-inventory') {
    return `input.uri ${uri} is an S3 Inventory manifest.json (input.manifest: s3-inventory)`;
  }
  if (manifest !== 'auto') return undefined;
  const name = uri.slice(uri.lastIndexOf('/') + 1);
  if (name !== '' && isManifestName(name)) {
    return `input.uri ${uri} has a manifest's name, which input.manifest: auto reads as a manifest`;
  }
  const index = triggers.findIndex(
    (t) => t.kind === 's3' && t.s3.suffix !== undefined && isManifestName(t.s3.suffix),
  );
  if (index >= 0) {
    return `triggers[${index}].s3 starts runs over created objects with a manifest's name, which input.manifest: auto reads as manifests`;
  }
  return undefined;
}

/** Checks `manifestObjects`: a list of s3:// prefixes. */
function manifestObjectsIssues(raw: unknown): { readonly value: string[]; readonly issues: SpecIssue[] } {
  if (raw === undefined) return { value: [], issues: [] };
  const fix =
    `must be a list of s3:// prefixes ending in "/" (the data bucket is s3://${DATA_BUCKET_PLACEHOLDER}/), ` +
    'e.g. ["s3://corp-landing/exports/"]';
  if (!Array.isArray(raw) || raw.length === 0) {
    return { value: [], issues: [issue(MANIFEST_OBJECTS_KEY, raw, fix)] };
  }
  const issues: SpecIssue[] = [];
  raw.forEach((item: unknown, index) => {
    if (typeof item !== 'string' || !/^s3:\/\/[^/]+\/(.+\/)?$/.test(item)) {
      issues.push(issue(`${MANIFEST_OBJECTS_KEY}[${index}]`, item, fix));
    }
  });
  return { value: issues.length === 0 ? (raw as string[]) : [], issues };
}

/** Checks what only a deployed pipeline needs: S3 locations, trigger/input compatibility, no self-triggering. */
function deploymentIssues(
  spec: JobSpec,
  triggers: readonly Trigger[],
  manifestObjects: readonly string[] | undefined,
): SpecIssue[] {
  const issues: SpecIssue[] = [];
  const locations: [string, string | undefined][] = [
    ['input.uri', spec.input.uri],
    ['output.uri', spec.output.uri],
    ['model.uri', spec.model.uri],
  ];
  for (const [field, uri] of locations) {
    if (uri !== undefined && !uri.startsWith('s3://')) {
      issues.push(
        issue(
          field,
          uri,
          'must be an s3:// URI in a deployed pipeline (relative paths and file:// only make sense for local runs); ' +
            `write the data bucket as s3://${DATA_BUCKET_PLACEHOLDER}/...`,
        ),
      );
    }
  }
  if (issues.length > 0) return issues;

  const input = s3Location(spec.input.uri);
  const output = s3Location(spec.output.uri);
  triggers.forEach((trigger, index) => {
    if (trigger.kind === 'schedule') return;
    const at = `triggers[${index}].${trigger.kind}`;
    const prefix = triggerKeyPrefix(spec, declaredPrefix(trigger));
    const manifest: string = spec.input.manifest;
    // An S3 trigger passes one object as the input URI; a volume trigger passes the prefix.
    const accepted = trigger.kind === 's3' ? ['auto', 'list'] : ['auto', 'prefix'];
    if (!accepted.includes(manifest)) {
      issues.push(
        issue(
          'input.manifest',
          manifest,
          `cannot be used with a ${trigger.kind} trigger (${at}), which passes ${
            trigger.kind === 's3' ? 'the created object' : 'the prefix'
          } as the run's input; use ${accepted.map((m) => `"${m}"`).join(' or ')}`,
        ),
      );
    }
    if (input.bucket === output.bucket && (output.key.startsWith(prefix) || prefix.startsWith(output.key))) {
      issues.push(
        issue(
          `${at}.prefix`,
          prefix,
          `overlaps output.uri ${spec.output.uri}: every run's output would trigger another run. ` +
            'Watch a prefix outside the output',
        ),
      );
    }
  });
  // A manifest outside the data bucket: the stack grants read access to the manifest (input.uri) but cannot know
  // where the objects it names are; without `manifestObjects` every run would fail on its first object.
  const manifestReason = manifestInputReason(spec, triggers);
  if (manifestReason !== undefined && !isDataBucket(input.bucket) && manifestObjects === undefined) {
    issues.push(
      issue(
        MANIFEST_OBJECTS_KEY,
        manifestObjects,
        `is required: ${manifestReason}, in bucket ${input.bucket} outside the data bucket, and Plan and the workers ` +
          'may read the manifest but not the objects it names. Add manifestObjects: the s3:// prefixes where those ' +
          `objects${spec.input.manifest === 's3-inventory' ? " (and the inventory's data files)" : ''} live, ` +
          `e.g. manifestObjects: ["s3://${input.bucket}/"]; they are granted read-only. Or read a prefix instead ` +
          '(input.manifest: prefix)',
      ),
    );
  }
  if (triggers.length > 0 && embeddedSpecLength(spec) > MAX_EMBEDDED_SPEC_CHARS) {
    issues.push(
      issue(
        'triggers',
        `${embeddedSpecLength(spec)} characters of spec`,
        `cannot start runs: the spec is embedded in each trigger's input, which holds at most ${MAX_EMBEDDED_SPEC_CHARS} characters of it. ` +
          'Shorten the spec (fewer listed columns) or start runs with the CLI',
      ),
    );
  }
  return issues;
}

function embeddedSpecLength(spec: JobSpec): number {
  return JSON.stringify(spec).length;
}

/** Parses one pipeline file's text. Throws a SpecError listing every problem. */
export function parsePipelineText(text: string, file: string): Pipeline {
  let raw: unknown;
  try {
    raw = YAML.parse(withDataBucketStandin(text), { prettyErrors: true }) as unknown;
  } catch (error) {
    throw new SpecError(
      [issue('', 'unparseable text', `is not valid YAML: ${(error as Error).message}`)],
      file,
    );
  }
  const triggersRaw = (raw as { triggers?: unknown } | null)?.triggers;
  const { triggers, issues: triggerIssues } = parseTriggers(triggersRaw);
  // `manifestObjects` is the deployment's, not the job spec's: taken out before the spec is validated.
  let specRaw = raw;
  let manifestObjectsRaw: unknown;
  if (typeof raw === 'object' && raw !== null && MANIFEST_OBJECTS_KEY in raw) {
    const { [MANIFEST_OBJECTS_KEY]: declared, ...rest } = raw as Record<string, unknown>;
    manifestObjectsRaw = declared;
    specRaw = rest;
  }
  const manifestObjects = manifestObjectsIssues(manifestObjectsRaw);
  const fileIssues = [...triggerIssues, ...manifestObjects.issues];
  let spec: JobSpec;
  try {
    // No baseDir: relative paths are refused with the spec loader's own message.
    spec = parseJobSpec(specRaw, { source: file });
  } catch (error) {
    if (error instanceof SpecError) {
      // The spec loader checks the triggers too: each problem once.
      const key = (i: SpecIssue): string => `${i.path}\u0000${i.message}`;
      const seen = new Set(error.issues.map(key));
      throw new SpecError([...error.issues, ...fileIssues.filter((i) => !seen.has(key(i)))], file);
    }
    throw error;
  }
  const declared = manifestObjectsRaw === undefined ? undefined : manifestObjects.value;
  const issues = [...fileIssues, ...deploymentIssues(spec, triggers, declared)];
  if (issues.length > 0) throw new SpecError(issues, file);
  const { triggers: _declared, ...runSpec } = spec;
  return { name: spec.name, file, spec: runSpec, triggers, manifestObjects: manifestObjects.value };
}

/** Every pipeline of a folder (`*.yaml`, `*.yml`), sorted by file name. Throws listing every file's problems. */
export function loadPipelines(dir: string): Pipeline[] {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new PipelineError(
      `The pipelines folder ${dir} does not exist. Fix: create it, or set pipelinesDir in the deploy configuration.`,
    );
  }
  const files = fs
    .readdirSync(dir)
    .filter((f) => /\.ya?ml$/i.test(f))
    .sort();
  const pipelines: Pipeline[] = [];
  const problems: string[] = [];
  for (const name of files) {
    const file = path.join(dir, name);
    try {
      pipelines.push(parsePipelineText(fs.readFileSync(file, 'utf8'), file));
    } catch (error) {
      if (!(error instanceof SpecError)) throw error;
      problems.push(error.message);
    }
  }
  problems.push(...collisions(pipelines));
  if (problems.length > 0) {
    throw new PipelineError(`Invalid pipelines in ${dir}:\n${problems.join('\n')}`);
  }
  return pipelines;
}

/** Names that must be unique across a deployment: pipeline names, their Glue tables and their stack outputs. */
export function collisions(pipelines: readonly Pipeline[]): string[] {
  const problems: string[] = [];
  const tables = new Map<string, string>();
  const outputs = new Map<string, { readonly file: string; readonly name: string }>();
  for (const p of pipelines) {
    for (const table of [p.name, runsTableName(p.name)]) {
      const other = tables.get(table);
      if (other !== undefined) {
        problems.push(
          `${p.file}: name "${p.name}" needs the Glue table "${table}", which ${other} needs too; ` +
            'give each pipeline a distinct name (and none named <other pipeline>_runs)',
        );
      }
      tables.set(table, p.file);
    }
    const key = pascalCase(p.name);
    const same = outputs.get(key);
    // A duplicated name is reported above; only different names that read the same in PascalCase are reported here.
    if (same !== undefined && same.name !== p.name) {
      problems.push(
        `${p.file}: name "${p.name}" gives the same stack output names (Pipeline${key}...) as "${same.name}" in ${same.file}; rename one of them`,
      );
    }
    outputs.set(key, { file: p.file, name: p.name });
  }
  return problems;
}

/** Model package groups the pipelines resolve models from. */
export function modelPackageGroupsOf(pipelines: readonly Pipeline[]): string[] {
  return [
    ...new Set(pipelines.flatMap((p) => (p.spec.model.registry ? [p.spec.model.registry.group] : []))),
  ].sort();
}
