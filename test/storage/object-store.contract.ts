/**
 * The behaviour every ObjectStore must share, written once and run against each implementation, so code written
 * against a local directory behaves the same on S3.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import {
  NotFoundError,
  composeObject,
  getJson,
  joinUri,
  putJson,
  type ObjectInfo,
  type ObjectStore,
} from '../../src/storage/index.js';

export interface ContractFixture {
  readonly store: ObjectStore;
  /** An empty prefix (ending in `/`) owned by one test. */
  readonly rootUri: string;
  /**
   * Known deviations of a test server from S3. `shallowCommonPrefixes`: with a delimiter, the server reports only
   * folders that hold an object directly (s3rver prunes deeper directories, so `a/b/c.json` alone does not make
   * `a/` a common prefix; AWS S3 reports it).
   */
  readonly quirks?: { readonly shallowCommonPrefixes?: boolean };
  cleanup(): Promise<void>;
}

const MiB = 1024 * 1024;

/** Deterministic pseudo-random bytes (xorshift32), so a failure reproduces exactly. */
export function patternBytes(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export async function readAll(stream: Readable): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer | string>) {
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

export async function collect(items: AsyncIterable<ObjectInfo>): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/** Yields `bytes` in uneven slices, so no implementation can rely on chunk and part boundaries lining up. */
async function* slices(bytes: Uint8Array, sizes: readonly number[]): AsyncIterable<Uint8Array> {
  let offset = 0;
  for (let i = 0; offset < bytes.length; i++) {
    const size = sizes[i % sizes.length]!;
    yield bytes.subarray(offset, offset + size);
    offset += size;
  }
}

/** Byte-exact comparison that stays fast on megabytes and reports where the first difference is. */
export function expectBytes(actual: Uint8Array, expected: Uint8Array, label = 'bytes'): void {
  const a = Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength);
  const e = Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength);
  if (a.equals(e)) return;
  let i = 0;
  while (i < a.length && i < e.length && a[i] === e[i]) i++;
  throw new Error(`${label}: got ${a.length} bytes, expected ${e.length}; first difference at offset ${i}`);
}

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString('utf8');
const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

export function objectStoreContract(name: string, setup: () => Promise<ContractFixture>): void {
  describe(`ObjectStore contract: ${name}`, () => {
    let fixture: ContractFixture | undefined;
    let store: ObjectStore;
    let uri: (key: string) => string;

    beforeEach(async () => {
      fixture = await setup();
      store = fixture.store;
      const root = fixture.rootUri;
      uri = (key) => joinUri(root, key);
    });
    afterEach(async () => {
      await fixture?.cleanup();
      fixture = undefined;
    });

    it('round-trips put, head and get with exact bytes', async () => {
      const body = new Uint8Array(256 * 3).map((_, i) => i % 256);
      const target = uri('dir/sub/all-bytes.bin');
      const put = await store.put(target, body, { contentType: 'application/octet-stream' });
      expect(put.uri).toBe(target);
      expect(put.size).toBe(body.length);
      expect(put.etag).toMatch(/^[^"]+$/);

      const head = await store.head(target);
      expect(head.uri).toBe(target);
      expect(head.size).toBe(body.length);
      expect(head.etag).toBe(put.etag);
      expect(head.lastModified).toBeInstanceOf(Date);
      expect(await store.tryHead(target)).toEqual(head);

      expectBytes(await store.get(target), body);
    });

    it('encodes string bodies as UTF-8', async () => {
      const target = uri('utf8.txt');
      const value = 'héllo wörld ✓ 🚀\n';
      const put = await store.put(target, value);
      expect(put.size).toBe(Buffer.byteLength(value, 'utf8'));
      expect(Buffer.from(await store.get(target))).toEqual(Buffer.from(value, 'utf8'));
    });

    it('round-trips JSON through putJson and getJson', async () => {
      const target = uri('doc.json');
      const value = { a: 1, b: ['x', null], c: { nested: 'ü' } };
      await putJson(store, target, value);
      expect(await getJson(store, target)).toEqual(value);
    });

    it('reports a missing object: tryHead is undefined, head/get/getStream throw NotFoundError', async () => {
      const missing = uri('nope/missing.bin');
      await store.put(uri('nope/present.bin'), 'x');
      expect(await store.tryHead(missing)).toBeUndefined();
      for (const attempt of [
        () => store.head(missing),
        () => store.get(missing),
        () => store.getStream(missing),
      ]) {
        const err: unknown = await attempt().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(NotFoundError);
        expect((err as NotFoundError).uri).toBe(missing);
        expect((err as Error).message).toContain(missing);
      }
      await expect(store.get(missing, { start: 0, end: 10 })).rejects.toBeInstanceOf(NotFoundError);
    });

    it('reads byte ranges: start, middle, end, clipped past EOF, empty', async () => {
      const body = patternBytes(1000, 7);
      const target = uri('ranges.bin');
      await store.put(target, body);
      const cases: [number, number][] = [
        [0, 10],
        [0, 1],
        [500, 600],
        [990, 1000],
        [999, 1000],
        [0, 1000],
      ];
      for (const [start, end] of cases) {
        expectBytes(await store.get(target, { start, end }), body.subarray(start, end), `${start}-${end}`);
      }
      // Past the end: clipped to what exists, and nothing at all from a start at or beyond the end.
      expectBytes(await store.get(target, { start: 990, end: 5000 }), body.subarray(990));
      expect((await store.get(target, { start: 1000, end: 1100 })).length).toBe(0);
      expect((await store.get(target, { start: 4000, end: 5000 })).length).toBe(0);
      expect((await store.get(target, { start: 10, end: 10 })).length).toBe(0);
    });

    it('streams whole objects and ranges', async () => {
      const body = patternBytes(300_000, 11);
      const target = uri('stream.bin');
      await store.put(target, body);
      expectBytes(await readAll(await store.getStream(target)), body, 'whole');
      const ranged = await readAll(await store.getStream(target, { start: 100_000, end: 200_001 }));
      expectBytes(ranged, body.subarray(100_000, 200_001), 'middle');
      const tail = await readAll(await store.getStream(target, { start: 299_990, end: 400_000 }));
      expectBytes(tail, body.subarray(299_990), 'tail');
      expectBytes(
        await readAll(await store.getStream(target, { start: 0, end: 1 })),
        body.subarray(0, 1),
        'first',
      );
      expect((await readAll(await store.getStream(target, { start: 300_000, end: 300_100 }))).length).toBe(0);
      expect((await readAll(await store.getStream(target, { start: 5, end: 5 }))).length).toBe(0);
    });

    it('putStream writes a large body (multipart on S3) back byte-exactly', async () => {
      const body = patternBytes(21 * MiB + 12_345, 42);
      const target = uri('large/body.bin');
      const info = await store.putStream(target, slices(body, [MiB - 7, 3 * MiB + 1, 65_536]));
      expect(info.uri).toBe(target);
      expect(info.size).toBe(body.length);

      const head = await store.head(target);
      expect(head.size).toBe(body.length);
      expect(head.etag).toBe(info.etag);
      const back = await store.get(target);
      expect(back.length).toBe(body.length);
      expect(sha256(back)).toBe(sha256(body));
      // Across the 8 MiB part boundary.
      const seam = { start: 8 * MiB - 100, end: 8 * MiB + 100 };
      expectBytes(await store.get(target, seam), body.subarray(seam.start, seam.end), 'seam');
      expect(sha256(await readAll(await store.getStream(target)))).toBe(sha256(body));
    });

    it('putStream accepts a Readable and an empty body', async () => {
      const body = patternBytes(70_000, 3);
      const target = uri('readable.bin');
      const info = await store.putStream(
        target,
        Readable.from([Buffer.from(body.subarray(0, 1)), Buffer.from(body.subarray(1))]),
      );
      expect(info.size).toBe(body.length);
      expect(sha256(await store.get(target))).toBe(sha256(body));

      const empty = uri('empty.bin');
      expect((await store.putStream(empty, slices(new Uint8Array(0), [1]))).size).toBe(0);
      expect((await store.head(empty)).size).toBe(0);
      expect((await store.get(empty)).length).toBe(0);
    });

    it('putStream whose body fails leaves the previous object untouched', async () => {
      const target = uri('atomic/object.bin');
      await store.put(target, 'previous');
      async function* failing(): AsyncIterable<Uint8Array> {
        // Past one 8 MiB part, so S3 has a multipart upload in flight when the body fails.
        yield patternBytes(9 * MiB, 5);
        throw new Error('body failed on purpose');
      }
      await expect(store.putStream(target, failing())).rejects.toThrow(/body failed on purpose/);
      expect(text(await store.get(target))).toBe('previous');
      expect((await collect(store.list(uri('atomic/')))).map((i) => i.uri)).toEqual([target]);
    });

    it('lists in byte order, nested keys included, with partial-name prefixes like S3', async () => {
      const keys = [
        'list/b.txt',
        'list/ab/c.json',
        'list/a.json',
        'list/abc.json',
        'list/a/c/d.json',
        'list/ab.json',
        'list/a0.json',
        'list/ab-1.json',
        'list/a/b.json',
        'list2/outside.json',
      ];
      for (const key of keys) await store.put(uri(key), `content of ${key}`);
      const sorted = (ks: string[]): string[] => [...ks].sort(byteOrder).map(uri);

      const all = await collect(store.list(uri('list/')));
      expect(all.map((i) => i.uri)).toEqual(sorted(keys.filter((k) => k.startsWith('list/'))));
      for (const info of all) {
        const key = keys.find((k) => uri(k) === info.uri)!;
        expect(info.size).toBe(Buffer.byteLength(`content of ${key}`));
        expect(info.etag).toBe((await store.head(info.uri)).etag);
      }

      expect((await collect(store.list(uri('list/ab')))).map((i) => i.uri)).toEqual(
        sorted(['list/ab-1.json', 'list/ab.json', 'list/ab/c.json', 'list/abc.json']),
      );
      expect((await collect(store.list(uri('list/a/')))).map((i) => i.uri)).toEqual(
        sorted(['list/a/b.json', 'list/a/c/d.json']),
      );
      // Without the slash, "list" is a partial name and also matches the sibling "list2".
      expect((await collect(store.list(uri('list')))).map((i) => i.uri)).toEqual(sorted(keys));
      expect(await collect(store.list(uri('list/zzz')))).toEqual([]);
      expect(await collect(store.list(uri('no-such-dir/')))).toEqual([]);
    });

    it('lists one level with listPrefixes: folders as prefixes, objects at the level, partial names like S3', async () => {
      expect(typeof store.listPrefixes).toBe('function');
      const listPrefixes = store.listPrefixes!.bind(store);
      const keys = [
        'lvl/b.json',
        'lvl/a.json',
        'lvl/b/2.json',
        'lvl/b/1.json',
        'lvl/c/d/3.json',
        'lvl/_tmp/x.json',
        'lvl/b-1/4.json',
        'lvlx/other.json',
      ];
      for (const key of keys) await store.put(uri(key), key);

      const level = await listPrefixes(uri('lvl/'));
      // Byte order: "_" < "b", and "b-1/" < "b/" because "-" < "/". "c/" holds only a deeper folder.
      const deep = fixture?.quirks?.shallowCommonPrefixes ? [] : [uri('lvl/c/')];
      expect(level.prefixes).toEqual([uri('lvl/_tmp/'), uri('lvl/b-1/'), uri('lvl/b/'), ...deep]);
      expect(level.objects.map((o) => o.uri)).toEqual([uri('lvl/a.json'), uri('lvl/b.json')]);
      expect(level.objects[1]!.size).toBe('lvl/b.json'.length);
      expect(level.objects[1]!.etag).toBe((await store.head(uri('lvl/b.json'))).etag);

      const partial = await listPrefixes(uri('lvl/b'));
      expect(partial.prefixes).toEqual([uri('lvl/b-1/'), uri('lvl/b/')]);
      expect(partial.objects.map((o) => o.uri)).toEqual([uri('lvl/b.json')]);

      const deeper = await listPrefixes(uri('lvl/c/'));
      expect(deeper.prefixes).toEqual([uri('lvl/c/d/')]);
      expect(deeper.objects).toEqual([]);
      expect(await listPrefixes(uri('nothing-here/'))).toEqual({ prefixes: [], objects: [] });
    });

    it('composes ranges of several objects into one, in order (composeObject)', async () => {
      const a = patternBytes(70_000, 21);
      const b = patternBytes(1_000, 22);
      await store.put(uri('compose/a.bin'), a);
      await store.put(uri('compose/b.bin'), b);
      const target = uri('compose/out/joined.bin');
      const info = await composeObject(store, target, [
        { uri: uri('compose/a.bin'), range: { start: 0, end: a.length } },
        { uri: uri('compose/b.bin'), range: { start: 10, end: 1_000 } },
        { uri: uri('compose/a.bin'), range: { start: 5, end: 5 } },
        { uri: uri('compose/a.bin'), range: { start: 69_000, end: 70_000 } },
      ]);
      const expected = Buffer.concat([a, b.subarray(10), a.subarray(69_000)]);
      expect(info.size).toBe(expected.length);
      expect((await store.head(target)).etag).toBe(info.etag);
      expectBytes(await store.get(target), expected);

      const empty = await composeObject(store, uri('compose/out/empty.bin'), []);
      expect(empty.size).toBe(0);
      expect((await store.get(uri('compose/out/empty.bin'))).length).toBe(0);
    });

    it('composeObject refuses a source shorter than its range rather than write a short object', async () => {
      await store.put(uri('compose/short.bin'), 'only ten b');
      await expect(
        composeObject(store, uri('compose/out/bad.bin'), [
          { uri: uri('compose/short.bin'), range: { start: 0, end: 50 } },
        ]),
      ).rejects.toThrow(/has 10 bytes in 0-50, expected 50/);
      expect(await store.tryHead(uri('compose/out/bad.bin'))).toBeUndefined();
    });

    it('deletes objects, and deleting a missing object is fine', async () => {
      const target = uri('del/gone.txt');
      const kept = uri('del/kept.txt');
      await store.put(target, 'bye');
      await store.put(kept, 'stay');
      await store.delete(target);
      expect(await store.tryHead(target)).toBeUndefined();
      await expect(store.get(target)).rejects.toBeInstanceOf(NotFoundError);
      await store.delete(target);
      await store.delete(uri('del/never-existed.txt'));
      expect((await collect(store.list(uri('del/')))).map((i) => i.uri)).toEqual([kept]);
      expect(text(await store.get(kept))).toBe('stay');
    });

    it('overwrites on put, replacing content, size and ETag', async () => {
      const target = uri('over/write.txt');
      const first = await store.put(target, 'first version, longer');
      expect(text(await store.get(target))).toBe('first version, longer');
      const second = await store.put(target, 'v2');
      expect(text(await store.get(target))).toBe('v2');
      expect((await store.head(target)).size).toBe(2);
      expect(second.etag).not.toBe(first.etag);

      // Same size, different bytes: the ETag must still change.
      const a = await store.put(target, 'AAAA');
      const b = await store.put(target, 'BBBB');
      expect(b.etag).not.toBe(a.etag);
      expect((await store.head(target)).etag).toBe(b.etag);
      expect(text(await store.get(target))).toBe('BBBB');
    });
  });
}
