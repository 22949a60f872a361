/**
 * A real store (any ObjectStore) that counts what callers read: bytes per URI, and each read call with its range.
 * Bytes fetched are deterministic, so tests can assert exactly how much of a file a step downloaded.
 */
import { Readable } from 'node:stream';
import type {
  ByteRange,
  ObjectInfo,
  ObjectStore,
  PutOptions,
  ReadOptions,
} from '../../src/storage/object-store.js';

export interface ReadCall {
  readonly method: 'get' | 'getStream';
  readonly uri: string;
  readonly range?: ByteRange;
}

export class CountingStore implements ObjectStore {
  readonly bytesRead = new Map<string, number>();
  readonly calls: ReadCall[] = [];

  constructor(private readonly inner: ObjectStore) {}

  /** Bytes handed to callers from `uri` so far (a stream counts what was consumed). */
  read(uri: string): number {
    return this.bytesRead.get(uri) ?? 0;
  }

  reset(): void {
    this.bytesRead.clear();
    this.calls.length = 0;
  }

  private count(uri: string, n: number): void {
    this.bytesRead.set(uri, this.read(uri) + n);
  }

  head(uri: string): Promise<ObjectInfo> {
    return this.inner.head(uri);
  }

  tryHead(uri: string): Promise<ObjectInfo | undefined> {
    return this.inner.tryHead(uri);
  }

  async get(uri: string, range?: ByteRange, options?: ReadOptions): Promise<Uint8Array> {
    this.calls.push({ method: 'get', uri, ...(range && { range }) });
    const bytes = await this.inner.get(uri, range, options);
    this.count(uri, bytes.byteLength);
    return bytes;
  }

  async getStream(uri: string, range?: ByteRange, options?: ReadOptions): Promise<Readable> {
    this.calls.push({ method: 'getStream', uri, ...(range && { range }) });
    const source = await this.inner.getStream(uri, range, options);
    const count = (n: number): void => this.count(uri, n);
    async function* counted(): AsyncIterable<Buffer> {
      try {
        for await (const chunk of source as AsyncIterable<Buffer>) {
          count(chunk.byteLength);
          yield chunk;
        }
      } finally {
        source.destroy();
      }
    }
    return Readable.from(counted(), { objectMode: false });
  }

  put(uri: string, body: Uint8Array | string, options?: PutOptions): Promise<ObjectInfo> {
    return this.inner.put(uri, body, options);
  }

  putStream(
    uri: string,
    body: Readable | AsyncIterable<Uint8Array>,
    options?: PutOptions,
  ): Promise<ObjectInfo> {
    return this.inner.putStream(uri, body, options);
  }

  list(prefixUri: string): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefixUri);
  }

  delete(uri: string): Promise<void> {
    return this.inner.delete(uri);
  }
}
