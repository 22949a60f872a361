/**
 * User processor modules and model companion files, loaded the way a worker loads them (loadModelFiles over a
 * plan's resolved files): from the local filesystem, and from a real S3-compatible server (s3rver), where the
 * module is downloaded to a temporary directory before it is imported.
 */
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createFeatureBuilder } from '../../src/inference/features.js';
import { loadModelFiles } from '../../src/inference/model-files.js';
import { createPostprocessor } from '../../src/inference/postprocess.js';
import type { ModelSession } from '../../src/inference/session.js';
import { ModelError } from '../../src/spec/errors.js';
import { parseJobSpec } from '../../src/spec/load.js';
import { createObjectStore, LocalObjectStore } from '../../src/storage/index.js';
import { startS3Server, useS3TestEnv, type S3TestServer } from '../support/s3-server.js';
import { fixture, fixtureJson, rec, session } from './helpers.js';

/** The affine model's processor module (test/fixtures/processors/affine.mjs), as a user ships one. */
const AFFINE_PROCESSOR = readFileSync(new URL('../fixtures/processors/affine.mjs', import.meta.url), 'utf8');

/** The same preprocess as CommonJS returning plain { type, data, dims } feeds. */
const COMMONJS_PROCESSOR = `
module.exports = {
  preprocess(records) {
    const data = records.flatMap((r) => r.values.csv.split(',').map(Number));
    return { feeds: { x: { type: 'float32', data: Float32Array.from(data), dims: [records.length, 3] } } };
  },
};
`;

const spec = (model: Record<string, unknown>) =>
  parseJobSpec({
    name: 'processed',
    input: { uri: 's3://lake/in/', format: 'jsonl' },
    model: { uri: 's3://models/affine/model.onnx', ...model },
    output: { uri: 's3://lake/out/' },
  });

let affine: ModelSession;
let dir: string;
beforeAll(async () => {
  affine = await session('affine.onnx');
  dir = await mkdtemp(path.join(os.tmpdir(), 'processor-test-'));
  await mkdir(path.join(dir, 'processors'));
  await writeFile(path.join(dir, 'processors', 'affine.mjs'), AFFINE_PROCESSOR);
  await writeFile(path.join(dir, 'processors', 'cjs.cjs'), COMMONJS_PROCESSOR);
  await writeFile(path.join(dir, 'processors', 'empty.mjs'), 'export const nothing = 1;\n');
});
afterAll(async () => {
  await affine?.release();
  await rm(dir, { recursive: true, force: true });
});

const fileUri = (rel: string): string => pathToFileURL(path.join(dir, rel)).href;

describe('processor modules', () => {
  it('pre- and post-processes with a module, next to declared outputs, checking every value', async () => {
    const job = spec({
      processor: {
        module: 'processors/affine.mjs',
        columns: { total: 'double', parts: 'array<float>', kind: 'string' },
      },
      outputs: [{ tensor: 'y', as: 'raw' }],
    });
    const files = await loadModelFiles(new LocalObjectStore(), {
      spec: job,
      model: { files: { 'processors/affine.mjs': fileUri('processors/affine.mjs') } },
    });
    const builder = createFeatureBuilder(job.model.inputs, affine.inputs, { files });
    const records = [
      rec({ csv: '1,2,3' }),
      rec({ csv: 'oops' }),
      rec({ csv: '-1,0,4', fail: true }),
      rec({ csv: '0,0,0', kind: 7 }),
    ];
    const batch = await builder.build(records);
    expect(batch.included).toEqual([0, 2, 3]);
    expect(batch.issues).toEqual([{ index: 1, reason: 'INVALID_VALUE', message: 'need three numbers' }]);

    const post = createPostprocessor(job.model.outputs, affine.outputs, files);
    expect(post.columns).toEqual([
      { name: 'raw', type: 'array<float>' },
      { name: 'total', type: 'double' },
      { name: 'parts', type: 'array<float>' },
      { name: 'kind', type: 'string' },
    ]);
    const out = await affine.run(batch.feeds);
    const result = await post.apply(out, 3, {
      feeds: batch.feeds,
      records: batch.included.map((i) => records[i]!),
    });
    // y = [x0 + 3 x2 + 10, 2 x0 - x1 + x2 - 5]: [1,2,3] -> [20, -2]; [0,0,0] -> [10, -5].
    expect(result.values).toEqual([
      [[20, -2], undefined, undefined],
      [18, undefined, undefined],
      [[20, -2], undefined, undefined],
      ['pos', undefined, undefined],
    ]);
    expect(result.issues).toEqual([
      { row: 1, reason: 'POSTPROCESS_ERROR', message: 'asked to fail' },
      {
        row: 2,
        reason: 'POSTPROCESS_ERROR',
        message: 'processor column "kind" (string): expected a string, got 7',
      },
    ]);
  });

  it('imports CommonJS modules and plain { type, data, dims } feeds', async () => {
    const job = spec({ processor: 'processors/cjs.cjs', outputs: [{ tensor: 'y' }] });
    const files = await loadModelFiles(new LocalObjectStore(), {
      spec: job,
      model: { files: { 'processors/cjs.cjs': fileUri('processors/cjs.cjs') } },
    });
    const batch = await createFeatureBuilder([], affine.inputs, { files }).build([rec({ csv: '1,2,3' })]);
    expect(Array.from((await affine.run(batch.feeds)).y!.data as Float32Array)).toEqual([20, -2]);
  });

  it('says what is wrong with a module that does not fit the contract', async () => {
    const load = (module: string, extra: Record<string, unknown> = {}) =>
      loadModelFiles(new LocalObjectStore(), {
        spec: spec({ processor: { module, ...extra }, outputs: [{ tensor: 'y' }] }),
        model: { files: { [module]: fileUri(module) } },
      });
    await expect(load('processors/empty.mjs')).rejects.toThrow(/exports neither preprocess nor postprocess/);
    const noColumns = await load('processors/affine.mjs');
    expect(() => createPostprocessor([], affine.outputs, noColumns)).toThrow(
      /declare the columns it returns/,
    );
    expect(() =>
      createFeatureBuilder(
        [{ tensor: 'x', from: { columns: ['a', 'b', 'c'] }, dtype: 'float32', missing: 'error' }],
        affine.inputs,
        {
          files: noColumns,
        },
      ),
    ).toThrow(/exports preprocess, which feeds every graph input/);
    const cjs = await load('processors/cjs.cjs', { columns: { a: 'string' } });
    expect(() => createPostprocessor([], affine.outputs, cjs)).toThrow(ModelError);
    await expect(
      loadModelFiles(new LocalObjectStore(), {
        spec: spec({ processor: 'processors/affine.mjs', outputs: [{ tensor: 'y' }] }),
        model: { files: {} },
      }),
    ).rejects.toThrow(/no resolved location for model.processor.module/);
  });
});

describe('loadModelFiles from S3', () => {
  let server: S3TestServer;
  let restoreEnv: () => void;
  beforeAll(async () => {
    server = await startS3Server();
    restoreEnv = useS3TestEnv(server.endpoint);
    await server.createBucket('models');
    await server.putObjects('models', [
      ['enc/processors/affine.mjs', AFFINE_PROCESSOR],
      ['enc/tokenizer.json', await readFile(fixture('text/tokenizer.json'), 'utf8')],
      ['enc/labels.txt', 'negative\nneutral\npositive\n'],
    ]);
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    restoreEnv?.();
  });

  it('downloads the processor to a temporary directory, and loads tokenizers and labels', async () => {
    const job = spec({
      inputs: [{ from: { text: 'sentence', tokenizer: 'tokenizer.json', maxLength: 16 } }],
      outputs: [{ tensor: 'logits', postprocess: { argmax: { labels: 'labels.txt' } } }],
      processor: { module: 'processors/affine.mjs', columns: { total: 'double' } },
    });
    const tempDir = path.join(dir, 'downloaded');
    const files = await loadModelFiles(
      createObjectStore({ s3Endpoint: server.endpoint }),
      {
        spec: job,
        model: {
          files: {
            'tokenizer.json': 's3://models/enc/tokenizer.json',
            'labels.txt': 's3://models/enc/labels.txt',
            'processors/affine.mjs': 's3://models/enc/processors/affine.mjs',
          },
        },
      },
      { tempDir },
    );
    expect(files.labels.get('labels.txt')).toEqual(['negative', 'neutral', 'positive']);
    const hello = fixtureJson<{ sentences: { text: string; ids: number[] }[] }>(
      'text/expected.json',
    ).sentences.find((s) => s.text === 'hello')!;
    expect(files.tokenizers.get('tokenizer.json')!.encode('hello', 16).ids).toEqual(hello.ids);
    expect(files.processor?.columns).toEqual({ total: 'double' });
    const batch = await createFeatureBuilder([], affine.inputs, {
      files: { ...files, tokenizers: new Map() },
    }).build([rec({ csv: '1,2,3' })]);
    expect(Array.from(batch.feeds.x!.data as Float32Array)).toEqual([1, 2, 3]);
    const written = await readdir(tempDir);
    expect(written).toEqual([expect.stringMatching(/^affine-[0-9a-f]{16}\.mjs$/)]);
  });
});
