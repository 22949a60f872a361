/**
 * Image entries (`from: { image, resize, crop, ... }`): a column holding an image (bytes, base64, a data: URI, or a
 * location) is decoded with sharp (libvips: PNG, JPEG, WebP, GIF, TIFF, AVIF...), converted to RGB, BGR or one
 * greyscale channel, resized, center-cropped and normalised into a [batch, C, H, W] (or [batch, H, W, C]) tensor.
 *
 * The order of operations is the usual one of image classifiers: resize (the shorter side to a size, keeping the
 * aspect ratio, or to an exact size), center crop, then per channel `x * rescale`, minus mean, divided by std.
 * With `resize.keepAspect` (detectors, text-line recognisers) the image is instead scaled to fit without distortion
 * and padded to the tensor size: letterboxed (`{ height, width }`, centred) or right-padded (`{ height, maxWidth }`).
 * An alpha channel is dropped (as PIL's convert('RGB') does); EXIF orientation is not applied (neither does PIL's
 * Image.open), so images are seen as they are stored.
 *
 * Image locations in a column are URIs (s3://, file://) or paths relative to the record's input object.
 */
import type * as ort from 'onnxruntime-node';
import type * as Sharp from 'sharp';
import type { OutputInfo } from 'sharp';
import { ModelError } from '../spec/errors.js';
import type { ImageInputSpec } from '../spec/model-io.js';
import { NotFoundError, type ObjectStore } from '../storage/object-store.js';
import { lazyModule, type LazyModule } from '../runtime/lazy-module.js';
import { resolveAgainst } from '../storage/uri.js';
import { describe, tensorOf } from './dtypes.js';
import { invalid, isMissing, missing, type EntryBuilder, type EntryIssue } from './entry.js';
import type { TensorInfo } from './session.js';

/**
 * How a string value is told apart: a URI (scheme://) or a path ending in an image extension names a file; else
 * text in the base64 alphabet is the image itself (a JPEG's base64 starts with "/9j/", so a leading slash alone
 * cannot mean a path); else a path starting with /, ./ or ../ names a file.
 */
/**
 * sharp (libvips) takes about 0.15 s to load: a worker loads it for a job with image inputs only, as it builds their
 * entries (imageEntry), instead of every worker as it starts.
 */
const sharpLibrary: LazyModule<typeof Sharp> = lazyModule(() => import('sharp'));

const URI = /^[a-z][a-z0-9+.-]*:\/\//i;
const IMAGE_EXTENSION = /\.(?:png|jpe?g|webp|gif|tiff?|bmp|avif|heic|heif)$/i;
const BASE64 = /^[A-Za-z0-9+/\s]+={0,2}\s*$/;
const PATH = /^\.{0,2}\//;

export function imageEntry(
  spec: ImageInputSpec,
  info: TensorInfo | undefined,
  store: ObjectStore | undefined,
): EntryBuilder {
  sharpLibrary.preload();
  const from = spec.from;
  const channels = from.channels === 'L' ? 1 : 3;
  const height = from.crop?.height ?? from.resize?.height;
  const width = from.crop?.width ?? from.resize?.width ?? from.resize?.maxWidth;
  // The schema guarantees a fixed size (crop, or an exact resize).
  if (height === undefined || width === undefined) {
    throw new ModelError(`image input "${spec.tensor}" has no fixed size; declare resize or crop`);
  }
  const dims = from.layout === 'NCHW' ? [channels, height, width] : [height, width, channels];
  checkModel(spec, info, dims);
  const column = from.image;
  // One lookup table per channel: 256 possible byte values, so normalising a pixel is one read.
  const tables =
    spec.dtype === 'float32'
      ? Array.from({ length: channels }, (_, c) => {
          const table = new Float32Array(256);
          const rescale = from.rescale ?? 1 / 255;
          const mean = from.mean?.[c] ?? 0;
          const std = from.std?.[c] ?? 1;
          for (let v = 0; v < 256; v++) table[v] = (v * rescale - mean) / std;
          return table;
        })
      : undefined;
  const size = channels * height * width;

  const letterbox = from.resize?.keepAspect ? letterboxOf(from.resize, channels, height, width) : undefined;

  const decode = async (bytes: Uint8Array): Promise<Uint8Array | EntryIssue> => {
    if (letterbox) return decodeLetterboxed(bytes, letterbox);
    const sharp = (await sharpLibrary.load()).default;
    let pipeline = sharp(bytes)
      .removeAlpha()
      .toColourspace(channels === 1 ? 'b-w' : 'srgb');
    if (from.resize?.shorterSide !== undefined) {
      const s = from.resize.shorterSide;
      pipeline = pipeline.resize({ width: s, height: s, fit: 'outside', kernel: from.resample });
    } else if (from.resize?.height !== undefined && from.resize.width !== undefined) {
      pipeline = pipeline.resize({
        width: from.resize.width,
        height: from.resize.height,
        fit: 'fill',
        kernel: from.resample,
      });
    }
    let raw: { data: Buffer; info: OutputInfo };
    try {
      raw = await pipeline.raw().toBuffer({ resolveWithObject: true });
    } catch (err) {
      // The value is bytes, but not an image libvips can read (truncated, corrupt, another format): the record
      // cannot be decoded, like a broken line of a text format.
      return {
        reason: 'DECODE_ERROR',
        message: `column "${column}" is not a decodable image: ${(err as Error).message}`,
      };
    }
    const { data, info: out } = raw;
    if (out.channels !== channels) {
      return invalid(`column "${column}": decoded to ${out.channels} channels, expected ${channels}`);
    }
    if (out.width < width || out.height < height) {
      return invalid(
        `column "${column}": the image is ${out.width}x${out.height} after resizing, smaller than the ` +
          `${width}x${height} crop; resize it larger first`,
      );
    }
    // Center crop (a no-op when the sizes already match), in the layout and channel order the model takes.
    const top = Math.floor((out.height - height) / 2);
    const left = Math.floor((out.width - width) / 2);
    const pixels = new Uint8Array(size);
    const bgr = from.channels === 'BGR';
    for (let y = 0; y < height; y++) {
      const row = ((top + y) * out.width + left) * channels;
      for (let x = 0; x < width; x++) {
        for (let c = 0; c < channels; c++) {
          const v = data[row + x * channels + (bgr ? 2 - c : c)]!;
          const at =
            from.layout === 'NCHW' ? c * height * width + y * width + x : (y * width + x) * channels + c;
          pixels[at] = v;
        }
      }
    }
    return pixels;
  };

  /** keepAspect: scaled to fit (letterbox) or to the height (at most maxWidth wide), then padded to the size. */
  const decodeLetterboxed = async (bytes: Uint8Array, lb: Letterbox): Promise<Uint8Array | EntryIssue> => {
    const sharp = (await sharpLibrary.load()).default;
    let raw: { data: Buffer; info: OutputInfo };
    try {
      const meta = await sharp(bytes).metadata();
      const fit = lb.fit(meta.width, meta.height);
      raw = await sharp(bytes)
        .removeAlpha()
        .toColourspace(channels === 1 ? 'b-w' : 'srgb')
        .resize({ width: fit.width, height: fit.height, fit: 'fill', kernel: from.resample })
        .raw()
        .toBuffer({ resolveWithObject: true });
    } catch (err) {
      return {
        reason: 'DECODE_ERROR',
        message: `column "${column}" is not a decodable image: ${(err as Error).message}`,
      };
    }
    const { data, info: out } = raw;
    if (out.channels !== channels) {
      return invalid(`column "${column}": decoded to ${out.channels} channels, expected ${channels}`);
    }
    const top = lb.side === 'center' ? Math.floor((height - out.height) / 2) : 0;
    const left = lb.side === 'center' ? Math.floor((width - out.width) / 2) : 0;
    const pixels = new Uint8Array(size);
    const bgr = from.channels === 'BGR';
    for (let y = 0; y < height; y++) {
      const sy = y - top;
      for (let x = 0; x < width; x++) {
        const sx = x - left;
        const inside = sy >= 0 && sy < out.height && sx >= 0 && sx < out.width;
        for (let c = 0; c < channels; c++) {
          // The pad value is given in the tensor's channel order; image bytes are RGB as decoded.
          const v = inside ? data[(sy * out.width + sx) * channels + (bgr ? 2 - c : c)]! : lb.pad[c]!;
          const at =
            from.layout === 'NCHW' ? c * height * width + y * width + x : (y * width + x) * channels + c;
          pixels[at] = v;
        }
      }
    }
    return pixels;
  };

  const bytesOf = async (value: unknown, source: string): Promise<Uint8Array | EntryIssue> => {
    if (value instanceof Uint8Array) return value;
    if (typeof value !== 'string') {
      return invalid(`column "${column}" is ${describe(value)}, not image bytes, base64 or a location`);
    }
    const dataUri = /^data:[^,]*;base64,/i.exec(value);
    if (dataUri) return Buffer.from(value.slice(dataUri[0].length), 'base64');
    const location =
      URI.test(value) || IMAGE_EXTENSION.test(value) || (!BASE64.test(value) && PATH.test(value));
    if (location) {
      if (!store)
        return invalid(`column "${column}" names a file (${describe(value)}) but no store can read it`);
      const uri = resolveAgainst(source, value);
      try {
        return await store.get(uri);
      } catch (err) {
        if (err instanceof NotFoundError) return invalid(`column "${column}": no image at ${uri}`);
        throw err; // a transient storage failure fails the shard, which is retried, rather than the record
      }
    }
    if (BASE64.test(value)) return Buffer.from(value, 'base64');
    return invalid(`column "${column}" is ${describe(value)}: not base64, a data: URI or a location`);
  };

  return {
    feeds: [spec.tensor],
    columns: [column],
    async: true,
    batch(records) {
      const prepared = new Array<Uint8Array | undefined>(records.length);
      return {
        async prepare(index): Promise<EntryIssue | undefined> {
          const record = records[index]!;
          const value = record.values[column];
          if (isMissing(value)) return missing(column);
          const bytes = await bytesOf(value, record.source);
          if (!(bytes instanceof Uint8Array)) return bytes;
          const pixels = await decode(bytes);
          if (!(pixels instanceof Uint8Array)) return pixels;
          prepared[index] = pixels;
          return undefined;
        },
        assemble(included): Record<string, ort.Tensor> {
          const rows = included.length;
          if (!tables) {
            const out = new Uint8Array(rows * size);
            included.forEach((i, r) => out.set(prepared[i]!, r * size));
            return { [spec.tensor]: tensorOf('uint8', out, [rows, ...dims]) };
          }
          const out = new Float32Array(rows * size);
          const plane = height * width;
          included.forEach((i, r) => {
            const pixels = prepared[i]!;
            const base = r * size;
            for (let k = 0; k < size; k++) {
              const c = from.layout === 'NCHW' ? Math.floor(k / plane) : k % channels;
              out[base + k] = tables[c]![pixels[k]!]!;
            }
          });
          return { [spec.tensor]: tensorOf('float32', out, [rows, ...dims]) };
        },
      };
    },
  };
}

/** The model's type and static sizes must match what the spec makes, or every batch would fail. */
function checkModel(spec: ImageInputSpec, info: TensorInfo | undefined, dims: readonly number[]): void {
  if (!info) return;
  if (info.type && info.type !== spec.dtype) {
    throw new ModelError(
      `tensor "${spec.tensor}" is ${info.type} in the model; image inputs make float32 or uint8 (set dtype)`,
    );
  }
  if (!info.shape) return;
  const want = ['N', ...dims].join(', ');
  if (info.shape.length !== dims.length + 1) {
    throw new ModelError(
      `tensor "${spec.tensor}" has shape [${info.shape.join(', ')}] in the model; the image input makes ` +
        `[${want}] (check layout)`,
    );
  }
  info.shape.slice(1).forEach((d, j) => {
    if (typeof d === 'number' && d > 0 && d !== dims[j]) {
      throw new ModelError(
        `tensor "${spec.tensor}" has shape [${info.shape!.join(', ')}] in the model; the image input makes ` +
          `[${want}]: fix resize/crop, layout or channels`,
      );
    }
  });
}

interface Letterbox {
  readonly side: 'center' | 'right';
  /** Byte value of the padding per channel, in the tensor's channel order. */
  readonly pad: readonly number[];
  /** The scaled size of an image of `w` x `h` pixels. */
  fit(w: number | undefined, h: number | undefined): { width: number; height: number };
}

/**
 * resize with keepAspect: `{ height, width }` scales by min(height/h, width/w) (the image fits, nothing is cut);
 * `{ height, maxWidth }` scales to the height, and an image then wider than maxWidth is squeezed to maxWidth.
 * Sizes are rounded to the nearest pixel, at least 1.
 */
function letterboxOf(
  resize: NonNullable<ImageInputSpec['from']['resize']>,
  channels: number,
  height: number,
  width: number,
): Letterbox {
  const value = resize.pad?.value ?? 0;
  const pad = Array.isArray(value) ? value : new Array<number>(channels).fill(value);
  const byHeight = resize.maxWidth !== undefined;
  return {
    side: resize.pad?.side ?? (byHeight ? 'right' : 'center'),
    pad,
    fit(w, h) {
      if (!w || !h) throw new Error('the image has no size');
      if (byHeight) {
        return { width: Math.min(width, Math.max(1, Math.round((w * height) / h))), height };
      }
      const scale = Math.min(height / h, width / w);
      return {
        width: Math.min(width, Math.max(1, Math.round(w * scale))),
        height: Math.min(height, Math.max(1, Math.round(h * scale))),
      };
    },
  };
}
