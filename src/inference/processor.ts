/**
 * User processor modules (`model.processor`): JavaScript for what the declarative forms cannot say. A module is an
 * ES module (or CommonJS) file exporting either or both of:
 *
 * ```js
 * // records: [{ values, source, offset }]; context: { Tensor, modelInputs }
 * export function preprocess(records, context) {
 *   return {
 *     feeds: { x: new context.Tensor('float32', data, [n, 4]) },   // or { type, data, dims } objects
 *     errors: [{ index: 2, message: 'no text' }],                   // optional: records left out, by index
 *   };                                                              // feeds hold one row per other record, in order
 * }
 * // outputs: { <name>: Tensor }; records: the records of the rows, in order; context: { Tensor, modelOutputs }
 * export function postprocess(outputs, records, context) {
 *   return records.map((r, i) => ({ label: '...', score: 0.5 }));  // or { _error: 'why' } for a failed row
 * }
 * ```
 *
 * Either may be async. The columns postprocess returns are declared in `model.processor.columns` with their types,
 * and every value is checked against them. A module downloaded from S3 runs from a temporary directory, so it
 * must be self-contained (Node built-ins only): it gets the Tensor class through `context` rather than importing
 * onnxruntime-node.
 */
import * as ort from 'onnxruntime-node';
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { DecodedRecord } from '../formats/records.js';
import type { ErrorReason } from '../runs/types.js';
import { ModelError } from '../spec/errors.js';
import type { ObjectStore } from '../storage/object-store.js';
import { parseUri } from '../storage/uri.js';
import type { OutputColumnTypeName } from '../spec/model-io.js';
import type { TensorInfo } from './session.js';

export interface PreprocessContext {
  /** onnxruntime-node's Tensor class. */
  readonly Tensor: typeof ort.Tensor;
  /** The graph inputs to feed: names, element types, shapes. */
  readonly modelInputs: readonly TensorInfo[];
}

export interface PostprocessContext {
  /** onnxruntime-node's Tensor class. */
  readonly Tensor: typeof ort.Tensor;
  /** The graph outputs: names, element types, shapes. */
  readonly modelOutputs: readonly TensorInfo[];
}

/** A tensor as plain data, for modules that do not construct Tensor objects. */
export interface TensorLike {
  readonly type: ort.Tensor.Type;
  readonly data: ort.Tensor.DataType;
  readonly dims: readonly number[];
}

export interface PreprocessResult {
  readonly feeds: Record<string, ort.Tensor | TensorLike>;
  readonly errors?: readonly {
    readonly index: number;
    readonly message: string;
    readonly reason?: ErrorReason;
  }[];
}

export type PreprocessFn = (
  records: readonly DecodedRecord[],
  context: PreprocessContext,
) => PreprocessResult | Promise<PreprocessResult>;

export type PostprocessFn = (
  outputs: Readonly<Record<string, ort.Tensor>>,
  records: readonly DecodedRecord[],
  context: PostprocessContext,
) => readonly Record<string, unknown>[] | Promise<readonly Record<string, unknown>[]>;

/** A loaded module: the functions it exports, and where it came from (for messages). */
export interface ProcessorModule {
  readonly ref: string;
  /** The columns postprocess returns (`model.processor.columns`). */
  readonly columns?: Readonly<Record<string, OutputColumnTypeName>>;
  readonly preprocess?: PreprocessFn;
  readonly postprocess?: PostprocessFn;
}

/**
 * Imports a processor module. A file:// module is imported where it is (so its relative imports work); any other
 * location is downloaded into a temporary directory first. The URL carries the content's digest, so a changed file
 * is imported afresh rather than served from Node's module cache.
 */
export async function loadProcessor(
  store: ObjectStore,
  ref: string,
  uri: string,
  tempDir: string = path.join(tmpdir(), 'batch-infer-processors'),
): Promise<ProcessorModule> {
  const bytes = await store.get(uri);
  const digest = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  let url: string;
  if (uri.startsWith('file://')) {
    url = `${uri}?sha256=${digest}`;
  } else {
    await mkdir(tempDir, { recursive: true });
    // .mjs: a temporary directory has no package.json saying "type": "module".
    const file = path.join(
      tempDir,
      `${path.basename(parseUri(uri).key).replace(/\.[^.]*$/, '')}-${digest}.mjs`,
    );
    await writeFile(file, bytes);
    url = pathToFileURL(file).href;
  }
  let loaded: Record<string, unknown>;
  try {
    loaded = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    throw new ModelError(
      `processor module "${ref}" (${uri}) could not be imported: ${(err as Error).message}`,
    );
  }
  // A CommonJS module's exports arrive as `default`.
  const exported =
    typeof loaded.preprocess === 'function' || typeof loaded.postprocess === 'function'
      ? loaded
      : ((loaded.default ?? {}) as Record<string, unknown>);
  const preprocess = exported.preprocess;
  const postprocess = exported.postprocess;
  if (typeof preprocess !== 'function' && typeof postprocess !== 'function') {
    throw new ModelError(
      `processor module "${ref}" exports neither preprocess nor postprocess; export at least one function`,
    );
  }
  return {
    ref,
    ...(typeof preprocess === 'function' && { preprocess: preprocess as PreprocessFn }),
    ...(typeof postprocess === 'function' && { postprocess: postprocess as PostprocessFn }),
  };
}

/** Turns what preprocess returned into Tensors, checking it has the shape the contract asks for. */
export function checkedFeeds(
  ref: string,
  result: unknown,
  records: number,
): { feeds: Record<string, ort.Tensor>; errors: Map<number, { message: string; reason: ErrorReason }> } {
  const fail = (why: string): never => {
    throw new ModelError(`processor "${ref}": preprocess ${why}`);
  };
  if (result === null || typeof result !== 'object' || !('feeds' in result)) {
    fail('must return { feeds, errors? }');
  }
  const { feeds, errors } = result as { feeds: unknown; errors?: unknown };
  if (feeds === null || typeof feeds !== 'object') fail('returned feeds that are not an object');
  const errorMap = new Map<number, { message: string; reason: ErrorReason }>();
  if (errors !== undefined) {
    if (!Array.isArray(errors)) fail('returned errors that are not an array');
    for (const e of errors as unknown[]) {
      const { index, message, reason } = (e ?? {}) as {
        index?: unknown;
        message?: unknown;
        reason?: unknown;
      };
      if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= records) {
        fail(`returned an error with index ${String(index)}, not a record index (0..${records - 1})`);
      }
      errorMap.set(index as number, {
        message: typeof message === 'string' ? message : 'rejected by the processor',
        reason: reason === 'MISSING_VALUE' ? 'MISSING_VALUE' : 'INVALID_VALUE',
      });
    }
  }
  const rows = records - errorMap.size;
  const out: Record<string, ort.Tensor> = {};
  for (const [name, value] of Object.entries(feeds as Record<string, unknown>)) {
    let tensor: ort.Tensor;
    if (value instanceof ort.Tensor) {
      tensor = value;
    } else {
      const like = (value ?? {}) as Partial<TensorLike>;
      if (typeof like.type !== 'string' || !like.data || !Array.isArray(like.dims)) {
        fail(`returned feeds.${name} that is neither a Tensor nor { type, data, dims }`);
      }
      try {
        tensor = new ort.Tensor(like.type as 'float32', like.data as Float32Array, like.dims);
      } catch (err) {
        return fail(`returned feeds.${name} that is not a valid tensor: ${(err as Error).message}`);
      }
    }
    if (tensor.dims[0] !== rows) {
      fail(
        `returned feeds.${name} with ${tensor.dims[0]} rows for ${rows} records (${records} minus ` +
          `${errorMap.size} errors); the first dimension is one row per record kept`,
      );
    }
    out[name] = tensor;
  }
  return { feeds: out, errors: errorMap };
}
