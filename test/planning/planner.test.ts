/**
 * Planner properties, checked with fast-check over generated inputs (a failure prints the shrunk counterexample and
 * the seed that reproduces it), plus examples that pin exact cuts.
 *
 * The properties the issue asks for: every record in exactly one shard, byte balance within 10% of the target,
 * determinism (the same input always gives the same plan), and never more than `max` shards.
 */
import fc from 'fast-check';
import { describe, expect, it } from '@jest/globals';
import {
  DEFAULT_BYTES_PER_RECORD,
  planShards,
  planShardsDetailed,
  type ParquetLayoutLike,
  type ShardTargets,
} from '../../src/planning/planner.js';
import { shardSchema, type InputObject, type Shard } from '../../src/runs/types.js';

const object = (i: number, size: number): InputObject => ({
  uri: `s3://bucket/in/part-${String(i).padStart(5, '0')}.jsonl`,
  size,
  etag: `etag-${i}`,
});

/** A plain check: jest's `expect` is too slow to call per range over hundreds of generated plans. */
function check(condition: boolean, message: () => string): asserts condition {
  if (!condition) throw new Error(message());
}

/** Runs of fast-check per property: enough to find edge cases, quick on a shared 2-core machine. */
const RUNS = 300;

// ---------------------------------------------------------------------------------------------------------------
// Line formats (jsonl, csv): objects are cut at byte offsets; a range owns the lines that start inside it.

/** A line-format object as its line lengths (each including its newline); its size is their sum. */
interface LineObject {
  readonly object: InputObject;
  /** Byte offset where each line starts. */
  readonly lineStarts: readonly number[];
}

const lineInputArb = fc
  .record({
    targetBytes: fc.integer({ min: 50, max: 5_000 }),
    max: fc.oneof(fc.constant(10_000), fc.integer({ min: 1, max: 8 })),
    bytesPerRecord: fc.option(fc.integer({ min: 5, max: 200 }), { nil: undefined }),
    format: fc.constantFrom('jsonl' as const, 'csv' as const),
    // Per object: its kind (empty, small, about the target, large) and a seed for its line lengths.
    kinds: fc.array(fc.tuple(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 1, max: 1 << 30 })), {
      maxLength: 50,
    }),
  })
  .map(({ targetBytes, max, bytesPerRecord, format, kinds }) => {
    const objects: LineObject[] = kinds.map(([kind, seed], i) => {
      const size =
        kind === 0
          ? 0
          : kind < 5
            ? 1 + (seed % Math.max(1, Math.floor(targetBytes / 10)))
            : kind < 8
              ? 1 + (seed % (targetBytes * 2))
              : targetBytes + (seed % (targetBytes * 29));
      // Lines of 1..40 bytes, from the seed: deterministic for the object.
      const lineStarts: number[] = [];
      let x = seed;
      for (let pos = 0; pos < size;) {
        lineStarts.push(pos);
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        pos += 1 + (x % 40);
      }
      return { object: object(i, size), lineStarts };
    });
    const targets: ShardTargets = { targetBytes, targetRecords: 1_000_000, max };
    return { objects, targets, bytesPerRecord, format };
  });

describe('planShards, line formats: properties', () => {
  it('puts every line in exactly one shard (by the range-owns-line-starts rule), in order', () => {
    fc.assert(
      fc.property(lineInputArb, ({ objects, targets, bytesPerRecord, format }) => {
        const shards = planShards(
          objects.map((o) => o.object),
          format,
          undefined,
          targets,
          { bytesPerRecord },
        );
        const owner = new Map<string, number>();
        for (const shard of shards) {
          for (const r of shard.ranges) {
            const lines = objects.find((o) => o.object.uri === r.uri)!.lineStarts;
            for (const start of lines) {
              if (start < r.start || start >= r.end) continue;
              const key = `${r.uri}@${start}`;
              check(!owner.has(key), () => `line ${key} is in shards ${owner.get(key)} and ${shard.id}`);
              owner.set(key, shard.id);
            }
          }
        }
        const total = objects.reduce((n, o) => n + o.lineStarts.length, 0);
        check(owner.size === total, () => `${owner.size} of ${total} lines are in a shard`);
        // Shard order follows input order: a later line never lands in an earlier shard.
        let last = -1;
        for (const o of objects) {
          for (const start of o.lineStarts) {
            const id = owner.get(`${o.object.uri}@${start}`)!;
            check(id >= last, () => `line ${o.object.uri}@${start} in shard ${id} after shard ${last}`);
            last = id;
          }
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('covers every byte once, balances within 10% of the target, respects max, never cuts small objects', () => {
    fc.assert(
      fc.property(lineInputArb, ({ objects: lineObjects, targets, bytesPerRecord, format }) => {
        const objects = lineObjects.map((o) => o.object);
        const plan = planShardsDetailed(objects, format, undefined, targets, { bytesPerRecord });
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
        // No piece is smaller than 5% of the target, unless it is a whole object; such objects are never cut.
        const minPiece = Math.floor(plan.target / 20);
        const pieces = new Map<string, number>();
        for (const r of plan.shards.flatMap((sh) => sh.ranges)) {
          const whole = r.start === 0 && r.end === r.size;
          check(
            whole || r.end - r.start >= minPiece,
            () => `piece ${JSON.stringify(r)} smaller than ${minPiece}`,
          );
          pieces.set(r.uri, (pieces.get(r.uri) ?? 0) + 1);
        }
        for (const o of objects.filter((x) => x.size > 0 && x.size < minPiece)) {
          check(pieces.get(o.uri) === 1, () => `small object ${o.uri} (${o.size} bytes) was cut`);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('is deterministic: a copy of the same input plans identically', () => {
    fc.assert(
      fc.property(lineInputArb, ({ objects, targets, bytesPerRecord, format }) => {
        const input = objects.map((o) => o.object);
        const first = planShards(input, format, undefined, targets, { bytesPerRecord });
        const again = planShards(
          structuredClone(input),
          format,
          undefined,
          { ...targets },
          { bytesPerRecord },
        );
        check(JSON.stringify(again) === JSON.stringify(first), () => 'a second plan differs');
      }),
      { numRuns: RUNS },
    );
  });
});

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
  const flat = shards.flatMap((sh) => sh.ranges);
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

// ---------------------------------------------------------------------------------------------------------------
// Parquet: row groups are units, never cut; record counts are exact.

const parquetInputArb = fc
  .record({
    files: fc.array(
      fc.array(
        fc.record({ rows: fc.integer({ min: 0, max: 5_000 }), bytes: fc.integer({ min: 0, max: 200_000 }) }),
        {
          maxLength: 7,
        },
      ),
      { maxLength: 25 },
    ),
    targetBytes: fc.integer({ min: 10_000, max: 1_000_000 }),
    targetRecords: fc.integer({ min: 100, max: 20_000 }),
    max: fc.oneof(fc.constant(10_000), fc.integer({ min: 1, max: 6 })),
  })
  .map(({ files, targetBytes, targetRecords, max }) => {
    const objects: InputObject[] = [];
    const layouts = new Map<string, ParquetLayoutLike>();
    files.forEach((groups, i) => {
      const size = groups.reduce((sum, g) => sum + g.bytes, 0) + 1000;
      const o = { uri: `s3://bucket/in/part-${i}.parquet`, size, etag: `e${i}` };
      objects.push(o);
      layouts.set(o.uri, { rows: groups.reduce((sum, g) => sum + g.rows, 0), rowGroups: groups });
    });
    return { objects, layouts, targets: { targetBytes, targetRecords, max } };
  });

describe('planShards, parquet: properties', () => {
  it('puts every row group (so every row) in exactly one range, in order, with exact counts; deterministic', () => {
    fc.assert(
      fc.property(parquetInputArb, ({ objects, layouts, targets }) => {
        const shards = planShards(objects, 'parquet', layouts, targets);
        check(shards.length <= targets.max, () => `${shards.length} shards > max ${targets.max}`);
        const flat = shards.flatMap((sh) => sh.ranges);
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
      }),
      { numRuns: RUNS },
    );
  });

  it('balances within 10% of the target when row groups are small next to it', () => {
    const arb = fc.record({
      groups: fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 400 }),
      target: fc.integer({ min: 1_000, max: 5_000 }),
    });
    fc.assert(
      fc.property(arb, ({ groups, target }) => {
        // Row groups of at most 5% of the target, by bytes (rows weigh less than bytes here).
        const scaled = groups.map((g) => ({ rows: 1, bytes: Math.max(1, Math.floor((g * target) / 1000)) }));
        const o = { uri: 's3://b/x.parquet', size: 1, etag: 'x' };
        const plan = planShardsDetailed(
          [o],
          'parquet',
          new Map([[o.uri, { rows: groups.length, rowGroups: scaled }]]),
          {
            targetBytes: target,
            targetRecords: 1_000_000_000,
            max: 10_000,
          },
        );
        for (const shard of plan.shards.slice(0, -1)) {
          check(
            Math.abs(shard.bytes - plan.target) <= plan.target * 0.1,
            () => `shard ${shard.id}: ${shard.bytes} bytes, target ${plan.target}`,
          );
        }
      }),
      { numRuns: RUNS },
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// files: one object is one record; objects are never cut, and are packed by count and by bytes.

const filesInputArb = fc.record({
  sizes: fc.array(fc.oneof(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 100_000 })), {
    maxLength: 300,
  }),
  targetBytes: fc.integer({ min: 1_000, max: 200_000 }),
  targetRecords: fc.integer({ min: 1, max: 50 }),
  max: fc.oneof(fc.constant(10_000), fc.integer({ min: 1, max: 10 })),
});

describe('planShards, files: properties', () => {
  it('puts every object in exactly one shard, whole, with exact counts; packs to both targets; deterministic', () => {
    fc.assert(
      fc.property(filesInputArb, ({ sizes, targetBytes, targetRecords, max }) => {
        const objects = sizes.map((size, i) => ({
          ...object(i, size),
          uri: `s3://b/f/${String(i).padStart(4, '0')}.png`,
        }));
        const targets = { targetBytes, targetRecords, max };
        const plan = planShardsDetailed(objects, 'files', undefined, targets);
        const shards = plan.shards;
        check(shards.length <= max, () => `${shards.length} shards > max ${max}`);
        const flat = shards.flatMap((sh) => sh.ranges);
        check(flat.length === objects.length, () => `${flat.length} ranges for ${objects.length} objects`);
        flat.forEach((r, i) => {
          const o = objects[i]!;
          check(
            r.uri === o.uri && r.start === 0 && r.end === o.size && r.records === 1,
            () => `range ${i} is ${JSON.stringify(r)}, expected all of ${o.uri}`,
          );
        });
        for (const shard of shards) {
          check(shardSchema.safeParse(shard).success && shard.recordsExact, () => `shard ${shard.id} schema`);
          check(shard.records === shard.ranges.length, () => `shard ${shard.id} records ${shard.records}`);
          check(
            shard.bytes === shard.ranges.reduce((n, r) => n + r.size, 0),
            () => `shard ${shard.id} bytes ${shard.bytes}`,
          );
        }
        // Without max forcing growth, a shard holds at most about targetRecords objects (one more at the seam)
        // and about targetBytes bytes (one more object at the seam).
        if (plan.target === Math.max(1, targetBytes)) {
          for (const shard of shards) {
            check(
              shard.records <= targetRecords + 1,
              () => `shard ${shard.id}: ${shard.records} > ${targetRecords}`,
            );
            const biggest = Math.max(...shard.ranges.map((r) => r.size));
            check(shard.bytes <= targetBytes + biggest, () => `shard ${shard.id}: ${shard.bytes} bytes`);
          }
        }
        const again = planShards(structuredClone(objects), 'files', undefined, { ...targets });
        check(JSON.stringify(again) === JSON.stringify(shards), () => 'a second plan differs');
      }),
      { numRuns: RUNS },
    );
  });

  it('packs small files by count and gives a big file a shard of its own', () => {
    const files = [
      ...Array.from({ length: 10 }, (_, i) => object(i, 10)),
      object(10, 5_000),
      ...Array.from({ length: 3 }, (_, i) => object(11 + i, 10)),
    ];
    const shards = planShards(files, 'files', undefined, { targetBytes: 1_000, targetRecords: 4, max: 100 });
    expect(shards.map((sh) => sh.ranges.map((r) => r.size))).toEqual([
      [10, 10, 10, 10],
      [10, 10, 10, 10],
      [10, 10],
      [5_000],
      [10, 10, 10],
    ]);
    expect(shards.map((sh) => [sh.records, sh.recordsExact])).toEqual([
      [4, true],
      [4, true],
      [2, true],
      [1, true],
      [3, true],
    ]);
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

describe('planShards: the snapshot identity of every range', () => {
  it("carries each object's ETag and versionId (when the snapshot has one) into every range of it", () => {
    const versioned = (i: number, size: number): InputObject => ({ ...object(i, size), versionId: `v-${i}` });
    const targets = { targetBytes: 100, targetRecords: 1_000_000, max: 10_000 };
    const lines = planShards([versioned(0, 250), object(1, 30)], 'jsonl', undefined, targets);
    const files = planShards([versioned(0, 250), object(1, 30)], 'files', undefined, targets);
    const parquetObject = { ...versioned(2, 10_000), uri: 's3://b/p.parquet' };
    const parquet = planShards(
      [parquetObject],
      'parquet',
      new Map([
        [
          parquetObject.uri,
          {
            rows: 200,
            rowGroups: [
              { rows: 100, bytes: 5000 },
              { rows: 100, bytes: 5000 },
            ],
          },
        ],
      ]),
      { targetBytes: 5000, targetRecords: 1_000_000, max: 100 },
    );
    const identities = (shards: Shard[]) =>
      shards.flatMap((s) => s.ranges.map((r) => [r.uri.slice(-16), r.etag, r.versionId ?? null]));
    expect(new Set(identities(lines).map((x) => JSON.stringify(x)))).toEqual(
      new Set([
        JSON.stringify(['part-00000.jsonl', 'etag-0', 'v-0']),
        JSON.stringify(['part-00001.jsonl', 'etag-1', null]),
      ]),
    );
    expect(identities(files)).toEqual([
      ['part-00000.jsonl', 'etag-0', 'v-0'],
      ['part-00001.jsonl', 'etag-1', null],
    ]);
    expect(identities(parquet)).toEqual([
      ['s3://b/p.parquet', 'etag-2', 'v-2'],
      ['s3://b/p.parquet', 'etag-2', 'v-2'],
    ]);
    // A range without a version has no versionId key at all (shards.jsonl stays as it was for such inputs).
    expect(lines.flatMap((s) => s.ranges).find((r) => r.uri.endsWith('00001.jsonl'))).not.toHaveProperty(
      'versionId',
    );
    for (const shard of [...lines, ...files, ...parquet]) expect(shardSchema.parse(shard)).toEqual(shard);
  });
});
