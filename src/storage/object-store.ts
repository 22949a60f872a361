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
  /**
   * S3 object version, when the bucket is versioned and the call that produced this info returns one: HeadObject
   * and PutObject do, a prefix listing (ListObjectsV2) does not, so objects found by listing a prefix carry no
   * versionId (S3 Inventory reports and list manifests with a versionId column do).
   */
  readonly versionId?: string;
  readonly lastModified?: Date;
}

/**
 * Conditions on a read, for data that must still be what a run planned against (input ranges). A read whose
 * condition does not hold throws ObjectChangedError instead of returning other bytes.
 */
export interface ReadOptions {
  /**
   * The ETag the object must still have (`ObjectInfo.etag`, without quotes). S3 sends it as If-Match and answers
   * HTTP 412 when the object was replaced; the local store compares the file's current ETag the same way.
   */
  readonly ifMatch?: string;
  /**
   * The S3 object version to read, when the snapshot recorded one (a versioned bucket, seen through HeadObject or
   * an inventory). Local files have no versions: the local store ignores it and relies on `ifMatch`.
   */
  readonly versionId?: string;
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

/** One level of a prefix, as S3 lists it with `Delimiter: '/'`. */
export interface PrefixListing {
  /** The "folders" one level down: full URIs ending in `/`, in key order. */
  readonly prefixes: readonly string[];
  /** The objects directly at this level (none from below it), in key order. */
  readonly objects: readonly ObjectInfo[];
}

/** A piece of an existing object that `compose` copies: bytes [range.start, range.end) of `uri`. */
export interface ComposeSource {
  readonly uri: string;
  readonly range: ByteRange;
}

export interface ObjectStore {
  /** Metadata of one object; throws `NotFoundError` when it does not exist. */
  head(uri: string): Promise<ObjectInfo>;
  /** Metadata of one object, or undefined when it does not exist. */
  tryHead(uri: string): Promise<ObjectInfo | undefined>;
  /**
   * Whole object (or a byte range) in memory. Throws `NotFoundError`, and `ObjectChangedError` when
   * `options.ifMatch` no longer holds.
   */
  get(uri: string, range?: ByteRange, options?: ReadOptions): Promise<Uint8Array>;
  /**
   * Whole object (or a range) as a stream, for data that should not be held in memory. The condition in `options`
   * is checked before the stream is returned (S3 checks it when it answers the request).
   */
  getStream(uri: string, range?: ByteRange, options?: ReadOptions): Promise<Readable>;
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
  /**
   * Optional: one level under a prefix (S3's `Delimiter: '/'`), so callers can list the folders below in parallel
   * instead of walking a large prefix page by page. A store without it is listed with `list`.
   */
  listPrefixes?(prefixUri: string): Promise<PrefixListing>;
  /**
   * Optional: writes the concatenation of `sources`, in order, to `uri` without passing the bytes through this
   * process where the store can (S3: a multipart upload of UploadPartCopy parts). Atomic like `putStream`. A store
   * without it is composed by `composeObject`'s streamed copy.
   */
  compose?(uri: string, sources: readonly ComposeSource[], options?: PutOptions): Promise<ObjectInfo>;
  /**
   * Optional: moves an object to another key of the same store without passing its bytes through this process
   * (files: a rename, atomic; S3: CopyObject, then DeleteObject of the source). Throws `NotFoundError` when `from`
   * does not exist. A store without it is moved by `moveObject`'s copy and delete.
   */
  move?(from: string, to: string): Promise<ObjectInfo>;
}

export class NotFoundError extends Error {
  override readonly name = 'NotFoundError';
  constructor(readonly uri: string) {
    super(`No object at ${uri}`);
  }
}

/**
 * A conditional read found the object changed: its ETag is no longer the one the run planned against (S3: HTTP
 * 412 Precondition Failed). Reading it anyway would mix records of two versions of the data into one run.
 */
export class ObjectChangedError extends Error {
  override readonly name = 'ObjectChangedError';
  constructor(
    readonly uri: string,
    /** The ETag the read required (the planned one). */
    readonly expectedEtag: string,
    /** The ETag the object has now, where the store can tell (the local store can; S3's 412 does not say). */
    readonly actualEtag?: string,
  ) {
    super(
      `${uri} changed since the run was planned (ETag was ${expectedEtag}): re-run to plan against the current data`,
    );
  }
}

/** The read conditions that pin an input range (or snapshot object) to what was planned. */
export function readOptionsOf(planned: { readonly etag: string; readonly versionId?: string }): ReadOptions {
  return {
    // An empty ETag (a store that reported none) pins nothing; every ETag a store reports is non-empty.
    ...(planned.etag !== '' ? { ifMatch: planned.etag } : {}),
    ...(planned.versionId !== undefined ? { versionId: planned.versionId } : {}),
  };
}

/** Convenience: read and parse a JSON object. */
export async function getJson(store: ObjectStore, uri: string): Promise<unknown> {
  const bytes = await store.get(uri);
  return JSON.parse(new TextDecoder().decode(bytes)) as unknown;
}

export async function putJson(store: ObjectStore, uri: string, value: unknown): Promise<ObjectInfo> {
  return store.put(uri, `${JSON.stringify(value, null, 2)}\n`, { contentType: 'application/json' });
}

/**
 * Writes the concatenation of `sources` to `uri`: the store's own `compose` when it has one, else a streamed copy
 * (one source open at a time, so memory stays at one read buffer whatever the total size).
 */
export async function composeObject(
  store: ObjectStore,
  uri: string,
  sources: readonly ComposeSource[],
  options?: PutOptions,
): Promise<ObjectInfo> {
  if (store.compose) return store.compose(uri, sources, options);
  return store.putStream(uri, concatenatedSources(store, sources), options);
}

/**
 * Moves `from` to `to`: the store's own `move` when it has one, else a copy (`composeObject` of the whole object)
 * and a delete. Killed between the two, both keys hold the object; moving again converges (the copy is rewritten,
 * the source deleted).
 */
export async function moveObject(store: ObjectStore, from: string, to: string): Promise<ObjectInfo> {
  if (store.move) return store.move(from, to);
  const source = await store.head(from);
  const moved = await composeObject(store, to, [{ uri: from, range: { start: 0, end: source.size } }]);
  await store.delete(from);
  return moved;
}

/** The bytes of `sources`, in order, as one stream. Exported for stores whose server-side copy can fall back to it. */
export async function* concatenatedSources(
  store: ObjectStore,
  sources: readonly ComposeSource[],
): AsyncIterable<Uint8Array> {
  for (const source of sources) {
    if (source.range.end <= source.range.start) continue;
    const stream = await store.getStream(source.uri, source.range);
    let copied = 0;
    for await (const chunk of stream as AsyncIterable<Uint8Array>) {
      copied += chunk.byteLength;
      yield chunk;
    }
    const want = source.range.end - source.range.start;
    // A source that shrank since its size was taken would silently shorten the result: refuse instead.
    if (copied !== want) {
      throw new Error(
        `${source.uri} has ${copied} bytes in ${source.range.start}-${source.range.end}, expected ${want}; it changed while being copied`,
      );
    }
  }
}
