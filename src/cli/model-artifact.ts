/**
 * The model behind a `<model>` argument of `inspect` and `init` (a file, a URI, or a registry reference, see
 * ./model-source.ts): the registry version it resolves to, and the model's signature, read from the ONNX protobuf
 * with src/preflight/onnx-signature.ts (ranged reads, no ONNX Runtime). A model.tar.gz is extracted into a
 * temporary folder first (src/registry/archive.ts) and removed afterwards.
 *
 * Every failure is a CliError of one line, exit 2: nothing was started, and the message says what to fix.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { OnnxFormatError, readOnnxSignature, type ModelSignature } from '../preflight/onnx-signature.js';
import { extractModelArchive, isModelArchive } from '../registry/archive.js';
import type { ModelVersion, VersionSelector } from '../registry/model-registry.js';
import { ModelError } from '../spec/errors.js';
import { NotFoundError, type ObjectStore } from '../storage/object-store.js';
import { joinUri, UriError } from '../storage/uri.js';
import { CliError } from './errors.js';
import type { CliIo } from './io.js';
import {
  explainAwsError,
  parseModelRef,
  registryFor,
  sageMakerRegistry,
  type RegistryDeps,
  type RegistryLocation,
  type RegistryOptions,
} from './model-source.js';

/** Companion files a starter spec can use when they sit next to the model (labels for argmax, a tokenizer). */
export const COMPANION_FILES = ['labels.txt', 'tokenizer.json'] as const;
export type CompanionFile = (typeof COMPANION_FILES)[number];

export interface ResolvedModel {
  /** The argument as given. */
  readonly given: string;
  /** How a job spec names this model: `model.uri`, or `model.registry` with the selector to write. */
  readonly source:
    | { readonly uri: string }
    | { readonly registry: { readonly group: string; readonly version: VersionSelector } };
  /** The registry version it resolved to, and where it was looked up. */
  readonly registry?: { readonly version: ModelVersion; readonly location: RegistryLocation };
  /** The artifact as stored: an .onnx file or a model archive. */
  readonly artifactUri: string;
  readonly signature: ModelSignature;
  /** Companion files found next to the model (or in its archive). */
  readonly companions: readonly CompanionFile[];
}

/** Resolves `<model>` and reads its signature. */
export async function resolveModel(
  arg: string,
  options: RegistryOptions,
  io: CliIo,
  deps: RegistryDeps,
): Promise<ResolvedModel> {
  try {
    const ref = parseModelRef(arg, io.cwd);
    if (ref.kind === 'file') {
      const read = await readArtifact(deps.store, ref.uri, isModelArchive(ref.uri), ref.given);
      return { given: arg, source: { uri: ref.uri }, artifactUri: ref.uri, ...read };
    }
    let version: ModelVersion;
    let location: RegistryLocation;
    let selector: VersionSelector;
    if (ref.kind === 'arn') {
      const chosen = await sageMakerRegistry(ref.region, deps);
      version = await chosen.registry.resolveArn(ref.arn);
      location = chosen.location;
      // An ARN names one version: the starter pins it.
      selector = version.version;
    } else {
      const chosen = await registryFor(ref.group, options, io, deps);
      version = await chosen.registry.resolve(ref.group, ref.selector);
      location = chosen.location;
      selector = ref.selector;
    }
    const what = `the artifact of model "${version.group}" version ${version.version}`;
    const read = await readArtifact(deps.store, version.artifactUri, version.archive === true, what);
    return {
      given: arg,
      source: { registry: { group: version.group, version: selector } },
      registry: { version, location },
      artifactUri: version.artifactUri,
      ...read,
    };
  } catch (err) {
    if (err instanceof ModelError || err instanceof UriError) throw new CliError(err.message);
    throw explainAwsError(err);
  }
}

async function readArtifact(
  store: ObjectStore,
  uri: string,
  archive: boolean,
  what: string,
): Promise<{ signature: ModelSignature; companions: CompanionFile[] }> {
  if (!archive) {
    const signature = await readSignature(store, uri, what, uri);
    const folder = uri.slice(0, uri.lastIndexOf('/') + 1);
    const companions: CompanionFile[] = [];
    for (const name of COMPANION_FILES) {
      if (await exists(store, joinUri(folder, name))) companions.push(name);
    }
    return { signature, companions };
  }
  const temp = mkdtempSync(path.join(tmpdir(), 'batch-infer-inspect-'));
  try {
    const extracted = await extractModelArchive(store, uri, `${pathToFileURL(temp).href}/`, what);
    const signature = await readSignature(store, extracted.model.uri, what, uri);
    const modelFolder = path.posix.dirname(extracted.model.path);
    const companions = COMPANION_FILES.filter((name) =>
      extracted.files.has(modelFolder === '.' ? name : `${modelFolder}/${name}`),
    );
    return { signature, companions };
  } finally {
    rmSync(temp, { recursive: true, force: true });
  }
}

async function readSignature(
  store: ObjectStore,
  modelUri: string,
  what: string,
  artifactUri: string,
): Promise<ModelSignature> {
  try {
    return await readOnnxSignature(store, modelUri);
  } catch (err) {
    if (err instanceof NotFoundError) {
      throw new CliError(`${what} does not exist (${artifactUri}); check the path or the registry entry`);
    }
    if (err instanceof OnnxFormatError) {
      throw new CliError(
        `${what} is not an ONNX model (${err.message}): give an .onnx file, a model.tar.gz holding one, or a ` +
          'registry reference (<group>, <group>:<version>, a model package ARN)',
      );
    }
    throw err;
  }
}

async function exists(store: ObjectStore, uri: string): Promise<boolean> {
  try {
    await store.head(uri);
    return true;
  } catch (err) {
    if (err instanceof NotFoundError) return false;
    throw err;
  }
}
