/**
 * shards.jsonl at scale: Plan writes shards.index.json next to it, a worker fetches only its own line (one ranged
 * GET), and Reconcile and Finalize read the index, never the list. Bytes fetched are counted on the real local
 * store, so the assertions are exact.
 */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from '@jest/globals';
import { LocalCatalog } from '../../src/catalog/local.js';
import { finalizeRun } from '../../src/results/finalize.js';
import { reconcileRun } from '../../src/results/reconcile.js';
import { readShardIndex, readShardLine, writeShardList } from '../../src/results/shard-list.js';
import { shardIndexSchema, type Shard } from '../../src/runs/types.js';
import { RunStateError } from '../../src/spec/errors.js';
import { getJson } from '../../src/storage/object-store.js';
import { CountingStore } from './counting-store.js';
import { makeMarker, makeRun, writeMarker, type RunFixture, type RunFixtureOptions } from './run-fixture.js';

const NOW = () => new Date('2024-05-06T12:00:00.000Z');
const SHARDS = 60;
const RANGES_PER_SHARD = 400;

/** Shards as a big list-manifest plan has them: hundreds of small objects each, so every line is ~50 KB. */
function bigShards(count = SHARDS): Shard[] {
  return Array.from({ length: count }, (_, id) => ({
    id,
    ranges: Array.from({ length: RANGES_PER_SHARD }, (_, r) => ({
      uri: `s3://input-bucket/landing/dt=2024-05-0${id % 7}/source=app-${r % 13}/part-${String(id * RANGES_PER_SHARD + r).padStart(8, '0')}.jsonl`,
      etag: createHash('md5').update(`${id}/${r}`).digest('hex'),
      size: 1000 + r,
      start: 0,
      end: 1000 + r,
    })),
    bytes: RANGES_PER_SHARD * 1200,
    // Not all alike, so a line read at the wrong offset would show.
    records: 3 + (id % 5),
    recordsExact: id % 2 === 0,
  }));
}

let fixtures: RunFixture[] = [];
afterEach(async () => {
  await Promise.all(fixtures.map((f) => f.cleanup()));
  fixtures = [];
});

async function run(options: Partial<RunFixtureOptions> = {}): Promise<RunFixture & { shards: Shard[] }> {
  const shards = options.shards ?? bigShards();
  const fx = await makeRun({ shardCount: shards.length, shards, maxRounds: 1, ...options });
  fixtures.push(fx);
  return fx;
}

/** Markers for every shard but `skip`, with the records each shard was planned to have. */
async function completeAllBut(fx: RunFixture, skip: readonly number[]): Promise<void> {
  for (const shard of fx.shards) {
    if (skip.includes(shard.id)) continue;
    await writeMarker(fx, makeMarker(fx.layout, shard.id, { records: shard.records }));
  }
}

describe('writeShardList', () => {
  it('writes an index whose every entry locates exactly its line, with the list size and sha256', async () => {
    const fx = await run();
    const list = await readFile(fileURLToPath(fx.layout.shardsUri));
    const index = shardIndexSchema.parse(await getJson(fx.store, fx.layout.shardIndexUri));
    expect(index.runId).toBe(fx.layout.runId);
    expect(index.shardsBytes).toBe(list.length);
    expect(index.shardsSha256).toBe(createHash('sha256').update(list).digest('hex'));
    expect(index.shards).toHaveLength(SHARDS);
    for (const entry of index.shards) {
      const line = list.subarray(entry.offset, entry.offset + entry.length);
      expect(line.at(-1)).toBe(0x0a);
      const shard = JSON.parse(line.toString('utf8')) as Shard;
      expect(shard).toEqual(fx.shards[entry.id]);
      expect(entry).toMatchObject({
        records: shard.records,
        recordsExact: shard.recordsExact,
        bytes: shard.bytes,
      });
    }
    // The point of it: the index is a small fraction of the list.
    const indexBytes = (await fx.store.head(fx.layout.shardIndexUri)).size;
    expect(indexBytes * 100).toBeLessThan(list.length);
  });

  it('writes an empty list and index for a plan without shards', async () => {
    const fx = await run({ shards: [] });
    expect(await readShardIndex(fx.store, fx.layout, 0)).toEqual([]);
    expect((await fx.store.head(fx.layout.shardsUri)).size).toBe(0);
  });
});

describe('readShardLine (the worker)', () => {
  it("fetches only shard k's line from shards.jsonl: one ranged GET of exactly its bytes", async () => {
    const fx = await run();
    const store = new CountingStore(fx.store);
    const index = shardIndexSchema.parse(await getJson(fx.store, fx.layout.shardIndexUri));
    for (const k of [0, 1, 29, SHARDS - 1]) {
      store.reset();
      const shard = await readShardLine(store, fx.layout, k);
      expect(shard).toEqual(fx.shards[k]);
      const entry = index.shards[k]!;
      expect(store.read(fx.layout.shardsUri)).toBe(entry.length);
      expect(store.calls.filter((c) => c.uri === fx.layout.shardsUri)).toEqual([
        {
          method: 'get',
          uri: fx.layout.shardsUri,
          range: { start: entry.offset, end: entry.offset + entry.length },
        },
      ]);
      // Besides its line, the worker reads the index once: small next to the list.
      expect(store.read(fx.layout.shardIndexUri)).toBe((await fx.store.head(fx.layout.shardIndexUri)).size);
    }
  });

  it('refuses a shard the index does not list, and a list that no longer matches its index', async () => {
    const fx = await run({ shards: bigShards(4) });
    await expect(readShardLine(fx.store, fx.layout, 4)).rejects.toThrow(
      /shard 4 does not exist: .*shards\.index\.json lists 4 shards/,
    );
    // shards.jsonl rewritten with one shard fewer in front: every offset now lands on another line.
    const lines = (await readFile(fileURLToPath(fx.layout.shardsUri), 'utf8')).split('\n');
    await writeFile(fileURLToPath(fx.layout.shardsUri), [lines[1], lines[1], ...lines.slice(2)].join('\n'));
    await expect(readShardLine(fx.store, fx.layout, 2)).rejects.toBeInstanceOf(RunStateError);
    await expect(readShardLine(fx.store, fx.layout, 0)).rejects.toThrow(/does not match its index/);
  });
});

describe('Reconcile and Finalize over a large shard list', () => {
  it('read the index and never a byte of shards.jsonl, with the same verdicts', async () => {
    const fx = await run();
    await completeAllBut(fx, [7, 42]);
    const store = new CountingStore(fx.store);
    const listBytes = (await fx.store.head(fx.layout.shardsUri)).size;
    const indexBytes = (await fx.store.head(fx.layout.shardIndexUri)).size;

    const state = await reconcileRun(fx.state, { store, now: NOW });
    expect(state).toMatchObject({ next: 'infer', round: 1, pending: 2 });
    expect(store.read(fx.layout.shardsUri)).toBe(0);
    expect(store.read(fx.layout.shardIndexUri)).toBe(indexBytes);
    expect(indexBytes * 100).toBeLessThan(listBytes);

    store.reset();
    const result = await finalizeRun(
      { ...fx.state, round: 1 },
      {
        store,
        catalog: new LocalCatalog({ path: path.join(fx.dir, 'catalog.duckdb') }),
        now: NOW,
        codeVersion: 't',
      },
    );
    expect(result).toMatchObject({ status: 'FAILED', reason: 'ShardsFailed', failedShards: 2 });
    expect(store.read(fx.layout.shardsUri)).toBe(0);
    expect(store.read(fx.layout.shardIndexUri)).toBe(indexBytes);
  });

  it('still check planned record counts through the index (an exact shard with other counts is retried)', async () => {
    const fx = await run({ shards: bigShards(6) });
    await completeAllBut(fx, []);
    // Shard 2 was planned exactly (even id) with 5 records; its marker claims 9.
    await writeMarker(fx, makeMarker(fx.layout, 2, { records: 9 }));
    const state = await reconcileRun(fx.state, { store: fx.store, now: NOW });
    expect(state).toMatchObject({ next: 'infer', pending: 1 });
  });

  it('refuses an index of another run or with another shard count than the plan', async () => {
    const fx = await run({ shards: bigShards(3) });
    await expect(readShardIndex(fx.store, fx.layout, 4)).rejects.toThrow(
      /shards\.index\.json lists 3 shards, the plan has 4/,
    );
    const other = await run({ shards: bigShards(3), runId: 'run-0002', dir: fx.dir });
    await writeFile(
      fileURLToPath(fx.layout.shardIndexUri),
      await readFile(fileURLToPath(other.layout.shardIndexUri)),
    );
    await expect(readShardIndex(fx.store, fx.layout, 3)).rejects.toThrow(/belongs to run "run-0002"/);
  });
});

describe('runs planned before the index existed', () => {
  it('stay readable: shards.jsonl is streamed, never fetched whole into memory', async () => {
    const fx = await run({ shardList: 'legacy' });
    await completeAllBut(fx, [3]);
    const store = new CountingStore(fx.store);
    const listBytes = (await fx.store.head(fx.layout.shardsUri)).size;

    const state = await reconcileRun(fx.state, { store, now: NOW });
    expect(state).toMatchObject({ next: 'infer', pending: 1 });
    const listCalls = store.calls.filter((c) => c.uri === fx.layout.shardsUri);
    expect(listCalls.map((c) => c.method)).toEqual(['getStream']);

    // The worker streams up to its line and stops: the first shard costs a read buffer, not the whole list.
    store.reset();
    expect(await readShardLine(store, fx.layout, 0)).toEqual(fx.shards[0]);
    expect(store.read(fx.layout.shardsUri)).toBeLessThan(listBytes);
    expect(await readShardLine(store, fx.layout, SHARDS - 1)).toEqual(fx.shards[SHARDS - 1]);
    await expect(readShardLine(store, fx.layout, SHARDS)).rejects.toThrow(/has no line for shard 60/);
  });

  it('refuse a list whose lines are out of order, naming the line', async () => {
    const fx = await run({ shardList: 'legacy', shards: bigShards(3) });
    const lines = (await readFile(fileURLToPath(fx.layout.shardsUri), 'utf8')).split('\n');
    await writeFile(fileURLToPath(fx.layout.shardsUri), [lines[0], lines[2], lines[1], ''].join('\n'));
    await expect(readShardIndex(fx.store, fx.layout, 3)).rejects.toThrow(/line 2 has shard 2, expected 1/);
  });
});

describe('writeShardList and the plan', () => {
  it('is what the planner uses: an index written by writeShardList reads back through readShardIndex', async () => {
    const fx = await run({ shards: bigShards(5) });
    const index = await writeShardList(fx.store, fx.layout, fx.shards);
    expect(await readShardIndex(fx.store, fx.layout, 5)).toEqual(index.shards);
  });
});
