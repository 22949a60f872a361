/**
 * The worker's record stream over `files` ranges: objects are fetched concurrently (bounded by FILES_CONCURRENCY),
 * records come out in range order with their range index, and ranges a resumed shard no longer owns are skipped.
 * The store is a real LocalObjectStore whose reads are slowed down and watched (every read still happens).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { InputRange } from '../../src/runs/types.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import type { ByteRange } from '../../src/storage/object-store.js';
import { FILES_CONCURRENCY, RecordStream, type StreamRange } from '../../src/worker/record-stream.js';

/**
 * Reads wait at a gate the test opens (or, with a delay, sleep first); remembers how many were in flight at most.
 * Every read still reaches the real LocalObjectStore.
 */
class SlowStore extends LocalObjectStore {
  inFlight = 0;
  maxInFlight = 0;
  reads = 0;
  private gate: Promise<void>;
  private openGate: () => void = () => {};
  constructor(
    private readonly delayMs: number,
    options: { readonly gated?: boolean } = {},
  ) {
    super();
    this.gate = options.gated ? new Promise((resolve) => (this.openGate = resolve)) : Promise.resolve();
  }
  private idleWaiters: (() => void)[] = [];
  /** Resolves once no read is in flight. */
  idle(): Promise<void> {
    return this.inFlight === 0 ? Promise.resolve() : new Promise((resolve) => this.idleWaiters.push(resolve));
  }
  /** Lets every read waiting at the gate, and every later one, through. */
  open(): void {
    this.openGate();
  }
  override async get(uri: string, range?: ByteRange): Promise<Uint8Array> {
    this.reads++;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await this.gate;
      if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
      return await super.get(uri, range);
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }
}

/**
 * Lets the event loop turn until `condition` holds, failing after `turns` turns (a count, not a time: starting a
 * read needs no I/O, only promise continuations, so a few turns are plenty whatever the machine's load).
 */
async function turnUntil(condition: () => boolean, describe: () => string, turns = 1_000): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (condition()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`still not the case after ${turns} event loop turns: ${describe()}`);
}

const turns = async (n: number): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

let dir: string;
const FILES = 50;
const ranges: InputRange[] = [];
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'record-stream-'));
  for (let i = 0; i < FILES; i++) {
    const file = path.join(dir, `f${String(i).padStart(2, '0')}.txt`);
    const text = `file ${i}`;
    writeFileSync(file, text);
    ranges.push({ uri: pathToFileURL(file).href, etag: 'e', size: text.length, start: 0, end: text.length });
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const texts = (records: readonly { values?: Readonly<Record<string, unknown>> }[]): string[] =>
  records.map((r) => new TextDecoder().decode(r.values!.content as Uint8Array));

describe('RecordStream over files', () => {
  it('reads objects concurrently, at most FILES_CONCURRENCY at once, and hands them out in range order', async () => {
    const store = new SlowStore(0, { gated: true });
    const stream = new RecordStream(
      store,
      'files',
      ranges.map((range, index) => ({ index, range })),
      { batchSize: 1024 },
    );
    const got: string[] = [];
    const indexes: number[] = [];
    const consumed = (async () => {
      for (;;) {
        const batch = await stream.take(8);
        if (!batch) break;
        got.push(...texts(batch.records));
        indexes.push(...batch.ranges);
      }
    })();
    // With every read held at the gate, the stream starts exactly FILES_CONCURRENCY of them (a sequential reader
    // would start one) and, however long they are held, no more.
    await turnUntil(
      () => store.inFlight === FILES_CONCURRENCY,
      () => `${store.inFlight} reads in flight, expected ${FILES_CONCURRENCY}`,
    );
    await turns(100);
    expect(store.inFlight).toBe(FILES_CONCURRENCY);
    expect(store.reads).toBe(FILES_CONCURRENCY);
    store.open();
    await consumed;
    await stream.close();
    expect(got).toEqual(ranges.map((_, i) => `file ${i}`));
    expect(indexes).toEqual(ranges.map((_, i) => i));
    expect(store.reads).toBe(FILES);
    expect(store.maxInFlight).toBe(FILES_CONCURRENCY);
  });

  it('fetches ahead of the consumer only up to the bound', async () => {
    const store = new SlowStore(0);
    const stream = new RecordStream(
      store,
      'files',
      ranges.map((range, index) => ({ index, range })),
      { batchSize: 1024 },
    );
    const first = await stream.take(2);
    expect(texts(first!.records)).toEqual(['file 0', 'file 1']);
    // The consumer is busy: the reads already started finish, and no new ones start.
    await store.idle();
    await turns(100);
    expect(store.inFlight).toBe(0);
    expect(store.reads).toBeGreaterThan(2);
    expect(store.reads).toBeLessThanOrEqual(2 + FILES_CONCURRENCY);
    expect(store.reads).toBeLessThan(FILES);
    await stream.close();
  });

  it('skips the ranges a resumed shard no longer owns, keeping each record its range index', async () => {
    const store = new SlowStore(0);
    // As remainingRanges hands them over after a checkpoint at range 3: range 3 starts after its record (byte 1).
    const remaining: StreamRange[] = [
      { index: 3, range: { ...ranges[3]!, start: 1 }, after: 0 },
      ...ranges.slice(4, 9).map((range, k) => ({ index: 4 + k, range })),
    ];
    const stream = new RecordStream(store, 'files', remaining, { batchSize: 1024 });
    const batch = await stream.take(100);
    expect(texts(batch!.records)).toEqual([4, 5, 6, 7, 8].map((i) => `file ${i}`));
    expect(batch!.ranges).toEqual([4, 5, 6, 7, 8]);
    expect(await stream.take(1)).toBeUndefined();
    expect(store.reads).toBe(5);
  });
});
