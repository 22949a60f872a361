/**
 * Reads pinned to a snapshot: a store that makes every read of a known object conditional on the ETag (and the
 * version) the snapshot recorded, so a reader that knows nothing about plans (the format readers) still fails with
 * ObjectChangedError, rather than mixing in new bytes, when an input object was replaced after the run was planned.
 *
 * A worker wraps its store once with its shard's ranges (`pinObjects(store, shard.ranges)`) and hands the wrapped
 * store to the readers. Objects it was not told about (the model, run files, outputs) are read unconditionally.
 */
import type { Readable } from 'node:stream';
import {
  readOptionsOf,
  type ByteRange,
  type ComposeSource,
  type ObjectInfo,
  type ObjectStore,
  type PrefixListing,
  type PutOptions,
  type ReadOptions,
} from './object-store.js';

/** An object as planned: an InputObject or an InputRange. */
export interface PinnedObject {
  readonly uri: string;
  readonly etag: string;
  readonly versionId?: string;
}

export class PinnedObjectStore implements ObjectStore {
  private readonly pins = new Map<string, ReadOptions>();

  constructor(
    private readonly store: ObjectStore,
    objects: Iterable<PinnedObject>,
  ) {
    for (const object of objects) {
      const pin = readOptionsOf(object);
      const known = this.pins.get(object.uri);
      // Two ranges of one object must agree on what it was; a snapshot never has it otherwise.
      if (known && (known.ifMatch !== pin.ifMatch || known.versionId !== pin.versionId)) {
        throw new Error(
          `${object.uri} is pinned twice with different ETags (${known.ifMatch ?? 'none'} and ${pin.ifMatch ?? 'none'})`,
        );
      }
      this.pins.set(object.uri, pin);
    }
  }

  /** The conditions a read of `uri` gets: the caller's own, else the pin, else none. */
  readOptionsFor(uri: string, options?: ReadOptions): ReadOptions | undefined {
    const pin = this.pins.get(uri);
    if (!pin) return options;
    return { ...pin, ...stripUndefined(options) };
  }

  head(uri: string): Promise<ObjectInfo> {
    return this.store.head(uri);
  }

  tryHead(uri: string): Promise<ObjectInfo | undefined> {
    return this.store.tryHead(uri);
  }

  get(uri: string, range?: ByteRange, options?: ReadOptions): Promise<Uint8Array> {
    return this.store.get(uri, range, this.readOptionsFor(uri, options));
  }

  getStream(uri: string, range?: ByteRange, options?: ReadOptions): Promise<Readable> {
    return this.store.getStream(uri, range, this.readOptionsFor(uri, options));
  }

  put(uri: string, body: Uint8Array | string, options?: PutOptions): Promise<ObjectInfo> {
    return this.store.put(uri, body, options);
  }

  putStream(
    uri: string,
    body: Readable | AsyncIterable<Uint8Array>,
    options?: PutOptions,
  ): Promise<ObjectInfo> {
    return this.store.putStream(uri, body, options);
  }

  list(prefixUri: string): AsyncIterable<ObjectInfo> {
    return this.store.list(prefixUri);
  }

  delete(uri: string): Promise<void> {
    return this.store.delete(uri);
  }

  get listPrefixes(): ((prefixUri: string) => Promise<PrefixListing>) | undefined {
    const inner = this.store;
    return inner.listPrefixes ? (prefixUri) => inner.listPrefixes!(prefixUri) : undefined;
  }

  get compose():
    | ((uri: string, sources: readonly ComposeSource[], options?: PutOptions) => Promise<ObjectInfo>)
    | undefined {
    const inner = this.store;
    return inner.compose ? (uri, sources, options) => inner.compose!(uri, sources, options) : undefined;
  }

  get move(): ((from: string, to: string) => Promise<ObjectInfo>) | undefined {
    const inner = this.store;
    return inner.move ? (from, to) => inner.move!(from, to) : undefined;
  }
}

/** `store` with every read of one of `objects` pinned to its planned ETag and version. */
export function pinObjects(store: ObjectStore, objects: Iterable<PinnedObject>): PinnedObjectStore {
  return new PinnedObjectStore(store, objects);
}

function stripUndefined(options: ReadOptions | undefined): ReadOptions {
  if (!options) return {};
  return {
    ...(options.ifMatch !== undefined ? { ifMatch: options.ifMatch } : {}),
    ...(options.versionId !== undefined ? { versionId: options.versionId } : {}),
  };
}
