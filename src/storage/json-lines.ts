/**
 * JSON Lines files written in chunks: the run's snapshot and shard list are tens to hundreds of MB for a million
 * input objects, so they are streamed to storage rather than joined into one string.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ObjectStore } from './object-store.js';

/** Characters gathered before a chunk goes to storage. */
const CHUNK_CHARS = 1 << 20;

export interface JsonLinesOptions {
  /**
   * Called once per item, in order, with the byte length of its line (newline included): with a running sum, the
   * byte offset of every line, for an index that lets a reader fetch one line with a ranged read.
   */
  readonly onLine?: (index: number, bytes: number) => void;
}

/**
 * Writes one JSON value per line and returns the sha256 of exactly the bytes written, so the digest can be checked
 * with `sha256sum` on the stored file. Lines are batched into ~1 MiB chunks; a small file is one plain put.
 */
export async function writeJsonLines(
  store: ObjectStore,
  uri: string,
  items: readonly unknown[],
  options: JsonLinesOptions = {},
): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  const { onLine } = options;
  let bytes = 0;
  function* chunks(): Generator<Buffer> {
    let parts: string[] = [];
    let length = 0;
    for (let i = 0; i < items.length; i++) {
      const line = `${JSON.stringify(items[i])}\n`;
      // Counted only when asked for: it is a pass over the line.
      if (onLine) onLine(i, Buffer.byteLength(line, 'utf8'));
      parts.push(line);
      length += line.length;
      if (length >= CHUNK_CHARS) {
        yield emit(parts.join(''));
        parts = [];
        length = 0;
      }
    }
    if (parts.length > 0) yield emit(parts.join(''));
  }
  const emit = (text: string): Buffer => {
    const buf = Buffer.from(text, 'utf8');
    hash.update(buf);
    bytes += buf.length;
    return buf;
  };
  const iterator = chunks();
  const first = iterator.next();
  const second = first.done ? first : iterator.next();
  const putOptions = { contentType: 'application/x-ndjson' };
  if (second.done) {
    await store.put(uri, first.done ? new Uint8Array() : first.value, putOptions);
  } else {
    function* rest(): Generator<Buffer> {
      yield first.value as Buffer;
      yield second.value as Buffer;
      yield* iterator;
    }
    await store.putStream(uri, Readable.from(rest()), putOptions);
  }
  return { sha256: hash.digest('hex'), bytes };
}
