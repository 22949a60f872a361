import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import fc from 'fast-check';
import {
  AUTO_MANIFEST_RULE,
  LIST_CONCURRENCY,
  listInput,
  readListManifest,
  resolveManifestMode,
  type InputSpec,
} from '../../src/manifest/list-input.js';
import { InputError } from '../../src/spec/errors.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import type { ObjectInfo, ObjectStore } from '../../src/storage/object-store.js';

const store = new LocalObjectStore();
let root: string;
const url = (...parts: string[]): string => pathToFileURL(path.join(root, ...parts)).href;
const write = async (rel: string, body: string | Uint8Array): Promise<void> => {
  const file = path.join(root, rel);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, body);
};
const uris = (objects: readonly { uri: string }[]): string[] => objects.map((o) => o.uri);

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'list-input-'));
  // A Spark-style output folder: data files, bookkeeping, other formats, an empty part, nested partitions.
  await write('data/part-b.jsonl', '{"a":1}\n{"a":2}\n');
  await write('data/part-a.jsonl', '{"a":3}\n');
  await write('data/part-c.NDJSON', '{"a":4}\n');
  await write('data/day=2/part-d.json', '{"a":5}\n');
  await write('data/_SUCCESS', 'x');
  await write('data/.part-a.jsonl.crc', 'crc');
  await write('data/_temporary/0/part-z.jsonl', '{"a":9}\n');
  await write('data/.staging/part-y.jsonl', '{"a":9}\n');
  await write('data/part-e.jsonl', '');
  await write('data/readme.txt', 'not data');
  await write('data/table.csv', 'a\n1\n');
  await write('data-out/part-x.jsonl', '{"a":0}\n');
  await write('only-markers/_SUCCESS', '');
  await mkdir(path.join(root, 'empty-dir'), { recursive: true });
  await write('single.jsonl', '{"a":1}\n');
  await write('single.parquet', 'PAR1 not really');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const spec = (
  uri: string,
  format: InputSpec['format'],
  manifest: InputSpec['manifest'] = 'auto',
): InputSpec => ({
  uri,
  format,
  manifest,
});

describe('prefix', () => {
  it('keeps data files of the format, sorted, skipping bookkeeping, empty and other files', async () => {
    const objects = await listInput(store, spec(url('data') + '/', 'jsonl', 'prefix'));
    expect(uris(objects)).toEqual([
      url('data/day=2/part-d.json'),
      url('data/part-a.jsonl'),
      url('data/part-b.jsonl'),
      url('data/part-c.NDJSON'),
    ]);
    const b = objects.find((o) => o.uri.endsWith('part-b.jsonl'))!;
    expect(b.size).toBe(16);
    expect(b.etag).toMatch(/^[0-9a-f]{32}$/);
    expect(Object.keys(b)).toEqual(['uri', 'size', 'etag']);
  });

  it('reads a URI without trailing slash as a folder, never as a partial name (data must not match data-out)', async () => {
    const objects = await listInput(store, spec(url('data'), 'jsonl', 'prefix'));
    expect(uris(objects)).not.toContain(url('data-out/part-x.jsonl'));
    expect(objects).toHaveLength(4);
  });

  it('filters by the format: csv keeps only .csv files', async () => {
    expect(uris(await listInput(store, spec(url('data') + '/', 'csv', 'prefix')))).toEqual([
      url('data/table.csv'),
    ]);
    expect(await listInput(store, spec(url('data') + '/', 'parquet', 'prefix'))).toEqual([]);
  });

  it('treats a prefix with only markers, or an existing empty directory, as empty input (not an error)', async () => {
    expect(await listInput(store, spec(url('only-markers') + '/', 'jsonl', 'prefix'))).toEqual([]);
    expect(await listInput(store, spec(url('empty-dir') + '/', 'jsonl', 'auto'))).toEqual([]);
  });

  it('fails on a prefix with nothing under it', async () => {
    const err = await listInput(store, spec(url('nope') + '/', 'jsonl', 'prefix')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toContain(`nothing under the prefix ${url('nope')}/`);
  });

  it('explains when an explicit prefix names an object', async () => {
    const err = await listInput(store, spec(url('single.jsonl'), 'jsonl', 'prefix')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toContain(
      'is an object, not a prefix: set input.manifest to "auto" or "list"',
    );
  });
});

describe('auto', () => {
  it('follows the documented rule', async () => {
    await write('auto/files.manifest', `${url('single.jsonl')}\n`);
    await write('auto/files.txt', `${url('single.jsonl')}\n`);
    await write('auto/list.jsonl', `{"uri": "${url('single.parquet')}"}\n`);
    await write('auto/list.csv', `uri\n${url('single.jsonl')}\n`);
    const mode = async (uri: string, format: InputSpec['format']): Promise<string> =>
      (await resolveManifestMode(store, spec(uri, format))).mode;
    expect(await mode(url('data') + '/', 'jsonl')).toBe('prefix');
    expect(await mode(url('auto/files.manifest'), 'jsonl')).toBe('list');
    expect(await mode(url('auto/files.txt'), 'csv')).toBe('list');
    expect(await mode(url('auto/list.jsonl'), 'parquet')).toBe('list');
    expect(await mode(url('auto/list.csv'), 'jsonl')).toBe('list');
    // The format's own extension is data: an S3 trigger's single object.
    expect(await mode(url('single.jsonl'), 'jsonl')).toBe('object');
    expect(await mode(url('auto/list.csv'), 'csv')).toBe('object');
    expect(await mode(url('single.parquet'), 'parquet')).toBe('object');
    // Names no object: a prefix.
    expect(await mode(url('data'), 'jsonl')).toBe('prefix');
  });

  it('lists a single object as an input of one', async () => {
    const objects = await listInput(store, spec(url('single.jsonl'), 'jsonl'));
    expect(objects).toEqual([expect.objectContaining({ uri: url('single.jsonl'), size: 8 })]);
  });

  it('reads an existing manifest as a list', async () => {
    const objects = await listInput(store, spec(url('auto/list.jsonl'), 'parquet'));
    expect(uris(objects)).toEqual([url('single.parquet')]);
  });

  it('names the rule when nothing is found', async () => {
    const err = await listInput(store, spec(url('missing.manifest'), 'jsonl')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toContain(AUTO_MANIFEST_RULE);
  });
});

describe('list manifests', () => {
  it('reads JSONL objects, JSON strings and bare URIs, relative to the manifest, sorted', async () => {
    await write(
      'lists/a.jsonl',
      [
        `{"uri": "${url('data/part-b.jsonl')}"}`,
        '',
        '"../data/part-a.jsonl"',
        '../data/day=2/part-d.json',
        '   ',
      ].join('\n'),
    );
    const objects = await listInput(store, spec(url('lists/a.jsonl'), 'jsonl', 'list'));
    expect(uris(objects)).toEqual([
      url('data/day=2/part-d.json'),
      url('data/part-a.jsonl'),
      url('data/part-b.jsonl'),
    ]);
    // Sizes and ETags come from HEAD.
    const listed = await listInput(store, spec(url('data') + '/', 'jsonl', 'prefix'));
    for (const object of objects) expect(object).toEqual(listed.find((o) => o.uri === object.uri));
  });

  it('skips HEAD when a line carries both size and etag (objects need not exist)', async () => {
    await write(
      'lists/inventory.jsonl',
      [
        `{"uri": "${url('ghost/2.jsonl')}", "size": 200, "etag": "\\"e2\\"", "versionId": "v2"}`,
        `{"uri": "${url('ghost/1.jsonl')}", "size": 100, "etag": "e1"}`,
        `{"uri": "${url('ghost/0.jsonl')}", "size": 0, "etag": "e0"}`,
      ].join('\n'),
    );
    const objects = await listInput(store, spec(url('lists/inventory.jsonl'), 'jsonl', 'list'));
    expect(objects).toEqual([
      { uri: url('ghost/1.jsonl'), size: 100, etag: 'e1' },
      { uri: url('ghost/2.jsonl'), size: 200, etag: 'e2', versionId: 'v2' },
    ]);
  });

  it('HEADs a line that has a size but no etag, and names the line of a missing object', async () => {
    await write(
      'lists/missing.jsonl',
      [
        `{"uri": "${url('data/part-a.jsonl')}"}`,
        `{"uri": "${url('ghost/x.jsonl')}", "size": 5}`,
        'ghost.jsonl',
      ].join('\n'),
    );
    const err = await listInput(store, spec(url('lists/missing.jsonl'), 'jsonl', 'list')).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InputError);
    const message = (err as Error).message;
    expect(message).toContain('names 2 object(s) that do not exist');
    expect(message).toContain(`line 2: ${url('ghost/x.jsonl')}`);
    expect(message).toContain(`line 3: ${url('lists/ghost.jsonl')}`);
    expect(message).not.toContain('line 1');
  });

  it('reads CSV with a uri header and quoted values, and plain text lists', async () => {
    await write('lists/with,comma.jsonl', '{"a":1}\n');
    await write('lists/list.csv', `uri\r\n"${url('lists/with,comma.jsonl')}"\r\n"../data/part-a.jsonl"\r\n`);
    expect(uris(await listInput(store, spec(url('lists/list.csv'), 'jsonl', 'list')))).toEqual([
      url('data/part-a.jsonl'),
      url('lists/with,comma.jsonl'),
    ]);
    await write('lists/list.txt', '\uFEFFsingle.jsonl\n../single.jsonl\n');
    const err = await listInput(store, spec(url('lists/list.txt'), 'jsonl', 'list')).catch((e: unknown) => e);
    expect((err as Error).message).toContain(`line 1: ${url('lists/single.jsonl')}`);
    await write('lists/list2.txt', '../single.jsonl\n');
    expect(uris(await listInput(store, spec(url('lists/list2.txt'), 'jsonl', 'list')))).toEqual([
      url('single.jsonl'),
    ]);
  });

  it('resolves file names with spaces and # as paths, not URL syntax', async () => {
    await write('lists/odd name #1.jsonl', '{"a":1}\n');
    await write('lists/odd.txt', 'odd name #1.jsonl\n');
    const objects = await listInput(store, spec(url('lists/odd.txt'), 'jsonl', 'list'));
    expect(uris(objects)).toEqual([url('lists/odd name #1.jsonl')]);
    expect(objects[0]!.size).toBe(8);
  });

  it('reads a SageMaker ManifestFile (JSON array with a prefix)', async () => {
    await write(
      'lists/sm.manifest',
      JSON.stringify([{ prefix: url('data') + '/' }, 'part-b.jsonl', 'day=2/part-d.json'], null, 2),
    );
    const { shape, entries } = await readListManifest(store, url('lists/sm.manifest'));
    expect(shape).toBe('array');
    expect(entries.map((e) => [e.position, e.uri])).toEqual([
      [1, url('data/part-b.jsonl')],
      [2, url('data/day=2/part-d.json')],
    ]);
    expect(uris(await listInput(store, spec(url('lists/sm.manifest'), 'jsonl')))).toEqual([
      url('data/day=2/part-d.json'),
      url('data/part-b.jsonl'),
    ]);
  });

  it('skips zero-byte objects and accepts an empty manifest', async () => {
    await write('lists/zero.txt', `${url('data/part-e.jsonl')}\n`);
    expect(await listInput(store, spec(url('lists/zero.txt'), 'jsonl', 'list'))).toEqual([]);
    await write('lists/empty.jsonl', '\n\n');
    expect(await listInput(store, spec(url('lists/empty.jsonl'), 'jsonl', 'list'))).toEqual([]);
  });

  it('rejects duplicates, naming both lines', async () => {
    await write('lists/dup.txt', `${url('data/part-a.jsonl')}\n../data/part-b.jsonl\n../data/part-a.jsonl\n`);
    const err = await listInput(store, spec(url('lists/dup.txt'), 'jsonl', 'list')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toContain(
      `names ${url('data/part-a.jsonl')} more than once (line 1, line 3)`,
    );
  });

  it('rejects malformed lines with their line number', async () => {
    const cases: [string, string][] = [
      ['{"uri": 5}', 'line 2: has no "uri" string'],
      ['{"uri": "a.jsonl", "size": -1}', 'line 2: has "size" -1'],
      ['{"uri": "a.jsonl"', 'line 2: is not valid JSON'],
      ['"unbalanced', 'line 2: has unbalanced quotes'],
      ['http://example.com/x.jsonl', 'line 2: "http://example.com/x.jsonl" is not a storage URI'],
    ];
    for (const [line, expected] of cases) {
      await write('lists/bad.jsonl', `${url('data/part-a.jsonl')}\n${line}\n`);
      const err = await listInput(store, spec(url('lists/bad.jsonl'), 'jsonl', 'list')).catch(
        (e: unknown) => e,
      );
      expectIn(err, line).toBeInstanceOf(Error);
      expectIn((err as Error).message, line).toContain(expected);
    }
  });

  it('reads manifests larger than one read chunk (lines and a one-line JSON array split across chunks)', async () => {
    const n = 40_000; // ~3 MiB: several 1 MiB stream chunks, so lines straddle chunk boundaries
    const name = (i: number): string => `k/${String(i).padStart(6, '0')}-${'x'.repeat(i % 50)}.jsonl`;
    const lines = Array.from(
      { length: n },
      (_, i) => `{"uri":"s3://bucket/${name(i)}","size":${i + 1},"etag":"e${i}"}`,
    );
    await write('lists/big.jsonl', lines.join('\r\n'));
    const objects = await listInput(store, spec(url('lists/big.jsonl'), 'parquet', 'list'));
    expect(objects).toHaveLength(n);
    expect(objects[n - 1]).toEqual({ uri: `s3://bucket/${name(n - 1)}`, size: n, etag: `e${n - 1}` });
    expect(objects.every((o, i) => o.uri === `s3://bucket/${name(i)}` && o.size === i + 1)).toBe(true);

    const keys = Array.from({ length: n }, (_, i) => name(i));
    await write('lists/big.manifest', JSON.stringify([{ prefix: 's3://bucket/' }, ...keys, keys[7]]));
    const { shape, entries } = await readListManifest(store, url('lists/big.manifest'));
    expect(shape).toBe('array');
    expect(entries).toHaveLength(n + 1);
    expect(entries[n - 1]).toEqual({ position: n, uri: `s3://bucket/${name(n - 1)}` });
    // A duplicate in an array manifest is named by element.
    await write(
      'lists/dup.manifest',
      JSON.stringify([{ prefix: `${url('data')}/` }, 'part-a.jsonl', 'part-b.jsonl', 'part-a.jsonl']),
    );
    await expect(listInput(store, spec(url('lists/dup.manifest'), 'jsonl', 'list'))).rejects.toThrow(
      /more than once \(entry 1, entry 3\)/,
    );
  });

  it('fails on a manifest that does not exist', async () => {
    const err = await listInput(store, spec(url('lists/none.jsonl'), 'jsonl', 'list')).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toContain(`list manifest ${url('lists/none.jsonl')} does not exist`);
  });

  it('gives the same snapshot whatever the manifest order', async () => {
    const lines = ['part-a.jsonl', 'part-b.jsonl', 'day=2/part-d.json', 'part-c.NDJSON'].map(
      (p) => `../data/${p}`,
    );
    await write('lists/order1.txt', lines.join('\n'));
    await write('lists/order2.txt', [...lines].reverse().join('\n'));
    expect(await listInput(store, spec(url('lists/order1.txt'), 'jsonl', 'list'))).toEqual(
      await listInput(store, spec(url('lists/order2.txt'), 'jsonl', 'list')),
    );
  });
});

describe('CSV list manifests with a header', () => {
  /** The store, counting HEADs: a row with size and ETag must not cost one. */
  function headCounting(): ObjectStore & { heads: string[] } {
    const heads: string[] = [];
    return {
      heads,
      head: (u) => store.head(u),
      tryHead: (u) => {
        heads.push(u);
        return store.tryHead(u);
      },
      get: (u, r, o) => store.get(u, r, o),
      getStream: (u, r, o) => store.getStream(u, r, o),
      put: (u, b) => store.put(u, b),
      putStream: (u, b) => store.putStream(u, b),
      list: (u) => store.list(u),
      delete: (u) => store.delete(u),
    };
  }

  it('reads uri,size,etag: rows with both skip the HEAD, the others are HEADed (the header is not an object)', async () => {
    await write('lists/with,comma.jsonl', '{"a":1}\n');
    await write(
      'lists/sized.csv',
      [
        'uri,size,etag',
        `${url('ghost/b.jsonl')},200,"""e-b"""`,
        `"${url('lists/with,comma.jsonl')}",,`,
        '../data/part-a.jsonl,8,',
        `${url('ghost/a.jsonl')},100,e-a`,
        '',
      ].join('\r\n'),
    );
    const counting = headCounting();
    const objects = await listInput(counting, spec(url('lists/sized.csv'), 'jsonl', 'list'));
    const partA = await store.head(url('data/part-a.jsonl'));
    const comma = await store.head(url('lists/with,comma.jsonl'));
    expect(objects).toEqual([
      { uri: url('data/part-a.jsonl'), size: partA.size, etag: partA.etag },
      { uri: url('ghost/a.jsonl'), size: 100, etag: 'e-a' },
      { uri: url('ghost/b.jsonl'), size: 200, etag: 'e-b' },
      { uri: url('lists/with,comma.jsonl'), size: comma.size, etag: comma.etag },
    ]);
    expect(counting.heads.sort()).toEqual([url('data/part-a.jsonl'), url('lists/with,comma.jsonl')]);
  });

  it("reads S3 Batch Operations' bucket,key (URL-encoded keys) with versionId, in any case and order", async () => {
    await write(
      'lists/batch-ops.csv',
      [
        'Bucket,Key,Size,ETag,VersionId',
        'landing-bucket,photos/2024/a%20b%2Bc.jsonl,10,e1,v1',
        'landing-bucket,"photos/x,y.jsonl",20,e2,',
        'other-bucket,z.jsonl,30,e3,v3',
      ].join('\n'),
    );
    const objects = await listInput(store, spec(url('lists/batch-ops.csv'), 'jsonl', 'list'));
    expect(objects).toEqual([
      { uri: 's3://landing-bucket/photos/2024/a b+c.jsonl', size: 10, etag: 'e1', versionId: 'v1' },
      { uri: 's3://landing-bucket/photos/x,y.jsonl', size: 20, etag: 'e2' },
      { uri: 's3://other-bucket/z.jsonl', size: 30, etag: 'e3', versionId: 'v3' },
    ]);
    await write('lists/keys.csv', 'key,bucket\nin/a.jsonl,bkt-1\n');
    const { entries } = await readListManifest(store, url('lists/keys.csv'));
    expect(entries).toEqual([{ position: 2, uri: 's3://bkt-1/in/a.jsonl' }]);
  });

  it('gives a precise error for a header of another shape, instead of looking for an object named after it', async () => {
    const cases: [string, string][] = [
      ['path,bytes', 'the header "path,bytes" has unknown column(s) "path", "bytes"'],
      ['uri,size,owner', 'has unknown column(s) "owner"'],
      ['bucket,size', 'has a bucket column but no key column'],
      ['key,etag', 'has a key column but no bucket column'],
      ['size,etag', 'has no column naming the objects'],
      ['uri,bucket,key', 'has both a uri column and bucket/key columns'],
      ['uri,URI', 'names the uri column twice'],
      ['version_id,e_tag,size', 'has no column naming the objects'],
    ];
    for (const [header, expected] of cases) {
      await write('lists/header.csv', `${header}\n${url('data/part-a.jsonl')},1,2\n`);
      const err = await listInput(store, spec(url('lists/header.csv'), 'jsonl', 'list')).catch(
        (e: unknown) => e,
      );
      expectIn(err, header).toBeInstanceOf(InputError);
      const message = (err as Error).message;
      expectIn(message, header).toContain(`list manifest ${url('lists/header.csv')} line 1: `);
      expectIn(message, header).toContain(expected);
      expectIn(message, header).toContain('header names a uri column, or bucket and key columns');
      expectIn(message, header).not.toContain('do not exist');
    }
  });

  it('names the line and the header for a malformed row', async () => {
    const cases: [string, string][] = [
      [`${url('data/part-a.jsonl')},5`, 'line 3: has 2 field(s), the header has 3'],
      [`${url('data/part-a.jsonl')},5kB,e`, 'line 3: has size "5kB"; it must be a non-negative integer'],
      [`"${url('data/part-a.jsonl')},5,e`, 'line 3: is not CSV'],
      [',5,e', 'line 3: has no uri'],
    ];
    for (const [row, expected] of cases) {
      await write('lists/rows.csv', `uri,size,etag\n${url('data/part-b.jsonl')},1,e\n${row}\n`);
      const err = await listInput(store, spec(url('lists/rows.csv'), 'jsonl', 'list')).catch(
        (e: unknown) => e,
      );
      expectIn(err, row).toBeInstanceOf(InputError);
      expectIn((err as Error).message, row).toContain(expected);
      expectIn((err as Error).message, row).toContain('The header (line 1) is "uri,size,etag"');
    }
    await write('lists/raw-key.csv', 'bucket,key\nb,100%.jsonl\n');
    await expect(readListManifest(store, url('lists/raw-key.csv'))).rejects.toThrow(
      /line 2: has key "100%\.jsonl", which is not URL-encoded/,
    );
  });

  it('still reads a plain list whose first line is a file name, not a header', async () => {
    await write('lists/names.txt', 'part-a.jsonl\npart-b.jsonl\n');
    const { entries } = await readListManifest(store, url('lists/names.txt'));
    expect(entries.map((e) => e.uri)).toEqual([url('lists/part-a.jsonl'), url('lists/part-b.jsonl')]);
  });
});

describe('s3 manifests', () => {
  it('resolves relative keys against the manifest folder and rejects absolute paths', async () => {
    const { resolveManifestEntry } = await import('../../src/manifest/list-input.js');
    expect(resolveManifestEntry('s3://bucket/lists/m.txt', 'data/a.jsonl', 'line 1')).toBe(
      's3://bucket/lists/data/a.jsonl',
    );
    expect(resolveManifestEntry('s3://bucket/lists/m.txt', 's3://other/a.jsonl', 'line 1')).toBe(
      's3://other/a.jsonl',
    );
    expect(() => resolveManifestEntry('s3://bucket/lists/m.txt', '/data/a.jsonl', 'line 4')).toThrow(
      /line 4: \/data\/a.jsonl is an absolute path in an s3:\/\/ manifest/,
    );
    expect(() => resolveManifestEntry('s3://bucket/lists/m.txt', 's3://NO/a', 'line 2')).toThrow(
      /valid S3 bucket/,
    );
  });
});

/** The same store without `listPrefixes`: listed the sequential way. */
function sequentialOnly(inner: ObjectStore): ObjectStore {
  return {
    head: (u) => inner.head(u),
    tryHead: (u) => inner.tryHead(u),
    get: (u, r) => inner.get(u, r),
    getStream: (u, r) => inner.getStream(u, r),
    put: (u, b) => inner.put(u, b),
    putStream: (u, b) => inner.putStream(u, b),
    list: (u) => inner.list(u),
    delete: (u) => inner.delete(u),
  };
}

/** Counts calls and the most full listings in flight at once; each listing is slowed a little so overlaps show. */
function instrumented(inner: LocalObjectStore): ObjectStore & {
  levels: string[];
  lists: string[];
  maxInFlight: number;
} {
  let inFlight = 0;
  const self = {
    ...sequentialOnly(inner),
    levels: [] as string[],
    lists: [] as string[],
    maxInFlight: 0,
    listPrefixes: (u: string) => {
      self.levels.push(u);
      return inner.listPrefixes(u);
    },
    list: async function* (u: string): AsyncIterable<ObjectInfo> {
      self.lists.push(u);
      inFlight++;
      self.maxInFlight = Math.max(self.maxInFlight, inFlight);
      try {
        await new Promise((resolve) => setTimeout(resolve, 5));
        yield* inner.list(u);
      } finally {
        inFlight--;
      }
    },
  };
  return self;
}

describe('prefix listing in parallel (listPrefixes)', () => {
  it('lists the folders below the prefix concurrently and gives exactly the sequential result', async () => {
    for (let d = 0; d < 40; d++) {
      await write(`wide/dt=${String(d).padStart(2, '0')}/part-0.jsonl`, `{"d":${d}}\n`);
      await write(`wide/dt=${String(d).padStart(2, '0')}/_SUCCESS`, '');
    }
    await write('wide/top.jsonl', '{"top":1}\n');
    await write('wide/_temporary/0/part-9.jsonl', '{"x":1}\n');
    // A prefix within one page is listed plainly: the plain listing (and the first level, asked for at the same
    // time in case the prefix is large) and nothing else.
    const small = instrumented(store);
    const plain = await listInput(small, spec(url('wide') + '/', 'jsonl', 'prefix'));
    expect(small.levels).toEqual([url('wide') + '/']);
    expect(small.lists).toEqual([url('wide') + '/']);

    // Past the threshold (forced here to 0 objects), the listing goes parallel.
    const s = instrumented(store);
    const parallel = await listInput(s, spec(url('wide') + '/', 'jsonl', 'prefix'), { parallelAbove: 0 });
    const sequential = await listInput(sequentialOnly(store), spec(url('wide') + '/', 'jsonl', 'prefix'));
    expect(parallel).toEqual(sequential);
    expect(plain).toEqual(sequential);
    expect(parallel).toHaveLength(41);
    // One level listed (40 folders are enough fan-out), then one full listing per folder, several at once; the
    // bookkeeping folder is never descended into.
    expect(s.levels).toEqual([url('wide') + '/']);
    expect(s.lists).toHaveLength(40);
    expect(s.lists.some((u) => u.includes('_temporary'))).toBe(false);
    expect(s.maxInFlight).toBeGreaterThan(1);
    expect(s.maxInFlight).toBeLessThanOrEqual(LIST_CONCURRENCY);
  });

  it('expands narrow levels until there is fan-out (year=/month=)', async () => {
    for (const year of ['2023', '2024']) {
      for (let d = 1; d <= 20; d++) await write(`narrow/year=${year}/day=${d}/p.jsonl`, `{"d":${d}}\n`);
    }
    const s = instrumented(store);
    const objects = await listInput(s, spec(url('narrow') + '/', 'jsonl', 'prefix'), { parallelAbove: 0 });
    expect(objects).toHaveLength(40);
    expect(s.levels).toEqual([
      url('narrow') + '/',
      url('narrow/year=2023') + '/',
      url('narrow/year=2024') + '/',
    ]);
    expect(s.lists).toHaveLength(40);
  });

  it('equals the sequential listing on generated folder trees (property)', async () => {
    const segment = fc.constantFrom('a', 'b', 'ab', 'a-b', '_x', '.y', 'dt=1', 'dt=10', 'z');
    const name = fc.constantFrom('p.jsonl', 'q.json', 'r.csv', '_SUCCESS', 'a.jsonl', 'x.ndjson');
    const keyArb = fc
      .tuple(fc.array(segment, { minLength: 0, maxLength: 4 }), name)
      .map(([dirs, file]) => [...dirs, file].join('/'));
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(keyArb, { minLength: 1, maxLength: 25 }), async (keys) => {
        const base = `tree-${run++}`;
        // A key cannot be both a file and a folder on disk: keep the first of any such pair.
        const kept: string[] = [];
        for (const k of keys) {
          if (kept.some((o) => o.startsWith(`${k}/`) || k.startsWith(`${o}/`))) continue;
          kept.push(k);
        }
        for (const k of kept) await write(`${base}/${k}`, `{"k":"${k}"}\n`);
        for (const format of ['jsonl', 'csv'] as const) {
          const input = spec(url(base) + '/', format, 'prefix');
          const expected = await listInput(sequentialOnly(store), input);
          expect(await listInput(store, input, { parallelAbove: 0 })).toEqual(expected);
          expect(await listInput(store, input, { parallelAbove: 3 })).toEqual(expected);
        }
      }),
      { numRuns: 30 },
    );
  });

  it('keeps every name for the files format (one object, one record), bookkeeping still skipped', async () => {
    await write('files/a.png', 'png');
    await write('files/b/c.txt', 'text');
    await write('files/_SUCCESS', 'x');
    await write('files/d', 'no extension');
    const objects = await listInput(store, spec(url('files') + '/', 'files', 'prefix'));
    expect(uris(objects)).toEqual([url('files/a.png'), url('files/b/c.txt'), url('files/d')]);
  });
});

describe('input under the output prefix', () => {
  it('is rejected for a list manifest, naming the objects and the fix', async () => {
    await write('overlap/out/old/part-0.jsonl', '{"a":1}\n');
    await write('overlap/list.txt', `${url('data/part-a.jsonl')}\nout/old/part-0.jsonl\n`);
    const err = await listInput(store, spec(url('overlap/list.txt'), 'jsonl', 'list'), {
      outputUri: url('overlap/out'),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toBe(
      `input.uri ${url('overlap/list.txt')} names 1 object(s) under output.uri ${url('overlap/out')}/; a run ` +
        `would read its own output:\n  - ${url('overlap/out/old/part-0.jsonl')}\nRemove them from the input, or ` +
        'write predictions to a prefix that holds no input',
    );
    // Without an output prefix (or with one elsewhere) the same manifest is fine.
    expect(
      await listInput(store, spec(url('overlap/list.txt'), 'jsonl', 'list'), { outputUri: url('x') }),
    ).toHaveLength(2);
  });
});
