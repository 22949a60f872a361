/**
 * Records -> input tensors, as declared in `model.inputs` (tabular columns, array columns, tokenized text, decoded
 * images) or by a processor module's preprocess. A record whose values can't become tensors is set aside as an
 * error row here, before inference, so one bad value never fails a batch.
 */
import * as ort from 'onnxruntime-node';
import type { DecodedRecord } from '../formats/records.js';
import type { ErrorReason } from '../runs/types.js';
import { ModelError } from '../spec/errors.js';
import {
  isArrayInput,
  isImageInput,
  isTabularInput,
  isTextInput,
  type InputTensorSpec,
} from '../spec/model-io.js';
import type { ObjectStore } from '../storage/object-store.js';
import { arrayEntry } from './arrays.js';
import type { EntryBuilder, EntryIssue } from './entry.js';
import { imageEntry } from './images.js';
import { NO_MODEL_FILES, type ModelFiles } from './model-files.js';
import { checkedFeeds, type ProcessorModule } from './processor.js';
import type { TensorInfo } from './session.js';
import { tabularEntry } from './tabular.js';
import { textEntry, textTensors } from './text.js';

export interface RecordIssue {
  /** Index of the record in the batch handed to `build`. */
  readonly index: number;
  readonly reason: ErrorReason;
  readonly message: string;
}

export interface FeatureBatch {
  readonly feeds: Record<string, ort.Tensor>;
  /** Batch indexes of the records that made it into the tensors, in order: row i of every tensor. */
  readonly included: readonly number[];
  readonly issues: readonly RecordIssue[];
}

export interface FeatureBuilder {
  /** Columns the builder reads: what a reader needs to decode. Empty with a processor (it may read any). */
  readonly columns: readonly string[];
  /** Async because images are decoded off the main thread and processors may be async. */
  build(records: readonly DecodedRecord[]): Promise<FeatureBatch>;
}

export interface FeatureContext {
  /** Tokenizers and the processor module (see loadModelFiles). */
  readonly files?: ModelFiles;
  /** Reads images that a column names by location. */
  readonly store?: ObjectStore;
}

/** Images decoded at once per batch: enough to keep libuv's thread pool busy without holding every image. */
const DECODE_CONCURRENCY = 8;

/**
 * Checks the declared inputs against the model once, so a mismatch fails the shard before any record is read.
 * @param modelInputs the session's inputs (names, types, shapes).
 */
export function createFeatureBuilder(
  declared: readonly InputTensorSpec[],
  modelInputs: readonly TensorInfo[],
  context: FeatureContext = {},
): FeatureBuilder {
  const files = context.files ?? NO_MODEL_FILES;
  const byName = new Map(modelInputs.map((i) => [i.name, i]));
  const preprocess = files.processor?.preprocess;
  if (preprocess && files.processor) {
    if (declared.length > 0) {
      throw new ModelError(
        `processor "${files.processor.ref}" exports preprocess, which feeds every graph input, and model.inputs ` +
          'declares inputs too; remove model.inputs, or the preprocess export',
      );
    }
    return processorBuilder(files.processor, modelInputs);
  }
  if (declared.length === 0) {
    throw new ModelError(
      'model.inputs is empty and no processor module exports preprocess; declare the model inputs',
    );
  }

  const problems: string[] = [];
  const explicit = new Set(
    declared.flatMap((d) => (isTextInput(d) ? Object.values(d.tensors ?? {}) : [d.tensor])),
  );
  const entries: EntryBuilder[] = [];
  // Graph inputs an entry that failed would have fed: declared, just wrongly, so not "not fed" (issue 17).
  const attempted = new Set<string>();
  for (const input of declared) {
    try {
      entries.push(entryFor(input, byName, explicit, files, context.store));
    } catch (err) {
      if (!(err instanceof ModelError)) throw err;
      problems.push(err.message);
      const intended = isTextInput(input)
        ? Object.values(textTensors(input, byName, explicit))
        : [input.tensor];
      for (const name of intended) if (name !== undefined) attempted.add(name);
    }
  }
  const fed = new Set(entries.flatMap((e) => e.feeds));
  for (const name of fed) {
    if (!byName.has(name)) {
      problems.push(
        `model.inputs declares tensor "${name}" but the model's inputs are ${[...byName.keys()].join(', ')}`,
      );
    }
  }
  for (const name of byName.keys()) {
    // A declared tensor whose entry failed above is fed, just wrongly: that problem is already said.
    if (!fed.has(name) && !explicit.has(name) && !attempted.has(name))
      problems.push(`the model input "${name}" is not fed: declare it in model.inputs`);
  }
  if (problems.length > 0) {
    throw new ModelError(`The job spec does not match the model: ${problems.join('; ')}`);
  }
  const columns = [...new Set(entries.flatMap((e) => e.columns))];
  return { columns, build: (records) => buildBatch(entries, records) };
}

function entryFor(
  input: InputTensorSpec,
  byName: ReadonlyMap<string, TensorInfo>,
  explicit: ReadonlySet<string>,
  files: ModelFiles,
  store: ObjectStore | undefined,
): EntryBuilder {
  if (isTextInput(input)) {
    const tokenizer = files.tokenizers.get(input.from.tokenizer);
    if (!tokenizer)
      throw new ModelError(`tokenizer "${input.from.tokenizer}" was not loaded (loadModelFiles)`);
    return textEntry(input, tokenizer, textTensors(input, byName, explicit), byName);
  }
  if (isImageInput(input)) return imageEntry(input, byName.get(input.tensor), store);
  if (isArrayInput(input)) {
    const info = byName.get(input.tensor);
    if (info?.type && info.type !== input.dtype) {
      throw new ModelError(`tensor "${input.tensor}" is ${info.type} in the model; set dtype: ${info.type}`);
    }
    return arrayEntry(input, info);
  }
  if (isTabularInput(input)) {
    const info = byName.get(input.tensor);
    if (info?.type && info.type !== input.dtype) {
      throw new ModelError(
        `tensor "${input.tensor}" is ${info.type} in the model; set dtype: ${info.type} in the job spec`,
      );
    }
    if (info?.shape && info.shape.length !== 2) {
      throw new ModelError(
        `tensor "${input.tensor}" has rank ${info.shape.length}; tabular inputs need [batch, features] (an ` +
          'array input, from: { array }, takes any shape)',
      );
    }
    const last = info?.shape?.[info.shape.length - 1];
    if (typeof last === 'number' && last !== input.from.columns.length) {
      throw new ModelError(
        `tensor "${input.tensor}" takes ${last} values per record but ${input.from.columns.length} columns are listed`,
      );
    }
    return tabularEntry(input);
  }
  // The schema admits no other kind; this keeps the compiler honest if one is added.
  const never: never = input;
  throw new ModelError(`unsupported model input ${JSON.stringify(never)}`);
}

async function buildBatch(
  entries: readonly EntryBuilder[],
  records: readonly DecodedRecord[],
): Promise<FeatureBatch> {
  const failed = new Map<number, EntryIssue>();
  const batches = entries.map((entry) => entry.batch(records));
  for (let e = 0; e < entries.length; e++) {
    const batch = batches[e]!;
    // A record an earlier entry rejected is not prepared again (no image decoded for a record already out).
    const pending: number[] = [];
    for (let i = 0; i < records.length; i++) if (!failed.has(i)) pending.push(i);
    if (!entries[e]!.async) {
      for (const i of pending) {
        const issue = batch.prepare(i) as EntryIssue | undefined;
        if (issue) failed.set(i, issue);
      }
      continue;
    }
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < pending.length) {
        const i = pending[next++]!;
        const issue = await batch.prepare(i);
        if (issue) failed.set(i, issue);
      }
    };
    await Promise.all(Array.from({ length: Math.min(DECODE_CONCURRENCY, pending.length) }, worker));
  }
  const included: number[] = [];
  for (let i = 0; i < records.length; i++) if (!failed.has(i)) included.push(i);
  const feeds: Record<string, ort.Tensor> = {};
  for (const batch of batches) Object.assign(feeds, batch.assemble(included));
  const issues = [...failed.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([index, issue]) => ({ index, ...issue }));
  return { feeds, included, issues };
}

/** A processor module's preprocess feeds every graph input. */
function processorBuilder(processor: ProcessorModule, modelInputs: readonly TensorInfo[]): FeatureBuilder {
  const preprocess = processor.preprocess!;
  return {
    columns: [],
    async build(records) {
      const context = { Tensor: ort.Tensor, modelInputs };
      const { feeds, errors } = checkedFeeds(
        processor.ref,
        await preprocess(records, context),
        records.length,
      );
      const missingInputs = modelInputs.filter((i) => !(i.name in feeds)).map((i) => i.name);
      if (missingInputs.length > 0) {
        throw new ModelError(
          `processor "${processor.ref}": preprocess did not feed ${missingInputs.join(', ')}; it must feed every ` +
            'graph input',
        );
      }
      const included: number[] = [];
      for (let i = 0; i < records.length; i++) if (!errors.has(i)) included.push(i);
      const issues = [...errors.entries()]
        .sort((a, b) => a[0] - b[0])
        .map(([index, e]) => ({ index, reason: e.reason, message: e.message }));
      return { feeds, included, issues };
    },
  };
}
