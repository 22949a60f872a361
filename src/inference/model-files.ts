/**
 * A model's companion files, loaded once per worker: labels files, tokenizers and the processor module named by
 * the job spec. Plan resolved each reference to a URI (`plan.model.files`, keyed by the reference as written); this
 * reads them from there, so a worker never re-resolves a path and always reads what the plan checked.
 */
import type { ResolvedModel } from '../runs/types.js';
import { ModelError, RunStateError } from '../spec/errors.js';
import { modelFileReferences } from '../spec/load.js';
import type { JobSpec } from '../spec/schema.js';
import type { ObjectStore } from '../storage/object-store.js';
import { parseLabels } from './postprocess.js';
import { loadProcessor, type ProcessorModule } from './processor.js';
import { loadTokenizer, type TextTokenizer } from './text.js';

export interface ModelFiles {
  /** Label lists by their spec reference (`argmax.labels`, `topK.labels`). */
  readonly labels: ReadonlyMap<string, readonly string[]>;
  /** Tokenizers by their spec reference (`from.tokenizer`). */
  readonly tokenizers: ReadonlyMap<string, TextTokenizer>;
  /** The `model.processor` module, when the spec names one. */
  readonly processor?: ProcessorModule;
}

/** No companion files: what a model with only tabular inputs and raw outputs needs. */
export const NO_MODEL_FILES: ModelFiles = { labels: new Map(), tokenizers: new Map() };

export interface LoadModelFilesOptions {
  /** Where processor modules from S3 are written before import. @default <os tmpdir>/batch-infer-processors */
  readonly tempDir?: string;
}

/**
 * Loads every file `modelFileReferences(plan.spec)` lists from `plan.model.files`. Call it once per worker, before
 * `createFeatureBuilder` and `createPostprocessor`, and hand the result to both.
 */
export async function loadModelFiles(
  store: ObjectStore,
  plan: { readonly spec: JobSpec; readonly model: Pick<ResolvedModel, 'files'> },
  options: LoadModelFilesOptions = {},
): Promise<ModelFiles> {
  const labels = new Map<string, readonly string[]>();
  const tokenizers = new Map<string, TextTokenizer>();
  let processor: ProcessorModule | undefined;
  const text = async (uri: string): Promise<string> => new TextDecoder().decode(await store.get(uri));
  for (const { ref, field, kind } of modelFileReferences(plan.spec)) {
    const uri = plan.model.files[ref];
    if (!uri) throw new RunStateError(`the plan has no resolved location for ${field} "${ref}"`);
    switch (kind) {
      case 'labels':
        if (!labels.has(ref)) labels.set(ref, parseLabels(await text(uri)));
        break;
      case 'tokenizer':
        if (!tokenizers.has(ref)) {
          let json: unknown;
          try {
            json = JSON.parse(await text(uri));
          } catch (err) {
            if (err instanceof SyntaxError) {
              throw new ModelError(`${field} "${ref}" (${uri}) is not JSON: ${err.message}`);
            }
            throw err;
          }
          tokenizers.set(ref, loadTokenizer(json, ref));
        }
        break;
      case 'processor':
        processor = {
          ...(await loadProcessor(store, ref, uri, options.tempDir)),
          ...(plan.spec.model.processor?.columns && { columns: plan.spec.model.processor.columns }),
        };
        break;
    }
  }
  return { labels, tokenizers, ...(processor && { processor }) };
}
