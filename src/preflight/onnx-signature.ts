/**
 * The declared inputs and outputs of an ONNX model, read from its protobuf without ONNX Runtime: the Plan Lambda
 * checks a job spec against the model with this, and must stay small (ONNX Runtime is ~60 MB of native code).
 *
 * Only the fields on the path ModelProto.graph -> GraphProto.input/output/initializer.name -> ValueInfoProto ->
 * TypeProto.tensor_type -> elem_type, shape are decoded (field numbers from onnx/onnx.proto). Everything else, the
 * weights above all, is skipped by its length prefix without being read: the model is read through a windowed,
 * ranged reader, so a model of gigabytes costs a few small reads and no memory beyond one window.
 */
import type { ObjectStore, ReadOptions } from '../storage/object-store.js';

/** ONNX TensorProto.DataType numbers -> the element type names the job spec uses (dtype). */
const ELEM_TYPES: Record<number, string> = {
  1: 'float32',
  2: 'uint8',
  3: 'int8',
  4: 'uint16',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  8: 'string',
  9: 'bool',
  10: 'float16',
  11: 'float64',
  12: 'uint32',
  13: 'uint64',
  14: 'complex64',
  15: 'complex128',
  16: 'bfloat16',
};

export interface GraphTensor {
  readonly name: string;
  /** Element type as the job spec names it (`float32`, `int64`...); undefined when not a tensor or not declared. */
  readonly type?: string;
  /** Declared shape: a number for a fixed dimension, a string for a symbolic one, -1 for an unnamed one. */
  readonly shape?: readonly (number | string)[];
}

export interface ModelSignature {
  readonly inputs: readonly GraphTensor[];
  readonly outputs: readonly GraphTensor[];
}

/** The bytes are not an ONNX model (or are truncated). A retry cannot fix it. */
export class OnnxFormatError extends Error {
  override readonly name = 'OnnxFormatError';
}

/** Reads bytes [start, end) of the model; may return fewer at the end of the object. */
export type ReadRange = (start: number, end: number) => Promise<Uint8Array>;

/**
 * Bytes fetched per read: covers the graph's inputs, outputs and many small nodes at once, while a skip over a large
 * weight costs only this much at its far side.
 */
const WINDOW = 64 << 10;

/** A forward-moving reader over ranged reads, keeping one window in memory. */
class WindowedReader {
  private window: Uint8Array = new Uint8Array(0);
  private windowStart = 0;
  constructor(
    private readonly read: ReadRange,
    readonly size: number,
  ) {}

  async byteAt(pos: number): Promise<number> {
    if (pos < this.windowStart || pos >= this.windowStart + this.window.length) await this.load(pos, 1);
    return this.window[pos - this.windowStart]!;
  }

  async bytes(pos: number, length: number): Promise<Uint8Array> {
    if (pos < this.windowStart || pos + length > this.windowStart + this.window.length) {
      await this.load(pos, length);
    }
    return this.window.subarray(pos - this.windowStart, pos - this.windowStart + length);
  }

  private async load(pos: number, length: number): Promise<void> {
    if (pos + length > this.size) throw new OnnxFormatError('the model file ends in the middle of a field');
    const end = Math.min(this.size, pos + Math.max(length, WINDOW));
    const got = await this.read(pos, end);
    if (got.length < length) throw new OnnxFormatError('the model file ends in the middle of a field');
    this.window = got;
    this.windowStart = pos;
  }
}

interface Field {
  readonly number: number;
  readonly wire: number;
  /** Varint value (wire type 0). */
  readonly value?: bigint;
  /** Start and end of a length-delimited payload (wire type 2). */
  readonly start?: number;
  readonly end?: number;
}

async function readVarint(r: WindowedReader, pos: number): Promise<{ value: bigint; next: number }> {
  let value = 0n;
  let shift = 0n;
  for (let i = 0; i < 10; i++) {
    const b = await r.byteAt(pos + i);
    value |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return { value, next: pos + i + 1 };
    shift += 7n;
  }
  throw new OnnxFormatError(`a malformed varint at byte ${pos}`);
}

/** Iterates the fields of the message in [start, end), skipping payloads it does not open. */
async function* fields(r: WindowedReader, start: number, end: number): AsyncGenerator<Field> {
  let pos = start;
  while (pos < end) {
    const tag = await readVarint(r, pos);
    const number = Number(tag.value >> 3n);
    const wire = Number(tag.value & 7n);
    pos = tag.next;
    switch (wire) {
      case 0: {
        const v = await readVarint(r, pos);
        pos = v.next;
        yield { number, wire, value: v.value };
        break;
      }
      case 1:
        pos += 8;
        break;
      case 2: {
        const len = await readVarint(r, pos);
        const payloadStart = len.next;
        const payloadEnd = payloadStart + Number(len.value);
        if (payloadEnd > end) throw new OnnxFormatError(`a field at byte ${pos} runs past its message`);
        pos = payloadEnd;
        yield { number, wire, start: payloadStart, end: payloadEnd };
        break;
      }
      case 5:
        pos += 4;
        break;
      default:
        throw new OnnxFormatError(`unknown protobuf wire type ${wire} at byte ${pos}`);
    }
  }
  if (pos !== end) throw new OnnxFormatError('a message does not end where its length says');
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

async function text(r: WindowedReader, f: Field): Promise<string> {
  return utf8.decode(await r.bytes(f.start!, f.end! - f.start!));
}

async function shapeOf(r: WindowedReader, f: Field): Promise<(number | string)[]> {
  const dims: (number | string)[] = [];
  for await (const dim of fields(r, f.start!, f.end!)) {
    if (dim.number !== 1 || dim.wire !== 2) continue;
    let value: number | string = -1;
    for await (const d of fields(r, dim.start!, dim.end!)) {
      if (d.number === 1 && d.wire === 0) value = Number(BigInt.asIntN(64, d.value!));
      else if (d.number === 2 && d.wire === 2) value = await text(r, d);
    }
    dims.push(value);
  }
  return dims;
}

async function valueInfo(r: WindowedReader, f: Field): Promise<GraphTensor> {
  let name = '';
  let type: string | undefined;
  let shape: (number | string)[] | undefined;
  for await (const g of fields(r, f.start!, f.end!)) {
    if (g.number === 1 && g.wire === 2) name = await text(r, g);
    if (g.number !== 2 || g.wire !== 2) continue;
    for await (const t of fields(r, g.start!, g.end!)) {
      // TypeProto.tensor_type (1); sequences, maps and optionals are left without a type.
      if (t.number !== 1 || t.wire !== 2) continue;
      for await (const tt of fields(r, t.start!, t.end!)) {
        if (tt.number === 1 && tt.wire === 0) type = ELEM_TYPES[Number(tt.value)] ?? `onnx type ${tt.value}`;
        if (tt.number === 2 && tt.wire === 2) shape = await shapeOf(r, tt);
      }
    }
  }
  return { name, ...(type !== undefined && { type }), ...(shape !== undefined && { shape }) };
}

/** The signature of the model whose bytes `read` returns. */
export async function readOnnxSignatureFrom(read: ReadRange, size: number): Promise<ModelSignature> {
  const r = new WindowedReader(read, size);
  let graph: Field | undefined;
  for await (const f of fields(r, 0, size)) if (f.number === 7 && f.wire === 2) graph = f;
  if (!graph) throw new OnnxFormatError('it has no graph (not an ONNX ModelProto)');
  const inputs: GraphTensor[] = [];
  const outputs: GraphTensor[] = [];
  const initializers = new Set<string>();
  for await (const f of fields(r, graph.start!, graph.end!)) {
    if (f.wire !== 2) continue;
    if (f.number === 11) inputs.push(await valueInfo(r, f));
    else if (f.number === 12) outputs.push(await valueInfo(r, f));
    else if (f.number === 5) {
      // TensorProto.name (8): before IR 4 weights were listed among the graph inputs too; they are not fed.
      for await (const t of fields(r, f.start!, f.end!)) {
        if (t.number === 8 && t.wire === 2) initializers.add(await text(r, t));
      }
    }
  }
  if (inputs.length === 0 && outputs.length === 0) {
    throw new OnnxFormatError('its graph declares no inputs and no outputs');
  }
  return { inputs: inputs.filter((i) => !initializers.has(i.name)), outputs };
}

/** The signature of the model at `uri` in `store`, read with ranged GETs. */
export async function readOnnxSignature(
  store: ObjectStore,
  uri: string,
  options?: ReadOptions,
): Promise<ModelSignature> {
  const info = await store.head(uri);
  return readOnnxSignatureFrom((start, end) => store.get(uri, { start, end }, options), info.size);
}
