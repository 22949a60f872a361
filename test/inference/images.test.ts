/**
 * Image inputs: real PNG and JPEG files drawn with sharp here, decoded, resized, cropped and normalised by the
 * builder, and run through the CNN of test/fixtures/models/image against the numpy reference of
 * scripts/make_image_models.py (expected.json).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readRange } from '../../src/formats/index.js';
import type { DecodedRecord } from '../../src/formats/records.js';
import { createFeatureBuilder } from '../../src/inference/features.js';
import { createPostprocessor } from '../../src/inference/postprocess.js';
import type { ModelSession, TensorInfo } from '../../src/inference/session.js';
import { ModelError } from '../../src/spec/errors.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import { expectIn } from '../support/expect-in.js';
import { fixtureJson, input, maxAbsDiff, output, rec, session } from './helpers.js';

interface Expected {
  readonly size: number;
  readonly mean: number[];
  readonly std: number[];
  readonly labels: string[];
  readonly logits: number[][];
}
const expected = fixtureJson<Expected>('image/expected.json');
const SIZE = expected.size;

/** The script's pattern k as raw RGB bytes: channel c of pixel (x, y) is (7x + 13y + 50c + 31k) mod 256. */
function pattern(k: number, width = SIZE, height = SIZE): Buffer {
  const out = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      for (let c = 0; c < 3; c++) out[(y * width + x) * 3 + c] = (x * 7 + y * 13 + c * 50 + k * 31) % 256;
  return out;
}
const encode = (raw: Buffer, width: number, height: number, channels: 1 | 3 | 4 = 3) =>
  sharp(raw, { raw: { width, height, channels } });
const png = (raw: Buffer, width = SIZE, height = SIZE, channels: 1 | 3 | 4 = 3) =>
  encode(raw, width, height, channels).png().toBuffer();

/** An image whose left half is red and right half blue. */
function halves(width: number, height: number): Buffer {
  const out = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) out[(y * width + x) * 3 + (x < width / 2 ? 0 : 2)] = 255;
  return out;
}

let cnn: ModelSession;
let dir: string;
beforeAll(async () => {
  cnn = await session('image/cnn.onnx');
  dir = await mkdtemp(path.join(os.tmpdir(), 'images-test-'));
});
afterAll(async () => {
  await cnn?.release();
  await rm(dir, { recursive: true, force: true });
});

const cnnInput = (extra: Record<string, unknown> = {}) =>
  input({
    tensor: 'pixel_values',
    from: {
      image: 'image',
      resize: { height: SIZE, width: SIZE },
      mean: expected.mean,
      std: expected.std,
      ...extra,
    },
  });
/** A graph input with no declared type or shape: for checking the tensor layout alone. */
const anyInput = (name: string): TensorInfo[] => [{ name }];

describe('image inputs', () => {
  it('decodes PNGs into normalised NCHW tensors that give the numpy reference logits', async () => {
    const images = await Promise.all([0, 1, 2].map((k) => png(pattern(k))));
    const builder = createFeatureBuilder([cnnInput()], cnn.inputs);
    const batch = await builder.build(images.map((image) => rec({ image })));
    const x = batch.feeds.pixel_values!;
    expect(x.dims).toEqual([3, 3, SIZE, SIZE]);
    // Pixel (x=5, y=2) of pattern 1, green channel: (35 + 26 + 50 + 31) mod 256 = 142.
    const at = 1 * 3 * SIZE * SIZE + 1 * SIZE * SIZE + 2 * SIZE + 5;
    expect((x.data as Float32Array)[at]).toBeCloseTo((142 / 255 - expected.mean[1]!) / expected.std[1]!, 6);
    const out = await cnn.run(batch.feeds);
    expect(maxAbsDiff(out.logits!.data as Float32Array, expected.logits.flat())).toBeLessThan(1e-4);

    const post = createPostprocessor(
      [output({ tensor: 'logits', postprocess: { softmax: true, topK: { k: 2, labels: 'labels.txt' } } })],
      cnn.outputs,
      { labels: new Map([['labels.txt', expected.labels]]) },
    );
    const result = await post.apply(out, 3);
    const best = expected.logits.map((l) => expected.labels[l.indexOf(Math.max(...l))]);
    expect((result.values[0] as string[][]).map((top) => top[0])).toEqual(best);
  });

  it('decodes JPEGs too (lossy: close to its own reference, farther from every other)', async () => {
    // The references' logits are close to one another (0.10 apart at least, all with the same top-1 label), so
    // the tolerance must be well under that for the check to tell pattern 0 from the others: JPEG at quality 100,
    // 4:4:4 moves the logits by 0.017; anything over 0.04 is a decoding or preprocessing error.
    const TOLERANCE = 0.04;
    for (let a = 0; a < expected.logits.length; a++) {
      for (let b = a + 1; b < expected.logits.length; b++) {
        const spread = maxAbsDiff(expected.logits[a]!, expected.logits[b]!);
        expectIn(spread, `references ${a} and ${b}`).toBeGreaterThan(2 * TOLERANCE);
      }
    }
    const jpeg = await encode(pattern(0), SIZE, SIZE)
      .jpeg({ quality: 100, chromaSubsampling: '4:4:4' })
      .toBuffer();
    const batch = await createFeatureBuilder([cnnInput()], cnn.inputs).build([rec({ image: jpeg })]);
    const out = await cnn.run(batch.feeds);
    const distances = expected.logits.map((ref) => maxAbsDiff(out.logits!.data as Float32Array, ref));
    expectIn(distances[0], JSON.stringify(distances)).toBeLessThan(TOLERANCE);
    for (const d of distances.slice(1)) expectIn(d, JSON.stringify(distances)).toBeGreaterThan(TOLERANCE);
  });

  it('resizes the shorter side and center-crops, keeping the aspect ratio', async () => {
    // 96x48 (left half red, right half blue) -> shorter side 32 -> 64x32 -> center crop 32x32: the middle,
    // columns 16..47 of the resized image, so the left half of the crop is red and the right half blue.
    const image = await png(halves(96, 48), 96, 48);
    const spec = input({
      tensor: 'x',
      from: { image: 'image', resize: { shorterSide: 32 }, crop: { height: 32, width: 32 }, rescale: 1 },
    });
    const batch = await createFeatureBuilder([spec], anyInput('x')).build([rec({ image })]);
    const x = batch.feeds.x!;
    expect(x.dims).toEqual([1, 3, 32, 32]);
    const px = (c: number, y: number, col: number) => (x.data as Float32Array)[c * 1024 + y * 32 + col]!;
    expect([px(0, 16, 4), px(2, 16, 4)]).toEqual([255, 0]);
    expect([px(0, 16, 28), px(2, 16, 28)]).toEqual([0, 255]);
    // An exact resize squeezes instead: the same image at 16x16 keeps red in its left half.
    const exact = input({
      tensor: 'x',
      from: { image: 'image', resize: { height: 16, width: 16 }, rescale: 1 },
    });
    const squeezed = (await createFeatureBuilder([exact], anyInput('x')).build([rec({ image })])).feeds.x!;
    expect(squeezed.dims).toEqual([1, 3, 16, 16]);
    expect((squeezed.data as Float32Array)[8 * 16 + 2]).toBe(255);
  });

  it('makes NHWC, BGR, greyscale and uint8 tensors, and drops an alpha channel', async () => {
    const solid = Buffer.alloc(4 * 4 * 4);
    for (let i = 0; i < 16; i++) solid.set([10, 20, 30, 128], i * 4);
    const image = await png(solid, 4, 4, 4);
    const build = async (from: Record<string, unknown>, dtype = 'uint8') =>
      (
        await createFeatureBuilder(
          [input({ tensor: 'x', dtype, from: { image: 'image', resize: { height: 4, width: 4 }, ...from } })],
          anyInput('x'),
        ).build([rec({ image })])
      ).feeds.x!;
    const nhwc = await build({ layout: 'NHWC', channels: 'BGR' });
    expect(nhwc.type).toBe('uint8');
    expect(nhwc.dims).toEqual([1, 4, 4, 3]);
    expect(Array.from(nhwc.data as Uint8Array).slice(0, 6)).toEqual([30, 20, 10, 30, 20, 10]);
    const grey = await build({ channels: 'L' });
    expect(grey.dims).toEqual([1, 1, 4, 4]);
    // sRGB luminance of (10, 20, 30) is about 18.
    expect(Math.abs((grey.data as Uint8Array)[0]! - 18)).toBeLessThanOrEqual(2);
    const float = await build({ mean: 0.5, std: 0.5 }, 'float32');
    expect((float.data as Float32Array)[0]).toBeCloseTo((10 / 255 - 0.5) / 0.5, 6);
  });

  it('reads bytes, base64, data URIs and locations (relative to the record source), and flags bad values', async () => {
    const image = await png(pattern(0));
    await writeFile(path.join(dir, 'a.png'), image);
    const source = pathToFileURL(path.join(dir, 'list.jsonl')).href;
    const at = (value: unknown): DecodedRecord => ({ source, offset: 0, values: { image: value } });
    const records = [
      at(image),
      at(image.toString('base64')),
      at(`data:image/png;base64,${image.toString('base64')}`),
      at('a.png'),
      at(pathToFileURL(path.join(dir, 'a.png')).href),
      at('missing.png'),
      at(Buffer.from('not an image')),
      at(null),
      at(42),
      at(await png(pattern(0, 8, 8), 8, 8)),
      // A JPEG's base64 starts with "/9j/": it must not be taken for a path.
      at((await encode(pattern(0), SIZE, SIZE).jpeg().toBuffer()).toString('base64')),
    ];
    const spec = input({
      tensor: 'pixel_values',
      from: { image: 'image', crop: { height: SIZE, width: SIZE } },
    });
    const batch = await createFeatureBuilder([spec], cnn.inputs, { store: new LocalObjectStore() }).build(
      records,
    );
    expect(batch.included).toEqual([0, 1, 2, 3, 4, 10]);
    expect(batch.issues.map((i) => [i.index, i.reason])).toEqual([
      [5, 'INVALID_VALUE'],
      [6, 'DECODE_ERROR'],
      [7, 'MISSING_VALUE'],
      [8, 'INVALID_VALUE'],
      [9, 'INVALID_VALUE'],
    ]);
    expect(batch.issues[0]!.message).toMatch(/no image at file:\/\/.*missing\.png/);
    expect(batch.issues[1]!.message).toMatch(/not a decodable image/);
    expect(batch.issues[4]!.message).toMatch(/8x8 after resizing, smaller than the 32x32 crop/);
    const rows = batch.feeds.pixel_values!.data as Float32Array;
    const one = SIZE * SIZE * 3;
    for (let r = 1; r < 5; r++) expect(rows.subarray(r * one, (r + 1) * one)).toEqual(rows.subarray(0, one));
  });

  it('runs a directory of image files through the files format', async () => {
    const folder = path.join(dir, 'photos');
    await rm(folder, { recursive: true, force: true });
    await mkdir(folder);
    await writeFile(path.join(folder, 'p0.png'), await png(pattern(0)));
    await writeFile(path.join(folder, 'p1.png'), await png(pattern(1)));
    await writeFile(path.join(folder, 'broken.png'), 'truncated');
    const store = new LocalObjectStore();
    const records: DecodedRecord[] = [];
    const errors: string[] = [];
    for (const name of ['p0.png', 'broken.png', 'p1.png']) {
      const uri = pathToFileURL(path.join(folder, name)).href;
      const { size } = await store.head(uri);
      for await (const batch of readRange(
        store,
        'files',
        { uri, etag: 'e', size, start: 0, end: size },
        { batchSize: 8 },
      ))
        for (const r of batch) {
          if (r.values) records.push(r);
          else errors.push(r.error.message);
        }
    }
    expect(errors).toEqual([]);
    const builder = createFeatureBuilder([cnnInput({ image: 'content' })], cnn.inputs);
    const batch = await builder.build(records);
    expect(batch.included).toEqual([0, 2]);
    expect(batch.issues[0]).toMatchObject({ index: 1, reason: 'DECODE_ERROR' });
    const out = await cnn.run(batch.feeds);
    expect(
      maxAbsDiff(out.logits!.data as Float32Array, [...expected.logits[0]!, ...expected.logits[1]!]),
    ).toBeLessThan(1e-4);
  });

  it('fails fast when the image size or layout cannot fit the model', () => {
    expect(() => createFeatureBuilder([cnnInput({ resize: { height: 28, width: 28 } })], cnn.inputs)).toThrow(
      /\[N, 3, 28, 28\]: fix resize\/crop/,
    );
    expect(() => createFeatureBuilder([cnnInput({ layout: 'NHWC' })], cnn.inputs)).toThrow(ModelError);
    expect(() =>
      createFeatureBuilder(
        [
          input({
            tensor: 'pixel_values',
            dtype: 'uint8',
            from: { image: 'image', resize: { height: 32, width: 32 } },
          }),
        ],
        cnn.inputs,
      ),
    ).toThrow(/is float32 in the model/);
  });
});
