import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import sharp from 'sharp';
import { encodeParquet, type OutputColumn } from '../../src/formats/parquet-write.js';
import { dryRun } from '../../src/preflight/dry-run.js';
import { parseJobSpec } from '../../src/spec/load.js';
import { LocalModelRegistry } from '../../src/registry/local.js';
import { loadJobSpecFile, specFolderUri } from '../../src/spec/load.js';
import { LocalObjectStore } from '../../src/storage/local.js';

const store = new LocalObjectStore();
const imageExpected = JSON.parse(
  readFileSync(path.resolve('test/fixtures/models/image/expected.json'), 'utf8'),
) as { size: number; mean: number[]; std: number[] };
let root: string;

beforeAll(() => {
  root = mkdtempSync(path.join(tmpdir(), 'dry-run-'));
  cpSync(path.resolve('examples/breast-cancer'), root, {
    recursive: true,
    filter: (src) => !/(generated|[\\/]out)$/.test(src),
  });
  // The third record has a value that is not a number: an error row with its reason.
  const csv = readFileSync(path.join(root, 'data/breast_cancer.csv'), 'utf8').split('\n');
  const fields = csv[3]!.split(',');
  fields[2] = 'n/a';
  csv[3] = fields.join(',');
  writeFileSync(path.join(root, 'data/breast_cancer.csv'), csv.join('\n'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('dryRun', () => {
  it('runs the first N records through the worker and returns the rows and the error rows', async () => {
    const file = path.join(root, 'job.yaml');
    const spec = await loadJobSpecFile(file);
    const result = await dryRun(spec, 4, {
      store,
      registry: new LocalModelRegistry(store, pathToFileURL(path.join(root, 'registry')).href + '/'),
      specFolderUri: specFolderUri(file),
    });
    expect(result.rows.map((r) => r.patient_id)).toEqual(['P00001', 'P00002', 'P00004']);
    expect(result.rows[0]).toMatchObject({ diagnosis: 'malignant', label: 'malignant' });
    expect(result.errors).toHaveLength(1);
    // Error rows carry the id under the declared input.id name, as the prediction rows do.
    expect(result.errors[0]).toMatchObject({ patient_id: 'P00003', reason: 'INVALID_VALUE' });
    expect(JSON.stringify(result.errors[0])).toContain('mean_texture');
    // Nothing next to the real output.
    expect(
      await store.tryHead(pathToFileURL(path.join(root, 'out/')).href + '_runs/dry-run/plan.json'),
    ).toBeUndefined();
  });

  it('samples a Parquet input: its first N rows, with the error rows and their reasons', async () => {
    // The shipped CSV's first 5 records as a Parquet file; the fourth has no mean_radius (null).
    const [header, ...lines] = readFileSync(path.join(root, 'data/breast_cancer.csv'), 'utf8')
      .trim()
      .split('\n');
    const names = header!.split(',');
    const rows = lines.slice(0, 5).map((l) => l.split(','));
    const text = new Set(['patient_id', 'diagnosis']);
    const columns = names.map((name, c): OutputColumn => ({
      name,
      type: text.has(name) ? 'string' : 'double',
      values: rows.map((r, i) =>
        text.has(name)
          ? r[c]!
          : name === 'mean_radius' && i === 3
            ? null
            : Number(r[c] === 'n/a' ? 'NaN' : r[c]),
      ),
    }));
    const folder = path.join(root, 'parquet-input');
    mkdirSync(folder, { recursive: true });
    writeFileSync(path.join(folder, 'patients.parquet'), encodeParquet(columns));
    const file = path.join(root, 'job.yaml');
    const spec = await loadJobSpecFile(file);

    const result = await dryRun(
      { ...spec, input: { ...spec.input, uri: `${pathToFileURL(folder).href}/`, format: 'parquet' } },
      4,
      {
        store,
        registry: new LocalModelRegistry(store, pathToFileURL(path.join(root, 'registry')).href + '/'),
        specFolderUri: specFolderUri(file),
      },
    );

    // Four records sampled: P00003 has "n/a" (NaN) and P00004 a null: two error rows; P00005 is not sampled.
    expect(result.rows.map((r) => r.patient_id)).toEqual(['P00001', 'P00002']);
    expect(result.errors.map((e) => [e.patient_id, e.reason])).toEqual([
      ['P00003', 'INVALID_VALUE'],
      ['P00004', 'MISSING_VALUE'],
    ]);
    expect(JSON.stringify(result.errors[1])).toContain('mean_radius');
  });

  it('samples a files input: its first N objects, named where they are, with the error rows', async () => {
    const folder = path.join(root, 'images');
    mkdirSync(folder, { recursive: true });
    const size = imageExpected.size;
    const png = (k: number) => {
      const raw = Buffer.alloc(size * size * 3);
      for (let i = 0; i < raw.length; i++) raw[i] = (i * 7 + k * 31) % 256;
      return sharp(raw, { raw: { width: size, height: size, channels: 3 } })
        .png()
        .toBuffer();
    };
    writeFileSync(path.join(folder, 'a.png'), await png(0));
    writeFileSync(path.join(folder, 'b.png'), 'not an image\n');
    writeFileSync(path.join(folder, 'c.png'), await png(1));
    writeFileSync(path.join(folder, 'd.png'), await png(2));
    const spec = parseJobSpec({
      name: 'images',
      input: { uri: `${pathToFileURL(folder).href}/`, format: 'files' },
      model: {
        uri: pathToFileURL(path.resolve('test/fixtures/models/image/cnn.onnx')).href,
        inputs: [
          {
            tensor: 'pixel_values',
            from: {
              image: 'content',
              resize: { height: size, width: size },
              mean: imageExpected.mean,
              std: imageExpected.std,
            },
          },
        ],
        outputs: [{ tensor: 'logits', postprocess: { argmax: { labels: 'labels.txt', as: 'label' } } }],
      },
      output: { uri: `${pathToFileURL(path.join(root, 'images-out')).href}/`, passthrough: ['name'] },
    });

    const result = await dryRun(spec, 3, {
      store,
      registry: new LocalModelRegistry(store, pathToFileURL(path.join(root, 'registry')).href + '/'),
    });

    expect(result.rows.map((r) => r.name)).toEqual(['a.png', 'c.png']);
    expect(result.rows.map((r) => r._source)).toEqual(
      ['a.png', 'c.png'].map((n) => pathToFileURL(path.join(folder, n)).href),
    );
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]).toMatchObject({
      _source: pathToFileURL(path.join(folder, 'b.png')).href,
      reason: 'DECODE_ERROR',
    });
  });
});
