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
import { InputError } from '../spec/errors.js';

const THREAD_ROLE = 'batch-infer:decode';

interface ToThread {
  readonly id: number;
  readonly uri: string;
  readonly header: CsvHeader;
  readonly bytes: Uint8Array;
  readonly span: BlockSpan;
}

type FromThread =
  | { readonly kind: 'block'; readonly id: number; readonly block: ColumnarBlock }
  | { readonly kind: 'failed'; readonly id: number; readonly name: string; readonly message: string };

/** A decoded block and the thread (0-based) that decoded it. */
export interface Decoded {
  readonly block: ColumnarBlock;
  readonly thread: number;
}

interface Pending {
  readonly resolve: (decoded: Decoded) => void;
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
        if (message.kind === 'block') pending.resolve({ block: message.block, thread });
        else pending.reject(rebuildError(message.name, message.message));
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
    let slot = this.slots[0]!;
    for (const s of this.slots) if (s.pending.size < slot.pending.size) slot = s;
    const id = this.nextId++;
    const chosen = slot;
    return new Promise<Decoded>((resolve, reject) => {
      chosen.pending.set(id, { resolve, reject });
      const message: ToThread = { id, uri, header, bytes, span };
      chosen.worker.postMessage(message, [bytes.buffer as ArrayBuffer]);
    });
  }

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
  port.on('message', (message: ToThread) => {
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
