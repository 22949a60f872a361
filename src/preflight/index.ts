/**
 * Preflight: checks a job spec against its model and its input before anything runs, so a mistake that would fail
 * every shard fails `batch-infer validate` and the Plan step instead, with every problem named at once.
 *
 *   spec ⇄ model signature (read from the ONNX protobuf: no ONNX Runtime here, the Plan Lambda stays small)
 *   spec ⇄ input sample (CSV header, Parquet schema, JSON lines keys)
 *   output.schema ⇄ the columns the job writes
 *
 * Two entry points: `preflight` resolves the model and lists the input itself (validate, other tools), and
 * `preflightResolved` takes what Plan has already resolved and listed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { listInput } from '../manifest/list-input.js';
import { extractModelArchive, isModelArchive } from '../registry/archive.js';
import type { ModelRegistry } from '../registry/model-registry.js';
import type { InputObject } from '../runs/types.js';
import { challengerProblems } from '../challenger/plan.js';
import { challengerSpecOf } from '../spec/challenger.js';
import { modelFileReferences } from '../spec/load.js';
import type { JobSpec } from '../spec/schema.js';
import type { ObjectStore } from '../storage/object-store.js';
import { asPrefix, resolveAgainst } from '../storage/uri.js';
import { checkInputColumns } from './input-check.js';
import { checkModel } from './model-check.js';
import { readOnnxSignature, type ModelSignature } from './onnx-signature.js';
import { checkOutputSchema } from './output-check.js';
import type { Problem } from './problems.js';

export { checkInputColumns, columnsReadBy } from './input-check.js';
export { checkModel, modelOutputColumnTypes } from './model-check.js';
export { OnnxFormatError, readOnnxSignature, readOnnxSignatureFrom } from './onnx-signature.js';
export type { GraphTensor, ModelSignature } from './onnx-signature.js';
export { checkOutputSchema } from './output-check.js';
export { didYouMean, formatProblem, PreflightError, type Problem, type ProblemCode } from './problems.js';

export interface ResolvedPreflightInput {
  readonly store: ObjectStore;
  /** The .onnx file (an archive already extracted). */
  readonly modelUri: string;
  /** Where each companion file the spec names was found (Plan's `model.files`); labels are counted from these. */
  readonly files: Readonly<Record<string, string>>;
  /** The listed input objects; a sample is read. */
  readonly objects: readonly InputObject[];
}

/** Checks with everything resolved (Plan). Never throws for a mismatch: each is a Problem. */
export async function preflightResolved(spec: JobSpec, input: ResolvedPreflightInput): Promise<Problem[]> {
  const problems: Problem[] = [];
  let signature: ModelSignature | undefined;
  try {
    signature = await readOnnxSignature(input.store, input.modelUri);
  } catch (err) {
    problems.push({
      code: 'ModelUnreadable',
      field: spec.model.registry ? 'model.registry' : 'model.uri',
      value: input.modelUri,
      found: `it is not a readable ONNX model: ${err instanceof Error ? err.message : String(err)}`,
      fix: 'point the spec at an .onnx file (or a model.tar.gz holding one), exported again if it is corrupt',
    });
  }
  if (signature) {
    const labels = await countLabels(input.store, spec, input.files);
    problems.push(...checkModel(spec, signature, labels));
  }
  problems.push(...(await checkInputColumns(input.store, spec, input.objects)));
  problems.push(...checkOutputSchema(spec, signature));
  return problems;
}

export interface PreflightDeps {
  readonly store: ObjectStore;
  readonly registry: ModelRegistry;
  /** The job spec's folder (a URI ending in `/`): companion files not next to the model are looked for there. */
  readonly specFolder?: string;
  /** Overrides input.uri, as a run's --input does. */
  readonly inputUri?: string;
}

/**
 * Resolves the model (registry or model.uri; an archive is extracted into a temporary folder), lists the input and
 * runs every check. A model or input that cannot be found throws the same typed errors Plan throws (ModelError,
 * InputError), since there is nothing to compare against.
 */
export async function preflight(spec: JobSpec, deps: PreflightDeps): Promise<Problem[]> {
  let artifactUri: string;
  let archive = false;
  if (spec.model.registry) {
    const resolved = await deps.registry.resolve(spec.model.registry.group, spec.model.registry.version);
    artifactUri = resolved.artifactUri;
    archive = resolved.archive === true;
  } else {
    artifactUri = spec.model.uri!;
  }
  let temp: string | undefined;
  try {
    let modelUri = artifactUri;
    const files: Record<string, string> = {};
    if (archive || isModelArchive(artifactUri)) {
      temp = mkdtempSync(path.join(os.tmpdir(), 'batch-infer-preflight-'));
      const extracted = await extractModelArchive(
        deps.store,
        artifactUri,
        asPrefix(pathToFileURL(temp).href),
        'the model archive',
      );
      modelUri = extracted.model.uri;
      for (const f of extracted.files.values()) files[f.path] = f.uri;
    }
    for (const { ref, kind } of modelFileReferences(spec)) {
      if (kind !== 'labels' || ref in files) continue;
      const found = await findCompanion(deps.store, ref, [modelUri, artifactUri], deps.specFolder);
      if (found) files[ref] = found;
    }
    const input = deps.inputUri ? { ...spec.input, uri: deps.inputUri } : spec.input;
    const objects = await listInput(deps.store, input, { outputUri: spec.output.uri });
    const problems = await preflightResolved(spec, { store: deps.store, modelUri, files, objects });
    // The challenger (docs/adr/0020) is checked against the same inputs as the champion.
    const challenger = challengerSpecOf(spec);
    if (!challenger) return problems;
    const own = spec.model.challenger?.outputs !== undefined;
    return [...problems, ...challengerProblems(await preflight(challenger, deps), own, problems)];
  } finally {
    if (temp) rmSync(temp, { recursive: true, force: true });
  }
}

async function findCompanion(
  store: ObjectStore,
  ref: string,
  nextTo: readonly string[],
  specFolder: string | undefined,
): Promise<string | undefined> {
  const places = [
    ...nextTo.map((uri) => resolveAgainst(uri, ref)),
    ...(specFolder ? [resolveAgainst(asPrefix(specFolder), ref)] : []),
  ];
  for (const uri of places) if (await store.tryHead(uri)) return uri;
  return undefined;
}

/** Lines of each labels file, counted as the worker parses them (postprocess.ts parseLabels). */
async function countLabels(
  store: ObjectStore,
  spec: JobSpec,
  files: Readonly<Record<string, string>>,
): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const { ref, kind } of modelFileReferences(spec)) {
    if (kind !== 'labels' || counts.has(ref)) continue;
    const uri = files[ref];
    if (uri === undefined) continue;
    try {
      const lines = new TextDecoder()
        .decode(await store.get(uri))
        .split(/\r?\n/)
        .map((l) => l.trim());
      while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
      counts.set(ref, lines.length);
    } catch {
      // A labels file that cannot be read is reported by Plan's companion-file check and the worker.
    }
  }
  return counts;
}
