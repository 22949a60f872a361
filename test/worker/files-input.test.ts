/**
 * `files` inputs through the whole worker: a folder of PNG and JPEG images scored by the CNN of
 * test/fixtures/models/image, and a folder of text documents embedded by the text encoder. Every file is one
 * record: one prediction row, or one error row when it cannot be decoded. Planned by the real planner, run by
 * runWorkerTask with ONNX Runtime in its thread, outputs read back with DuckDB.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import type { ShardMarker } from '../../src/runs/types.js';
import { errorLines, fixtureModel, parquetOf, planWorkerRun, runShard, sql, tempDir } from './helpers.js';

interface ImageExpected {
  readonly size: number;
  readonly mean: number[];
  readonly std: number[];
  readonly labels: string[];
  readonly logits: number[][];
}
const imageExpected = JSON.parse(readFileSync(fixtureModel('image/expected.json'), 'utf8')) as ImageExpected;
const SIZE = imageExpected.size;

interface TextExpected {
  readonly sentences: { text: string; meanNormalized: number[] }[];
}
const textExpected = JSON.parse(readFileSync(fixtureModel('text/expected.json'), 'utf8')) as TextExpected;

/** Pattern k of scripts/make_image_models.py: channel c of pixel (x, y) is (7x + 13y + 50c + 31k) mod 256. */
function pattern(k: number, width = SIZE, height = SIZE): Buffer {
  const out = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      for (let c = 0; c < 3; c++) out[(y * width + x) * 3 + c] = (x * 7 + y * 13 + c * 50 + k * 31) % 256;
  return out;
}
const image = (k: number, width = SIZE, height = SIZE) =>
  sharp(pattern(k, width, height), { raw: { width, height, channels: 3 } });

interface ErrorRowJson {
  readonly _source: string;
  readonly _offset: number;
  readonly reason: string;
  readonly message: string;
}

let tmp: { dir: string; cleanup: () => void };
beforeAll(() => {
  tmp = tempDir('files-input-');
});
afterAll(() => tmp.cleanup());

const uriOf = (file: string): string => pathToFileURL(file).href;

/** Rows of a marker's output files, with the file name passed through. */
async function rowsByName<T extends Record<string, unknown>>(
  marker: ShardMarker,
  columns: string,
): Promise<Map<string, T>> {
  const rows = await sql<T & { name: string }>(`SELECT name, ${columns} FROM ${parquetOf(marker)}`);
  return new Map(rows.map((r) => [r.name, r]));
}

describe('a folder of images (files input, CNN)', () => {
  let marker: ShardMarker;
  let folder: string;
  const valid: string[] = [];
  // empty.png is 0 bytes: a record with an error row, never dropped from the input (issue 17).
  const broken = ['broken.png', 'empty.png', 'notes.jpg'];

  beforeAll(async () => {
    folder = path.join(tmp.dir, 'images', 'in');
    mkdirSync(folder, { recursive: true });
    // The script's three patterns as PNGs (logits known), JPEGs of other sizes (resized to the model's 32x32).
    for (let k = 0; k < 3; k++) {
      writeFileSync(path.join(folder, `p${k}.png`), await image(k).png().toBuffer());
      valid.push(`p${k}.png`);
    }
    for (let k = 0; k < 10; k++) {
      writeFileSync(
        path.join(folder, `j${k}.jpg`),
        await image(k, 40 + k, 36 + 2 * k)
          .jpeg()
          .toBuffer(),
      );
      valid.push(`j${k}.jpg`);
    }
    // A truncated PNG, and text saved under an image name: neither decodes.
    const png = await image(0).png().toBuffer();
    writeFileSync(path.join(folder, 'broken.png'), png.subarray(0, 40));
    writeFileSync(path.join(folder, 'notes.jpg'), 'these are notes, not a photo\n');
    writeFileSync(path.join(folder, 'empty.png'), '');

    const planned = await planWorkerRun({
      name: 'images',
      input: { uri: `${uriOf(folder)}/`, format: 'files' },
      model: {
        uri: uriOf(fixtureModel('image/cnn.onnx')),
        inputs: [
          {
            tensor: 'pixel_values',
            from: {
              image: 'content',
              resize: { height: SIZE, width: SIZE },
              mean: imageExpected.mean,
              std: imageExpected.std,
            },
          },
        ],
        outputs: [
          { tensor: 'logits', as: 'logits' },
          {
            tensor: 'logits',
            postprocess: { softmax: true, argmax: { labels: 'labels.txt', as: 'label' }, keep: 'score' },
          },
        ],
      },
      output: { uri: `${uriOf(path.join(tmp.dir, 'images', 'out'))}/`, passthrough: ['name'] },
      run: { batchSize: 4 },
    });
    marker = await runShard(planned);
  });

  it('gives every image exactly one prediction row, and each undecodable file one DECODE_ERROR row', async () => {
    expect(marker.records).toBe(valid.length + broken.length);
    expect(marker.predictions).toBe(valid.length);
    expect(marker.errorsByReason).toEqual({ DECODE_ERROR: broken.length });
    const [count] = await sql<{ n: bigint; names: bigint }>(
      `SELECT count(*) AS n, count(DISTINCT name) AS names FROM ${parquetOf(marker)}`,
    );
    expect([Number(count!.n), Number(count!.names)]).toEqual([valid.length, valid.length]);
    const rows = await rowsByName<{ label: string; score: number; _source: string; _offset: bigint }>(
      marker,
      'label, score, _source, _offset',
    );
    expect([...rows.keys()].sort()).toEqual([...valid].sort());
    for (const [name, row] of rows) {
      expect(row._source).toBe(uriOf(path.join(folder, name)));
      expect(Number(row._offset)).toBe(0);
      expect(imageExpected.labels).toContain(row.label);
      expect(row.score).toBeGreaterThan(0);
    }

    const errors = errorLines(marker).map((l) => JSON.parse(l) as ErrorRowJson);
    expect(errors.map((e) => e._source).sort()).toEqual(
      broken.map((b) => uriOf(path.join(folder, b))).sort(),
    );
    for (const e of errors) {
      expect(e).toMatchObject({ _offset: 0, reason: 'DECODE_ERROR' });
      expectIn(e.message, e._source).toMatch(
        e._source.endsWith('empty.png')
          ? /^object is empty \(0 bytes\)/
          : /column "content" is not a decodable image/,
      );
    }
  });

  it('computes the numpy reference logits for the script patterns', async () => {
    const rows = await rowsByName<{ logits: number[]; label: string }>(marker, 'logits, label');
    for (let k = 0; k < 3; k++) {
      const got = rows.get(`p${k}.png`)!;
      const want = imageExpected.logits[k]!;
      expect(Math.max(...got.logits.map((v, j) => Math.abs(v - want[j]!)))).toBeLessThan(1e-4);
      expect(got.label).toBe(imageExpected.labels[want.indexOf(Math.max(...want))]);
    }
  });
});

describe('a folder of text documents (files input, text encoder)', () => {
  it('embeds every document once (unit length, the numpy reference) and makes a non-UTF-8 file an error row', async () => {
    const folder = path.join(tmp.dir, 'docs', 'in');
    mkdirSync(folder, { recursive: true });
    const known = textExpected.sentences.filter((s) => s.text !== '');
    const docs = new Map<string, string>();
    known.forEach((s, i) => docs.set(`known-${i}.txt`, s.text));
    for (let i = 0; i < 9; i++) {
      docs.set(
        `doc-${i}.txt`,
        `${'The quick dog runs in the garden. '.repeat(1 + i)}\nA second paragraph about the table.\n`,
      );
    }
    for (const [name, text] of docs) writeFileSync(path.join(folder, name), text);
    // Not UTF-8 (a lone continuation byte, an invalid lead byte): no text to embed.
    writeFileSync(path.join(folder, 'binary.txt'), Buffer.from([0x89, 0x50, 0xc3, 0x28, 0xa0, 0xa1, 0xff]));

    const planned = await planWorkerRun({
      name: 'documents',
      input: { uri: `${uriOf(folder)}/`, format: 'files' },
      model: {
        uri: uriOf(fixtureModel('text/encoder.onnx')),
        inputs: [{ from: { text: 'content', tokenizer: 'tokenizer.json', maxLength: 128 } }],
        outputs: [
          {
            tensor: 'last_hidden_state',
            as: 'embedding',
            postprocess: { pool: 'mean', normalize: true },
          },
        ],
      },
      output: { uri: `${uriOf(path.join(tmp.dir, 'docs', 'out'))}/`, passthrough: ['name'] },
      run: { batchSize: 4 },
    });
    const marker = await runShard(planned);

    expect(marker.records).toBe(docs.size + 1);
    expect(marker.predictions).toBe(docs.size);
    expect(marker.errorsByReason).toEqual({ DECODE_ERROR: 1 });
    const rows = await rowsByName<{ embedding: number[] }>(marker, 'embedding');
    expect(rows.size).toBe(docs.size);
    expect([...rows.keys()].sort()).toEqual([...docs.keys()].sort());
    for (const [name, row] of rows) {
      expectIn(row.embedding, name).toHaveLength(128);
      expect(Math.hypot(...row.embedding)).toBeCloseTo(1, 5);
    }
    known.forEach((s, i) => {
      const got = rows.get(`known-${i}.txt`)!.embedding;
      expectIn(Math.max(...got.map((v, k) => Math.abs(v - s.meanNormalized[k]!))), s.text).toBeLessThan(1e-4);
    });
    const [error] = errorLines(marker).map((l) => JSON.parse(l) as ErrorRowJson);
    expect(error).toMatchObject({
      _source: uriOf(path.join(folder, 'binary.txt')),
      _offset: 0,
      reason: 'DECODE_ERROR',
      message: 'column "content" is not UTF-8 text',
    });
  });
});
