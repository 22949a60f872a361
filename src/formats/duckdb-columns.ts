/**
 * Columns copied into a DuckDB data chunk a vector at a time (the chunk writer's appends, parquet-chunk-writer.ts).
 *
 * @duckdb/node-api's `setColumnValues` sets a vector one value at a time and, for strings, crosses into native code
 * once per value: on the demo's 1,000,000 rows that was 0.9 s of the worker's main thread, the thread every other
 * stage waits on (docs/adr/0019). Here each column's values are checked as before, written into a typed array laid
 * out as DuckDB's vector is (its C API's layout), and copied in with one call per vector:
 * - numbers, booleans and ENUM codes as the vector's fixed-width values, nulls as cleared bits of its validity mask;
 * - strings of at most 12 UTF-8 bytes inline, as DuckDB keeps them (`duckdb_string_t`: a 32-bit length, then the
 *   bytes, zero-padded to 16); a longer string through `duckdb_vector_assign_string_element`, which copies it into
 *   the vector's own string heap.
 * A column of another type (lists) is left to node-api.
 */
import type { Vector } from '@duckdb/node-bindings';
import { duckDb } from './duckdb-library.js';

/** How a column's values are laid out in its vector; `undefined` where node-api sets the vector. */
export type VectorLayout =
  | { readonly kind: 'float32' | 'float64' | 'int32' | 'bigint64' | 'bool' }
  | { readonly kind: 'enum'; readonly codes: ReadonlyMap<string, number> }
  | { readonly kind: 'varchar' };

/** One value refused by a column's check: the writer names the column, row and value. */
export class RefusedValue {
  constructor(
    readonly row: number,
    readonly value: unknown,
    /** The value is of the right type but not one of an ENUM's members. */
    readonly notAMember: boolean,
  ) {}
}

/** The most rows of a DuckDB data chunk (DuckDB's STANDARD_VECTOR_SIZE, which node-api uses too). */
export const VECTOR_ROWS = 2048;
/** The longest string, in UTF-8 bytes, that DuckDB keeps inside the 16-byte string value. */
const INLINE_BYTES = 12;
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * ENUM values are stored as the smallest unsigned integer that holds a member's index (DuckDB's
 * `EnumTypeInfo::DictType`: up to 255 members in one byte, up to 65,535 in two, else four).
 */
function enumCodeBytes(members: number): 1 | 2 | 4 {
  return members <= 0xff ? 1 : members <= 0xffff ? 2 : 4;
}

/** Scratch buffers reused from vector to vector (one thread fills one vector at a time). */
const scratch = {
  data: new ArrayBuffer(VECTOR_ROWS * 16),
  validity: new Uint8Array(VECTOR_ROWS / 8),
};
const encoder = new TextEncoder();

/**
 * Writes rows [from, from + n) of `values` into `vector` (a vector of a fresh data chunk, n ≤ VECTOR_ROWS), checking
 * each value as the column's type requires. Returns the first value refused, without writing the vector, or
 * undefined when all were written. Null and undefined values are nulls.
 */
export function fillVector(
  vector: Vector,
  layout: VectorLayout,
  values: ArrayLike<unknown>,
  from: number,
  n: number,
  /** A bigint column whose values are numbers that are safe integers, staged as DOUBLE (parquet-chunk-writer.ts). */
  safeIntegers = false,
): RefusedValue | undefined {
  const validity = scratch.validity;
  const validityBytes = Math.ceil(n / 64) * 8;
  validity.fill(0xff, 0, validityBytes);
  let nulls = 0;
  let bytes: number;
  // One loop per layout, each storing into one kind of typed array: a shared loop would make every store site see
  // every array type (megamorphic), on the path that writes every output value.
  switch (layout.kind) {
    case 'float32':
    case 'float64': {
      const out =
        layout.kind === 'float32'
          ? new Float32Array(scratch.data, 0, n)
          : new Float64Array(scratch.data, 0, n);
      if (!safeIntegers && (values instanceof Float32Array || values instanceof Float64Array)) {
        // Every element is a number and none is null: nothing to check.
        out.set(values.subarray(from, from + n));
      } else {
        for (let i = 0; i < n; i++) {
          const v = values[from + i];
          if (typeof v === 'number') {
            if (safeIntegers && !Number.isSafeInteger(v)) return new RefusedValue(i, v, false);
            out[i] = v;
          } else if (v === null || v === undefined) {
            validity[i >> 3]! &= ~(1 << (i & 7));
            nulls++;
          } else return new RefusedValue(i, v, false);
        }
      }
      bytes = out.byteLength;
      break;
    }
    case 'int32': {
      const out = new Int32Array(scratch.data, 0, n);
      for (let i = 0; i < n; i++) {
        const v = values[from + i];
        if (typeof v === 'number' && Number.isInteger(v) && v >= INT32_MIN && v <= INT32_MAX) out[i] = v;
        else if (v === null || v === undefined) {
          validity[i >> 3]! &= ~(1 << (i & 7));
          nulls++;
        } else return new RefusedValue(i, v, false);
      }
      bytes = out.byteLength;
      break;
    }
    case 'bigint64': {
      const out = new BigInt64Array(scratch.data, 0, n);
      for (let i = 0; i < n; i++) {
        const v = values[from + i];
        if (typeof v === 'bigint' && v >= INT64_MIN && v <= INT64_MAX) out[i] = v;
        else if (typeof v === 'number' && Number.isSafeInteger(v)) out[i] = BigInt(v);
        else if (v === null || v === undefined) {
          validity[i >> 3]! &= ~(1 << (i & 7));
          nulls++;
        } else return new RefusedValue(i, v, false);
      }
      bytes = out.byteLength;
      break;
    }
    case 'bool': {
      const out = new Uint8Array(scratch.data, 0, n);
      for (let i = 0; i < n; i++) {
        const v = values[from + i];
        if (typeof v === 'boolean') out[i] = v ? 1 : 0;
        else if (v === null || v === undefined) {
          validity[i >> 3]! &= ~(1 << (i & 7));
          nulls++;
        } else return new RefusedValue(i, v, false);
      }
      bytes = out.byteLength;
      break;
    }
    case 'enum': {
      const width = enumCodeBytes(layout.codes.size);
      const out =
        width === 1
          ? new Uint8Array(scratch.data, 0, n)
          : width === 2
            ? new Uint16Array(scratch.data, 0, n)
            : new Uint32Array(scratch.data, 0, n);
      for (let i = 0; i < n; i++) {
        const v = values[from + i];
        if (typeof v === 'string') {
          const code = layout.codes.get(v);
          if (code === undefined) return new RefusedValue(i, v, true);
          out[i] = code;
        } else if (v === null || v === undefined) {
          out[i] = 0;
          validity[i >> 3]! &= ~(1 << (i & 7));
          nulls++;
        } else return new RefusedValue(i, v, false);
      }
      bytes = out.byteLength;
      break;
    }
    case 'varchar': {
      const slots = new Uint8Array(scratch.data, 0, n * 16);
      slots.fill(0);
      // Each slot's length is its first 4 bytes, little-endian as on every platform DuckDB's Node package ships for.
      const lengths = new Uint32Array(scratch.data, 0, n * 4);
      let long: number[] | undefined;
      for (let i = 0; i < n; i++) {
        const v = values[from + i];
        if (typeof v === 'string') {
          if (!inlineString(v, slots, lengths, i)) (long ??= []).push(i);
        } else if (v === null || v === undefined) {
          validity[i >> 3]! &= ~(1 << (i & 7));
          nulls++;
        } else return new RefusedValue(i, v, false);
      }
      const duckdb = duckDb().bindings;
      duckdb.copy_data_to_vector(vector, 0, scratch.data, 0, n * 16);
      // After the copy, which would overwrite them: these point into the vector's string heap.
      if (long)
        for (const i of long) duckdb.vector_assign_string_element(vector, i, values[from + i] as string);
      if (nulls > 0) setValidity(vector, validityBytes);
      return undefined;
    }
  }
  duckDb().bindings.copy_data_to_vector(vector, 0, scratch.data, 0, bytes);
  if (nulls > 0) setValidity(vector, validityBytes);
  return undefined;
}

function setValidity(vector: Vector, bytes: number): void {
  const duckdb = duckDb().bindings;
  duckdb.vector_ensure_validity_writable(vector);
  duckdb.copy_data_to_vector_validity(vector, 0, scratch.validity.buffer, 0, bytes);
}

/**
 * Writes `text` into slot `i` as an inlined string value when its UTF-8 form has at most 12 bytes; returns false
 * (nothing written) for a longer one.
 */
function inlineString(text: string, slots: Uint8Array, lengths: Uint32Array, i: number): boolean {
  if (text.length > INLINE_BYTES) return false;
  const at = i * 16 + 4;
  let k = 0;
  for (; k < text.length; k++) {
    const c = text.charCodeAt(k);
    if (c >= 0x80) break;
    slots[at + k] = c;
  }
  if (k < text.length) {
    // Not ASCII: encode it whole (lone surrogates become U+FFFD, as node-api's own string conversion does).
    const bytes = encoder.encode(text);
    if (bytes.length > INLINE_BYTES) {
      slots.fill(0, at, at + INLINE_BYTES);
      return false;
    }
    slots.fill(0, at, at + INLINE_BYTES);
    slots.set(bytes, at);
    k = bytes.length;
  }
  lengths[i * 4] = k;
  return true;
}
