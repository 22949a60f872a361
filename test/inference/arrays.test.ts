/**
 * Array inputs for every ONNX element type, through the identity models of test/fixtures/models/tensor
 * (scripts/make_tensor_models.py): record values -> tensors -> a real session -> raw output columns -> Parquet ->
 * DuckDB, and back to the same values.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { encodeParquet } from '../../src/formats/parquet-write.js';
import { createFeatureBuilder } from '../../src/inference/features.js';
import { createPostprocessor } from '../../src/inference/postprocess.js';
import type { ModelSession } from '../../src/inference/session.js';
import { ModelError } from '../../src/spec/errors.js';
import { TENSOR_DTYPES, type TensorDtype } from '../../src/spec/model-io.js';
import { input, output, rec, session } from './helpers.js';

/** Two records per dtype: extremes of each range, given in the forms JSON and Parquet readers produce. */
const VALUES: Record<TensorDtype, readonly [unknown[], unknown[]]> = {
  float32: [
    [1.5, -2.25],
    [3.5e10, 0],
  ],
  float64: [
    [0.1, 1e300],
    [-5e-324, 2],
  ],
  int32: [
    [-2147483648, 2147483647],
    [0, 7],
  ],
  int64: [
    ['9007199254740993', -5n],
    [-(2n ** 63n), 2n ** 63n - 1n],
  ],
  float16: [
    [2051, -65504],
    [1 / 3, 6e-8],
  ],
  int8: [
    [-128, 127],
    [0, 1],
  ],
  int16: [
    [-32768, 32767],
    [0, 1],
  ],
  uint8: [
    [0, 255],
    [1, 2],
  ],
  uint16: [
    [0, 65535],
    [1, 2],
  ],
  uint32: [
    [0, 4294967295],
    [1, 2],
  ],
  uint64: [
    ['9223372036854775807', 0],
    [1n, 2],
  ],
  bool: [
    [true, false],
    [1, 0],
  ],
  string: [
    ['a', 'é🚀'],
    ['', 'x y'],
  ],
};

/** What comes back in the output column: the natural JavaScript form of each element. */
const BACK: Record<TensorDtype, readonly [unknown[], unknown[]]> = {
  ...VALUES,
  float32: [
    [1.5, -2.25],
    [Math.fround(3.5e10), 0],
  ],
  int64: [
    [9007199254740993n, -5n],
    [-(2n ** 63n), 2n ** 63n - 1n],
  ],
  // float16 keeps 11 significant bits: 2051 (a tie) rounds to even 2052, 1/3 becomes 0.333251953125, and 6e-8
  // the nearest subnormal, 2^-24.
  float16: [
    [2052, -65504],
    [0.333251953125, 2 ** -24],
  ],
  uint32: [
    [0n, 4294967295n],
    [1n, 2n],
  ],
  uint64: [
    [9223372036854775807n, 0n],
    [1n, 2n],
  ],
  bool: [
    [true, false],
    [true, false],
  ],
};

const COLUMN_TYPE: Record<TensorDtype, string> = {
  float32: 'array<float>',
  float64: 'array<double>',
  int32: 'array<int>',
  int64: 'array<bigint>',
  float16: 'array<float>',
  int8: 'array<int>',
  int16: 'array<int>',
  uint8: 'array<int>',
  uint16: 'array<int>',
  uint32: 'array<bigint>',
  uint64: 'array<bigint>',
  bool: 'array<boolean>',
  string: 'array<string>',
};

let identity: ModelSession;
let padded: ModelSession;
let dir: string;
beforeAll(async () => {
  [identity, padded] = await Promise.all([
    session('tensor/identity_dtypes.onnx'),
    session('tensor/padded_identity.onnx'),
  ]);
  dir = await mkdtemp(path.join(os.tmpdir(), 'arrays-test-'));
});
afterAll(async () => {
  await identity?.release();
  await padded?.release();
  await rm(dir, { recursive: true, force: true });
});

const everyDtype = () =>
  TENSOR_DTYPES.map((dtype) =>
    input({ tensor: `x_${dtype}`, from: { array: dtype }, dtype, shape: [-1, 2] }),
  );

describe('array inputs', () => {
  it('round-trips every ONNX dtype through a real session, the raw output columns, Parquet and DuckDB', async () => {
    const builder = createFeatureBuilder(everyDtype(), identity.inputs);
    const records = [0, 1].map((r) =>
      rec(Object.fromEntries(TENSOR_DTYPES.map((dtype) => [dtype, VALUES[dtype][r]]))),
    );
    const batch = await builder.build(records);
    expect(batch.issues).toEqual([]);
    for (const dtype of TENSOR_DTYPES) {
      expectIn(batch.feeds[`x_${dtype}`]!.type, dtype).toBe(dtype);
      expect(batch.feeds[`x_${dtype}`]!.dims).toEqual([2, 2]);
    }
    const out = await identity.run(batch.feeds);
    const post = createPostprocessor(
      TENSOR_DTYPES.map((dtype) => output({ tensor: `y_${dtype}`, as: dtype })),
      identity.outputs,
      { labels: new Map() },
    );
    expect(Object.fromEntries(post.columns.map((c) => [c.name, c.type]))).toEqual(COLUMN_TYPE);
    const result = await post.apply(out, 2);
    expect(result.issues).toEqual([]);
    TENSOR_DTYPES.forEach((dtype, c) => expectIn(result.values[c], dtype).toEqual(BACK[dtype]));

    // The same columns, written by the Parquet writer and read back by DuckDB.
    const file = path.join(dir, 'dtypes.parquet');
    await writeFile(
      file,
      encodeParquet(post.columns.map((column, c) => ({ ...column, values: result.values[c]! }))),
    );
    const db = await DuckDBInstance.create(':memory:');
    const duck = await db.connect();
    try {
      const types = (
        await duck.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${file}')`)
      ).getRowObjectsJS();
      expect(Object.fromEntries(types.map((t) => [t.column_name, t.column_type]))).toMatchObject({
        float32: 'FLOAT[]',
        float64: 'DOUBLE[]',
        int8: 'INTEGER[]',
        int64: 'BIGINT[]',
        uint32: 'BIGINT[]',
        bool: 'BOOLEAN[]',
        string: 'VARCHAR[]',
      });
      const rows = (await duck.runAndReadAll(`SELECT * FROM read_parquet('${file}')`)).getRowObjectsJS();
      TENSOR_DTYPES.forEach((dtype) => {
        const back = rows.map((row) => row[dtype]);
        // float32 lists come back as doubles of the stored float32 values.
        const want = BACK[dtype].map((list) =>
          COLUMN_TYPE[dtype] === 'array<float>' ? list.map((v) => Math.fround(v as number)) : list,
        );
        expectIn(back, dtype).toEqual(want);
      });
    } finally {
      duck.closeSync();
      db.closeSync();
    }
  });

  it('sets aside values out of range, of the wrong type or the wrong shape, naming the column and element', async () => {
    const builder = createFeatureBuilder(
      [input({ tensor: 'x_int8', from: { array: 'v' }, dtype: 'int8' })],
      identity.inputs.filter((i) => i.name === 'x_int8'),
    );
    const batch = await builder.build([
      rec({ v: [1, 200] }),
      rec({ v: [1.5, 2] }),
      rec({ v: [1, 2, 3] }),
      rec({ v: [[1], [2, 3]] }),
      rec({ v: 'not json' }),
      rec({ v: null }),
      rec({ v: '[4, 5]' }),
      rec({ v: Int8Array.from([6, 7]) }),
    ]);
    expect(batch.included).toEqual([6, 7]);
    expect(batch.issues.map((i) => [i.index, i.reason, i.message])).toEqual([
      [0, 'INVALID_VALUE', 'column "v" element 1: 200 is out of the int8 range [-128, 127] (int8 tensor)'],
      [1, 'INVALID_VALUE', 'column "v" element 0: 1.5 is not an integer (int8 tensor)'],
      [2, 'INVALID_VALUE', 'column "v" has shape [3], but each record must be [2]'],
      [
        3,
        'INVALID_VALUE',
        'column "v" is a ragged array (its rows differ in length); every row must have the same length',
      ],
      [4, 'INVALID_VALUE', 'column "v" is "not json", not an array (nor the text of a JSON array)'],
      [5, 'MISSING_VALUE', 'column "v" is missing or null'],
    ]);
    expect(Array.from(batch.feeds.x_int8!.data as Int8Array)).toEqual([4, 5, 6, 7]);
  });

  it('pads dynamic dimensions to the longest record of the batch with the declared pad value', async () => {
    const spec = input({ tensor: 'seq', from: { array: 'seq' }, shape: [-1, -1, 2], pad: -1 });
    const batch = await createFeatureBuilder([spec], padded.inputs).build([
      rec({ seq: [[1, 2]] }),
      rec({
        seq: [
          [3, 4],
          [5, 6],
          [7, 8],
        ],
      }),
      rec({
        seq: [
          [9, 10],
          [11, 12],
        ],
      }),
    ]);
    expect(batch.feeds.seq!.dims).toEqual([3, 3, 2]);
    const out = await padded.run(batch.feeds);
    expect(Array.from(out.seq_out!.data as Float32Array)).toEqual([
      1, 2, -1, -1, -1, -1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, -1, -1,
    ]);
    // A batch of short records stays short.
    const short = await createFeatureBuilder([spec], padded.inputs).build([rec({ seq: [[1, 2]] })]);
    expect(short.feeds.seq!.dims).toEqual([1, 1, 2]);
  });

  it('without pad, holds each batch to the first record shape; a flat list fills a static shape', async () => {
    const noPad = input({ tensor: 'seq', from: { array: 'seq' } });
    const batch = await createFeatureBuilder([noPad], padded.inputs).build([
      rec({ seq: [[1, 2]] }),
      rec({
        seq: [
          [3, 4],
          [5, 6],
        ],
      }),
      rec({ seq: [[7, 8]] }),
    ]);
    expect(batch.included).toEqual([0, 2]);
    expect(batch.issues[0]!.message).toMatch(/shape \[2, 2\], unlike \[1, 2\] .* set pad/);
    const flat = input({ tensor: 'seq', from: { array: 'seq' }, shape: [-1, 3, 2] });
    const reshaped = await createFeatureBuilder([flat], padded.inputs).build([
      rec({ seq: [1, 2, 3, 4, 5, 6] }),
    ]);
    expect(reshaped.feeds.seq!.dims).toEqual([1, 3, 2]);
  });

  it('fails fast when the declared dtype or shape contradicts the model', () => {
    const float = identity.inputs.filter((i) => i.name === 'x_float32');
    expect(() =>
      createFeatureBuilder([input({ tensor: 'x_float32', from: { array: 'v' }, dtype: 'float64' })], float),
    ).toThrow(/is float32 in the model; set dtype: float32/);
    expect(() =>
      createFeatureBuilder([input({ tensor: 'x_float32', from: { array: 'v' }, shape: [-1, 3] })], float),
    ).toThrow(ModelError);
    expect(() =>
      createFeatureBuilder([input({ tensor: 'seq', from: { array: 'v' }, shape: [-1, 2] })], padded.inputs),
    ).toThrow(/rank 3 in the model/);
  });
});
