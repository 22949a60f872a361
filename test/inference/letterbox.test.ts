/**
 * Images with `resize.keepAspect` (letterbox and right-pad, docs/adr/0020): the tensors the builder makes are
 * compared with references computed here, pixel by pixel, by a separate straightforward implementation (integer
 * scale factors with nearest-neighbour sampling, so the reference needs no resampling library), and the content
 * boxes of non-integer scales are checked with solid-colour images (invariant under any resampling kernel).
 */
import sharp from 'sharp';
import { describe, expect, it } from '@jest/globals';
import { createFeatureBuilder } from '../../src/inference/features.js';
import type { TensorInfo } from '../../src/inference/session.js';
import { inputTensorSpec } from '../../src/spec/model-io.js';
import { expectIn } from '../support/expect-in.js';
import { input, rec } from './helpers.js';

const anyInput = (name: string): TensorInfo[] => [{ name }];

/** Raw RGB where pixel (x, y) channel c is f(x, y, c). */
function raw(width: number, height: number, f: (x: number, y: number, c: number) => number): Buffer {
  const out = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) for (let c = 0; c < 3; c++) out[(y * width + x) * 3 + c] = f(x, y, c);
  return out;
}
const png = (data: Buffer, width: number, height: number) =>
  sharp(data, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();

/**
 * The reference: an H x W canvas of `pad`, with the source scaled by an integer factor (`up`) or its inverse
 * (`down`) by nearest neighbour placed at (top, left); NCHW or NHWC, RGB or BGR. Values are bytes (rescale: 1).
 */
function reference(opts: {
  src: (x: number, y: number, c: number) => number;
  content: { width: number; height: number; top: number; left: number };
  map: (v: number) => number;
  height: number;
  width: number;
  pad: readonly number[];
  layout: 'NCHW' | 'NHWC';
  bgr?: boolean;
}): number[] {
  const { height: H, width: W, content } = opts;
  const out = new Array<number>(3 * H * W);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++)
      for (let c = 0; c < 3; c++) {
        const sy = y - content.top;
        const sx = x - content.left;
        const inside = sy >= 0 && sy < content.height && sx >= 0 && sx < content.width;
        const channel = opts.bgr ? 2 - c : c;
        const v = inside ? opts.src(opts.map(sx), opts.map(sy), channel) : opts.pad[c]!;
        out[opts.layout === 'NCHW' ? c * H * W + y * W + x : (y * W + x) * 3 + c] = v;
      }
  return out;
}

async function tensorOf(
  from: Record<string, unknown>,
  image: Buffer,
): Promise<{ dims: readonly number[]; data: number[] }> {
  const spec = input({ tensor: 'x', from: { image: 'image', rescale: 1, resample: 'nearest', ...from } });
  const batch = await createFeatureBuilder([spec], anyInput('x')).build([rec({ image })]);
  expectIn(batch.issues, 'no record issues').toEqual([]);
  const x = batch.feeds.x!;
  return { dims: x.dims, data: [...(x.data as Float32Array)] };
}

/** 2x2 blocks of one colour each, so halving by nearest neighbour is exact whichever pixel of a block it takes. */
const blocks = (x: number, y: number, c: number): number =>
  (Math.floor(x / 2) * 37 + Math.floor(y / 2) * 71 + c * 90) % 256;
const pattern = (x: number, y: number, c: number): number => (x * 29 + y * 53 + c * 101 + 7) % 256;

describe('resize with keepAspect', () => {
  it('letterboxes a wide image: halved to fit 32x32, centred, padded top and bottom with pad.value', async () => {
    const image = await png(raw(64, 32, blocks), 64, 32);
    const got = await tensorOf(
      { resize: { height: 32, width: 32, keepAspect: true, pad: { value: 114 } } },
      image,
    );
    expect(got.dims).toEqual([1, 3, 32, 32]);
    const want = reference({
      src: blocks,
      content: { width: 32, height: 16, top: 8, left: 0 },
      map: (v) => v * 2,
      height: 32,
      width: 32,
      pad: [114, 114, 114],
      layout: 'NCHW',
    });
    expect(got.data).toEqual(want);
  });

  it('right-pads a text line: doubled to height 16, padded on the right to maxWidth (NHWC, BGR, per-channel pad)', async () => {
    const image = await png(raw(20, 8, pattern), 20, 8);
    const got = await tensorOf(
      {
        resize: { height: 16, maxWidth: 64, keepAspect: true, pad: { value: [1, 2, 3] } },
        layout: 'NHWC',
        channels: 'BGR',
      },
      image,
    );
    expect(got.dims).toEqual([1, 16, 64, 3]);
    const want = reference({
      src: pattern,
      content: { width: 40, height: 16, top: 0, left: 0 },
      map: (v) => Math.floor(v / 2),
      height: 16,
      width: 64,
      pad: [1, 2, 3],
      layout: 'NHWC',
      bgr: true,
    });
    expect(got.data).toEqual(want);
  });

  it('squeezes a line wider than maxWidth to maxWidth (no padding left)', async () => {
    const solid = (_x: number, _y: number, c: number) => [10, 200, 30][c]!;
    const image = await png(raw(100, 8, solid), 100, 8);
    const got = await tensorOf({ resize: { height: 16, maxWidth: 64, keepAspect: true } }, image);
    expect(got.dims).toEqual([1, 3, 16, 64]);
    expect(got.data).toEqual(
      reference({
        src: solid,
        content: { width: 64, height: 16, top: 0, left: 0 },
        map: (v) => v,
        height: 16,
        width: 64,
        pad: [0, 0, 0],
        layout: 'NCHW',
      }),
    );
  });

  it('rounds a non-integer scale to whole pixels and centres the content box (any kernel)', async () => {
    // 30x20 into 16x16: scale min(16/20, 16/30) = 0.5333 -> 16 x 10.67 -> 16 x 11, top (16 - 11) / 2 -> 2.
    const solid = (_x: number, _y: number, c: number) => [250, 5, 128][c]!;
    const image = await png(raw(30, 20, solid), 30, 20);
    for (const resample of ['nearest', 'linear', 'lanczos3']) {
      const got = await tensorOf(
        { resize: { height: 16, width: 16, keepAspect: true, pad: { value: 0 } }, resample },
        image,
      );
      expectIn(got.data, resample).toEqual(
        reference({
          src: solid,
          content: { width: 16, height: 11, top: 2, left: 0 },
          map: (v) => v,
          height: 16,
          width: 16,
          pad: [0, 0, 0],
          layout: 'NCHW',
        }),
      );
    }
    // side: right puts the same content box at the top left.
    const right = await tensorOf(
      { resize: { height: 16, width: 16, keepAspect: true, pad: { value: 0, side: 'right' } } },
      image,
    );
    expect(right.data).toEqual(
      reference({
        src: solid,
        content: { width: 16, height: 11, top: 0, left: 0 },
        map: (v) => v,
        height: 16,
        width: 16,
        pad: [0, 0, 0],
        layout: 'NCHW',
      }),
    );
  });
});

describe('resize.keepAspect in the spec', () => {
  const problems = (resize: unknown, extra: Record<string, unknown> = {}): string[] => {
    const parsed = inputTensorSpec.safeParse({ tensor: 'x', from: { image: 'i', resize, ...extra } });
    return parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('accepts a letterbox and a right-padded text line', () => {
    expect(problems({ height: 32, width: 32, keepAspect: true, pad: { value: 114 } })).toEqual([]);
    expect(problems({ height: 32, maxWidth: 320, keepAspect: true })).toEqual([]);
  });

  it('rejects maxWidth or pad without keepAspect, width with maxWidth, a crop, and a pad of the wrong length', () => {
    expect(problems({ height: 32, maxWidth: 320 })).toEqual([
      expect.stringContaining('keepAspect: must be true'),
    ]);
    expect(problems({ height: 32, width: 32, pad: { value: 0 } })).toEqual([
      expect.stringContaining('keepAspect: must be true'),
    ]);
    expect(problems({ height: 32, width: 32, maxWidth: 64, keepAspect: true })).toEqual([
      expect.stringContaining('exactly one of width'),
    ]);
    expect(problems({ width: 32, keepAspect: true })).toEqual([
      expect.stringContaining('height: is required'),
    ]);
    expect(problems({ height: 32, width: 32, keepAspect: true }, { crop: { height: 8, width: 8 } })).toEqual([
      expect.stringContaining('crop: does not go with resize.keepAspect'),
    ]);
    expect(problems({ height: 32, width: 32, keepAspect: true, pad: { value: [1, 2] } })).toEqual([
      expect.stringContaining('one per channel'),
    ]);
    expect(problems({ height: 32, width: 32, keepAspect: true, pad: { value: 300 } })).toHaveLength(1);
  });
});
