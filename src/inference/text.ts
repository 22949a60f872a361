/**
 * Text entries (`from: { text, tokenizer, maxLength }`): a column (or a `files` record's bytes, as UTF-8) is
 * tokenized with a Hugging Face tokenizer.json, truncated to maxLength tokens (special tokens included) and padded
 * to the longest record of the batch, never to maxLength: a batch of short texts costs short tensors.
 *
 * One entry feeds up to three graph inputs: the token ids, the attention mask (1 for tokens, 0 for padding) and
 * the token type ids (segment ids).
 */
import * as tokenizers from '@huggingface/tokenizers';
import type * as ort from 'onnxruntime-node';
import { ModelError } from '../spec/errors.js';
import { DEFAULT_TEXT_TENSORS, type TextInputSpec } from '../spec/model-io.js';
import { allocate, describe, tensorOf } from './dtypes.js';
import { invalid, missing, type EntryBuilder, type EntryIssue } from './entry.js';
import type { TensorInfo } from './session.js';

export interface Encoded {
  readonly ids: readonly number[];
  readonly typeIds: readonly number[];
}

/** A loaded tokenizer.json. */
export interface TextTokenizer {
  /** Token ids with the special tokens, the text's tokens cut so the whole is at most maxLength long. */
  encode(text: string, maxLength: number): Encoded;
  /** The id padding positions get (the attention mask hides them). */
  readonly padId: number;
}

/**
 * The part of @huggingface/tokenizers' Tokenizer this module uses. Declared here because the package's .d.ts
 * re-exports with extensionless relative paths, which NodeNext resolution cannot follow: its own types arrive as
 * unresolved (error) types.
 */
interface HfTokenizer {
  encode(text: string, options: { add_special_tokens: boolean }): { ids: number[] };
  token_to_id(token: string): number | undefined;
  readonly post_processor: {
    post_process(
      tokens: string[],
      pair: null,
      addSpecialTokens: boolean,
    ): { tokens: string[]; token_type_ids?: number[] };
  } | null;
}
const Tokenizer = (tokenizers as unknown as { Tokenizer: new (json: object, config: object) => HfTokenizer })
  .Tokenizer;

/** The parts of a tokenizer.json this module reads itself. */
interface TokenizerJsonFields {
  readonly padding?: { readonly pad_id?: unknown } | null;
  readonly model?: unknown;
}

/**
 * Loads a tokenizer.json (its `truncation` and `padding` settings are ignored: the job spec's maxLength and
 * padding to the longest in the batch apply). Fails with a ModelError naming the file when it cannot be used.
 */
export function loadTokenizer(json: unknown, ref: string): TextTokenizer {
  let tokenizer: HfTokenizer;
  try {
    tokenizer = new Tokenizer(json as object, {});
  } catch (err) {
    throw new ModelError(`tokenizer "${ref}" is not a usable tokenizer.json: ${(err as Error).message}`);
  }
  const post = tokenizer.post_processor;
  // The special tokens a single sequence gets, and where the text goes between them: found by post-processing a
  // one-token marker, so any template (BERT's [CLS] A [SEP], RoBERTa's <s> A </s>, none) works the same.
  const marker = '\u0000marker\u0000';
  const template = post ? post.post_process([marker], null, true) : { tokens: [marker], token_type_ids: [0] };
  const at = template.tokens.indexOf(marker);
  if (at < 0) throw new ModelError(`tokenizer "${ref}": its post-processor drops the text`);
  const idOf = (token: string): number => {
    const id = tokenizer.token_to_id(token);
    if (id === undefined) throw new ModelError(`tokenizer "${ref}": special token "${token}" has no id`);
    return id;
  };
  const before = template.tokens.slice(0, at).map(idOf);
  const after = template.tokens.slice(at + 1).map(idOf);
  const types = template.token_type_ids ?? [];
  const typeBefore = types.slice(0, at);
  const typeText = types[at] ?? 0;
  const typeAfter = types.slice(at + 1);
  const specials = before.length + after.length;
  const padId = padIdOf(json as TokenizerJsonFields, tokenizer);

  return {
    padId,
    encode(text, maxLength) {
      // add_special_tokens: false gives the text's own tokens; the template is added around the kept ones.
      const own = tokenizer.encode(text, { add_special_tokens: false }).ids;
      const keep = Math.max(0, Math.min(own.length, maxLength - specials));
      const ids = [...before, ...own.slice(0, keep), ...after];
      const typeIds = [
        ...(typeBefore.length === before.length ? typeBefore : before.map(() => 0)),
        ...new Array<number>(keep).fill(typeText),
        ...(typeAfter.length === after.length ? typeAfter : after.map(() => 0)),
      ];
      return { ids, typeIds };
    },
  };
}

/** The padding id: tokenizer.json's padding.pad_id, else the id of a [PAD] / <pad> token, else 0. */
function padIdOf(json: TokenizerJsonFields, tokenizer: HfTokenizer): number {
  const configured = json.padding?.pad_id;
  if (typeof configured === 'number') return configured;
  for (const token of ['[PAD]', '<pad>', '<|pad|>']) {
    const id = tokenizer.token_to_id(token);
    if (id !== undefined) return id;
  }
  return 0;
}

type IdDtype = 'int64' | 'int32';

/** The graph inputs a text entry feeds: the explicit ones, or the standard names the model has. */
export function textTensors(
  spec: TextInputSpec,
  modelInputs: ReadonlyMap<string, TensorInfo>,
  fedElsewhere: ReadonlySet<string>,
): { inputIds: string; attentionMask?: string; tokenTypeIds?: string } {
  if (spec.tensors) return spec.tensors;
  const optional = (name: string): string | undefined =>
    modelInputs.has(name) && !fedElsewhere.has(name) ? name : undefined;
  return {
    inputIds: DEFAULT_TEXT_TENSORS.inputIds,
    attentionMask: optional(DEFAULT_TEXT_TENSORS.attentionMask),
    tokenTypeIds: optional(DEFAULT_TEXT_TENSORS.tokenTypeIds),
  };
}

export function textEntry(
  spec: TextInputSpec,
  tokenizer: TextTokenizer,
  tensors: { inputIds: string; attentionMask?: string; tokenTypeIds?: string },
  modelInputs: ReadonlyMap<string, TensorInfo>,
): EntryBuilder {
  const dtypeOf = (name: string): IdDtype => {
    const info = modelInputs.get(name);
    if (info?.type !== undefined && info.type !== 'int64' && info.type !== 'int32') {
      throw new ModelError(
        `tensor "${name}" is ${info.type} in the model; a text input feeds int64 or int32 token tensors`,
      );
    }
    if (info?.shape && info.shape.length !== 2) {
      throw new ModelError(
        `tensor "${name}" has rank ${info.shape.length}; text inputs feed [batch, tokens]`,
      );
    }
    return info?.type === 'int32' ? 'int32' : 'int64';
  };
  const outputs = [
    { name: tensors.inputIds, role: 'ids' as const },
    ...(tensors.attentionMask ? [{ name: tensors.attentionMask, role: 'mask' as const }] : []),
    ...(tensors.tokenTypeIds ? [{ name: tensors.tokenTypeIds, role: 'types' as const }] : []),
  ].map((o) => ({ ...o, dtype: dtypeOf(o.name) }));
  const column = spec.from.text;
  // Fatal: bytes that are not UTF-8 (a binary file among text documents) make the record a DECODE_ERROR instead of
  // text full of replacement characters that would still get a prediction.
  const decoder = new TextDecoder('utf-8', { ignoreBOM: false, fatal: true });

  return {
    feeds: outputs.map((o) => o.name),
    columns: [column],
    async: false,
    batch(records) {
      const encoded = new Array<Encoded | undefined>(records.length);
      return {
        prepare(index): EntryIssue | undefined {
          const raw = records[index]!.values[column];
          if (raw === null || raw === undefined) return missing(column);
          let text: string;
          if (typeof raw === 'string') text = raw;
          else if (raw instanceof Uint8Array) {
            try {
              text = decoder.decode(raw);
            } catch {
              return { reason: 'DECODE_ERROR', message: `column "${column}" is not UTF-8 text` };
            }
          } else return invalid(`column "${column}" is ${describe(raw)}, not text`);
          encoded[index] = tokenizer.encode(text, spec.from.maxLength);
          return undefined;
        },
        assemble(included): Record<string, ort.Tensor> {
          const rows = included.map((i) => encoded[i]!);
          // Padding to the longest sequence of this batch, not to maxLength.
          const width = rows.reduce((m, e) => Math.max(m, e.ids.length), 0);
          const feeds: Record<string, ort.Tensor> = {};
          for (const out of outputs) {
            const data = allocate(out.dtype, rows.length * width) as BigInt64Array | Int32Array;
            const big = data instanceof BigInt64Array;
            rows.forEach((e, r) => {
              const base = r * width;
              for (let t = 0; t < width; t++) {
                const v =
                  out.role === 'ids'
                    ? (e.ids[t] ?? tokenizer.padId)
                    : out.role === 'mask'
                      ? t < e.ids.length
                        ? 1
                        : 0
                      : (e.typeIds[t] ?? 0);
                if (big) data[base + t] = BigInt(v);
                else data[base + t] = v;
              }
            });
            feeds[out.name] = tensorOf(out.dtype, data, [rows.length, width]);
          }
          return feeds;
        },
      };
    },
  };
}
