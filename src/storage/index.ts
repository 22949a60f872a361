/**
 * The storage entry point: one ObjectStore that accepts both `file://` and `s3://` URIs, so a run can read inputs
 * from one scheme and write outputs to the other.
 */
import type { Readable } from 'node:stream';
import { LocalObjectStore } from './local.js';
import {
  composeObject,
  moveObject,
  concatenatedSources,
  type ByteRange,
  type ComposeSource,
  type ObjectInfo,
  type ObjectStore,
  type PrefixListing,
  type PutOptions,
  type ReadOptions,
} from './object-store.js';
import { parseUri, type StorageScheme } from './uri.js';

export type {
  ByteRange,
  ComposeSource,
  ObjectInfo,
  ObjectStore,
  PrefixListing,
  PutOptions,
  ReadOptions,
} from './object-store.js';
export {
  NotFoundError,
  ObjectChangedError,
  composeObject,
  getJson,
  putJson,
  readOptionsOf,
} from './object-store.js';
export { PinnedObjectStore, pinObjects, type PinnedObject } from './pinned.js';
export * from './uri.js';
export { LocalObjectStore } from './local.js';
export type { S3ObjectStore, S3ClientOptions, S3StoreError } from './s3.js';

/** The environment variable that points `s3://` URIs at an S3-compatible endpoint instead of AWS. */
export const S3_ENDPOINT_ENV = 'BATCH_INFER_S3_ENDPOINT';

export interface ObjectStoreOptions {
  /** S3-compatible endpoint; defaults to `$BATCH_INFER_S3_ENDPOINT`, else AWS. */
  readonly s3Endpoint?: string;
  /** Defaults to `$AWS_REGION`, `$AWS_DEFAULT_REGION`, then us-east-1. */
  readonly region?: string;
}

/** Builds the store for one scheme; called at most once, on the first URI of that scheme. */
export type StoreFactory = () => ObjectStore | Promise<ObjectStore>;

/** Dispatches each call to the store for the URI's scheme, creating that store on first use. */
export class RoutingObjectStore implements ObjectStore {
  private readonly stores = new Map<StorageScheme, Promise<ObjectStore>>();

  constructor(private readonly factories: Readonly<Record<StorageScheme, StoreFactory>>) {}

  async head(uri: string): Promise<ObjectInfo> {
    return (await this.storeFor(uri)).head(uri);
  }

  async tryHead(uri: string): Promise<ObjectInfo | undefined> {
    return (await this.storeFor(uri)).tryHead(uri);
  }

  async get(uri: string, range?: ByteRange, options?: ReadOptions): Promise<Uint8Array> {
    return (await this.storeFor(uri)).get(uri, range, options);
  }

  async getStream(uri: string, range?: ByteRange, options?: ReadOptions): Promise<Readable> {
    return (await this.storeFor(uri)).getStream(uri, range, options);
  }

  async put(uri: string, body: Uint8Array | string, options?: PutOptions): Promise<ObjectInfo> {
    return (await this.storeFor(uri)).put(uri, body, options);
  }

  async putStream(
    uri: string,
    body: Readable | AsyncIterable<Uint8Array>,
    options?: PutOptions,
  ): Promise<ObjectInfo> {
    return (await this.storeFor(uri)).putStream(uri, body, options);
  }

  async *list(prefixUri: string): AsyncIterable<ObjectInfo> {
    yield* (await this.storeFor(prefixUri)).list(prefixUri);
  }

  async delete(uri: string): Promise<void> {
    return (await this.storeFor(uri)).delete(uri);
  }

  async listPrefixes(prefixUri: string): Promise<PrefixListing> {
    const store = await this.storeFor(prefixUri);
    if (store.listPrefixes) return store.listPrefixes(prefixUri);
    // The scheme's store cannot list one level: derive it from a full listing (correct, only slower).
    return levelOf(prefixUri, store.list(prefixUri));
  }

  async compose(uri: string, sources: readonly ComposeSource[], options?: PutOptions): Promise<ObjectInfo> {
    const target = await this.storeFor(uri);
    // A server-side copy only works within one scheme; across schemes the bytes go through this store.
    const sameScheme = sources.every((s) => parseUri(s.uri).scheme === parseUri(uri).scheme);
    if (sameScheme) return composeObject(target, uri, sources, options);
    return this.putStream(uri, concatenatedSources(this, sources), options);
  }

  /** The scheme's own move (rename, CopyObject); across schemes a copy through this store, then a delete. */
  async move(from: string, to: string): Promise<ObjectInfo> {
    if (parseUri(from).scheme === parseUri(to).scheme) return moveObject(await this.storeFor(to), from, to);
    const info = await this.putStream(to, await this.getStream(from));
    await this.delete(from);
    return info;
  }

  private storeFor(uri: string): Promise<ObjectStore> {
    const { scheme } = parseUri(uri);
    let store = this.stores.get(scheme);
    if (!store) {
      const factory = this.factories[scheme];
      store = Promise.resolve().then(() => factory());
      // A failed creation should be retried by the next call, not cached for the life of the process.
      void store.catch(() => this.stores.delete(scheme));
      this.stores.set(scheme, store);
    }
    return store;
  }
}

/**
 * The store every entry point uses. The S3 client (and the SDK, which is slow to load) is only brought in when an
 * `s3://` URI is first used, so purely local runs never touch it.
 */
export function createObjectStore(options: ObjectStoreOptions = {}): RoutingObjectStore {
  return new RoutingObjectStore({
    file: () => new LocalObjectStore(),
    s3: async () => {
      const { S3ObjectStore, createS3Client } = await import('./s3.js');
      const endpoint = options.s3Endpoint ?? (process.env[S3_ENDPOINT_ENV] || undefined);
      return new S3ObjectStore(createS3Client({ endpoint, region: options.region }));
    },
  });
}

/** One level of a prefix from a full listing: what S3 returns for the same prefix with `Delimiter: '/'`. */
async function levelOf(prefixUri: string, listing: AsyncIterable<ObjectInfo>): Promise<PrefixListing> {
  const base = prefixUri.slice(0, prefixUri.lastIndexOf('/') + 1);
  const prefixes: string[] = [];
  const objects: ObjectInfo[] = [];
  for await (const info of listing) {
    const slash = info.uri.indexOf('/', prefixUri.length);
    if (slash < 0) objects.push(info);
    else {
      const folder = info.uri.slice(0, slash + 1);
      if (folder.startsWith(base) && prefixes[prefixes.length - 1] !== folder) prefixes.push(folder);
    }
  }
  return { prefixes: [...new Set(prefixes)], objects };
}
