/**
 * The model section of the job spec, between the data and the graph: how records become input tensors
 * (`model.inputs`: tabular columns, array columns, tokenized text, decoded images), how output tensors become
 * columns (`model.outputs`: activations, argmax, top-k, pooling), and an optional user processor module
 * (`model.processor`). Kept apart from schema.ts so the rest of the job spec reads on one screen.
 *
 * Every file a model entry names (tokenizer, labels, processor) is relative to the model artifact (the .onnx file,
 * wherever the registry or model.uri puts it) unless it is a full URI: one rule for every companion file, so a
 * model version and its companions move together.
 */
import { z } from 'zod';

/** Column types an output column can have (`output.schema`, `model.processor.columns`). */
export const OUTPUT_COLUMN_TYPES = [
  'string',
  'float',
  'double',
  'int',
  'bigint',
  'boolean',
  'array<float>',
  'array<double>',
  'array<int>',
  'array<bigint>',
  'array<string>',
  'array<boolean>',
] as const;
export type OutputColumnTypeName = (typeof OUTPUT_COLUMN_TYPES)[number];

export const outputColumnType = z.enum(OUTPUT_COLUMN_TYPES, {
  message: `must be one of ${OUTPUT_COLUMN_TYPES.join(', ')}`,
});

/** Element types a tensor can be built with from tabular columns. */
export const TABULAR_DTYPES = ['float32', 'float64', 'int32', 'int64'] as const;
export type TabularDtype = (typeof TABULAR_DTYPES)[number];

/**
 * Every ONNX element type onnxruntime-node can feed (bfloat16 and the 4-bit types have no JavaScript form). The
 * tabular types come first so a message listing them reads the same as before the others existed.
 */
export const TENSOR_DTYPES = [
  ...TABULAR_DTYPES,
  'float16',
  'int8',
  'int16',
  'uint8',
  'uint16',
  'uint32',
  'uint64',
  'bool',
  'string',
] as const;
export type TensorDtype = (typeof TENSOR_DTYPES)[number];

export const IMAGE_DTYPES = ['float32', 'uint8'] as const;
export const IMAGE_LAYOUTS = ['NCHW', 'NHWC'] as const;
export const IMAGE_CHANNELS = ['RGB', 'BGR', 'L'] as const;
/** sharp's resampling kernels (linear is bilinear, cubic is bicubic). */
export const IMAGE_RESAMPLE = ['nearest', 'linear', 'cubic', 'mitchell', 'lanczos2', 'lanczos3'] as const;

const columnName = z
  .string({ message: 'must be a column name (a string)' })
  .min(1, 'must be a non-empty column name');
const graphInput = z
  .string({ message: 'must name an input of the ONNX graph (a string)' })
  .min(1, 'must name an input of the ONNX graph');
const FILE_REF =
  'must be a path relative to the model artifact, or a URI (s3://bucket/key, file:///abs/path)';
const fileRef = z.string({ message: FILE_REF }).min(1, FILE_REF);
const positiveInt = z
  .number({ message: 'must be a positive integer (pixels)' })
  .int('must be a positive integer (pixels)')
  .min(1, 'must be a positive integer (pixels)');

type Ctx = z.core.$RefinementCtx;

/**
 * Parses `value` with `schema` inside a transform, re-raising its issues as they are (so paths nest under the
 * current field and codes such as unrecognized_keys render as usual).
 */
function parseWith<S extends z.ZodType>(schema: S, value: unknown, ctx: Ctx): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  for (const issue of result.error.issues) ctx.issues.push({ ...issue, input: undefined });
  return z.NEVER;
}

/**
 * A union whose variant is chosen by looking at the value rather than by trying each variant. zod's own unions
 * report a bare "Invalid input" at the entry when every variant fails; parsing with the one variant the user meant
 * reports the exact field (`model.inputs[0].from.maxLength`) with that field's own message.
 */
function chosenUnion<V extends z.ZodType>(
  parse: (value: unknown, ctx: Ctx) => z.output<V>,
): z.ZodType<z.output<V>, z.input<V>> {
  // The transform's input type is `unknown`; V says what a user may really write.
  return z.unknown().transform(parse) as unknown as z.ZodType<z.output<V>, z.input<V>>;
}

// ---------------------------------------------------------------------------------------------------------------
// model.inputs: records -> tensors. The key inside `from` says which kind of entry it is.

/** Tabular: the listed columns, in order, become the last dimension of a [batch, columns] tensor. */
const tabularInput = z.strictObject({
  /** Name of the ONNX graph input this tensor feeds. */
  tensor: graphInput,
  from: z.strictObject({
    columns: z.array(columnName).min(1, 'must list at least one column'),
  }),
  dtype: z
    .enum(TABULAR_DTYPES, { message: `must be one of ${TABULAR_DTYPES.join(', ')}` })
    .default('float32'),
  /** What to do with a missing or null value: make the record an error row, or fill with a number. */
  missing: z
    .union([z.literal('error'), z.strictObject({ fill: z.number() })], {
      message: 'must be "error" or { fill: <number> }',
    })
    .default('error'),
});

/** Array: one column holds the record's whole tensor, as (nested) arrays, a typed array or a JSON array text. */
const arrayInput = z
  .strictObject({
    tensor: graphInput,
    from: z.strictObject({ array: columnName }),
    dtype: z
      .enum(TENSOR_DTYPES, { message: `must be one of ${TENSOR_DTYPES.join(', ')}` })
      .default('float32'),
    /**
     * The tensor's shape, batch dimension first: -1 for the batch and for dynamic dimensions. Defaults to the
     * model's declared shape.
     */
    shape: z
      .array(
        z
          .number({ message: 'must be a dimension size: -1 (dynamic) or a positive integer' })
          .int('must be -1 (dynamic) or a positive integer size')
          .refine((d) => d === -1 || d >= 1, 'must be -1 (dynamic) or a positive integer size'),
      )
      .min(1, 'must have at least the batch dimension, e.g. [-1, 3]')
      .optional(),
    /** Pad records to the longest in the batch along dynamic dimensions, with this value. */
    pad: z
      .union([z.number(), z.string(), z.boolean()], { message: 'must be a number, a string or a boolean' })
      .optional(),
  })
  .superRefine((entry, ctx) => {
    if (entry.shape && entry.shape[0] !== -1) {
      ctx.addIssue({
        code: 'custom',
        path: ['shape', 0],
        message: 'is the batch dimension, which the worker sets: write -1 there',
      });
    }
    if (entry.pad === undefined) return;
    const want = entry.dtype === 'string' ? 'string' : entry.dtype === 'bool' ? 'boolean' : 'number';
    const integral = !['float16', 'float32', 'float64', 'string', 'bool'].includes(entry.dtype);
    if (typeof entry.pad !== want || (integral && !Number.isInteger(entry.pad))) {
      ctx.addIssue({
        code: 'custom',
        path: ['pad'],
        message: `must be ${integral ? 'an integer' : `a ${want}`} to pad a ${entry.dtype} tensor`,
      });
    }
  });

/** Text: one column (or a `files` record's `content`) tokenized with a tokenizer.json; feeds several graph inputs. */
const textInput = z.strictObject({
  from: z.strictObject({
    /** Column holding the text: a string, or bytes decoded as UTF-8 (a `files` record's `content`). */
    text: columnName,
    /** A Hugging Face tokenizer.json, relative to the model artifact or a URI. */
    tokenizer: fileRef,
    /** Longest token sequence, special tokens included; longer texts are truncated (from the end). */
    maxLength: z
      .number({
        message: 'must be the longest token sequence, a whole number such as 128 (512 for BERT models)',
      })
      .int('must be a whole number of tokens, e.g. 128')
      .min(2, 'must be at least 2 (room for the special tokens), e.g. 512 for a BERT model')
      .max(1_000_000, 'must be at most 1000000'),
  }),
  /**
   * The graph inputs this entry feeds. Omitted: `input_ids`, plus `attention_mask` and `token_type_ids` when the
   * model has inputs by those names (and no other entry feeds them).
   */
  tensors: z
    .strictObject({
      inputIds: graphInput,
      attentionMask: graphInput.optional(),
      tokenTypeIds: graphInput.optional(),
    })
    .optional(),
});

const size2d = z.strictObject({ height: positiveInt, width: positiveInt });
const byteValue = z
  .number()
  .int('must be an integer 0..255')
  .min(0, 'must be 0..255')
  .max(255, 'must be 0..255');
const perChannel = z.union([z.number(), z.array(z.number()).min(1)], {
  message: 'must be a number or one number per channel, e.g. [0.485, 0.456, 0.406]',
});

/** Image: bytes, base64, a data: URI or a location in a column (or a `files` record's `content`), decoded by sharp. */
const imageInput = z
  .strictObject({
    tensor: graphInput,
    from: z.strictObject({
      /** Column holding the image (PNG, JPEG, WebP, GIF, TIFF...). */
      image: columnName,
      /**
       * `{ shorterSide }` keeps the aspect ratio (then crop); `{ height, width }` resizes to exactly that. With
       * `keepAspect: true`, `{ height, width }` letterboxes (scaled to fit, padded to the size) and
       * `{ height, maxWidth }` scales to the height, at most maxWidth wide, then pads to maxWidth (text lines).
       */
      resize: z
        .strictObject({
          shorterSide: positiveInt.optional(),
          height: positiveInt.optional(),
          width: positiveInt.optional(),
          /** With keepAspect: the tensor's width; images narrower once scaled are padded, wider ones squeezed. */
          maxWidth: positiveInt.optional(),
          /** Scale without distorting and pad the rest (letterbox / right-pad) instead of stretching. */
          keepAspect: z.boolean().optional(),
          /** The padding, with keepAspect: byte value(s) 0..255 and where the image sits. */
          pad: z
            .strictObject({
              /** Pixel value of the padding, before rescale/mean/std: one number, or one per channel. @default 0 */
              value: z
                .union([byteValue, z.array(byteValue).min(1)], {
                  message: 'must be a byte value 0..255 or one per channel, e.g. 114 or [0, 0, 0]',
                })
                .optional(),
              /**
               * `center`: the image centred, padded on both sides (letterbox); `right`: the image at the top left,
               * padded on the right and at the bottom. @default center with width, right with maxWidth
               */
              side: z.enum(['center', 'right'], { message: 'must be center or right' }).optional(),
            })
            .optional(),
        })
        .optional(),
      /** Center crop, after resizing. */
      crop: size2d.optional(),
      /** Multiplies each 0..255 value first (float32 only). @default 1/255 */
      rescale: z.number().positive('must be a positive number, e.g. 0.00392156862745098 (1/255)').optional(),
      /** Subtracted per channel after rescaling (float32 only). @default 0 */
      mean: perChannel.optional(),
      /** Divides per channel after the mean (float32 only). @default 1 */
      std: perChannel.optional(),
      layout: z.enum(IMAGE_LAYOUTS, { message: 'must be NCHW or NHWC' }).default('NCHW'),
      /** Channel order; L is one greyscale channel. */
      channels: z.enum(IMAGE_CHANNELS, { message: 'must be RGB, BGR or L' }).default('RGB'),
      resample: z
        .enum(IMAGE_RESAMPLE, { message: `must be one of ${IMAGE_RESAMPLE.join(', ')}` })
        .default('linear'),
    }),
    dtype: z.enum(IMAGE_DTYPES, { message: 'must be float32 or uint8' }).default('float32'),
  })
  .superRefine((entry, ctx) => {
    const { resize, crop } = entry.from;
    const add = (path: (string | number)[], message: string): void =>
      ctx.addIssue({ code: 'custom', path: ['from', ...path], message });
    if (resize && (resize.keepAspect || resize.maxWidth !== undefined || resize.pad !== undefined)) {
      letterboxIssues(resize, crop !== undefined, entry.from.channels === 'L' ? 1 : 3, add);
    } else if (resize) {
      const exact = resize.height !== undefined || resize.width !== undefined;
      if (resize.shorterSide !== undefined && exact) {
        add(['resize'], 'must be either { shorterSide } or { height, width }, not both');
      } else if (exact && (resize.height === undefined || resize.width === undefined)) {
        add(
          ['resize'],
          'must give both height and width for an exact size (or shorterSide to keep the aspect ratio)',
        );
      } else if (!exact && resize.shorterSide === undefined) {
        add(['resize'], 'must be { shorterSide: 256 } or { height: 224, width: 224 }');
      } else if (resize.shorterSide !== undefined && !crop) {
        add(
          ['crop'],
          'is required with resize.shorterSide: images of different shapes keep different aspect ratios and would ' +
            'not fit one batch; add crop: { height, width } (or resize to an exact { height, width })',
        );
      }
    } else if (!crop) {
      add(
        ['resize'],
        'is required (or crop): every image of a batch needs the same size; add resize: { height, width }, or ' +
          'resize: { shorterSide } with crop: { height, width }',
      );
    }
    const channels = entry.from.channels === 'L' ? 1 : 3;
    for (const key of ['rescale', 'mean', 'std'] as const) {
      const value = entry.from[key];
      if (value === undefined) continue;
      if (entry.dtype === 'uint8') {
        add([key], 'only applies to float32 images; a uint8 tensor holds the 0..255 values as they are');
        continue;
      }
      if (Array.isArray(value) && value.length !== channels) {
        add(
          [key],
          `must have ${channels} value(s), one per ${entry.from.channels} channel, or be a single number`,
        );
      }
      if (
        key === 'std' &&
        (Array.isArray(value) ? value : [value]).some((v) => typeof v === 'number' && v <= 0)
      ) {
        add([key], 'must be positive (it divides)');
      }
    }
  })
  .transform((entry) => {
    // Resolved here so the worker reads one complete normalisation: x * rescale, minus mean, over std, per channel
    // (uint8 images take none of them).
    const float = entry.dtype === 'float32';
    const channels = entry.from.channels === 'L' ? 1 : 3;
    const expand = (v: number | number[] | undefined, fill: number): number[] | undefined =>
      !float ? undefined : Array.isArray(v) ? v : new Array<number>(channels).fill(v ?? fill);
    const { rescale, mean, std, ...rest } = entry.from;
    return {
      ...entry,
      from: {
        ...rest,
        ...(float && { rescale: rescale ?? 1 / 255 }),
        ...(float && { mean: expand(mean, 0) }),
        ...(float && { std: expand(std, 1) }),
      },
    };
  });

type InputKind = 'columns' | 'array' | 'text' | 'image';
const INPUT_KINDS: readonly InputKind[] = ['columns', 'array', 'text', 'image'];
/** Entry-level fields each kind takes (besides `from`). */
const ENTRY_FIELDS: Record<InputKind, readonly string[]> = {
  columns: ['tensor', 'dtype', 'missing'],
  array: ['tensor', 'dtype', 'shape', 'pad'],
  text: ['tensors'],
  image: ['tensor', 'dtype'],
};
const KIND_NAMES: Record<InputKind, string> = {
  columns: 'tabular inputs (from.columns)',
  array: 'array inputs (from.array)',
  text: 'text inputs (from.text)',
  image: 'image inputs (from.image)',
};

const entryOf = (value: unknown): Record<string, unknown> | undefined =>
  value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;

const inputVariants = {
  columns: tabularInput,
  array: arrayInput,
  text: textInput,
  image: imageInput,
} as const;
type InputVariant = (typeof inputVariants)[InputKind];

export const inputTensorSpec = chosenUnion<InputVariant>((value, ctx) => {
  const entry = entryOf(value);
  const from = entryOf(entry?.from);
  if (!entry) {
    ctx.issues.push({
      code: 'custom',
      input: undefined,
      message:
        'must be an entry such as { tensor, from: { columns: [...] } }, { tensor, from: { array } }, ' +
        '{ from: { text, tokenizer, maxLength } } or { tensor, from: { image, ... } }',
    });
    return z.NEVER;
  }
  // No `from`: the tabular variant (the original form) says what is required.
  if (!from) return parseWith(tabularInput, value, ctx);
  const kinds = INPUT_KINDS.filter((k) => k in from);
  if (kinds.length !== 1) {
    ctx.issues.push({
      code: 'custom',
      path: ['from'],
      input: undefined,
      message:
        kinds.length === 0
          ? `has none of columns (tabular), array (a tensor column), text (tokenized), image (decoded); say where ` +
            `the tensor comes from with one of them`
          : `names ${kinds.join(' and ')}; an entry has exactly one source: declare one entry per source`,
    });
    return z.NEVER;
  }
  const kind = kinds[0]!;
  // Fields of another kind are reported with what to do instead, then left out so they are not reported twice.
  const rest: Record<string, unknown> = { ...entry };
  let misplaced = false;
  for (const key of Object.keys(entry)) {
    if (key === 'from' || ENTRY_FIELDS[kind].includes(key)) continue;
    const users = INPUT_KINDS.filter((k) => ENTRY_FIELDS[k].includes(key));
    if (users.length === 0) continue; // an unknown field: the variant's strict check names it
    misplaced = true;
    delete rest[key];
    ctx.issues.push({
      code: 'custom',
      path: [key],
      input: undefined,
      message:
        kind === 'text' && key === 'tensor'
          ? 'does not apply to text inputs, which feed several graph inputs: name them in tensors: { inputIds, ' +
            'attentionMask, tokenTypeIds } (default input_ids, attention_mask, token_type_ids)'
          : `does not apply to ${KIND_NAMES[kind]}; it is for ${users.map((u) => KIND_NAMES[u]).join(', ')}`,
    });
  }
  const parsed = parseWith(inputVariants[kind], rest, ctx);
  return misplaced ? z.NEVER : parsed;
});

export type TabularInputSpec = z.output<typeof tabularInput>;
export type ArrayInputSpec = z.output<typeof arrayInput>;
export type TextInputSpec = z.output<typeof textInput>;
export type ImageInputSpec = z.output<typeof imageInput>;
export type InputTensorSpec = z.output<typeof inputTensorSpec>;

export function isTabularInput(spec: InputTensorSpec): spec is TabularInputSpec {
  return 'columns' in spec.from;
}
export function isArrayInput(spec: InputTensorSpec): spec is ArrayInputSpec {
  return 'array' in spec.from;
}
export function isTextInput(spec: InputTensorSpec): spec is TextInputSpec {
  return 'text' in spec.from;
}
export function isImageInput(spec: InputTensorSpec): spec is ImageInputSpec {
  return 'image' in spec.from;
}

/** The standard graph input names a text entry feeds when it names none. */
export const DEFAULT_TEXT_TENSORS = {
  inputIds: 'input_ids',
  attentionMask: 'attention_mask',
  tokenTypeIds: 'token_type_ids',
} as const;

/** The graph inputs an entry names explicitly (a text entry without `tensors` names only input_ids for sure). */
export function declaredGraphInputs(spec: InputTensorSpec): string[] {
  if (!isTextInput(spec)) return [spec.tensor];
  const t = spec.tensors;
  if (!t) return [DEFAULT_TEXT_TENSORS.inputIds];
  return [t.inputIds, t.attentionMask, t.tokenTypeIds].filter((n): n is string => n !== undefined);
}

/** The record columns an entry reads. */
export function inputColumnsOf(spec: InputTensorSpec): string[] {
  if (isTabularInput(spec)) return [...spec.from.columns];
  if (isArrayInput(spec)) return [spec.from.array];
  if (isTextInput(spec)) return [spec.from.text];
  return [spec.from.image];
}

// ---------------------------------------------------------------------------------------------------------------
// model.outputs: tensors -> columns.

const keepValue = z.enum(['score', 'probabilities'], {
  message: 'must be "score" (the winning probability) or "probabilities" (the whole vector)',
});

export const POOLING = ['mean', 'cls', 'max'] as const;

const postprocessSpec = z.strictObject({
  /** Apply softmax over the last dimension first (for models that output logits). */
  softmax: z.boolean().default(false),
  /** Apply the logistic function to every value first (multi-label or binary logits). */
  sigmoid: z.boolean().optional(),
  /** Turn the last dimension into a class label: the argmax index, or its line in the labels file. */
  argmax: z
    .strictObject({
      /** A text file with one label per line, relative to the model artifact (or a URI). */
      labels: fileRef.optional(),
      /** Output column for the label. */
      as: columnName.default('label'),
    })
    .optional(),
  /** Extra columns to keep next to the label. */
  keep: z
    .union([keepValue, z.array(keepValue)])
    .transform((v) => (Array.isArray(v) ? v : [v]))
    .default([]),
  /** The k best classes, best first: a list of labels (or indexes) and a list of their scores. */
  topK: z
    .strictObject({
      k: z
        .number({ message: 'must be the number of classes to keep, e.g. 5' })
        .int('must be a whole number of classes, e.g. 5')
        .min(1, 'must be at least 1')
        .max(100_000, 'must be at most 100000'),
      /** Labels file (one per line). @default argmax.labels when argmax has one, else the class indexes */
      labels: fileRef.optional(),
      /** Leave out classes scoring below this (e.g. 0.5 with sigmoid for multi-label). */
      minScore: z.number().optional(),
      as: z
        .strictObject({
          labels: columnName.default('top_labels'),
          scores: columnName.default('top_scores'),
        })
        .prefault({}),
    })
    .optional(),
  /**
   * Pool a [batch, tokens, hidden] output into one vector per record: mean or max over the tokens the attention
   * mask keeps, or the first token (cls).
   */
  pool: z.enum(POOLING, { message: 'must be mean, cls or max' }).optional(),
  /** The graph input holding the attention mask that pooling uses. @default attention_mask (for mean and max) */
  mask: graphInput.optional(),
  /** Divide the vector by its L2 norm (for cosine-similarity embeddings). */
  normalize: z.boolean().optional(),
});

export const outputTensorSpec = z
  .strictObject({
    /** Name of the ONNX graph output to read. */
    tensor: z
      .string({ message: 'must name an output of the ONNX graph (a string)' })
      .min(1, 'must name an output of the ONNX graph'),
    /** Column name for the tensor's values (raw, activated or pooled). @default the tensor name */
    as: columnName.optional(),
    postprocess: postprocessSpec.optional(),
  })
  .superRefine((out, ctx) => {
    const pp = out.postprocess;
    if (!pp) return;
    const add = (field: string, message: string): void =>
      ctx.addIssue({ code: 'custom', path: ['postprocess', field], message });
    if (pp.keep.length > 0 && !pp.argmax) {
      add('keep', 'only applies together with argmax; add postprocess.argmax or remove keep');
    }
    if (pp.softmax && pp.sigmoid) {
      add('sigmoid', 'cannot be combined with softmax; choose one activation');
    }
    const embedding = pp.pool !== undefined || pp.normalize === true;
    const classifying = pp.argmax || pp.topK || pp.softmax || pp.sigmoid;
    if (embedding && classifying) {
      add(
        pp.pool !== undefined ? 'pool' : 'normalize',
        'makes an embedding column and does not combine with softmax, sigmoid, argmax or topK; declare a second ' +
          'entry for the same tensor with its own "as" if you need both',
      );
    }
    if (pp.mask !== undefined && pp.pool !== 'mean' && pp.pool !== 'max') {
      add('mask', 'only applies to pool: mean or max; remove it');
    }
  })
  .transform((out) => {
    const pp = out.postprocess;
    if (!pp) return out;
    // Defaults that depend on sibling fields, resolved once here rather than in every reader of the spec.
    const topK = pp.topK && { ...pp.topK, labels: pp.topK.labels ?? pp.argmax?.labels };
    const mask =
      pp.pool === 'mean' || pp.pool === 'max' ? (pp.mask ?? DEFAULT_TEXT_TENSORS.attentionMask) : pp.mask;
    return {
      ...out,
      postprocess: {
        ...pp,
        ...(topK && { topK }),
        ...(mask !== undefined && { mask }),
      },
    };
  });

export type OutputTensorSpec = z.output<typeof outputTensorSpec>;
export type PostprocessSpec = NonNullable<OutputTensorSpec['postprocess']>;

// ---------------------------------------------------------------------------------------------------------------
// model.processor: a user module for what the declarative forms cannot say.

const processorModule = fileRef.regex(
  /\.(m?js|cjs)$/i,
  'must be a JavaScript module file (.mjs, .js or .cjs), relative to the model artifact or a URI',
);
const processorObject = z.strictObject({
  /** The module: exports preprocess(records, context) and/or postprocess(outputs, records, context). */
  module: processorModule,
  /** The columns postprocess returns, with their types (required when the module exports postprocess). */
  columns: z.record(columnName, outputColumnType).optional(),
});

export const processorSpec = chosenUnion<typeof processorObject>((value, ctx) => {
  // The short form is just the module.
  if (typeof value === 'string') return { module: parseWith(processorModule, value, ctx) };
  if (entryOf(value)) return parseWith(processorObject, value, ctx);
  ctx.issues.push({
    code: 'custom',
    input: undefined,
    message: 'must be a module path (processors/x.mjs) or { module, columns: { name: type } }',
  });
  return z.NEVER;
});
export type ProcessorSpec = z.output<typeof processorObject>;

/** Cross-field rules of the model section (called by the job spec's model check). */
export function modelSectionIssues(
  model: {
    readonly inputs: readonly InputTensorSpec[];
    readonly outputs: readonly OutputTensorSpec[];
    readonly processor?: { readonly module: string; readonly columns?: Record<string, string> };
  },
  addIssue: (path: (string | number)[], message: string) => void,
): void {
  if (model.inputs.length === 0 && !model.processor) {
    addIssue(
      ['inputs'],
      'must declare at least one input tensor, or set model.processor to a module that exports preprocess',
    );
  }
  if (model.outputs.length === 0 && !model.processor?.columns) {
    addIssue(
      ['outputs'],
      'must declare at least one output tensor, or model.processor.columns for a module that exports postprocess',
    );
  }
  const seen = new Map<string, number>();
  model.inputs.forEach((input, i) => {
    for (const name of declaredGraphInputs(input)) {
      const first = seen.get(name);
      if (first !== undefined) {
        addIssue(
          ['inputs', i],
          `feeds graph input "${name}", which model.inputs[${first}] feeds already; each graph input must be fed once`,
        );
      }
      seen.set(name, i);
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------
// For the JSON Schema of job specs (src/spec/json-schema.ts): `inputTensorSpec` and `processorSpec` choose their
// variant in code, which a JSON Schema generator cannot see through; these are the forms they accept.

/** The forms of a `model.inputs` entry, one per kind of source. */
export const INPUT_TENSOR_FORMS: readonly z.ZodType[] = INPUT_KINDS.map((kind) => inputVariants[kind]);
/** The forms of `model.processor`: the module alone, or `{ module, columns }`. */
export const PROCESSOR_FORMS: readonly z.ZodType[] = [processorModule, processorObject];

/** The rules of `resize` with keepAspect (letterbox / right-pad): one fixed tensor size, and nothing else to crop. */
function letterboxIssues(
  resize: {
    readonly shorterSide?: number | undefined;
    readonly height?: number | undefined;
    readonly width?: number | undefined;
    readonly maxWidth?: number | undefined;
    readonly keepAspect?: boolean | undefined;
    readonly pad?: { readonly value?: number | number[] | undefined } | undefined;
  },
  crop: boolean,
  channels: number,
  add: (path: (string | number)[], message: string) => void,
): void {
  if (resize.keepAspect !== true) {
    add(
      ['resize', 'keepAspect'],
      'must be true with maxWidth or pad (they keep the aspect ratio and pad); use { height, width } alone to stretch',
    );
    return;
  }
  if (resize.shorterSide !== undefined) {
    add(
      ['resize', 'shorterSide'],
      'does not go with keepAspect; use { height, width } or { height, maxWidth }',
    );
  }
  if (resize.height === undefined) {
    add(
      ['resize', 'height'],
      'is required with keepAspect: the height of the tensor (e.g. 32 for text lines)',
    );
  }
  if ((resize.width === undefined) === (resize.maxWidth === undefined)) {
    add(
      ['resize'],
      'with keepAspect needs exactly one of width (letterbox to height x width) or maxWidth (scale to the height, ' +
        'pad to maxWidth)',
    );
  }
  if (crop) add(['crop'], 'does not go with resize.keepAspect: the padded image already has the tensor size');
  const value = resize.pad?.value;
  if (Array.isArray(value) && value.length !== channels) {
    add(['resize', 'pad', 'value'], `must have ${channels} value(s), one per channel, or be a single number`);
  }
}
