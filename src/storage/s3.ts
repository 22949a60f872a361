/**
 * ObjectStore over S3 (AWS or any S3-compatible endpoint) for `s3://` URIs. PutObject and multipart uploads are
 * atomic on S3 itself, so no temporary keys are needed.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  paginateListObjectsV2,
  type ListObjectsV2CommandInput,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  UploadPartCopyCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Readable } from 'node:stream';
import {
  NotFoundError,
  ObjectChangedError,
  concatenatedSources,
  type ByteRange,
  type ComposeSource,
  type ObjectInfo,
  type ObjectStore,
  type PrefixListing,
  type PutOptions,
  type ReadOptions,
} from './object-store.js';
import { parseUri } from './uri.js';
import { awsHttpOptions } from '../runtime/aws-http.js';

/** Multipart part size: 8 MiB keeps memory bounded (parts x queue) while staying far below the 10,000-part cap. */
export const S3_PART_SIZE = 8 * 1024 * 1024;
/** Parts uploaded concurrently by one `putStream`. */
export const S3_UPLOAD_QUEUE_SIZE = 4;

export interface S3ClientOptions {
  /** S3-compatible endpoint (e.g. a local server); AWS's own endpoint when absent. */
  readonly endpoint?: string;
  readonly region?: string;
  /**
   * Longest a connection may take to open, and a request may go without a byte sent or received, in ms
   * (src/runtime/aws-http.ts). A stalled request fails with TimeoutError, which the SDK retries; a body that stalls
   * mid-stream is read again (S3_BODY_READ_ATTEMPTS).
   * @default AWS_CONNECTION_TIMEOUT_MS and AWS_SOCKET_TIMEOUT_MS
   */
  readonly connectionTimeoutMs?: number;
  readonly socketTimeoutMs?: number;
}

/** The region used when none is configured: the AWS environment variables, then us-east-1. */
export function resolveRegion(region?: string): string {
  return region || process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || 'us-east-1';
}

export function createS3Client(options: S3ClientOptions = {}): S3Client {
  return new S3Client({
    region: resolveRegion(options.region),
    // Custom endpoints rarely resolve `bucket.host` names, so address buckets in the path instead.
    ...(options.endpoint ? { endpoint: options.endpoint, forcePathStyle: true } : {}),
    // The SDK's default sends streamed bodies aws-chunked with trailing checksums; S3-compatible servers that do not
    // decode that framing (s3rver among them) store the framing bytes as object content.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // Adaptive mode backs off client-side on SlowDown/503 as well as retrying, which matters when hundreds of
    // workers hit one prefix at once.
    retryMode: 'adaptive',
    maxAttempts: 8,
    ...awsHttpOptions(options),
  });
}

/**
 * Times `get` sends a GetObject whose answer's body was cut mid-stream (a dropped connection after the headers).
 * The SDK retries failed requests, but not a body that fails while it is read after the request returned, so a
 * one-off cut used to fail the read, and with it a Reconcile or Finalize step and the run (issue 17, found by
 * chaos/s3-faults.ts at 30 % faults).
 */
export const S3_BODY_READ_ATTEMPTS = 4;

/** A body that failed while it was read; `mapped` is the error to report when no attempt is left. */
class BodyCutError extends Error {
  constructor(readonly mapped: Error) {
    super(mapped.message, { cause: mapped });
  }
}

async function readBody(
  body: { transformToByteArray(): Promise<Uint8Array> },
  mapError: (err: unknown) => Error,
): Promise<Uint8Array> {
  try {
    return await body.transformToByteArray();
  } catch (err) {
    throw new BodyCutError(mapError(err));
  }
}

/** An S3 request that failed for a reason other than a missing object. */
export class S3StoreError extends Error {
  override readonly name = 'S3StoreError';
  constructor(
    message: string,
    readonly uri: string,
    /** The S3 error code (e.g. NoSuchBucket, AccessDenied) or the network error code, when known. */
    readonly code: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class S3ObjectStore implements ObjectStore {
  /** Buckets seen to exist, so a HEAD 404 (which carries no error body) is resolved to "no such key" cheaply. */
  private readonly knownBuckets = new Set<string>();

  constructor(private readonly client: S3Client) {}

  async head(uri: string): Promise<ObjectInfo> {
    const info = await this.tryHead(uri);
    if (!info) throw new NotFoundError(uri);
    return info;
  }

  async tryHead(uri: string): Promise<ObjectInfo | undefined> {
    const { bucket, key } = toLocation(uri);
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      this.knownBuckets.add(bucket);
      return {
        uri,
        size: out.ContentLength ?? 0,
        etag: unquote(out.ETag),
        ...(out.VersionId ? { versionId: out.VersionId } : {}),
        ...(out.LastModified ? { lastModified: out.LastModified } : {}),
      };
    } catch (err) {
      if (!isMissing(err)) throw this.error('HeadObject', uri, err);
      // HEAD responses have no body, so a missing bucket looks exactly like a missing key; ask the bucket once.
      await this.assertBucketExists(bucket, uri);
      return undefined;
    }
  }

  async get(uri: string, range?: ByteRange, options?: ReadOptions): Promise<Uint8Array> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.getOnce(uri, range, options);
      } catch (err) {
        if (!(err instanceof BodyCutError) || attempt >= S3_BODY_READ_ATTEMPTS) {
          throw err instanceof BodyCutError ? err.mapped : err;
        }
      }
    }
  }

  private async getOnce(uri: string, range?: ByteRange, options?: ReadOptions): Promise<Uint8Array> {
    const { bucket, key } = toLocation(uri);
    if (range && isEmptyRange(range, uri)) return new Uint8Array(0);
    try {
      const out = await this.client.send(getObjectCommand(bucket, key, range, options));
      if (!out.Body) throw new S3StoreError(`S3 GetObject ${uri} returned no body`, uri, undefined);
      this.knownBuckets.add(bucket);
      const bytes = await readBody(out.Body, (err) => this.error('GetObject', uri, err, options));
      if (!range) return bytes;
      const skip = bytesToSkip(range, out.ContentRange, uri);
      const want = range.end - range.start;
      return skip === 0 && bytes.length <= want ? bytes : bytes.subarray(skip, skip + want);
    } catch (err) {
      if (err instanceof BodyCutError) throw err;
      // A range that starts at or past the end is unsatisfiable on S3; the contract clips it to nothing instead.
      if (range && errorCode(err) === 'InvalidRange') return new Uint8Array(0);
      throw this.error('GetObject', uri, err, options);
    }
  }

  async getStream(uri: string, range?: ByteRange, options?: ReadOptions): Promise<Readable> {
    const { bucket, key } = toLocation(uri);
    if (range && isEmptyRange(range, uri)) return Readable.from([]);
    try {
      const out = await this.client.send(getObjectCommand(bucket, key, range, options));
      this.knownBuckets.add(bucket);
      if (!(out.Body instanceof Readable)) {
        throw new S3StoreError(`S3 GetObject ${uri} returned no readable body`, uri, undefined);
      }
      if (!range) return out.Body;
      const body = out.Body;
      let skip: number;
      try {
        skip = bytesToSkip(range, out.ContentRange, uri);
      } catch (err) {
        // Release the connection rather than leave an unread response holding it.
        body.destroy();
        throw err;
      }
      const want = range.end - range.start;
      if (skip === 0 && out.ContentLength !== undefined && out.ContentLength <= want) return body;
      return Readable.from(sliceStream(body, skip, want));
    } catch (err) {
      if (range && errorCode(err) === 'InvalidRange') return Readable.from([]);
      throw this.error('GetObject', uri, err, options);
    }
  }

  async put(uri: string, body: Uint8Array | string, options?: PutOptions): Promise<ObjectInfo> {
    const { bucket, key } = toLocation(uri);
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    try {
      const out = await this.client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: bytes,
          ContentLength: bytes.byteLength,
          ContentType: options?.contentType,
        }),
      );
      this.knownBuckets.add(bucket);
      if (!out.ETag) return await this.head(uri);
      return {
        uri,
        size: bytes.byteLength,
        etag: unquote(out.ETag),
        ...(out.VersionId ? { versionId: out.VersionId } : {}),
      };
    } catch (err) {
      throw this.error('PutObject', uri, err);
    }
  }

  async putStream(
    uri: string,
    body: Readable | AsyncIterable<Uint8Array>,
    options?: PutOptions,
  ): Promise<ObjectInfo> {
    const { bucket, key } = toLocation(uri);
    let size = 0;
    let bodyError: unknown;
    // Counting here gives the size without a HEAD afterwards; remembering the body's own failure matters because
    // the Upload reports the abort's outcome, which on some servers is an unrelated error.
    const counted = Readable.from(
      (async function* () {
        try {
          for await (const chunk of body as AsyncIterable<Uint8Array | string>) {
            const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
            size += bytes.byteLength;
            yield bytes;
          }
        } catch (err) {
          bodyError = err;
          throw err;
        }
      })(),
      { objectMode: false },
    );
    const upload = new Upload({
      client: this.client,
      params: { Bucket: bucket, Key: key, Body: counted, ContentType: options?.contentType },
      partSize: S3_PART_SIZE,
      queueSize: S3_UPLOAD_QUEUE_SIZE,
      leavePartsOnError: false,
    });
    try {
      const out = await upload.done();
      this.knownBuckets.add(bucket);
      if (!out.ETag) return await this.head(uri);
      return {
        uri,
        size,
        etag: unquote(out.ETag),
        ...(out.VersionId ? { versionId: out.VersionId } : {}),
      };
    } catch (err) {
      counted.destroy();
      if (body instanceof Readable) body.destroy();
      if (bodyError !== undefined) {
        throw new S3StoreError(
          `Upload to ${uri} failed: the body stream failed: ${describe(bodyError)}`,
          uri,
          undefined,
          { cause: bodyError },
        );
      }
      throw this.error('Upload', uri, err);
    }
  }

  async *list(prefixUri: string): AsyncIterable<ObjectInfo> {
    const { bucket, key: prefix } = toLocation(prefixUri);
    for await (const page of this.pages(prefixUri, { Bucket: bucket, Prefix: prefix || undefined })) {
      const infos: { info: ObjectInfo; sortKey: Buffer }[] = [];
      for (const obj of page.Contents ?? []) {
        if (obj.Key === undefined) continue;
        infos.push({ info: objectInfoOf(bucket, obj), sortKey: Buffer.from(obj.Key, 'utf8') });
      }
      // AWS returns each page in UTF-8 byte order already; some S3-compatible servers do not (s3rver walks its
      // directories, so "a/b" comes before "a.json"), and callers rely on the order.
      infos.sort((a, b) => Buffer.compare(a.sortKey, b.sortKey));
      for (const { info } of infos) yield info;
    }
  }

  async listPrefixes(prefixUri: string): Promise<PrefixListing> {
    const { bucket, key: prefix } = toLocation(prefixUri);
    const prefixes: { uri: string; sortKey: Buffer }[] = [];
    const objects: { info: ObjectInfo; sortKey: Buffer }[] = [];
    const input = { Bucket: bucket, Prefix: prefix || undefined, Delimiter: '/' };
    for await (const page of this.pages(prefixUri, input)) {
      for (const common of page.CommonPrefixes ?? []) {
        if (common.Prefix === undefined) continue;
        prefixes.push({
          uri: `s3://${bucket}/${common.Prefix}`,
          sortKey: Buffer.from(common.Prefix, 'utf8'),
        });
      }
      for (const obj of page.Contents ?? []) {
        if (obj.Key === undefined) continue;
        objects.push({ info: objectInfoOf(bucket, obj), sortKey: Buffer.from(obj.Key, 'utf8') });
      }
    }
    // As in `list`: byte order, whatever order the server used.
    prefixes.sort((a, b) => Buffer.compare(a.sortKey, b.sortKey));
    objects.sort((a, b) => Buffer.compare(a.sortKey, b.sortKey));
    return { prefixes: prefixes.map((p) => p.uri), objects: objects.map((o) => o.info) };
  }

  /**
   * The pages of a listing, through the SDK's paginator (it follows NextContinuationToken). A failed page is an
   * S3StoreError naming the prefix.
   */
  private async *pages(
    prefixUri: string,
    input: ListObjectsV2CommandInput,
  ): AsyncGenerator<ListObjectsV2CommandOutput> {
    const pages = paginateListObjectsV2({ client: this.client }, input);
    for (;;) {
      let next: IteratorResult<ListObjectsV2CommandOutput, unknown>;
      try {
        next = await pages.next();
      } catch (err) {
        throw this.error('ListObjectsV2', prefixUri, err);
      }
      if (next.done) return;
      if (input.Bucket !== undefined) this.knownBuckets.add(input.Bucket);
      yield next.value;
    }
  }

  /**
   * A multipart upload whose parts are copied server-side (UploadPartCopy) where a source range is large enough to
   * be a part of its own (S3 parts are at least 5 MiB, except the last), and uploaded from memory where small
   * sources must be joined to reach that size. Servers without UploadPartCopy (NotImplemented, or an answer without
   * a CopyPartResult) get a streamed copy instead, so the result is the same everywhere.
   */
  async compose(uri: string, sources: readonly ComposeSource[], options?: PutOptions): Promise<ObjectInfo> {
    const { bucket, key } = toLocation(uri);
    if (sources.some((s) => !s.uri.startsWith('s3://'))) {
      return this.putStream(uri, concatenatedSources(this, sources), options);
    }
    const parts = planComposeParts(sources);
    if (parts.length <= 1 && parts.every((p) => p.kind === 'upload')) {
      // Too small for a multipart upload to help: one PUT of the joined bytes.
      return this.putStream(uri, concatenatedSources(this, sources), options);
    }
    let uploadId: string | undefined;
    try {
      const created = await this.client.send(
        new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: options?.contentType }),
      );
      uploadId = created.UploadId;
      if (!uploadId)
        throw new S3StoreError(`S3 CreateMultipartUpload ${uri} returned no UploadId`, uri, undefined);
      const id = uploadId;
      const completed = new Array<CompletedPart>(parts.length);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < parts.length) {
          const index = next++;
          completed[index] = await this.composePart(bucket, key, id, index + 1, parts[index]!);
        }
      };
      await Promise.all(Array.from({ length: Math.min(S3_UPLOAD_QUEUE_SIZE, parts.length) }, worker));
      const out = await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: key,
          UploadId: id,
          MultipartUpload: { Parts: completed },
        }),
      );
      this.knownBuckets.add(bucket);
      const size = parts.reduce((n, p) => n + p.bytes, 0);
      if (!out.ETag) return await this.head(uri);
      return { uri, size, etag: unquote(out.ETag), ...(out.VersionId ? { versionId: out.VersionId } : {}) };
    } catch (err) {
      if (uploadId !== undefined) {
        await this.client
          .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }))
          .catch(() => undefined);
      }
      if (err instanceof CopyNotSupported || errorCode(err) === 'NotImplemented') {
        return this.putStream(uri, concatenatedSources(this, sources), options);
      }
      throw this.error('multipart copy to', uri, err);
    }
  }

  private async composePart(
    bucket: string,
    key: string,
    uploadId: string,
    partNumber: number,
    part: ComposePart,
  ): Promise<CompletedPart> {
    if (part.kind === 'copy') {
      const source = toLocation(part.source.uri);
      const out = await this.client.send(
        new UploadPartCopyCommand({
          Bucket: bucket,
          Key: key,
          UploadId: uploadId,
          PartNumber: partNumber,
          // CopySource is "bucket/key" with the key URL-encoded (slashes kept), per the UploadPartCopy reference.
          CopySource: `${source.bucket}/${encodeKey(source.key)}`,
          CopySourceRange: rangeHeader(part.source.range),
        }),
      );
      const etag = out.CopyPartResult?.ETag;
      // A server that ignores x-amz-copy-source stores an empty part and answers like UploadPart: no result.
      if (!etag) throw new CopyNotSupported();
      return { PartNumber: partNumber, ETag: etag };
    }
    const chunks: Uint8Array[] = [];
    for await (const chunk of concatenatedSources(this, part.sources)) chunks.push(chunk);
    const body = Buffer.concat(chunks);
    const out = await this.client.send(
      new UploadPartCommand({
        Bucket: bucket,
        Key: key,
        UploadId: uploadId,
        PartNumber: partNumber,
        Body: body,
        ContentLength: body.byteLength,
      }),
    );
    if (!out.ETag)
      throw new S3StoreError(`S3 UploadPart ${partNumber} of ${key} returned no ETag`, key, undefined);
    return { PartNumber: partNumber, ETag: out.ETag };
  }

  /**
   * CopyObject (server-side, up to 5 GiB; larger objects go through `compose`'s UploadPartCopy parts), then
   * DeleteObject of the source. The copy's ETag may differ from the source's (a multipart source's ETag is not an
   * MD5 of its bytes), so callers identify a moved object by its key and size.
   */
  async move(from: string, to: string): Promise<ObjectInfo> {
    const source = toLocation(from);
    const target = toLocation(to);
    const info = await this.head(from);
    let moved: ObjectInfo;
    if (info.size > S3_MAX_PART) {
      moved = await this.compose(to, [{ uri: from, range: { start: 0, end: info.size } }]);
    } else {
      try {
        const out = await this.client.send(
          new CopyObjectCommand({
            Bucket: target.bucket,
            Key: target.key,
            // CopySource is "bucket/key" with the key URL-encoded (slashes kept), per the CopyObject reference.
            CopySource: copySourceOf(source.bucket, source.key),
          }),
        );
        const etag = out.CopyObjectResult?.ETag;
        moved = etag
          ? {
              uri: to,
              size: info.size,
              etag: unquote(etag),
              ...(out.VersionId ? { versionId: out.VersionId } : {}),
            }
          : await this.head(to);
      } catch (err) {
        throw this.error('CopyObject', to, err);
      }
    }
    await this.delete(from);
    return moved;
  }

  async delete(uri: string): Promise<void> {
    const { bucket, key } = toLocation(uri);
    try {
      // S3 answers 204 whether or not the key existed, which is the contract; a missing bucket still fails.
      await this.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    } catch (err) {
      if (isMissing(err) && errorCode(err) !== 'NoSuchBucket') return;
      throw this.error('DeleteObject', uri, err);
    }
  }

  private async assertBucketExists(bucket: string, uri: string): Promise<void> {
    if (this.knownBuckets.has(bucket)) return;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: bucket }));
    } catch (err) {
      if (isMissing(err)) throw noSuchBucket(bucket, 'HeadObject', uri, err);
      // Without s3:ListBucket, HeadBucket may be refused; the object is then simply reported missing.
      return;
    }
    this.knownBuckets.add(bucket);
  }

  private error(operation: string, uri: string, err: unknown, read?: ReadOptions): Error {
    if (err instanceof NotFoundError || err instanceof S3StoreError || err instanceof ObjectChangedError) {
      return err;
    }
    const code = errorCode(err);
    // 412 answers If-Match: the object is no longer the one the caller pinned.
    if (read?.ifMatch !== undefined && (code === 'PreconditionFailed' || httpStatus(err) === 412)) {
      return new ObjectChangedError(uri, read.ifMatch);
    }
    if (code === 'NoSuchBucket') return noSuchBucket(toLocation(uri).bucket, operation, uri, err);
    if (isMissing(err)) return new NotFoundError(uri);
    const status = httpStatus(err);
    const statusText = status === undefined ? '' : ` (HTTP ${status})`;
    return new S3StoreError(`S3 ${operation} ${uri} failed${statusText}: ${describe(err)}`, uri, code, {
      cause: err,
    });
  }
}

/**
 * GetObject with the caller's conditions: If-Match with the ETag quoted (an entity tag is a quoted string in HTTP;
 * S3 accepts it either way) and the VersionId when one is pinned.
 */
export function getObjectCommand(
  bucket: string,
  key: string,
  range: ByteRange | undefined,
  options: ReadOptions | undefined,
): GetObjectCommand {
  return new GetObjectCommand({
    Bucket: bucket,
    Key: key,
    ...(range ? { Range: rangeHeader(range) } : {}),
    ...(options?.ifMatch !== undefined ? { IfMatch: quoteEtag(options.ifMatch) } : {}),
    ...(options?.versionId !== undefined ? { VersionId: options.versionId } : {}),
  });
}

function quoteEtag(etag: string): string {
  return /^(W\/)?".*"$/.test(etag) ? etag : `"${etag}"`;
}

function httpStatus(err: unknown): number | undefined {
  if (err instanceof S3ServiceException) return err.$metadata.httpStatusCode;
  return undefined;
}

/** An object as ListObjectsV2 lists it: no VersionId (the listing does not return one; see ObjectInfo.versionId). */
function objectInfoOf(
  bucket: string,
  obj: { Key?: string; Size?: number; ETag?: string; LastModified?: Date },
): ObjectInfo {
  return {
    uri: `s3://${bucket}/${obj.Key ?? ''}`,
    size: obj.Size ?? 0,
    etag: unquote(obj.ETag),
    ...(obj.LastModified ? { lastModified: obj.LastModified } : {}),
  };
}

/** The smallest part S3 accepts in a multipart upload, except the last one. */
export const S3_MIN_PART = 5 * 1024 * 1024;
/** The largest part (and the largest range one UploadPartCopy may copy). */
export const S3_MAX_PART = 5 * 1024 * 1024 * 1024;
/** S3 allows 10,000 parts; parts are sized to stay well below it. */
const COMPOSE_MAX_PARTS = 9_000;

/** One part of a composed object: a server-side copy of one range, or small ranges joined and uploaded. */
export type ComposePart =
  | { readonly kind: 'copy'; readonly source: ComposeSource; readonly bytes: number }
  | { readonly kind: 'upload'; readonly sources: readonly ComposeSource[]; readonly bytes: number };

/**
 * Cuts the concatenation of `sources` into multipart-upload parts. Every part but the last is at least `minPart`
 * (5 MiB, or more when that would take over 9,000 parts): a range of at least that size is copied server-side (in
 * pieces of at most 5 GiB), and smaller ranges are gathered, topped up from the start of the next range when
 * needed, and uploaded. Pure, so the cut can be tested without a server.
 */
export function planComposeParts(sources: readonly ComposeSource[], minPart?: number): ComposePart[] {
  const total = sources.reduce((n, s) => n + Math.max(0, s.range.end - s.range.start), 0);
  const min = minPart ?? Math.max(S3_MIN_PART, Math.ceil(total / COMPOSE_MAX_PARTS));
  const parts: ComposePart[] = [];
  let pending: ComposeSource[] = [];
  let pendingBytes = 0;
  const flush = (): void => {
    if (pendingBytes > 0) parts.push({ kind: 'upload', sources: pending, bytes: pendingBytes });
    pending = [];
    pendingBytes = 0;
  };
  for (const source of sources) {
    let pos = source.range.start;
    const end = source.range.end;
    while (pos < end) {
      const remaining = end - pos;
      if (pendingBytes > 0) {
        // A gathered part in progress must reach the minimum before anything is copied after it.
        const take = Math.min(min - pendingBytes, remaining);
        pending.push({ uri: source.uri, range: { start: pos, end: pos + take } });
        pendingBytes += take;
        pos += take;
        if (pendingBytes >= min) flush();
      } else if (remaining >= min) {
        const bytes = Math.min(remaining, S3_MAX_PART);
        parts.push({
          kind: 'copy',
          source: { uri: source.uri, range: { start: pos, end: pos + bytes } },
          bytes,
        });
        pos += bytes;
      } else {
        pending.push({ uri: source.uri, range: { start: pos, end } });
        pendingBytes += remaining;
        pos = end;
        if (pendingBytes >= min) flush();
      }
    }
  }
  flush();
  return parts;
}

/** The server does not copy parts (it ignored or refused UploadPartCopy). */
class CopyNotSupported extends Error {
  override readonly name = 'CopyNotSupported';
}

/** A key as it goes into x-amz-copy-source: every character URL-encoded except the slashes. */
function encodeKey(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}

/**
 * CopyObject's x-amz-copy-source: like `encodeKey`, with `=` left as it is. A `=` is legal unencoded in a URL path
 * (S3 reads it either way), and s3rver decodes the header with decodeURI, which leaves `%3D` as it is, so Hive keys
 * (`run_id=…`) would name no object there.
 */
function copySourceOf(bucket: string, key: string): string {
  return `${bucket}/${encodeKey(key).replace(/%3D/g, '=')}`;
}

function toLocation(uri: string): { bucket: string; key: string } {
  const parsed = parseUri(uri);
  if (parsed.scheme !== 's3') throw new Error(`S3ObjectStore cannot handle ${uri}`);
  return { bucket: parsed.bucket, key: parsed.key };
}

function isEmptyRange(range: ByteRange, uri: string): boolean {
  if (!Number.isSafeInteger(range.start) || !Number.isSafeInteger(range.end) || range.start < 0) {
    throw new RangeError(`Invalid byte range ${range.start}-${range.end} for ${uri}`);
  }
  return range.end <= range.start;
}

function rangeHeader(range: ByteRange): string {
  return `bytes=${range.start}-${range.end - 1}`;
}

/**
 * How many leading bytes of a ranged GET's body precede the requested range. Servers may answer with more than was
 * asked for (s3rver reads "bytes=0-0" as the whole object) or ignore the range; callers trim to the request.
 */
function bytesToSkip(range: ByteRange, contentRange: string | undefined, uri: string): number {
  // No Content-Range: the server sent the whole object from byte 0.
  const match = contentRange === undefined ? ['', '0'] : /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(contentRange);
  const first = match ? Number(match[1]) : Number.NaN;
  if (!(first <= range.start)) {
    throw new S3StoreError(
      `S3 GetObject ${uri}: asked for bytes ${range.start}-${range.end - 1}, got Content-Range "${contentRange}"`,
      uri,
      undefined,
    );
  }
  return range.start - first;
}

async function* sliceStream(source: Readable, skip: number, take: number): AsyncIterable<Buffer> {
  let toSkip = skip;
  let left = take;
  for await (const raw of source as AsyncIterable<Buffer>) {
    let chunk = raw;
    if (toSkip > 0) {
      const dropped = Math.min(toSkip, chunk.length);
      chunk = chunk.subarray(dropped);
      toSkip -= dropped;
    }
    if (chunk.length === 0) continue;
    const kept = chunk.length > left ? chunk.subarray(0, left) : chunk;
    left -= kept.length;
    yield kept;
    // Returning ends the for-await, which destroys the source instead of downloading the rest.
    if (left === 0) return;
  }
}

function unquote(etag: string | undefined): string {
  return (etag ?? '').replace(/^(W\/)?"(.*)"$/, '$2');
}

function errorCode(err: unknown): string | undefined {
  if (err instanceof S3ServiceException) return err.name;
  if (err instanceof Error) return (err as NodeJS.ErrnoException).code ?? err.name;
  return undefined;
}

/** A 404 of any kind: NoSuchKey from GET, a bodiless NotFound from HEAD, or NoSuchBucket. */
function isMissing(err: unknown): boolean {
  if (!(err instanceof S3ServiceException)) return false;
  return (
    err.name === 'NoSuchKey' ||
    err.name === 'NotFound' ||
    err.name === 'NoSuchBucket' ||
    err.$metadata.httpStatusCode === 404
  );
}

function noSuchBucket(bucket: string, operation: string, uri: string, cause: unknown): S3StoreError {
  return new S3StoreError(`S3 bucket "${bucket}" does not exist (${operation} ${uri})`, uri, 'NoSuchBucket', {
    cause,
  });
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return `${err.name}${code && code !== err.name ? ` ${code}` : ''}: ${err.message}`;
  }
  return String(err);
}
