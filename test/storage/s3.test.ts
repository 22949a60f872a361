import type { S3Client } from '@aws-sdk/client-s3';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import { Readable } from 'node:stream';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { NotFoundError, UriError, createObjectStore, type ObjectStore } from '../../src/storage/index.js';
import { S3ObjectStore, S3StoreError, S3_PART_SIZE, createS3Client } from '../../src/storage/s3.js';
import { startS3Server, useS3TestEnv, type S3TestServer } from '../support/s3-server.js';
import {
  collect,
  expectBytes,
  objectStoreContract,
  patternBytes,
  readAll,
  sha256,
} from './object-store.contract.js';

let server: S3TestServer;
let restoreEnv: () => void;
let client: S3Client;
let bucketCount = 0;

async function freshBucket(): Promise<string> {
  const bucket = `bucket-${++bucketCount}`;
  await server.createBucket(bucket);
  return bucket;
}

beforeAll(async () => {
  server = await startS3Server();
  restoreEnv = useS3TestEnv(server.endpoint);
  client = createS3Client({ endpoint: server.endpoint });
});

afterAll(async () => {
  client?.destroy();
  await server?.stop();
  restoreEnv?.();
});

objectStoreContract('S3ObjectStore (s3rver)', async () => {
  const bucket = await freshBucket();
  return {
    store: new S3ObjectStore(client),
    // Below a key prefix, not at the bucket root, so prefix handling is exercised too.
    rootUri: `s3://${bucket}/root/`,
    quirks: { shallowCommonPrefixes: true },
    // The server's data directory goes with it in afterAll.
    cleanup: async () => {},
  };
});

interface SentCommand {
  readonly name: string;
  readonly input: Record<string, unknown>;
}

/** Observes the commands a real client sends (nothing is stubbed: every request still reaches the server). */
function recordCommands(target: S3Client): SentCommand[] {
  const sent: SentCommand[] = [];
  target.middlewareStack.add(
    (next, context) => async (args) => {
      // A copy: the SDK's paginators send every page with the same input object, setting its token in place.
      sent.push({ name: context.commandName ?? '?', input: { ...(args.input as Record<string, unknown>) } });
      return next(args);
    },
    { step: 'initialize', name: 'testCommandRecorder' },
  );
  return sent;
}

describe('S3ObjectStore on s3rver', () => {
  it('lists 2,500 keys across ListObjectsV2 pages, all in order', async () => {
    const bucket = await freshBucket();
    const keys = Array.from({ length: 2500 }, (_, i) => `many/${String(i).padStart(5, '0')}.json`);
    // Written in a scrambled order so the listing order has to come from the store, not from insertion.
    const scrambled = keys.map((k, i) => ({ k, r: (i * 7919) % keys.length })).sort((a, b) => a.r - b.r);
    await server.putObjects(bucket, [
      ...scrambled.map(({ k }) => [k, k] as const),
      ['other/outside.json', 'x'],
    ]);

    const recorded = createS3Client({ endpoint: server.endpoint });
    const sent = recordCommands(recorded);
    const listed = await collect(new S3ObjectStore(recorded).list(`s3://${bucket}/many/`));
    recorded.destroy();
    expect(listed.length).toBe(keys.length);
    expect(listed.map((i) => i.uri)).toEqual(keys.map((k) => `s3://${bucket}/${k}`));
    expect(listed.every((info, i) => info.size === Buffer.byteLength(keys[i]!))).toBe(true);

    const pages = sent.filter((c) => c.name === 'ListObjectsV2Command');
    expect(pages.length).toBe(3);
    expect(pages[0]!.input.ContinuationToken).toBeUndefined();
    expect(typeof pages[1]!.input.ContinuationToken).toBe('string');
    expect(typeof pages[2]!.input.ContinuationToken).toBe('string');
  });

  it('lists one level with Delimiter "/" across pages, folders and objects apart', async () => {
    const bucket = await freshBucket();
    // More folders than one page holds (1,000 keys and prefixes per page on S3).
    const folders = Array.from({ length: 1_100 }, (_, i) => `lvl/d=${String(i).padStart(4, '0')}/`);
    await server.putObjects(bucket, [
      ...folders.map((f) => [`${f}part-0.jsonl`, f] as const),
      ['lvl/top.jsonl', 'top'],
      ['lvl-other/x.jsonl', 'x'],
    ]);
    const recorded = createS3Client({ endpoint: server.endpoint });
    const sent = recordCommands(recorded);
    const level = await new S3ObjectStore(recorded).listPrefixes(`s3://${bucket}/lvl/`);
    recorded.destroy();
    expect(level.prefixes).toEqual(folders.map((f) => `s3://${bucket}/${f}`));
    expect(level.objects.map((o) => [o.uri, o.size])).toEqual([[`s3://${bucket}/lvl/top.jsonl`, 3]]);
    const requests = sent.filter((c) => c.name === 'ListObjectsV2Command');
    expect(requests.every((c) => c.input.Delimiter === '/' && c.input.Prefix === 'lvl/')).toBe(true);
  });

  it('composes large objects on a server without UploadPartCopy by a streamed copy', async () => {
    const bucket = await freshBucket();
    const recorded = createS3Client({ endpoint: server.endpoint });
    const sent = recordCommands(recorded);
    const store = new S3ObjectStore(recorded);
    const a = patternBytes(5 * 1024 * 1024 + 3, 31);
    const b = patternBytes(5 * 1024 * 1024 + 5, 32);
    await store.put(`s3://${bucket}/c/a.bin`, a);
    await store.put(`s3://${bucket}/c/b.bin`, b);

    const info = await store.compose(`s3://${bucket}/c/joined.bin`, [
      { uri: `s3://${bucket}/c/a.bin`, range: { start: 0, end: a.length } },
      { uri: `s3://${bucket}/c/b.bin`, range: { start: 1, end: b.length } },
    ]);

    const expected = Buffer.concat([a, b.subarray(1)]);
    expect(info.size).toBe(expected.length);
    expect(sha256(await store.get(`s3://${bucket}/c/joined.bin`))).toBe(sha256(expected));
    const names = sent.map((c) => c.name);
    // s3rver answers UploadPartCopy with NotImplemented: the upload is aborted and the bytes are copied through.
    expect(names).toContain('UploadPartCopyCommand');
    expect(names).toContain('AbortMultipartUploadCommand');
    recorded.destroy();
  });

  it('streams large bodies as multipart uploads of 8 MiB parts', async () => {
    const bucket = await freshBucket();
    const recorded = createS3Client({ endpoint: server.endpoint });
    const sent = recordCommands(recorded);
    const store = new S3ObjectStore(recorded);
    const body = patternBytes(2 * S3_PART_SIZE + 1, 9);
    const target = `s3://${bucket}/multi/part.bin`;

    const info = await store.putStream(
      target,
      Readable.from([body.subarray(0, 1_000_000), body.subarray(1_000_000)]),
    );
    expect(info.size).toBe(body.length);
    expect(S3_PART_SIZE).toBeGreaterThanOrEqual(8 * 1024 * 1024);
    const names = sent.map((c) => c.name);
    expect(names[0]).toBe('CreateMultipartUploadCommand');
    expect(names.at(-1)).toBe('CompleteMultipartUploadCommand');
    const partSizes = sent
      .filter((c) => c.name === 'UploadPartCommand')
      .map((c) => [c.input.PartNumber, (c.input.Body as Uint8Array).byteLength]);
    expect(partSizes.sort((a, b) => Number(a[0]) - Number(b[0]))).toEqual([
      [1, S3_PART_SIZE],
      [2, S3_PART_SIZE],
      [3, 1],
    ]);
    expect(sha256(await store.get(target))).toBe(sha256(body));
    recorded.destroy();
  });

  it('sends inclusive Range headers and skips the request for an empty range', async () => {
    const bucket = await freshBucket();
    const recorded = createS3Client({ endpoint: server.endpoint });
    const sent = recordCommands(recorded);
    const store = new S3ObjectStore(recorded);
    const target = `s3://${bucket}/r.bin`;
    const body = patternBytes(100, 2);
    await store.put(target, body);

    sent.length = 0;
    expectBytes(await store.get(target, { start: 10, end: 20 }), body.subarray(10, 20));
    expectBytes(await readAll(await store.getStream(target, { start: 95, end: 100 })), body.subarray(95));
    expect((await store.get(target, { start: 50, end: 50 })).length).toBe(0);
    expect((await readAll(await store.getStream(target, { start: 7, end: 3 }))).length).toBe(0);
    expect(sent.map((c) => [c.name, c.input.Range])).toEqual([
      ['GetObjectCommand', 'bytes=10-19'],
      ['GetObjectCommand', 'bytes=95-99'],
    ]);
    await expect(store.get(target, { start: -1, end: 3 })).rejects.toThrow(RangeError);
    recorded.destroy();
  });

  it('routes file:// and s3:// URIs through one RoutingObjectStore', async () => {
    const bucket = await freshBucket();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'batch-infer-routing-'));
    try {
      // No endpoint passed: it comes from BATCH_INFER_S3_ENDPOINT, set by useS3TestEnv.
      const store: ObjectStore = createObjectStore();
      const fileUri = pathToFileURL(path.join(dir, 'in', 'local.txt')).href;
      const s3Uri = `s3://${bucket}/out/remote.txt`;
      await store.put(fileUri, 'on disk');
      await store.put(s3Uri, 'in the bucket');

      expect(await readFile(path.join(dir, 'in', 'local.txt'), 'utf8')).toBe('on disk');
      const direct = new S3ObjectStore(client);
      expect(Buffer.from(await direct.get(s3Uri)).toString()).toBe('in the bucket');
      expect(Buffer.from(await store.get(fileUri)).toString()).toBe('on disk');
      expect(Buffer.from(await store.get(s3Uri)).toString()).toBe('in the bucket');
      expect((await collect(store.list(`s3://${bucket}/out/`))).map((i) => i.uri)).toEqual([s3Uri]);
      expect((await collect(store.list(pathToFileURL(dir).href + '/'))).map((i) => i.uri)).toEqual([fileUri]);
      await expect(store.head(`s3://${bucket}/out/missing.txt`)).rejects.toBeInstanceOf(NotFoundError);
      await expect(store.get('gs://bucket/key')).rejects.toBeInstanceOf(UriError);

      // compose across schemes copies the bytes through; one level of each scheme is listed by its own store.
      const mixed = await store.compose!(`s3://${bucket}/out/mixed.txt`, [
        { uri: fileUri, range: { start: 0, end: 7 } },
        { uri: s3Uri, range: { start: 2, end: 13 } },
      ]);
      expect(Buffer.from(await direct.get(mixed.uri)).toString()).toBe('on disk the bucket');
      expect((await store.listPrefixes!(`s3://${bucket}/`)).prefixes).toEqual([`s3://${bucket}/out/`]);

      // An explicit endpoint wins over the environment.
      const explicit = createObjectStore({ s3Endpoint: server.endpoint, region: 'eu-west-1' });
      expect(Buffer.from(await explicit.get(s3Uri)).toString()).toBe('in the bucket');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reports a bucket that does not exist clearly, never as a missing object', async () => {
    const store = new S3ObjectStore(client);
    const uri = 's3://no-such-bucket-here/some/key.json';
    const attempts: [string, () => Promise<unknown>][] = [
      ['head', () => store.head(uri)],
      ['tryHead', () => store.tryHead(uri)],
      ['get', () => store.get(uri)],
      ['getStream', () => store.getStream(uri)],
      ['put', () => store.put(uri, 'x')],
      ['putStream', () => store.putStream(uri, Readable.from([new Uint8Array(10)]))],
      ['list', () => collect(store.list('s3://no-such-bucket-here/some/'))],
      ['delete', () => store.delete(uri)],
    ];
    for (const [name, attempt] of attempts) {
      const err: unknown = await attempt().then(
        () => undefined,
        (e: unknown) => e,
      );
      expectIn(err, name).toBeInstanceOf(S3StoreError);
      expectIn((err as S3StoreError).code, name).toBe('NoSuchBucket');
      expectIn((err as Error).message, name).toMatch(/bucket "no-such-bucket-here" does not exist/);
      expectIn((err as Error).message, name).toContain('s3://no-such-bucket-here/some/');
    }
  });

  it('configures the client for S3-compatible endpoints, checksums and retries', async () => {
    const configured = createS3Client({ endpoint: server.endpoint, region: 'eu-central-1' });
    expect(configured.config.forcePathStyle).toBe(true);
    expect(await configured.config.region()).toBe('eu-central-1');
    expect(await configured.config.requestChecksumCalculation()).toBe('WHEN_REQUIRED');
    expect(await configured.config.responseChecksumValidation()).toBe('WHEN_REQUIRED');
    expect(await configured.config.maxAttempts()).toBe(8);
    expect(configured.config.retryMode).toBe('adaptive');
    configured.destroy();

    const aws = createS3Client({});
    expect(aws.config.forcePathStyle).not.toBe(true);
    expect(await aws.config.region()).toBe('us-east-1');
    aws.destroy();
  });
});
