/**
 * Conditional reads (ReadOptions.ifMatch / versionId): an input object replaced after the run was planned must fail
 * the read with ObjectChangedError, never return the new bytes. Run against the local store and against S3 (s3rver
 * behind a proxy that answers If-Match the way S3 does, since s3rver alone ignores it), with the same cases.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  NotFoundError,
  ObjectChangedError,
  pinObjects,
  readOptionsOf,
  type ObjectStore,
} from '../../src/storage/index.js';
import type { InputRange } from '../../src/runs/types.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import { S3ObjectStore, createS3Client } from '../../src/storage/s3.js';
import { startS3Server, useS3TestEnv, type S3TestServer } from '../support/s3-server.js';
import { startIfMatchProxy, type IfMatchProxy } from './if-match-proxy.js';
import { readAll } from './object-store.contract.js';

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString('utf8');

interface Target {
  readonly store: ObjectStore;
  readonly rootUri: string;
}

function conditionalReadCases(name: string, setup: () => Target): void {
  describe(`conditional reads: ${name}`, () => {
    it('reads whole objects, ranges and streams while the ETag still matches', async () => {
      const { store, rootUri } = setup();
      const uri = `${rootUri}match/data.jsonl`;
      const info = await store.put(uri, 'line one\nline two\n');
      const pinned = { ifMatch: info.etag };
      expect(text(await store.get(uri, undefined, pinned))).toBe('line one\nline two\n');
      expect(text(await store.get(uri, { start: 5, end: 8 }, pinned))).toBe('one');
      expect(text(await readAll(await store.getStream(uri, { start: 9, end: 17 }, pinned)))).toBe('line two');
      expect(text(await readAll(await store.getStream(uri, undefined, pinned)))).toBe('line one\nline two\n');
    });

    it('refuses every kind of read of an object replaced since its ETag was taken, naming it and the ETag', async () => {
      const { store, rootUri } = setup();
      const uri = `${rootUri}changed/data.jsonl`;
      const planned = await store.put(uri, 'planned bytes\n');
      await store.put(uri, 'other bytes, same key\n');
      const pinned = readOptionsOf(planned);
      const expected =
        `${uri} changed since the run was planned (ETag was ${planned.etag}): ` +
        're-run to plan against the current data';
      for (const read of [
        () => store.get(uri, undefined, pinned),
        () => store.get(uri, { start: 0, end: 5 }, pinned),
        () => store.getStream(uri, undefined, pinned),
        () => store.getStream(uri, { start: 2, end: 9 }, pinned),
      ]) {
        const error = await read().then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(error).toBeInstanceOf(ObjectChangedError);
        expect((error as ObjectChangedError).message).toBe(expected);
        expect((error as ObjectChangedError).uri).toBe(uri);
        expect((error as ObjectChangedError).expectedEtag).toBe(planned.etag);
      }
      // Unconditional reads still see the current object.
      expect(text(await store.get(uri))).toBe('other bytes, same key\n');
    });

    it('still reports a deleted object as missing, condition or not', async () => {
      const { store, rootUri } = setup();
      const uri = `${rootUri}gone/data.jsonl`;
      const planned = await store.put(uri, 'x\n');
      await store.delete(uri);
      await expect(store.get(uri, undefined, readOptionsOf(planned))).rejects.toBeInstanceOf(NotFoundError);
      await expect(store.getStream(uri, undefined, readOptionsOf(planned))).rejects.toBeInstanceOf(
        NotFoundError,
      );
    });

    it('pinObjects makes the reads of planned objects conditional and leaves other objects alone', async () => {
      const { store, rootUri } = setup();
      const input = `${rootUri}pinned/input.csv`;
      const other = `${rootUri}pinned/model.onnx`;
      const planned = await store.put(input, 'a,b\n1,2\n');
      await store.put(other, 'model v1');
      // A shard's ranges, as the planner writes them: two ranges of one object.
      const ranges: InputRange[] = [
        { uri: input, etag: planned.etag, size: 8, start: 0, end: 4 },
        { uri: input, etag: planned.etag, size: 8, start: 4, end: 8 },
      ];
      const pinned = pinObjects(store, ranges);
      expect(text(await pinned.get(input, { start: 4, end: 8 }))).toBe('1,2\n');
      await store.put(input, 'a,b\n9,9\n');
      await store.put(other, 'model v2');
      await expect(pinned.get(input, { start: 4, end: 8 })).rejects.toBeInstanceOf(ObjectChangedError);
      await expect(pinned.getStream(input)).rejects.toBeInstanceOf(ObjectChangedError);
      expect(text(await pinned.get(other))).toBe('model v2');
      // Writes and listings go through unchanged.
      expect((await pinned.head(other)).size).toBe(8);
    });
  });
}

describe('LocalObjectStore', () => {
  let dir: string;
  const target = { store: new LocalObjectStore() as ObjectStore, rootUri: '' };
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'batch-infer-if-match-'));
    target.rootUri = `${pathToFileURL(dir).href}/`;
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  conditionalReadCases('LocalObjectStore', () => target);

  it('keeps streaming the file it checked when the object is replaced mid-read', async () => {
    const store = target.store;
    const uri = `${target.rootUri}mid-read/data.bin`;
    const planned = await store.put(uri, 'A'.repeat(3 << 20));
    const stream = await store.getStream(uri, undefined, { ifMatch: planned.etag });
    await store.put(uri, 'B'.repeat(3 << 20));
    const bytes = await readAll(stream);
    expect(bytes.length).toBe(3 << 20);
    expect(bytes.every((b) => b === 0x41)).toBe(true);
  });

  it('compares with the ETag tryHead reports, and ignores versionId (files have no versions)', async () => {
    const store = target.store;
    const uri = `${target.rootUri}version/data.txt`;
    await store.put(uri, 'v');
    const { etag } = await store.head(uri);
    expect(text(await store.get(uri, undefined, { ifMatch: etag, versionId: 'v1' }))).toBe('v');
    await expect(store.get(uri, undefined, { ifMatch: 'not-the-etag' })).rejects.toBeInstanceOf(
      ObjectChangedError,
    );
  });
});

describe('S3ObjectStore', () => {
  let server: S3TestServer;
  let proxy: IfMatchProxy;
  let client: S3Client;
  let restoreEnv: () => void;
  const target = { store: undefined as unknown as ObjectStore, rootUri: 's3://conditional/root/' };

  beforeAll(async () => {
    server = await startS3Server();
    restoreEnv = useS3TestEnv(server.endpoint);
    proxy = await startIfMatchProxy(server.endpoint);
    await server.createBucket('conditional');
    client = createS3Client({ endpoint: proxy.endpoint });
    target.store = new S3ObjectStore(client);
  });
  afterAll(async () => {
    client?.destroy();
    await proxy?.stop();
    await server?.stop();
    restoreEnv?.();
  });

  conditionalReadCases('S3ObjectStore (s3rver behind an If-Match proxy)', () => target);

  it('sends If-Match (quoted) and VersionId on GetObject only when asked, for get and getStream', async () => {
    const sent: {
      name: string;
      input: Record<string, unknown>;
      headers?: Record<string, string>;
      query?: unknown;
    }[] = [];
    const recording = createS3Client({ endpoint: proxy.endpoint });
    recording.middlewareStack.add(
      (next, context) => async (args) => {
        const request = args.request as { headers?: Record<string, string>; query?: unknown };
        sent.push({
          name: context.commandName ?? '?',
          input: args.input as Record<string, unknown>,
          headers: { ...request.headers },
          query: request.query,
        });
        return next(args);
      },
      { step: 'finalizeRequest', name: 'testRequestRecorder' },
    );
    try {
      const store = new S3ObjectStore(recording);
      const uri = 's3://conditional/shape/data.txt';
      const { etag } = await store.put(uri, 'hello');
      sent.length = 0;
      await store.get(uri, { start: 0, end: 2 }, { ifMatch: etag });
      await store.getStream(uri, undefined, { ifMatch: etag });
      await store.get(uri);
      const gets = sent.filter((s) => s.name === 'GetObjectCommand');
      expect(gets).toHaveLength(3);
      expect(gets[0]!.input).toMatchObject({
        Bucket: 'conditional',
        Key: 'shape/data.txt',
        Range: 'bytes=0-1',
      });
      expect(gets[0]!.input.IfMatch).toBe(`"${etag}"`);
      expect(gets[0]!.headers?.['if-match']).toBe(`"${etag}"`);
      expect(gets[1]!.headers?.['if-match']).toBe(`"${etag}"`);
      expect(gets[2]!.input.IfMatch).toBeUndefined();
      expect(gets[2]!.headers?.['if-match']).toBeUndefined();

      // A pinned version goes in the query string (s3rver ignores it: its buckets are not versioned).
      sent.length = 0;
      await store.get(uri, undefined, { ifMatch: etag, versionId: '3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY' });
      expect(sent[0]!.input.VersionId).toBe('3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY');
      expect(sent[0]!.query).toMatchObject({ versionId: '3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY' });
    } finally {
      recording.destroy();
    }
  });

  it('answers 412 only through the proxy: the refusals above were real HTTP 412 responses', () => {
    expect(proxy.seen.conditional).toBeGreaterThan(0);
    expect(proxy.seen.refused).toBeGreaterThan(0);
  });
});
