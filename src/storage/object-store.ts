/**
 * The one way runtime code reads and writes data. Implementations: local filesystem (`file://`) and S3 (`s3://`,
 * AWS or any S3-compatible endpoint). Keys are always full URIs, so one store can be handed any location of its
 * scheme.
 */
import type { Readable } from 'node:stream';

export interface ObjectInfo {
  /** Full URI of the object. */
  readonly uri: string;
  readonly size: number;
  /** Entity tag: S3's ETag without quotes; for files a digest of size and modification time. */
  readonly etag: string;
  /** S3 object version, when the bucket is versioned. */
  readonly versionId?: string;
  readonly lastModified?: Date;
}

export interface ByteRange {
  /** First byte, inclusive. */
  readonly start: number;
  /** Last byte, exclusive. */
  readonly end: number;
}

export interface PutOptions {
  readonly contentType?: string;
}

export interface ObjectStore {
  /** Metadata of one object; throws `NotFoundError` when it does not exist. */
  head(uri: string): Promise<ObjectInfo>;
  /** Metadata of one object, or undefined when it does not exist. */
  tryHead(uri: string): Promise<ObjectInfo | undefined>;
  /** Whole object (or a byte range) in memory. Throws `NotFoundError`. */
  get(uri: string, range?: ByteRange): Promise<Uint8Array>;
  /** Whole object (or a range) as a stream, for data that should not be held in memory. */
  getStream(uri: string, range?: ByteRange): Promise<Readable>;
  /** Writes an object atomically: readers see the old object or the whole new one, never a part. */
  put(uri: string, body: Uint8Array | string, options?: PutOptions): Promise<ObjectInfo>;
  /** Writes a large object from a stream (multipart on S3), atomically. */
  putStream(
    uri: string,
    body: Readable | AsyncIterable<Uint8Array>,
    options?: PutOptions,
  ): Promise<ObjectInfo>;
  /** Every object under a prefix, in lexicographic key order, page by page. */
  list(prefixUri: string): AsyncIterable<ObjectInfo>;
  /** Deletes an object; deleting a missing object is not an error. */
  delete(uri: string): Promise<void>;
}

export class NotFoundError extends Error {
  override readonly name = 'NotFoundError';
  constructor(readonly uri: string) {
    super(`No object at ${uri}`);
  }
}

/** Convenience: read and parse a JSON object. */
export async function getJson(store: ObjectStore, uri: string): Promise<unknown> {
  const bytes = await store.get(uri);
  return JSON.parse(new TextDecoder().decode(bytes)) as unknown;
}

export async function putJson(store: ObjectStore, uri: string, value: unknown): Promise<ObjectInfo> {
  return store.put(uri, `${JSON.stringify(value, null, 2)}\n`, { contentType: 'application/json' });
}
