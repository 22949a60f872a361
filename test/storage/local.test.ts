import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { Readable } from 'node:stream';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { RoutingObjectStore, type ObjectStore } from '../../src/storage/index.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import { collect, objectStoreContract } from './object-store.contract.js';

async function tempDir(): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), 'batch-infer-local-store-'));
}

objectStoreContract('LocalObjectStore', async () => {
  const dir = await tempDir();
  return {
    store: new LocalObjectStore(),
    rootUri: `${pathToFileURL(dir).href}/`,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

describe('LocalObjectStore specifics', () => {
  let dir: string;
  const store = new LocalObjectStore();
  beforeEach(async () => {
    dir = await tempDir();
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('leaves no temporary file behind when a streamed write fails', async () => {
    const target = pathToFileURL(path.join(dir, 'out', 'x.bin')).href;
    async function* failing(): AsyncIterable<Uint8Array> {
      yield new Uint8Array(1024);
      throw new Error('stop');
    }
    await expect(store.putStream(target, failing())).rejects.toThrow('stop');
    expect(await readdir(path.join(dir, 'out'))).toEqual([]);
  });

  it('does not list the temporary files of writes in progress', async () => {
    await writeFile(path.join(dir, '.tmp-x.bin-0123456789ab'), 'partial');
    await writeFile(path.join(dir, 'x.bin'), 'whole');
    const listed = await collect(store.list(`${pathToFileURL(dir).href}/`));
    expect(listed.map((i) => path.basename(i.uri))).toEqual(['x.bin']);
  });

  it("removes a killed writer's temporary files of an object when the object is written or deleted again", async () => {
    // What a SIGKILLed writer leaves: its temporary file, never renamed. The retry rewrites the same key.
    await writeFile(path.join(dir, '.tmp-part-0.parquet-0123456789ab'), 'half');
    await writeFile(
      path.join(dir, '.tmp-part-1.parquet-0123456789ab'),
      'another object, still being written',
    );
    await store.put(pathToFileURL(path.join(dir, 'part-0.parquet')).href, 'whole');
    expect((await readdir(dir)).sort()).toEqual(['.tmp-part-1.parquet-0123456789ab', 'part-0.parquet']);

    await writeFile(path.join(dir, '.tmp-part-2.parquet-ba9876543210'), 'half');
    await store.putStream(
      pathToFileURL(path.join(dir, 'part-2.parquet')).href,
      Readable.from([new Uint8Array(4)]),
    );
    await writeFile(path.join(dir, '.tmp-part-3.parquet-ba9876543210'), 'half');
    await store.delete(pathToFileURL(path.join(dir, 'part-3.parquet')).href);
    expect((await readdir(dir)).sort()).toEqual([
      '.tmp-part-1.parquet-0123456789ab',
      'part-0.parquet',
      'part-2.parquet',
    ]);
  });

  it('lists user files whose names merely contain the temporary marker', async () => {
    await writeFile(path.join(dir, 'report.tmp-final.csv'), 'kept');
    const listed = await collect(store.list(`${pathToFileURL(dir).href}/`));
    expect(listed.map((i) => path.basename(i.uri))).toEqual(['report.tmp-final.csv']);
  });

  it('routes listPrefixes, and derives one level from a full listing for a store without it', async () => {
    for (const key of ['a.json', 'b/1.json', 'b/c/2.json', 'b-x/3.json', 'c/d/e/4.json']) {
      await mkdir(path.dirname(path.join(dir, key)), { recursive: true });
      await writeFile(path.join(dir, key), key);
    }
    const root = `${pathToFileURL(dir).href}/`;
    const plain: ObjectStore = {
      head: (u) => store.head(u),
      tryHead: (u) => store.tryHead(u),
      get: (u, r) => store.get(u, r),
      getStream: (u, r) => store.getStream(u, r),
      put: (u, b) => store.put(u, b),
      putStream: (u, b) => store.putStream(u, b),
      list: (u) => store.list(u),
      delete: (u) => store.delete(u),
    };
    const routed = new RoutingObjectStore({ file: () => store, s3: () => store });
    const derived = new RoutingObjectStore({ file: () => plain, s3: () => plain });
    for (const prefix of [root, `${root}b/`, `${root}b`, `${root}c/`, `${root}none/`]) {
      const expected = await store.listPrefixes(prefix);
      expect(await routed.listPrefixes(prefix)).toEqual(expected);
      expect(await derived.listPrefixes(prefix)).toEqual(expected);
    }
    expect((await store.listPrefixes(root)).prefixes).toEqual([`${root}b-x/`, `${root}b/`, `${root}c/`]);
  });

  it('routes compose within a scheme and copies through across schemes', async () => {
    const routed = new RoutingObjectStore({ file: () => store, s3: () => store });
    const a = `${pathToFileURL(dir).href}/a.txt`;
    await store.put(a, 'hello world');
    const joined = await routed.compose(`${pathToFileURL(dir).href}/joined.txt`, [
      { uri: a, range: { start: 0, end: 5 } },
      { uri: a, range: { start: 5, end: 11 } },
    ]);
    expect(joined.size).toBe(11);
    expect(Buffer.from(await store.get(joined.uri)).toString()).toBe('hello world');
  });

  it('refuses URIs of another scheme', async () => {
    await expect(store.get('s3://bucket/key')).rejects.toThrow(/cannot handle s3:\/\/bucket\/key/);
  });
});
