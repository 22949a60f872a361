import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parquetMetadata } from 'hyparquet';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { parquetLayout, READABLE_CODECS, readParquet } from '../../src/formats/parquet-read.js';
import { encodeParquet, type OutputColumn } from '../../src/formats/parquet-write.js';
import type { SourceRecord } from '../../src/formats/records.js';
import type { InputRange } from '../../src/runs/types.js';
import { InputError } from '../../src/spec/errors.js';
import { collect, collectBatches, rng, tempDir, type TempDir } from './helpers.js';

const ROWS = 20_000;
const GROUP = 2_000;

function groupRange(
  uri: string,
  size: number,
  groupStart: number,
  groupEnd: number,
  rowStart?: number,
): InputRange {
  return {
    uri,
    etag: 'test',
    size,
    start: 0,
    end: size,
    rowGroupStart: groupStart,
    rowGroupEnd: groupEnd,
    rowStart,
  };
}

describe('readParquet', () => {
  let tmp: TempDir;
  let db: DuckDBInstance;
  let duck: DuckDBConnection;
  let file: { uri: string; size: number };
  let columns: OutputColumn[];
  /** The rows as the written columns say they are (floats narrowed to 32 bits). */
  let want: Record<string, unknown>[];

  beforeAll(async () => {
    tmp = await tempDir();
    db = await DuckDBInstance.create(':memory:');
    duck = await db.connect();
    const random = rng(3);
    const id: string[] = [];
    const x: (number | null)[] = [];
    const big: bigint[] = [];
    const v: (number[] | null)[] = [];
    for (let i = 0; i < ROWS; i++) {
      id.push(`r${i}`);
      // Random doubles do not compress: the file is large enough that reading all of it would show.
      x.push(i % 10 === 0 ? null : random());
      big.push(BigInt(i) - 5n);
      v.push(i % 7 === 0 ? null : [i, 0.5]);
    }
    columns = [
      { name: 'id', type: 'string', values: id },
      { name: 'x', type: 'double', values: x },
      { name: 'big', type: 'bigint', values: big },
      { name: 'v', type: 'array<float>', values: v },
    ];
    want = id.map((_, i) => ({ id: id[i], x: x[i], big: big[i], v: v[i] }));
    file = await tmp.write('written.parquet', encodeParquet(columns, { rowGroupSize: GROUP }));
  });
  afterAll(async () => {
    duck.closeSync();
    db.closeSync();
    await tmp.cleanup();
  });

  it('parquetLayout reads only the footer', async () => {
    tmp.store.reset();
    const layout = await parquetLayout(tmp.store, file.uri, file.size);
    expect(layout.rows).toBe(ROWS);
    expect(layout.columns).toEqual(['id', 'x', 'big', 'v']);
    expect(layout.codecs).toEqual(['SNAPPY']);
    expect(layout.rowGroups.map((g) => g.rows)).toEqual(Array.from({ length: ROWS / GROUP }, () => GROUP));
    const groupBytes = layout.rowGroups.reduce((sum, g) => sum + g.bytes, 0);
    expect(layout.rowGroups.every((g) => g.bytes > 0)).toBe(true);
    expect(groupBytes).toBeLessThan(file.size);
    expect(groupBytes).toBeGreaterThan(file.size / 2);
    const fetched = tmp.store.gets.reduce((sum, g) => sum + g.range!.end - g.range!.start, 0);
    expect(file.size).toBeGreaterThan(4 * 64 * 1024);
    expect(fetched).toBeLessThanOrEqual(64 * 1024 * 2);
    expect(tmp.store.streams).toEqual([]);
  });

  it('each row-group range yields its rows with file row indexes as offsets; ranges together give the file', async () => {
    const whole = await collect(
      readParquet(tmp.store, groupRange(file.uri, file.size, 0, ROWS / GROUP), { batchSize: 999 }),
    );
    expect(whole).toHaveLength(ROWS);
    expect(whole.map((r) => r.offset)).toEqual(want.map((_, i) => i));
    expect(whole.every((r) => r.source === file.uri && r.error === undefined)).toBe(true);
    const expected = want.map((w) => ({ ...w, v: w.v === null ? null : (w.v as number[]).map(Math.fround) }));
    expect(whole.map((r) => r.values)).toEqual(expected);
    // INT64 stays bigint; a null list is null, not undefined.
    expect(typeof whole[5]!.values!.big).toBe('bigint');
    expect(whole[0]!.values!.v).toBeNull();
    expect('v' in whole[0]!.values!).toBe(true);

    const parts: SourceRecord[] = [];
    for (const [start, end] of [
      [0, 1],
      [1, 4],
      [4, 5],
      [5, 10],
    ] as const) {
      tmp.store.reset();
      parts.push(
        ...(await collect(
          readParquet(tmp.store, groupRange(file.uri, file.size, start, end, start * GROUP), {
            batchSize: 300,
          }),
        )),
      );
      // Only this range's groups (and the footer) were fetched: never the whole file.
      const fetched = tmp.store.gets.reduce((sum, g) => sum + g.range!.end - g.range!.start, 0);
      expectIn(fetched, `groups [${start}, ${end})`).toBeLessThan(
        ((end - start) / 10) * file.size + 64 * 1024 + 16 * 1024,
      );
    }
    expect(parts).toEqual(whole);
  });

  it('batches are batchSize records, across row-group boundaries', async () => {
    const batches = await collectBatches(
      readParquet(tmp.store, groupRange(file.uri, file.size, 2, 5), { batchSize: 2500 }),
    );
    expect(batches.map((b) => b.length)).toEqual([2500, 2500, 1000]);
    expect(batches[0]![0]!.offset).toBe(2 * GROUP);
    expect(batches.at(-1)!.at(-1)!.offset).toBe(5 * GROUP - 1);
  });

  it('reads only the requested columns; a missing one is an InputError naming the file and its columns', async () => {
    tmp.store.reset();
    const some = await collect(
      readParquet(tmp.store, groupRange(file.uri, file.size, 0, 10), {
        batchSize: 5000,
        columns: ['big', 'id'],
      }),
    );
    expect(Object.keys(some[7]!.values!).sort()).toEqual(['big', 'id']);
    expect(some[7]!.values).toEqual({ id: 'r7', big: 2n });
    const fetchedSome = tmp.store.gets.reduce((sum, g) => sum + g.range!.end - g.range!.start, 0);
    tmp.store.reset();
    await collect(readParquet(tmp.store, groupRange(file.uri, file.size, 0, 10), { batchSize: 5000 }));
    const fetchedAll = tmp.store.gets.reduce((sum, g) => sum + g.range!.end - g.range!.start, 0);
    // Neither the random doubles (8 incompressible bytes a row) nor the lists were fetched.
    expect(fetchedAll - fetchedSome).toBeGreaterThan(ROWS * 8);

    const failing = collect(
      readParquet(tmp.store, groupRange(file.uri, file.size, 0, 1), {
        batchSize: 10,
        columns: ['id', 'age'],
      }),
    );
    await expect(failing).rejects.toThrow(InputError);
    await expect(failing).rejects.toThrow(`${file.uri} has no column "age"; it has: id, x, big, v`);
  });

  it('a plan that no longer matches the file, or a file that is not Parquet, is an InputError', async () => {
    await expect(
      collect(readParquet(tmp.store, groupRange(file.uri, file.size, 9, 11), { batchSize: 10 })),
    ).rejects.toThrow(/has 10 row groups; the plan asks for groups \[9, 11\)/);
    await expect(
      collect(readParquet(tmp.store, groupRange(file.uri, file.size, 3, 4, 123), { batchSize: 10 })),
    ).rejects.toThrow(/row group 3 starts at row 6000, the plan says 123/);
    const junk = await tmp.write('junk.parquet', 'this is not parquet at all');
    await expect(parquetLayout(tmp.store, junk.uri, junk.size)).rejects.toThrow(InputError);
    await expect(
      collect(readParquet(tmp.store, groupRange(junk.uri, junk.size, 0, 1), { batchSize: 1 })),
    ).rejects.toThrow(/is not a readable Parquet file/);
  });

  it('reads a file DuckDB wrote (row groups of 1000) exactly as DuckDB reads it', async () => {
    const out = path.join(tmp.dir, 'duck.parquet');
    await duck.run(`
      copy (
        select i::int as i, (i * 3)::bigint as big, 'row-' || i || case when i % 3 = 0 then ' é🚀' else '' end as s,
               case when i % 10 = 0 then null else i * 0.25 end::double as d,
               case when i % 11 = 0 then null else [i::float, (i / 2)::float] end as arr,
               i % 2 = 0 as flag
        from range(5000) t(i)
      ) to '${out}' (format parquet, row_group_size 1000)`);
    const { size } = await tmp.store.head(tmp.uri('duck.parquet'));
    const uri = tmp.uri('duck.parquet');
    const layout = await parquetLayout(tmp.store, uri, size);
    const meta = (
      await duck.runAndReadAll(
        `select row_group_id, any_value(row_group_num_rows) as n from parquet_metadata('${out}') group by all order by 1`,
      )
    ).getRowObjectsJS();
    expect(layout.rows).toBe(5000);
    expect(layout.rowGroups.map((g) => BigInt(g.rows))).toEqual(meta.map((m) => m.n));
    expect(layout.rowGroups.length).toBeGreaterThan(1);
    expect(layout.columns).toEqual(['i', 'big', 's', 'd', 'arr', 'flag']);

    const theirs = (
      await duck.runAndReadAll(
        `select * exclude (file_row_number) from read_parquet('${out}', file_row_number = true) order by file_row_number`,
      )
    ).getRowObjectsJS();
    const ours: SourceRecord[] = [];
    let rowStart = 0;
    for (let g = 0; g < layout.rowGroups.length; g++) {
      ours.push(
        ...(await collect(
          readParquet(tmp.store, groupRange(uri, size, g, g + 1, rowStart), { batchSize: 700 }),
        )),
      );
      rowStart += layout.rowGroups[g]!.rows;
    }
    expect(ours.map((r) => r.offset)).toEqual(theirs.map((_, i) => i));
    expect(ours.map((r) => r.values)).toEqual(theirs);
  });

  it('reads a multi-group range one row group at a time: no read is larger than the largest group plus the footer', async () => {
    // Groups of different sizes, each far larger than the footer, written by DuckDB (uncompressed random doubles).
    const out = path.join(tmp.dir, 'groups.parquet');
    await duck.run(`
      copy (
        select i::bigint as id, hash(i)::double / 1e19 as x, hash(i + 1)::double / 1e19 as y
        from range(90000) t(i)
      ) to '${out}' (format parquet, row_group_size 15000, compression uncompressed)`);
    const uri = tmp.uri('groups.parquet');
    const { size } = await tmp.store.head(uri);
    const bytes = new Uint8Array(await readFile(out));
    const metadata = parquetMetadata(bytes.buffer);
    // The footer: the metadata, its 4-byte length and the closing magic.
    const footer = new DataView(bytes.buffer).getUint32(size - 8, true) + 8;
    // Byte extent of each row group: from its first column chunk's first page to its last chunk's end.
    const extents = metadata.row_groups.map((group) => {
      let start = Infinity;
      let end = 0;
      for (const chunk of group.columns) {
        const meta = chunk.meta_data!;
        const first = Number(meta.dictionary_page_offset ?? meta.data_page_offset);
        start = Math.min(start, Math.min(first, Number(meta.data_page_offset)));
        end = Math.max(end, first + Number(meta.total_compressed_size));
      }
      return { start, end };
    });
    const groups = extents.length;
    expect(groups).toBeGreaterThanOrEqual(5);
    const groupRows = metadata.row_groups.map((g) => Number(g.num_rows));
    const largest = Math.max(...extents.map((e) => e.end - e.start));
    expect(largest).toBeGreaterThan(4 * footer);
    // Streaming: when the first records come out, only the first group of the range has been fetched.
    tmp.store.reset();
    const iterator = readParquet(tmp.store, groupRange(uri, size, 1, groups, groupRows[0]), {
      batchSize: 1000,
    })[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.value).toHaveLength(1000);
    const fetched = tmp.store.gets.filter((g) => g.range!.end <= size - footer);
    expect(fetched.length).toBeGreaterThan(0);
    for (const g of fetched) {
      expect(g.range!.start).toBeGreaterThanOrEqual(extents[1]!.start);
      expect(g.range!.end).toBeLessThanOrEqual(extents[1]!.end);
    }
    await iterator.return?.();
    // The ranges are cut differently from the whole file, and sizes are bounded in all of them.
    for (const [from, to] of [
      [0, groups],
      [1, 4],
      [groups - 1, groups],
    ] as const) {
      tmp.store.reset();
      const rowStart = groupRows.slice(0, from).reduce((a, b) => a + b, 0);
      const rows = await collect(
        readParquet(tmp.store, groupRange(uri, size, from, to, rowStart), { batchSize: 4096 }),
      );
      expect(rows).toHaveLength(groupRows.slice(from, to).reduce((a, b) => a + b, 0));
      expect(rows[0]!.values!.id).toBe(BigInt(rowStart));
      const reads = tmp.store.gets.map((g) => ({ start: g.range!.start, end: g.range!.end }));
      for (const read of reads) {
        expectIn(read.end - read.start, `read [${read.start}, ${read.end})`).toBeLessThanOrEqual(
          largest + footer,
        );
      }
      // Apart from the footer, every read lies within one row group of the range: one group at a time.
      const data = reads.filter((r) => r.end <= size - footer);
      expect(data.length).toBeGreaterThanOrEqual(to - from);
      for (const read of data) {
        const owners = extents
          .map((e, g) => ({ ...e, g }))
          .filter((e) => read.start >= e.start && read.end <= e.end);
        expectIn(
          owners.map((o) => o.g).filter((g) => g >= from && g < to),
          `read [${read.start}, ${read.end})`,
        ).toHaveLength(1);
      }
      // Every group of the range was read, none outside it.
      const touched = new Set(
        data.map((r) => extents.findIndex((e) => r.start >= e.start && r.end <= e.end)),
      );
      expect([...touched].sort((a, b) => a - b)).toEqual(
        Array.from({ length: to - from }, (_, k) => from + k),
      );
    }
  });

  it('reads GZIP and BROTLI files; other codecs it cannot decode fail with an InputError before reading data', async () => {
    for (const codec of ['gzip', 'brotli', 'zstd', 'lz4']) {
      const out = path.join(tmp.dir, `codec-${codec}.parquet`);
      await duck.run(
        `copy (select i, 'v' || i as s from range(100) t(i)) to '${out}' (format parquet, compression ${codec})`,
      );
      const uri = tmp.uri(`codec-${codec}.parquet`);
      const { size } = await tmp.store.head(uri);
      const layout = await parquetLayout(tmp.store, uri, size);
      expect(layout.codecs).toEqual([codec === 'lz4' ? 'LZ4_RAW' : codec.toUpperCase()]);
      const read = collect(
        readParquet(tmp.store, groupRange(uri, size, 0, layout.rowGroups.length), { batchSize: 50 }),
      );
      if (layout.codecs.every((c) => READABLE_CODECS.has(c))) {
        const rows = await read;
        expectIn(
          rows.map((r) => r.values),
          codec,
        ).toEqual(Array.from({ length: 100 }, (_, i) => ({ i: BigInt(i), s: `v${i}` })));
      } else {
        expect(['zstd', 'lz4']).toContain(codec);
        await expect(read).rejects.toThrow(InputError);
        await expect(read).rejects.toThrow(
          /is compressed with (ZSTD|LZ4_RAW), which this reader cannot decode/,
        );
      }
    }
    expect(READABLE_CODECS.has('GZIP') && READABLE_CODECS.has('BROTLI')).toBe(true);
  });
});
