/**
 * Input summaries counted on a decode thread (DecodePool.counter): the same summaries, bit for bit, as
 * NumericAccumulator.addColumn on the calling thread, batch after batch in the order they were sent.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import type { ColumnarPlan } from '../../src/formats/csv-columnar.js';
import { NumericAccumulator } from '../../src/runs/numeric-accumulator.js';
import { DecodePool } from '../../src/worker/decode-thread.js';

const plan: ColumnarPlan = {
  entries: [{ tensor: 'x', dtype: 'float32', missing: 'error', from: { columns: ['a', 'b'] } }],
  identity: [],
};

let pool: DecodePool | undefined;
afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

/** Deterministic values over many magnitudes and both signs, with gaps (NaN) and zeros. */
function column(seed: number, n: number): Float64Array {
  const out = new Float64Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const v = ((x / 2 ** 31 - 0.5) * 10 ** ((x % 9) - 3)) / 3;
    out[i] = i % 97 === 0 ? NaN : i % 89 === 0 ? 0 : v;
  }
  return out;
}

/** A record's row, or -1 for a record without a prediction (an error row): every seventh. */
function rowsOf(n: number): Int32Array {
  const rowOf = new Int32Array(n);
  let row = 0;
  for (let i = 0; i < n; i++) rowOf[i] = i % 7 === 3 ? -1 : row++;
  return rowOf;
}

describe('input summaries counted on a decode thread', () => {
  it('are those of addColumn on this thread, over batches sent in order, and the columns are moved', async () => {
    pool = DecodePool.start(2, plan);
    const here = [new NumericAccumulator(), new NumericAccumulator()];
    for (let batch = 0; batch < 5; batch++) {
      const n = 1000 + batch * 37;
      const columns = [column(batch + 1, n), column(batch + 100, n)];
      const rowOf = rowsOf(n);
      columns.forEach((c, k) => here[k]!.addColumn(c, rowOf));
      pool.counter.count('chunk-0', columns, rowOf);
      // Moved to the thread, not copied.
      expect(columns.map((c) => c.length)).toEqual([0, 0]);
    }
    const there = await pool.counter.summaries('chunk-0');
    expect(there).toEqual(here.map((a) => a.summary()));
    expect(there[0]!.count).toBeGreaterThan(0);
  });

  it('keeps keys apart, forgets a key it is told to and one it has answered for', async () => {
    pool = DecodePool.start(1, plan);
    pool.counter.count('a', [Float64Array.of(1, 2, 3)], Int32Array.of(0, 1, 2));
    pool.counter.count('b', [Float64Array.of(-5)], Int32Array.of(0));
    pool.counter.count('c', [Float64Array.of(7)], Int32Array.of(0));
    pool.counter.forget('c');
    const [a, b] = await Promise.all([pool.counter.summaries('a'), pool.counter.summaries('b')]);
    expect(a.map((s) => [s.count, s.sum, s.min, s.max])).toEqual([[3, 6, 1, 3]]);
    expect(b.map((s) => [s.count, s.sum])).toEqual([[1, -5]]);
    expect(await pool.counter.summaries('c')).toEqual([]);
    expect(await pool.counter.summaries('a')).toEqual([]);
  });

  it('fails requests for summaries, instead of waiting for ever, when the counting thread dies', async () => {
    pool = DecodePool.start(1, plan);
    const dying = pool;
    // A row map the thread cannot read: counting throws on the thread, which ends it.
    dying.counter.count('a', [Float64Array.of(1)], null as unknown as Int32Array);
    const asked = dying.counter.summaries('a');
    await expect(asked).rejects.toThrow();
    await expect(dying.counter.summaries('a')).rejects.toThrow('exited');
    expect(dying.usable).toBe(false);
  });

  it('fails a request once the pool is closed', async () => {
    pool = DecodePool.start(1, plan);
    const closed = pool;
    await closed.close();
    await expect(closed.counter.summaries('a')).rejects.toThrow('closed');
    expect(() => closed.counter.count('a', [Float64Array.of(1)], Int32Array.of(0))).toThrow('closed');
  });
});
