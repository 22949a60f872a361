/**
 * ONNX element types as JavaScript values: the typed array each one lives in, how a record value becomes an
 * element (with range checks, so a value never wraps around silently), and float16, which Node 20 has no typed
 * array for (onnxruntime-node takes and returns its raw bits in a Uint16Array).
 */
import * as ort from 'onnxruntime-node';
import type { TensorDtype } from '../spec/model-io.js';

export type ElementArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | string[];

/** A new zeroed buffer for `n` elements of `dtype`. */
export function allocate(dtype: TensorDtype, n: number): ElementArray {
  switch (dtype) {
    case 'float32':
      return new Float32Array(n);
    case 'float64':
      return new Float64Array(n);
    case 'float16':
    case 'uint16':
      return new Uint16Array(n);
    case 'int8':
      return new Int8Array(n);
    case 'int16':
      return new Int16Array(n);
    case 'int32':
      return new Int32Array(n);
    case 'uint8':
    case 'bool':
      return new Uint8Array(n);
    case 'uint32':
      return new Uint32Array(n);
    case 'int64':
      return new BigInt64Array(n);
    case 'uint64':
      return new BigUint64Array(n);
    case 'string':
      return new Array<string>(n).fill('');
  }
}

export function tensorOf(dtype: TensorDtype, data: ElementArray, dims: readonly number[]): ort.Tensor {
  // The constructor's overloads pair each type with its array; the switch in `allocate` guarantees the pairing.
  return new ort.Tensor(dtype, data, dims);
}

const INT_RANGES: Partial<Record<TensorDtype, readonly [number, number]>> = {
  int8: [-128, 127],
  int16: [-32768, 32767],
  int32: [-(2 ** 31), 2 ** 31 - 1],
  uint8: [0, 255],
  uint16: [0, 65535],
  uint32: [0, 2 ** 32 - 1],
};
const BIG_RANGES: Partial<Record<TensorDtype, readonly [bigint, bigint]>> = {
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
};

/** Writes one element, or returns why the value cannot be one. */
export type ElementWriter = (buffer: ElementArray, at: number, value: unknown) => string | undefined;

/**
 * How a record value becomes an element of `dtype`: the value's JavaScript form must be the natural one (numbers
 * for numeric types, bigint or an integer string also for 64-bit integers, booleans or 0/1 for bool, strings for
 * string), and integers must fit the type.
 */
export function elementWriter(dtype: TensorDtype): ElementWriter {
  switch (dtype) {
    case 'float32':
    case 'float64':
      return (buf, at, v) => {
        const n = typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : undefined;
        if (n === undefined || !Number.isFinite(n)) return `${describe(v)} is not a finite number`;
        (buf as Float32Array)[at] = n;
        return undefined;
      };
    case 'float16':
      return (buf, at, v) => {
        if (typeof v !== 'number' || !Number.isFinite(v)) return `${describe(v)} is not a finite number`;
        if (Math.abs(v) > 65504) return `${v} is beyond the float16 range (±65504)`;
        (buf as Uint16Array)[at] = toHalfBits(v);
        return undefined;
      };
    case 'int64':
    case 'uint64':
      return (buf, at, v) => {
        const big = toBigInt(v);
        const [lo, hi] = BIG_RANGES[dtype]!;
        if (big === undefined) return `${describe(v)} is not an integer`;
        if (big < lo || big > hi) return `${big} is out of the ${dtype} range`;
        (buf as BigInt64Array)[at] = big;
        return undefined;
      };
    case 'bool':
      return (buf, at, v) => {
        if (v === true || v === 1) (buf as Uint8Array)[at] = 1;
        else if (v === false || v === 0) (buf as Uint8Array)[at] = 0;
        else return `${describe(v)} is not a boolean (true, false, 1 or 0)`;
        return undefined;
      };
    case 'string':
      return (buf, at, v) => {
        if (typeof v !== 'string') return `${describe(v)} is not a string`;
        (buf as string[])[at] = v;
        return undefined;
      };
    default: {
      const [lo, hi] = INT_RANGES[dtype]!;
      return (buf, at, v) => {
        const n = typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : undefined;
        if (n === undefined || !Number.isInteger(n)) return `${describe(v)} is not an integer`;
        if (n < lo || n > hi) return `${n} is out of the ${dtype} range [${lo}, ${hi}]`;
        (buf as Int32Array)[at] = n;
        return undefined;
      };
    }
  }
}

function toBigInt(v: unknown): bigint | undefined {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return Number.isSafeInteger(v) ? BigInt(v) : undefined;
  // JSON cannot hold integers beyond 2^53 as numbers; a decimal string carries them exactly.
  if (typeof v === 'string' && /^-?\d{1,20}$/.test(v)) return BigInt(v);
  return undefined;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 half-precision bits of a number, rounded to nearest even (as a float32 -> float16 cast does). */
export function toHalfBits(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0); // Inf, NaN
  let e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow: Inf
  if (e <= 0) {
    // Subnormal half (or zero): shift the implicit bit in and round.
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mantissa & ((1 << shift) - 1);
    let m = mantissa >>> shift;
    if (rest > half || (rest === half && (m & 1) === 1)) m += 1;
    return sign | m;
  }
  const rest = mantissa & 0x1fff;
  let m = mantissa >>> 13;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1) === 1)) {
    m += 1;
    if (m === 0x400) {
      m = 0;
      e += 1;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

/** The number a float16 bit pattern stands for. */
export function fromHalfBits(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 37)}...` : v);
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  return typeof v === 'object' ? (v.constructor?.name ?? 'an object') : typeof v;
}
