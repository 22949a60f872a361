import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
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

  it('lists user files whose names merely contain the temporary marker', async () => {
    await writeFile(path.join(dir, 'report.tmp-final.csv'), 'kept');
    const listed = await collect(store.list(`${pathToFileURL(dir).href}/`));
    expect(listed.map((i) => path.basename(i.uri))).toEqual(['report.tmp-final.csv']);
  });

  it('refuses URIs of another scheme', async () => {
    await expect(store.get('s3://bucket/key')).rejects.toThrow(/cannot handle s3:\/\/bucket\/key/);
  });
});
