/**
 * The tar reader (tar-stream, adapted in src/registry/tar.ts) and model-archive extraction: archives written per the ustar layout (tar-fixture.ts) and one made
 * by the system's own `tar`, extracted into real storage (LocalObjectStore).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { extractModelArchive } from '../../src/registry/archive.js';
import { readTar, TarError } from '../../src/registry/tar.js';
import { ModelError } from '../../src/spec/errors.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import { tarBytes, tarGz, type TarInput } from './tar-fixture.js';

const store = new LocalObjectStore();
let root: string;
const url = (...parts: string[]): string => pathToFileURL(path.join(root, ...parts)).href;
const sha256 = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'archive-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Feeds bytes in uneven chunks, so no block boundary lines up with a chunk. */
async function* chunked(bytes: Uint8Array, size = 333): AsyncIterable<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function entries(
  bytes: Uint8Array,
  read = true,
): Promise<{ path: string; type: string; text: string }[]> {
  const out: { path: string; type: string; text: string }[] = [];
  for await (const entry of readTar(chunked(bytes))) {
    let text = '';
    if (read) for await (const piece of entry.body) text += Buffer.from(piece).toString('utf8');
    out.push({ path: entry.path, type: entry.type, text });
  }
  return out;
}

describe('readTar', () => {
  const long = `deep/${'d'.repeat(60)}/${'e'.repeat(60)}/labels.txt`;

  it('reads files and directories, ./ prefixes, long names (pax, GNU, ustar prefix), content exactly', async () => {
    const content = Buffer.from(Array.from({ length: 1500 }, (_, i) => i % 251));
    const archive = tarBytes([
      { path: './' },
      { path: './model/' },
      { path: './model/model.onnx', content },
      { path: long, content: 'a\nb\n', longName: 'pax' },
      { path: `${long}.gnu`, content: 'gnu', longName: 'gnu' },
      { path: `${long}.prefix`, content: 'prefix', longName: 'prefix' },
      { path: 'empty.txt', content: '' },
      { path: 'link.onnx', type: '2', content: '' },
    ]);
    const found = await entries(archive);
    expect(found.map((e) => [e.path, e.type])).toEqual([
      ['', 'directory'],
      ['model', 'directory'],
      ['model/model.onnx', 'file'],
      [long, 'file'],
      [`${long}.gnu`, 'file'],
      [`${long}.prefix`, 'file'],
      ['empty.txt', 'file'],
      ['link.onnx', 'link'],
    ]);
    expect(Buffer.from(found[2]!.text, 'utf8').length).toBeGreaterThan(0);
    expect(found.slice(3, 7).map((e) => e.text)).toEqual(['a\nb\n', 'gnu', 'prefix', '']);
  });

  it('skips content the caller does not read, or stops reading halfway', async () => {
    const archive = tarBytes([
      { path: 'a.bin', content: 'x'.repeat(2000) },
      { path: 'b.txt', content: 'second' },
      { path: 'c.bin', content: 'y'.repeat(3000) },
      { path: 'd.txt', content: 'fourth' },
    ]);
    expect((await entries(archive, false)).map((e) => e.path)).toEqual(['a.bin', 'b.txt', 'c.bin', 'd.txt']);
    const texts: string[] = [];
    for await (const entry of readTar(chunked(archive, 100))) {
      // Read one piece of each body, then move on.
      for await (const piece of entry.body) {
        texts.push(`${entry.path}:${Buffer.from(piece).toString().slice(0, 3)}`);
        break;
      }
    }
    expect(texts).toEqual(['a.bin:xxx', 'b.txt:sec', 'c.bin:yyy', 'd.txt:fou']);
  });

  it.each([
    [
      'a bad checksum',
      (b: Buffer) => {
        b[10] = 0x41;
        return b;
      },
      /a header is not a valid tar header \(.*\): it is not a tar archive or is corrupt/,
    ],
    [
      'a truncated body',
      (b: Buffer) => b.subarray(0, 700),
      /ends inside an entry or a header: it is truncated/,
    ],
    ['no end-of-archive marker', (b: Buffer) => b.subarray(0, b.length - 1024), /no end-of-archive marker/],
    ['a half header', (b: Buffer) => b.subarray(0, 100), /ends inside an entry or a header: it is truncated/],
  ])('refuses %s', async (_name, damage, message) => {
    const archive = tarBytes([{ path: 'model.onnx', content: 'z'.repeat(600) }]);
    await expect(entries(damage(Buffer.from(archive)))).rejects.toThrow(message);
  });

  it('refuses paths that leave the archive', async () => {
    const err = await entries(tarBytes([{ path: '../../etc/model.onnx', content: 'x' }])).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TarError);
    expect((err as Error).message).toContain('points outside the archive');
  });

  it('reads an archive made by the system tar', async () => {
    const dir = path.join(root, 'systar');
    await mkdir(path.join(dir, 'sub'), { recursive: true });
    await writeFile(path.join(dir, 'model.onnx'), 'onnx bytes');
    await writeFile(path.join(dir, 'sub', 'labels.txt'), 'x\ny\n');
    const bytes = execFileSync('tar', ['-cf', '-', '-C', dir, '.']);
    const found = (await entries(bytes)).filter((e) => e.type === 'file');
    expect(found.map((e) => [e.path, e.text]).sort()).toEqual([
      ['model.onnx', 'onnx bytes'],
      ['sub/labels.txt', 'x\ny\n'],
    ]);
  });
});

describe('extractModelArchive', () => {
  async function archive(name: string, bytes: Uint8Array): Promise<string> {
    await writeFile(path.join(root, name), bytes);
    return url(name);
  }
  const target = (name: string): string => `${url('runs', name)}/model/`;

  it('extracts every file, returns the one .onnx with its sha256 and the archive digest and ETag', async () => {
    const files: TarInput[] = [
      { path: './' },
      { path: './model.onnx', content: 'the model' },
      { path: './labels.txt', content: 'cat\ndog\n' },
      { path: './tokenizer/tokenizer.json', content: '{"v":1}' },
      // Finder junk is never a model file.
      { path: './._model.onnx', content: 'resource fork' },
      { path: './__MACOSX/model.onnx', content: 'resource fork' },
    ];
    const bytes = tarGz(files);
    const uri = await archive('ok.tar.gz', bytes);
    const result = await extractModelArchive(store, uri, target('ok'), 'model.uri');
    expect(result.model).toMatchObject({
      path: 'model.onnx',
      uri: `${target('ok')}model.onnx`,
      size: 9,
      sha256: sha256('the model'),
    });
    expect(result.archive).toEqual({
      uri,
      etag: (await store.head(uri)).etag,
      size: bytes.length,
      sha256: sha256(bytes),
    });
    expect([...result.files.keys()].sort()).toEqual(['labels.txt', 'model.onnx', 'tokenizer/tokenizer.json']);
    expect(await readFile(fileURLToPath(`${target('ok')}tokenizer/tokenizer.json`), 'utf8')).toBe('{"v":1}');
    expect(result.files.get('labels.txt')!.etag).toBe((await store.head(`${target('ok')}labels.txt`)).etag);
  });

  it.each<[string, () => Uint8Array, RegExp]>([
    [
      'not gzip',
      () => tarBytes([{ path: 'model.onnx', content: 'x' }]),
      /is not a gzip file \(a \.tar\.gz must start/,
    ],
    [
      'truncated gzip',
      () => tarGz([{ path: 'model.onnx', content: 'x'.repeat(5000) }]).subarray(0, 40),
      /is a corrupt model archive: the gzip stream ends early/,
    ],
    [
      'gzip of something that is not tar',
      () => gzipSync(Buffer.from('just some text, certainly not a tar header '.repeat(20))),
      /is a corrupt model archive: a header is not a valid tar header/,
    ],
    [
      'no .onnx file',
      () => tarGz([{ path: 'labels.txt', content: 'a' }]),
      /holds no \.onnx file \(it has labels\.txt\)/,
    ],
    [
      'two .onnx files',
      () =>
        tarGz([
          { path: 'a/model.onnx', content: 'a' },
          { path: 'b/model.onnx', content: 'b' },
        ]),
      /holds 2 \.onnx files \(a\/model\.onnx, b\/model\.onnx\); a model archive must hold exactly one/,
    ],
    ['an empty file', () => new Uint8Array(0), /is empty \(0 bytes\)/],
  ])('is a ModelError for %s', async (name, make, message) => {
    const uri = await archive(`${name.replace(/\W+/g, '-')}.tar.gz`, make());
    const err = await extractModelArchive(
      store,
      uri,
      target(name.replace(/\W+/g, '-')),
      'the artifact of model m version 1',
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).toContain(`the artifact of model m version 1 ${uri}`);
  });

  it('is a ModelError for a missing archive', async () => {
    await expect(extractModelArchive(store, url('none.tar.gz'), target('none'), 'model.uri')).rejects.toThrow(
      new ModelError(`model.uri ${url('none.tar.gz')} does not exist; check the path or the registry entry`),
    );
  });
});
