/**
 * Planner properties over many seeded random inputs (a seeded PRNG loop stands in for a property-testing library:
 * a failure prints its seed, and the same seed reproduces it).
 */
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_BYTES_PER_RECORD,
  planShards,
  planShardsDetailed,
  type ParquetLayoutLike,
  type ShardTargets,
} from '../../src/planning/planner.js';
import { shardSchema, type InputObject, type Shard } from '../../src/runs/types.js';

/** mulberry32: small, fast, good enough to drive test cases. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const int = (rand: () => number, lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));

const object = (i: number, size: number): InputObject => ({
  uri: `s3://bucket/in/part-${String(i).padStart(5, '0')}.jsonl`,
  size,
  etag: `etag-${i}`,
});

function randomLineInput(rand: () => number): { objects: InputObject[]; targets: ShardTargets } {
  const targetBytes = int(rand, 50, 5000);
  const count = int(rand, 0, 60);
  const objects: InputObject[] = [];
  for (let i = 0; i < count; i++) {
    const kind = rand();
    const size =
      kind < 0.1
        ? 0
        : kind < 0.5
          ? int(rand, 1, Math.max(1, Math.floor(targetBytes / 10)))
          : kind < 0.8
            ? int(rand, 1, targetBytes * 2)
            : int(rand, targetBytes, targetBytes * 30);
    objects.push(object(i, size));
  }
  const max = rand() < 0.3 ? int(rand, 1, 8) : 10_000;
  return { objects, targets: { targetBytes, targetRecords: 1_000_000, max } };
}

/** A plain check: vitest's `expect` is too slow to call per range over hundreds of random plans. */
function check(condition: boolean, message: () => string): asserts condition {
  if (!condition) throw new Error(message());
}

/** The invariants every line-format plan must hold. */
function checkLinePlan(
  objects: readonly InputObject[],
  shards: readonly Shard[],
  targets: ShardTargets,
): void {
  check(shards.length <= targets.max, () => `${shards.length} shards > max ${targets.max}`);
  shards.forEach((shard, i) => {
    check(shard.id === i, () => `shard ${i} has id ${shard.id}`);
    check(shardSchema.safeParse(shard).success, () => `shard ${i} does not match shardSchema`);
    check(!shard.recordsExact, () => `shard ${i} claims exact records`);
    const bytes = shard.ranges.reduce((sum, r) => sum + r.end - r.start, 0);
    check(shard.bytes === bytes, () => `shard ${i} says ${shard.bytes} bytes, its ranges hold ${bytes}`);
    for (const r of shard.ranges)
      check(r.end > r.start, () => `shard ${i} has an empty range ${JSON.stringify(r)}`);
  });
  // Contiguity: flattened in shard order, the ranges walk the objects in order, each byte exactly once.
  const flat = shards.flatMap((s) => s.ranges);
  let k = 0;
  for (const o of objects.filter((x) => x.size > 0)) {
    let pos = 0;
    while (pos < o.size) {
      const r = flat[k++];
      check(r !== undefined, () => `no range for ${o.uri} at ${pos}`);
      check(
        r.uri === o.uri && r.etag === o.etag && r.size === o.size && r.start === pos,
        () => `expected ${o.uri} from ${pos}, got ${JSON.stringify(r)}`,
      );
      pos = r.end;
    }
    check(pos === o.size, () => `${o.uri}: ranges end at ${pos}, object size ${o.size}`);
  }
  check(k === flat.length, () => `${flat.length - k} ranges beyond the last object`);
}

describe('planShards, line formats: properties over random inputs', () => {
  it('covers every byte once, in order, within max, balanced and deterministic', () => {
    for (let seed = 1; seed <= 400; seed++) {
      const rand = prng(seed);
      const { objects, targets } = randomLineInput(rand);
      const format = rand() < 0.5 ? 'jsonl' : 'csv';
      const bytesPerRecord = rand() < 0.5 ? undefined : int(rand, 5, 200);
      const plan = planShardsDetailed(objects, format, undefined, targets, { bytesPerRecord });
      try {
        checkLinePlan(objects, plan.shards, targets);
        // Balance: every shard but the last within 10% of the target (the planner aims at 5%).
        for (const shard of plan.shards.slice(0, -1)) {
          check(
            Math.abs(shard.bytes - plan.target) <= plan.target * 0.1,
            () => `shard ${shard.id}: ${shard.bytes} bytes, target ${plan.target}`,
          );
        }
        // The target is the configured one unless max forced shards to grow.
        const base =
          bytesPerRecord === undefined
            ? targets.targetBytes
            : Math.min(targets.targetBytes, 1e6 * bytesPerRecord);
        check(plan.target >= Math.min(base, plan.totalWeight), () => `target ${plan.target} below ${base}`);
        if (plan.totalWeight > 0 && Math.ceil(plan.totalWeight / base) * 1.2 < targets.max) {
          check(
            plan.target === base,
            () => `target grew to ${plan.target} although max ${targets.max} allowed ${base}`,
          );
        }
        // No piece is smaller than 5% of the target, unless it is a whole object.
        const minPiece = Math.floor(plan.target / 20);
        for (const r of plan.shards.flatMap((s) => s.ranges)) {
          const whole = r.start === 0 && r.end === r.size;
          check(
            whole || r.end - r.start >= minPiece,
            () => `piece ${JSON.stringify(r)} smaller than ${minPiece}`,
          );
        }
        // Objects under the minimum piece are never cut.
        const pieces = new Map<string, number>();
        for (const r of plan.shards.flatMap((s) => s.ranges)) pieces.set(r.uri, (pieces.get(r.uri) ?? 0) + 1);
        for (const o of objects.filter((x) => x.size > 0 && x.size < Math.floor(plan.target / 20))) {
          check(pieces.get(o.uri) === 1, () => `small object ${o.uri} (${o.size} bytes) was cut`);
        }
        // Determinism: a fresh copy of the same input plans identically.
        const again = planShards(
          structuredClone(objects),
          format,
          undefined,
          { ...targets },
          { bytesPerRecord },
        );
        check(JSON.stringify(again) === JSON.stringify(plan.shards), () => 'a second plan differs');
      } catch (err) {
        throw new Error(`seed ${seed}: ${(err as Error).message}`, { cause: err });
      }
    }
  });
});

describe('planShards, line formats: examples', () => {
  const targets = { targetBytes: 100, targetRecords: 1_000_000, max: 10_000 };

  it('packs small objects whole', () => {
    const objects = Array.from({ length: 10 }, (_, i) => object(i, 20));
    const shards = planShards(objects, 'jsonl', undefined, targets);
    expect(shards.map((s) => s.ranges.map((r) => [r.uri.slice(-10), r.start, r.end]))).toEqual([
      objects.slice(0, 5).map((o) => [o.uri.slice(-10), 0, 20]),
      objects.slice(5).map((o) => [o.uri.slice(-10), 0, 20]),
    ]);
  });

  it('splits a big object at byte boundaries', () => {
    const shards = planShards([object(0, 1000)], 'jsonl', undefined, targets);
    expect(shards.map((s) => [s.ranges[0]!.start, s.ranges[0]!.end])).toEqual(
      Array.from({ length: 10 }, (_, i) => [i * 100, i * 100 + 100]),
    );
  });

  it('takes a remainder too small to be a piece instead of leaving it to a shard of its own', () => {
    const shards = planShards([object(0, 203)], 'jsonl', undefined, targets);
    expect(shards.map((s) => s.bytes)).toEqual([100, 103]);
  });

  it('does not leave a tiny tail shard', () => {
    const shards = planShards([object(0, 100), object(1, 3)], 'jsonl', undefined, targets);
    expect(shards.map((s) => s.ranges.map((r) => r.end - r.start))).toEqual([[100, 3]]);
  });

  it('grows shards rather than exceed max', () => {
    const shards = planShards([object(0, 1000), object(1, 10)], 'jsonl', undefined, { ...targets, max: 3 });
    expect(shards).toHaveLength(3);
    expect(shards.map((s) => s.bytes)).toEqual([337, 337, 336]);
    expect(planShards([object(0, 1000)], 'jsonl', undefined, { ...targets, max: 1 })).toHaveLength(1);
  });

  it('sizes by records when the sampled record size makes targetRecords the tighter target', () => {
    const shards = planShards(
      [object(0, 1000)],
      'jsonl',
      undefined,
      { ...targets, targetRecords: 5 },
      {
        bytesPerRecord: 10,
      },
    );
    expect(shards.map((s) => [s.bytes, s.records, s.recordsExact])).toEqual(
      Array.from({ length: 20 }, () => [50, 5, false]),
    );
    // Without a sample, records only estimate, at the default record size.
    const unsampled = planShards([object(0, 1000)], 'jsonl', undefined, { ...targets, targetRecords: 5 });
    expect(unsampled.map((s) => s.records)).toEqual(
      Array.from({ length: 10 }, () => 100 / DEFAULT_BYTES_PER_RECORD),
    );
  });

  it('makes no shards for no data', () => {
    expect(planShards([], 'jsonl', undefined, targets)).toEqual([]);
    expect(planShards([object(0, 0)], 'csv', undefined, targets)).toEqual([]);
  });

  it('rejects nonsense targets', () => {
    expect(() => planShards([], 'jsonl', undefined, { ...targets, max: 0 })).toThrow(/shards.max/);
    expect(() => planShards([], 'jsonl', undefined, targets, { bytesPerRecord: 0 })).toThrow(
      /bytesPerRecord/,
    );
  });
});

function randomParquetInput(rand: () => number): {
  objects: InputObject[];
  layouts: Map<string, ParquetLayoutLike>;
  targets: ShardTargets;
} {
  const objects: InputObject[] = [];
  const layouts = new Map<string, ParquetLayoutLike>();
  const count = int(rand, 0, 25);
  for (let i = 0; i < count; i++) {
    const groups = Array.from({ length: int(rand, 0, 7) }, () => ({
      rows: int(rand, 0, 5000),
      bytes: int(rand, 0, 200_000),
    }));
    const size = groups.reduce((sum, g) => sum + g.bytes, 0) + 1000;
    const o = { uri: `s3://bucket/in/part-${i}.parquet`, size, etag: `e${i}` };
    objects.push(o);
    layouts.set(o.uri, { rows: groups.reduce((sum, g) => sum + g.rows, 0), rowGroups: groups });
  }
  const targets = {
    targetBytes: int(rand, 10_000, 1_000_000),
    targetRecords: int(rand, 100, 20_000),
    max: rand() < 0.3 ? int(rand, 1, 6) : 10_000,
  };
  return { objects, layouts, targets };
}

describe('planShards, parquet: properties over random inputs', () => {
  it('puts every row group in exactly one range, in order, with exact row counts', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const rand = prng(seed * 7919);
      const { objects, layouts, targets } = randomParquetInput(rand);
      const shards = planShards(objects, 'parquet', layouts, targets);
      try {
        check(shards.length <= targets.max, () => `${shards.length} shards > max ${targets.max}`);
        const flat = shards.flatMap((s) => s.ranges);
        let k = 0;
        for (const o of objects) {
          const layout = layouts.get(o.uri)!;
          let group = 0;
          let row = 0;
          while (group < layout.rowGroups.length) {
            const r = flat[k++];
            check(r !== undefined, () => `no range for ${o.uri} row group ${group}`);
            check(
              r.uri === o.uri && r.start === 0 && r.end === o.size && r.size === o.size,
              () => `expected ${o.uri}, got ${JSON.stringify(r)}`,
            );
            check(
              r.rowGroupStart === group &&
                r.rowStart === row &&
                r.rowGroupEnd !== undefined &&
                r.rowGroupEnd > group,
              () => `expected row group ${group} at row ${row}, got ${JSON.stringify(r)}`,
            );
            const rows = layout.rowGroups.slice(group, r.rowGroupEnd).reduce((sum, g) => sum + g.rows, 0);
            check(r.records === rows, () => `range ${JSON.stringify(r)} should hold ${rows} records`);
            row += rows;
            group = r.rowGroupEnd;
          }
          check(
            group === layout.rowGroups.length,
            () => `${o.uri}: ${layout.rowGroups.length - group} groups left`,
          );
        }
        check(k === flat.length, () => `${flat.length - k} ranges beyond the last object`);
        shards.forEach((shard, i) => {
          check(
            shardSchema.safeParse(shard).success && shard.id === i && shard.recordsExact,
            () => `shard ${i}`,
          );
          const records = shard.ranges.reduce((sum, r) => sum + r.records!, 0);
          check(
            shard.records === records,
            () => `shard ${i}: ${shard.records} records, ranges say ${records}`,
          );
        });
        const again = planShards(structuredClone(objects), 'parquet', new Map(layouts), targets);
        check(JSON.stringify(again) === JSON.stringify(shards), () => 'a second plan differs');
      } catch (err) {
        throw new Error(`seed ${seed}: ${(err as Error).message}`, { cause: err });
      }
    }
  });
});

describe('planShards, parquet: examples', () => {
  const file = (name: string, groups: { rows: number; bytes: number }[]) => ({
    object: { uri: `s3://b/${name}.parquet`, size: 10_000, etag: name },
    layout: { rows: groups.reduce((s, g) => s + g.rows, 0), rowGroups: groups },
  });

  it('splits at row-group boundaries, never inside one', () => {
    const a = file(
      'a',
      Array.from({ length: 4 }, () => ({ rows: 100, bytes: 1000 })),
    );
    const shards = planShards([a.object], 'parquet', new Map([[a.object.uri, a.layout]]), {
      targetBytes: 2000,
      targetRecords: 1_000_000,
      max: 100,
    });
    expect(shards.map((s) => s.ranges)).toEqual([
      [
        {
          uri: a.object.uri,
          etag: 'a',
          size: 10_000,
          start: 0,
          end: 10_000,
          rowGroupStart: 0,
          rowGroupEnd: 2,
          rowStart: 0,
          records: 200,
        },
      ],
      [
        {
          uri: a.object.uri,
          etag: 'a',
          size: 10_000,
          start: 0,
          end: 10_000,
          rowGroupStart: 2,
          rowGroupEnd: 4,
          rowStart: 200,
          records: 200,
        },
      ],
    ]);
    expect(shards.map((s) => [s.bytes, s.records, s.recordsExact])).toEqual([
      [2000, 200, true],
      [2000, 200, true],
    ]);
  });

  it('fills a shard by rows when targetRecords is reached before targetBytes', () => {
    const a = file(
      'a',
      Array.from({ length: 6 }, () => ({ rows: 100, bytes: 10 })),
    );
    const shards = planShards([a.object], 'parquet', new Map([[a.object.uri, a.layout]]), {
      targetBytes: 1_000_000,
      targetRecords: 300,
      max: 100,
    });
    expect(shards.map((s) => s.records)).toEqual([300, 300]);
  });

  it('packs small files and skips files without row groups', () => {
    const files = [
      file('a', [{ rows: 10, bytes: 100 }]),
      file('b', []),
      file('c', [{ rows: 10, bytes: 100 }]),
    ];
    const shards = planShards(
      files.map((f) => f.object),
      'parquet',
      new Map(files.map((f) => [f.object.uri, f.layout])),
      { targetBytes: 1000, targetRecords: 1000, max: 10 },
    );
    expect(shards).toHaveLength(1);
    expect(shards[0]!.ranges.map((r) => r.uri)).toEqual(['s3://b/a.parquet', 's3://b/c.parquet']);
  });

  it('needs the layout of every object', () => {
    expect(() =>
      planShards([object(0, 10)], 'parquet', new Map(), { targetBytes: 1, targetRecords: 1, max: 1 }),
    ).toThrow(/no Parquet layout/);
  });
});
