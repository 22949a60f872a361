/**
 * S3ObjectStore.compose over the S3 REST API as the API reference describes it (CreateMultipartUpload,
 * UploadPartCopy, UploadPart, CompleteMultipartUpload, AbortMultipartUpload, GetObject with Range). s3rver has no
 * UploadPartCopy, so the real S3Client runs against a request handler that answers with the reference's XML shapes
 * and keeps the objects and parts in memory: what the client sends is checked, and the composed bytes are rebuilt
 * from exactly the parts it completed.
 *
 * The part planner is checked on its own with generated inputs.
 */
import { S3Client } from '@aws-sdk/client-s3';
import fc from 'fast-check';
import { Readable } from 'node:stream';
import { describe, expect, it } from '@jest/globals';
import {
  S3_MAX_PART,
  S3_MIN_PART,
  S3ObjectStore,
  planComposeParts,
  type ComposePart,
} from '../../src/storage/s3.js';
import type { ComposeSource } from '../../src/storage/object-store.js';
import { expectBytes, patternBytes } from './object-store.contract.js';

const MiB = 1024 * 1024;

interface WireRequest {
  readonly method: string;
  readonly hostname: string;
  readonly path: string;
  readonly query: Record<string, string | string[] | null>;
  readonly headers: Record<string, string>;
  readonly body?: unknown;
}

interface Sent {
  readonly operation: string;
  readonly key: string;
  readonly query: Record<string, string | string[] | null>;
  readonly headers: Record<string, string>;
}

const XML_NS = 'http://s3.amazonaws.com/doc/2006-03-01/';

/** A bucket in memory behind the S3 REST API, answering with the shapes of the S3 API reference. */
class RecordedS3 {
  readonly objects = new Map<string, Uint8Array>();
  readonly sent: Sent[] = [];
  private readonly uploads = new Map<string, { key: string; parts: Map<number, Uint8Array> }>();
  private nextUpload = 1;

  constructor(
    private readonly bucket: string,
    private readonly options: { copySupported: boolean },
  ) {}

  readonly handler = {
    handle: async (request: WireRequest): Promise<{ response: unknown }> => {
      const key = this.keyOf(request);
      const operation = this.operationOf(request);
      this.sent.push({ operation, key, query: { ...request.query }, headers: { ...request.headers } });
      const body = await bodyBytes(request.body);
      switch (operation) {
        case 'CreateMultipartUpload': {
          const id = `upload-${this.nextUpload++}`;
          this.uploads.set(id, { key, parts: new Map() });
          return xml(
            200,
            `<InitiateMultipartUploadResult xmlns="${XML_NS}"><Bucket>${this.bucket}</Bucket><Key>${key}</Key>` +
              `<UploadId>${id}</UploadId></InitiateMultipartUploadResult>`,
          );
        }
        case 'UploadPartCopy': {
          if (!this.options.copySupported) {
            return xml(
              501,
              '<Error><Code>NotImplemented</Code><Message>A header you provided implies functionality that is ' +
                'not implemented</Message><Header>x-amz-copy-source</Header><RequestId>4442587FB7D0A2F9</RequestId></Error>',
            );
          }
          const source = decodeURIComponent(request.headers['x-amz-copy-source']!);
          const [sourceBucket, ...rest] = source.split('/');
          expect(sourceBucket).toBe(this.bucket);
          const data = this.objects.get(rest.join('/'));
          if (!data) return xml(404, '<Error><Code>NoSuchKey</Code><Message>no such key</Message></Error>');
          const range = /^bytes=(\d+)-(\d+)$/.exec(request.headers['x-amz-copy-source-range'] ?? '');
          expect(range).not.toBeNull();
          const bytes = data.subarray(Number(range![1]), Number(range![2]) + 1);
          this.part(request).set(Number(request.query.partNumber), bytes);
          return xml(
            200,
            `<CopyPartResult><LastModified>2024-05-06T12:00:00.000Z</LastModified>` +
              `<ETag>&quot;copy-${String(request.query.partNumber)}&quot;</ETag></CopyPartResult>`,
          );
        }
        case 'UploadPart': {
          this.part(request).set(Number(request.query.partNumber), body);
          return { response: response(200, { etag: `"part-${String(request.query.partNumber)}"` }) };
        }
        case 'CompleteMultipartUpload': {
          const upload = this.uploads.get(String(request.query.uploadId));
          if (!upload) return xml(404, '<Error><Code>NoSuchUpload</Code><Message>gone</Message></Error>');
          const listed = [...new TextDecoder().decode(body).matchAll(/<PartNumber>(\d+)<\/PartNumber>/g)].map(
            (m) => Number(m[1]),
          );
          const sizes = listed.map((n) => upload.parts.get(n)!.length);
          // The rule S3 enforces at completion: every part but the last is at least 5 MiB.
          if (sizes.slice(0, -1).some((size) => size < S3_MIN_PART)) {
            return xml(400, '<Error><Code>EntityTooSmall</Code><Message>too small</Message></Error>');
          }
          this.objects.set(upload.key, Buffer.concat(listed.map((n) => upload.parts.get(n)!)));
          this.uploads.delete(String(request.query.uploadId));
          return xml(
            200,
            `<CompleteMultipartUploadResult xmlns="${XML_NS}"><Location>https://${this.bucket}.s3.amazonaws.com/${key}</Location>` +
              `<Bucket>${this.bucket}</Bucket><Key>${key}</Key><ETag>&quot;composed-${listed.length}&quot;</ETag>` +
              '</CompleteMultipartUploadResult>',
          );
        }
        case 'AbortMultipartUpload':
          this.uploads.delete(String(request.query.uploadId));
          return { response: response(204, {}) };
        case 'PutObject':
          this.objects.set(key, body);
          return { response: response(200, { etag: `"put-${body.length}"` }) };
        case 'GetObject': {
          const data = this.objects.get(key);
          if (!data) return xml(404, '<Error><Code>NoSuchKey</Code><Message>no such key</Message></Error>');
          const range = /^bytes=(\d+)-(\d+)$/.exec(request.headers.range ?? '');
          if (!range) return { response: response(200, { 'content-length': String(data.length) }, data) };
          const start = Number(range[1]);
          const end = Math.min(Number(range[2]), data.length - 1);
          return {
            response: response(
              206,
              {
                'content-length': String(end - start + 1),
                'content-range': `bytes ${start}-${end}/${data.length}`,
              },
              data.subarray(start, end + 1),
            ),
          };
        }
        default:
          throw new Error(`unexpected request ${request.method} ${request.path}`);
      }
    },
    updateHttpClientConfig: (): void => undefined,
    httpHandlerConfigs: (): Record<string, never> => ({}),
  };

  store(): S3ObjectStore {
    const client = new S3Client({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
      requestHandler: this.handler,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 1,
    });
    return new S3ObjectStore(client);
  }

  operations(): string[] {
    return this.sent.map((s) => s.operation);
  }

  private part(request: WireRequest): Map<number, Uint8Array> {
    const upload = this.uploads.get(String(request.query.uploadId));
    if (!upload) throw new Error(`no upload ${String(request.query.uploadId)}`);
    return upload.parts;
  }

  /** Virtual-hosted style (`bucket.s3.region.amazonaws.com/key`), as the SDK addresses AWS. */
  private keyOf(request: WireRequest): string {
    expect(request.hostname).toBe(`${this.bucket}.s3.eu-west-1.amazonaws.com`);
    return decodeURIComponent(request.path.replace(/^\//, ''));
  }

  private operationOf(request: WireRequest): string {
    const q = request.query;
    if (request.method === 'POST' && 'uploads' in q) return 'CreateMultipartUpload';
    if (request.method === 'POST' && 'uploadId' in q) return 'CompleteMultipartUpload';
    if (request.method === 'DELETE' && 'uploadId' in q) return 'AbortMultipartUpload';
    if (request.method === 'PUT' && 'partNumber' in q) {
      return 'x-amz-copy-source' in request.headers ? 'UploadPartCopy' : 'UploadPart';
    }
    if (request.method === 'PUT') return 'PutObject';
    if (request.method === 'GET') return 'GetObject';
    return `${request.method} ${request.path}`;
  }
}

function response(status: number, headers: Record<string, string>, body?: Uint8Array): unknown {
  return {
    statusCode: status,
    headers: { 'x-amz-request-id': '4442587FB7D0A2F9', ...headers },
    body: Readable.from(body && body.length > 0 ? [Buffer.from(body)] : []),
  };
}

function xml(status: number, text: string): { response: unknown } {
  const body = Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>\n${text}`);
  return {
    response: response(
      status,
      { 'content-type': 'application/xml', 'content-length': String(body.length) },
      body,
    ),
  };
}

async function bodyBytes(body: unknown): Promise<Uint8Array> {
  if (body === undefined || body === null) return new Uint8Array(0);
  if (typeof body === 'string') return Buffer.from(body);
  if (body instanceof Uint8Array) return body;
  if (body instanceof Readable || (typeof body === 'object' && Symbol.asyncIterator in body)) {
    const chunks: Buffer[] = [];
    for await (const chunk of body as AsyncIterable<Uint8Array | string>) chunks.push(Buffer.from(chunk));
    return Buffer.concat(chunks);
  }
  throw new Error(`unexpected body ${typeof body}`);
}

const BUCKET = 'predictions-bucket';
const src = (key: string, start: number, end: number): ComposeSource => ({
  uri: `s3://${BUCKET}/${key}`,
  range: { start, end },
});

describe('S3ObjectStore.compose (UploadPartCopy)', () => {
  it('copies big ranges server-side, joins small ones, and completes the upload in part order', async () => {
    const s3 = new RecordedS3(BUCKET, { copySupported: true });
    const big = patternBytes(6 * MiB + 100, 1);
    const small = patternBytes(1_000, 2);
    const bigger = patternBytes(11 * MiB, 5);
    const header = Buffer.from('a,b\n');
    s3.objects.set('out/run_date=2024-05-06/run id=1/part-00000-0000.csv', Buffer.concat([header, big]));
    s3.objects.set('out/run_date=2024-05-06/run id=1/part-00001-0000.csv', Buffer.concat([header, small]));
    s3.objects.set('out/run_date=2024-05-06/run id=1/part-00002-0000.csv', Buffer.concat([header, bigger]));
    const dir = 'out/run_date=2024-05-06/run id=1';
    const sources = [
      src(`${dir}/part-00000-0000.csv`, 0, 4 + big.length),
      // CSV: later parts without their header line.
      src(`${dir}/part-00001-0000.csv`, 4, 4 + small.length),
      src(`${dir}/part-00002-0000.csv`, 4, 4 + bigger.length),
    ];

    const info = await s3.store().compose(`s3://${BUCKET}/out/_single/run-1.csv`, sources, {
      contentType: 'text/csv',
    });

    const expected = Buffer.concat([header, big, small, bigger]);
    expectBytes(s3.objects.get('out/_single/run-1.csv')!, expected);
    expect(info).toEqual({
      uri: `s3://${BUCKET}/out/_single/run-1.csv`,
      size: expected.length,
      etag: 'composed-3',
    });
    // Parts go up concurrently, so requests are checked per part rather than in arrival order.
    const ops = s3.operations();
    expect(ops[0]).toBe('CreateMultipartUpload');
    expect(ops.at(-1)).toBe('CompleteMultipartUpload');
    expect([...ops].sort()).toEqual(
      [
        'CompleteMultipartUpload',
        'CreateMultipartUpload',
        'GetObject',
        'GetObject',
        'UploadPart',
        'UploadPartCopy',
        'UploadPartCopy',
      ].sort(),
    );
    expect(s3.sent[0]!.headers['content-type']).toBe('text/csv');
    const byPart = (operation: string, part: number): Sent =>
      s3.sent.find((x) => x.operation === operation && x.query.partNumber === String(part))!;
    const copy1 = byPart('UploadPartCopy', 1);
    // x-amz-copy-source is bucket/key with the key URL-encoded (the space), slashes kept.
    expect(copy1.headers['x-amz-copy-source']).toBe(
      `${BUCKET}/out/run_date%3D2024-05-06/run%20id%3D1/part-00000-0000.csv`,
    );
    expect(copy1.headers['x-amz-copy-source-range']).toBe(`bytes=0-${4 + big.length - 1}`);
    expect(copy1.query.uploadId).toBe('upload-1');
    expect(byPart('UploadPart', 2).headers['content-length']).toBe(String(S3_MIN_PART));
    // Part 2 gathers the small range and tops it up to 5 MiB from the start of the third source, which part 3
    // then copies from there on.
    expect(
      s3.sent
        .filter((x) => x.operation === 'GetObject')
        .map((x) => x.headers.range)
        .sort(),
    ).toEqual([`bytes=4-${4 + small.length - 1}`, `bytes=4-${4 + S3_MIN_PART - small.length - 1}`].sort());
    expect(byPart('UploadPartCopy', 3).headers['x-amz-copy-source-range']).toBe(
      `bytes=${4 + S3_MIN_PART - small.length}-${4 + bigger.length - 1}`,
    );
    const complete = s3.sent.at(-1)!;
    expect(complete.query.uploadId).toBe('upload-1');
  });

  it('falls back to a streamed copy when the server answers NotImplemented, aborting the upload', async () => {
    const s3 = new RecordedS3(BUCKET, { copySupported: false });
    const a = patternBytes(5 * MiB + 10, 3);
    const b = patternBytes(5 * MiB + 20, 4);
    s3.objects.set('in/a.jsonl', a);
    s3.objects.set('in/b.jsonl', b);

    const info = await s3
      .store()
      .compose(`s3://${BUCKET}/out/one.jsonl`, [
        src('in/a.jsonl', 0, a.length),
        src('in/b.jsonl', 0, b.length),
      ]);

    expectBytes(s3.objects.get('out/one.jsonl')!, Buffer.concat([a, b]));
    expect(info.size).toBe(a.length + b.length);
    const ops = s3.operations();
    expect(ops[0]).toBe('CreateMultipartUpload');
    const abort = ops.indexOf('AbortMultipartUpload');
    expect(abort).toBeGreaterThan(0);
    expect(s3.sent[abort]!.query.uploadId).toBe('upload-1');
    expect(ops.slice(1, abort).every((op) => op === 'UploadPartCopy')).toBe(true);
    // Then the streamed copy: reads of both sources and an upload of their bytes, never another copy.
    expect(ops.slice(abort + 1)).toContain('GetObject');
    expect(ops.slice(abort + 1)).not.toContain('UploadPartCopy');
  });

  it('writes a small result with one upload and no multipart copy', async () => {
    const s3 = new RecordedS3(BUCKET, { copySupported: true });
    s3.objects.set('in/a.csv', Buffer.from('h\n1\n2\n'));
    const info = await s3
      .store()
      .compose(`s3://${BUCKET}/out/small.csv`, [src('in/a.csv', 0, 6), src('in/a.csv', 2, 6)]);
    expect(Buffer.from(s3.objects.get('out/small.csv')!).toString()).toBe('h\n1\n2\n1\n2\n');
    expect(info.size).toBe(10);
    expect(s3.operations()).toEqual(['GetObject', 'GetObject', 'PutObject']);
  });
});

describe('planComposeParts', () => {
  const flatten = (parts: readonly ComposePart[]): ComposeSource[] =>
    parts.flatMap((p) => (p.kind === 'copy' ? [p.source] : p.sources));

  /** Merges adjacent ranges of the same object, so two cuttings of the same bytes compare equal. */
  const merged = (sources: readonly ComposeSource[]): ComposeSource[] => {
    const out: ComposeSource[] = [];
    for (const s of sources) {
      if (s.range.end <= s.range.start) continue;
      const last = out[out.length - 1];
      if (last && last.uri === s.uri && last.range.end === s.range.start) {
        out[out.length - 1] = { uri: s.uri, range: { start: last.range.start, end: s.range.end } };
      } else out.push(s);
    }
    return out;
  };

  it('covers exactly the sources in order; every part but the last reaches the minimum; copies stay within 5 GiB', () => {
    const source = fc.record({
      object: fc.integer({ min: 0, max: 3 }),
      start: fc.integer({ min: 0, max: 40 }),
      length: fc.oneof(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 400 })),
    });
    fc.assert(
      fc.property(fc.array(source, { maxLength: 25 }), fc.integer({ min: 1, max: 60 }), (raw, min) => {
        const sources = raw.map((r) => src(`o${r.object}`, r.start, r.start + r.length));
        const parts = planComposeParts(sources, min);
        expect(merged(flatten(parts))).toEqual(merged(sources));
        parts.forEach((part, i) => {
          const bytes =
            part.kind === 'copy'
              ? part.source.range.end - part.source.range.start
              : part.sources.reduce((n, s) => n + s.range.end - s.range.start, 0);
          expect(part.bytes).toBe(bytes);
          if (i < parts.length - 1) expect(bytes).toBeGreaterThanOrEqual(min);
          if (part.kind === 'copy') expect(bytes).toBeGreaterThanOrEqual(min);
          expect(bytes).toBeGreaterThan(0);
        });
      }),
    );
  });

  it('cuts a source over 5 GiB into copies of at most 5 GiB and keeps under 10,000 parts for huge totals', () => {
    const huge = planComposeParts([src('huge', 0, 12 * 1024 ** 3)]);
    expect(huge.map((p) => [p.kind, p.bytes])).toEqual([
      ['copy', S3_MAX_PART],
      ['copy', S3_MAX_PART],
      ['copy', 2 * 1024 ** 3],
    ]);
    // 20,000 sources of 1 MiB: 20 GiB in parts of at least 20 GiB / 9,000.
    const many = planComposeParts(Array.from({ length: 20_000 }, (_, i) => src(`p${i}`, 0, MiB)));
    expect(many.length).toBeLessThanOrEqual(9_000);
    expect(many.every((p) => p.kind === 'upload')).toBe(true);
  });
});
