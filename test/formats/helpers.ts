/** Shared test fixtures: a real LocalObjectStore over a temp directory, and ways to watch what it is asked. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Readable } from 'node:stream';
import { LocalObjectStore } from '../../src/storage/local.js';
import type { ByteRange } from '../../src/storage/object-store.js';
import type { InputRange } from '../../src/runs/types.js';
import { seededRandom } from '../support/seeded-random.js';

/** Deterministic PRNG so a failing random cut can be reproduced. */
export const rng = seededRandom;

/** A LocalObjectStore that remembers every ranged read it served (the real reads still happen). */
export class RecordingStore extends LocalObjectStore {
  readonly gets: { uri: string; range?: ByteRange }[] = [];
  readonly streams: { uri: string; range?: ByteRange }[] = [];

  override async get(uri: string, range?: ByteRange): Promise<Uint8Array> {
    this.gets.push({ uri, range });
    return super.get(uri, range);
  }

  override async getStream(uri: string, range?: ByteRange): Promise<Readable> {
    this.streams.push({ uri, range });
    return super.getStream(uri, range);
  }

  reset(): void {
    this.gets.length = 0;
    this.streams.length = 0;
  }
}

export interface TempDir {
  readonly dir: string;
  readonly store: RecordingStore;
  /** Writes a file and returns its file:// URI and size. */
  write(name: string, content: string | Uint8Array): Promise<{ uri: string; size: number; path: string }>;
  uri(name: string): string;
  cleanup(): Promise<void>;
}

export async function tempDir(): Promise<TempDir> {
  const dir = await mkdtemp(path.join(tmpdir(), 'formats-test-'));
  const store = new RecordingStore();
  return {
    dir,
    store,
    uri: (name) => pathToFileURL(path.join(dir, name)).href,
    async write(name, content) {
      const file = path.join(dir, name);
      await writeFile(file, content);
      const size = typeof content === 'string' ? Buffer.byteLength(content) : content.length;
      return { uri: pathToFileURL(file).href, size, path: file };
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** A byte range of an object, as the planner would hand it over. */
export function byteRange(uri: string, size: number, start: number, end: number): InputRange {
  return { uri, etag: 'test', size, start, end };
}

export async function collect<T>(iterable: AsyncIterable<T[]>): Promise<T[]> {
  const out: T[] = [];
  for await (const batch of iterable) out.push(...batch);
  return out;
}

export async function collectBatches<T>(iterable: AsyncIterable<T[]>): Promise<T[][]> {
  const out: T[][] = [];
  for await (const batch of iterable) out.push(batch);
  return out;
}

/** `count` distinct sorted cut points strictly inside (0, size). */
export function randomCuts(random: () => number, size: number, count: number): number[] {
  const cuts = new Set<number>();
  while (cuts.size < Math.min(count, size - 1)) cuts.add(1 + Math.floor(random() * (size - 1)));
  return [...cuts].sort((a, b) => a - b);
}

/** [0, c1), [c1, c2), ..., [cn, size). */
export function rangesFromCuts(uri: string, size: number, cuts: readonly number[]): InputRange[] {
  const bounds = [0, ...cuts, size];
  const out: InputRange[] = [];
  for (let k = 0; k + 1 < bounds.length; k++) out.push(byteRange(uri, size, bounds[k]!, bounds[k + 1]!));
  return out;
}
