/**
 * Decode threads: columnar CSV decoding (src/formats/csv-columnar.ts) of byte blocks on worker_threads, so the
 * worker's parsing runs on every core while its main thread reads, merges and writes (docs/adr/0019).
 *
 * The main thread reads the bytes (through the ObjectStore, pinned: the threads never touch storage) and sends each
 * block to the least busy thread, moving the bytes (no copy); the thread moves the block's columns back. Blocks are
 * independent, so the threads need no order: the caller merges results in the order it sent the blocks.
 *
 * The thread's entry is this module: from source this .ts file, loaded through tsx; bundled, its own small entry
 * `decode-thread.mjs` beside the worker bundle (spawn-thread.ts), not the whole worker.
 */
import { isMainThread, parentPort, workerData, type MessagePort, type Worker } from 'node:worker_threads';
import { spawnModuleThread } from './spawn-thread.js';
import {
  blockBuffers,
  ColumnarBlockBuilder,
  type BlockSpan,
  type ColumnarBlock,
  type ColumnarPlan,
} from '../formats/csv-columnar.js';
import type { CsvHeader } from '../formats/csv.js';
import { QuotedBreakAtBoundaryError } from '../formats/lines.js';
import { NumericAccumulator } from '../runs/numeric-accumulator.js';
import type { NumericSummary } from '../runs/stats.js';
import { InputError } from '../spec/errors.js';

const THREAD_ROLE = 'batch-infer:decode';

type ToThread =
  | {
      readonly kind: 'decode';
      readonly id: number;
      readonly uri: string;
      readonly header: CsvHeader;
      readonly bytes: Uint8Array;
      readonly span: BlockSpan;
    }
  | {
      readonly kind: 'count';
      readonly key: string;
      readonly columns: readonly Float64Array[];
      readonly rowOf: Int32Array;
    }
  | { readonly kind: 'summaries'; readonly id: number; readonly key: string }
  | { readonly kind: 'forget'; readonly key: string };

type FromThread =
  | { readonly kind: 'block'; readonly id: number; readonly block: ColumnarBlock }
  | { readonly kind: 'summaries'; readonly id: number; readonly summaries: NumericSummary[] }
  | { readonly kind: 'failed'; readonly id: number; readonly name: string; readonly message: string };

/**
 * Counts a shard's input columns into numeric summaries, chunk by chunk, off the caller's thread (ShardWriter's input
 * summaries: every feature of every record). `count` calls for one key are counted in the order they were made, so
 * the summaries are those NumericAccumulator.addColumn gives on the calling thread, bit for bit.
 */
export interface InputCounter {
  /** Counts `columns[k][i]` into summary k of `key` for each i with `rowOf[i] >= 0`; the arrays are moved. */
  count(key: string, columns: readonly Float64Array[], rowOf: Int32Array): void;
  /** The summaries of `key` (one per column), once everything counted before is in; the key is then forgotten. */
  summaries(key: string): Promise<NumericSummary[]>;
  /** Forgets `key` without reading it (a chunk that was dropped). */
  forget(key: string): void;
}

/** A decoded block and the thread (0-based) that decoded it. */
export interface Decoded {
  readonly block: ColumnarBlock;
  readonly thread: number;
}

interface Pending {
  readonly resolve: (reply: Exclude<FromThread, { kind: 'failed' }>) => void;
  readonly reject: (err: Error) => void;
}

interface Slot {
  readonly worker: Worker;
  readonly pending: Map<number, Pending>;
}

/** A fixed set of decode threads for one shard. */
export class DecodePool {
  private nextId = 0;
  private closed = false;
  /** Set when a thread has exited or failed: the pool cannot serve another shard. */
  private broken = false;

  private constructor(private readonly slots: Slot[]) {}

  /** Starts `threads` threads (at least one) decoding for `plan`. */
  static start(threads: number, plan: ColumnarPlan): DecodePool {
    const slots: Slot[] = [];
    const pool = new DecodePool(slots);
    for (let thread = 0; thread < Math.max(1, threads); thread++) {
      const slot: Slot = { worker: spawnThread(plan), pending: new Map() };
      const failAll = (err: Error): void => {
        for (const p of slot.pending.values()) p.reject(err);
        slot.pending.clear();
      };
      slot.worker.on('message', (message: FromThread) => {
        const pending = slot.pending.get(message.id);
        if (!pending) return;
        slot.pending.delete(message.id);
        if (message.kind === 'failed') pending.reject(rebuildError(message.name, message.message));
        else pending.resolve(message);
      });
      slot.worker.on('error', (err) => {
        pool.broken = true;
        failAll(err);
      });
      slot.worker.on('exit', (code) => {
        pool.broken = true;
        failAll(new Error(`a decode thread exited (code ${code})`));
      });
      // The shard's end terminates the threads; an early exit of the process must not wait for them.
      slot.worker.unref();
      slots.push(slot);
    }
    return pool;
  }

  /** Whether it can decode another shard's blocks: not closed, every thread alive. */
  get usable(): boolean {
    return !this.closed && !this.broken;
  }

  get threads(): number {
    return this.slots.length;
  }

  /** Decodes one block on the least busy thread; `bytes` (its own buffer) is moved there. */
  decode(uri: string, header: CsvHeader, bytes: Uint8Array, span: BlockSpan): Promise<Decoded> {
    if (this.closed) return Promise.reject(new Error('the decode pool is closed'));
    // A thread that died took its messages with it: nothing sent now would be answered.
    if (this.broken) return Promise.reject(new Error('a decode thread has exited'));
    let slot = this.slots[0]!;
    for (const s of this.slots) if (s.pending.size < slot.pending.size) slot = s;
    const id = this.nextId++;
    const chosen = slot;
    const thread = this.slots.indexOf(chosen);
    return new Promise<Decoded>((resolve, reject) => {
      chosen.pending.set(id, {
        resolve: (reply) =>
          reply.kind === 'block'
            ? resolve({ block: reply.block, thread })
            : reject(new Error(`a decode thread answered a block with ${reply.kind}`)),
        reject,
      });
      const message: ToThread = { kind: 'decode', id, uri, header, bytes, span };
      chosen.worker.postMessage(message, [bytes.buffer as ArrayBuffer]);
    });
  }

  /**
   * Input summaries counted on the pool's first thread (one thread: its messages are handled in the order they were
   * sent, which keeps every key's counts in order). The threads decode only while blocks are read ahead; the
   * counting is work the main thread no longer does between them.
   */
  readonly counter: InputCounter = {
    count: (key, columns, rowOf) => {
      if (this.closed) throw new Error('the decode pool is closed');
      const message: ToThread = { kind: 'count', key, columns, rowOf };
      this.slots[0]!.worker.postMessage(message, [...new Set(columns.map((c) => c.buffer as ArrayBuffer))]);
    },
    summaries: (key) => {
      if (this.closed) return Promise.reject(new Error('the decode pool is closed'));
      // Counts sent to a thread that has since died are lost: its summaries must not read as empty.
      if (this.broken) return Promise.reject(new Error('a decode thread has exited'));
      const slot = this.slots[0]!;
      const id = this.nextId++;
      return new Promise<NumericSummary[]>((resolve, reject) => {
        slot.pending.set(id, {
          resolve: (reply) =>
            reply.kind === 'summaries'
              ? resolve(reply.summaries)
              : reject(new Error(`a decode thread answered summaries with ${reply.kind}`)),
          reject,
        });
        const message: ToThread = { kind: 'summaries', id, key };
        slot.worker.postMessage(message);
      });
    },
    forget: (key) => {
      if (this.closed) return;
      const message: ToThread = { kind: 'forget', key };
      this.slots[0]!.worker.postMessage(message);
    },
  };

  /** Ends the threads (blocks still in flight are rejected). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}

/**
 * Decode threads kept between the shards a worker host runs (ADR 0021): the pool that decoded a shard that succeeded
 * is lent to the next shard of the same plan, so its threads start once and their compiled decoder stays warm
 * (measured: each shard in a host cost about 0.6 s more CPU than the same records in one shard, most of it new
 * threads). One pool is kept at a time; a shard of another plan or thread count gets a new one.
 */
export class DecodePools {
  private kept: { readonly key: string; readonly pool: DecodePool } | undefined;

  /** A pool of `threads` threads for `plan`: the kept one when it fits (it is taken), else a new one. */
  take(threads: number, plan: ColumnarPlan): { readonly pool: DecodePool; readonly reused: boolean } {
    const key = JSON.stringify([threads, plan]);
    const kept = this.kept;
    this.kept = undefined;
    if (kept && kept.key === key && kept.pool.usable) return { pool: kept.pool, reused: true };
    void kept?.pool.close();
    return { pool: DecodePool.start(threads, plan), reused: false };
  }

  /** Keeps `pool` for the next shard; only after a shard that succeeded (nothing of it is in flight). */
  keep(threads: number, plan: ColumnarPlan, pool: DecodePool): void {
    void this.kept?.pool.close();
    this.kept = pool.usable ? { key: JSON.stringify([threads, plan]), pool } : undefined;
  }
}

/** Errors keep their type across the thread boundary where the failure classification needs it. */
function rebuildError(name: string, message: string): Error {
  if (name === 'QuotedBreakAtBoundaryError') return new QuotedBreakAtBoundaryError(message);
  if (name === 'InputError') return new InputError(message);
  return new Error(message);
}

/** Starts a thread on this module's own entry (spawn-thread.ts: from source, tsc's output or the bundle). */
function spawnThread(plan: ColumnarPlan): Worker {
  return spawnModuleThread(import.meta.url, 'decode-thread', { role: THREAD_ROLE, plan });
}

// ---------------------------------------------------------------------------------------------------------------
// The thread side

/** Objects whose builders (header layouts) a thread keeps. */
const BUILDERS_KEPT = 16;

function serve(port: MessagePort, plan: ColumnarPlan): void {
  const builders = new Map<string, ColumnarBlockBuilder>();
  const counts = new Map<string, NumericAccumulator[]>();
  port.on('message', (message: ToThread) => {
    if (message.kind === 'count') {
      let accumulators = counts.get(message.key);
      if (!accumulators) {
        accumulators = message.columns.map(() => new NumericAccumulator());
        counts.set(message.key, accumulators);
      }
      message.columns.forEach((column, k) => accumulators[k]!.addColumn(column, message.rowOf));
      return;
    }
    if (message.kind === 'forget') {
      counts.delete(message.key);
      return;
    }
    if (message.kind === 'summaries') {
      const summaries = (counts.get(message.key) ?? []).map((a) => a.summary());
      counts.delete(message.key);
      const reply: FromThread = { kind: 'summaries', id: message.id, summaries };
      port.postMessage(reply);
      return;
    }
    try {
      let builder = builders.get(message.uri);
      if (!builder) {
        if (builders.size >= BUILDERS_KEPT) builders.clear();
        builder = new ColumnarBlockBuilder(plan, message.uri, message.header);
        builders.set(message.uri, builder);
      }
      const bytes = Buffer.from(message.bytes.buffer, message.bytes.byteOffset, message.bytes.byteLength);
      const block = builder.decode(bytes, message.span);
      const reply: FromThread = { kind: 'block', id: message.id, block };
      port.postMessage(reply, blockBuffers(block));
    } catch (err) {
      const reply: FromThread = {
        kind: 'failed',
        id: message.id,
        name: err instanceof Error ? err.name : 'Error',
        message: err instanceof Error ? err.message : String(err),
      };
      port.postMessage(reply);
    }
  });
}

const data = workerData as { role?: unknown; plan?: ColumnarPlan } | null;
if (!isMainThread && data?.role === THREAD_ROLE && data.plan && parentPort) {
  serve(parentPort, data.plan);
}
