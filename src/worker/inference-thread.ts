/**
 * ONNX Runtime in a worker thread, so that inference overlaps reading, decoding and writing.
 *
 * Why a thread: onnxruntime-node 1.30's `session.run` returns a promise but executes the whole run synchronously
 * on the calling thread (its backend defers the native call with setImmediate and blocks there). Measured: during a
 * 100 ms run the event loop does not turn once. On the main thread, the next batch could only be read and decoded
 * after the current one was inferred. Here the session lives in its own thread (loaded once per worker process),
 * and the main thread keeps reading while it runs.
 *
 * Tensors cross the thread boundary by transfer where their buffer is their own (no copy), else as a copy.
 *
 * A batch whose run throws is bisected here, next to the session: the halves are run separately, recursively, until
 * the failing records are alone; every other record gets its outputs. The caller receives segments: row ranges of
 * the batch with either outputs or the error that isolated them.
 *
 * The thread's entry is this module: from source this .ts file, loaded through tsx; bundled, its own entry
 * `inference-thread.mjs` beside the worker bundle (spawn-thread.ts).
 */
import { isMainThread, parentPort, workerData, type MessagePort, type Worker } from 'node:worker_threads';
import { spawnModuleThread } from './spawn-thread.js';
import * as ort from 'onnxruntime-node';
import {
  loadModel,
  type ExecutionProvider,
  type ModelSession,
  type SessionFactory,
  type TensorInfo,
} from '../inference/session.js';
import { ModelError } from '../spec/errors.js';

const THREAD_ROLE = 'batch-infer:inference';

/** A tensor as it crosses the thread boundary. */
interface WireTensor {
  readonly type: ort.Tensor.Type;
  readonly dims: readonly number[];
  readonly data: ort.Tensor.DataType;
}
type WireFeeds = Record<string, WireTensor>;

type ToThread =
  | {
      readonly kind: 'load';
      readonly model: Uint8Array;
      readonly providers: readonly ExecutionProvider[];
      readonly threads?: number;
      /** URL of a module exporting `createSession` (a SessionFactory). */
      readonly sessionFactory?: string;
    }
  | {
      readonly kind: 'run';
      readonly id: number;
      readonly feeds: WireFeeds;
      readonly rows: number;
      readonly isolate: boolean;
      /** Send the feeds back with the result (moved, like the outputs). */
      readonly returnFeeds: boolean;
    }
  | { readonly kind: 'close' };

interface WireSegment {
  readonly start: number;
  readonly count: number;
  readonly outputs?: WireFeeds;
  readonly error?: string;
}

type FromThread =
  | {
      readonly kind: 'loaded';
      readonly inputs: readonly TensorInfo[];
      readonly outputs: readonly TensorInfo[];
      readonly executionProvider: ExecutionProvider;
    }
  | { readonly kind: 'log'; readonly message: string; readonly fields?: Record<string, unknown> }
  | { readonly kind: 'load-failed'; readonly name: string; readonly message: string }
  | {
      readonly kind: 'result';
      readonly id: number;
      readonly segments: readonly WireSegment[];
      readonly inferMs: number;
      readonly runs: number;
      readonly startedAt: number;
      readonly endedAt: number;
      readonly feeds?: WireFeeds;
    }
  | { readonly kind: 'run-failed'; readonly id: number; readonly message: string }
  | { readonly kind: 'closed' };

/** Rows [start, start + count) of a batch: their outputs, or the error that isolated them. */
export interface ResultSegment {
  readonly start: number;
  readonly count: number;
  readonly outputs?: Record<string, ort.Tensor>;
  readonly error?: string;
}

export interface InferenceResult {
  /** In row order, covering every row of the batch exactly once. */
  readonly segments: readonly ResultSegment[];
  /** Time inside session.run in the thread, all runs of this batch (bisection included). */
  readonly inferMs: number;
  /** session.run calls made (1 when the batch ran at once). */
  readonly runs: number;
  /**
   * When the batch's first run started and its last one ended, as epoch milliseconds with sub-millisecond precision
   * (performance.timeOrigin + performance.now(): comparable across threads, unlike performance.now() alone).
   */
  readonly startedAt: number;
  readonly endedAt: number;
  /** The feeds, handed back when the run moved them (`transfer` with `returnFeeds`). */
  readonly feeds?: Record<string, ort.Tensor>;
}

export interface RunOptions {
  /** Bisect a failing batch to isolate its bad records. @default true */
  readonly isolate?: boolean;
  /**
   * Move the feeds' buffers to the thread instead of copying them. The caller must not touch the feeds afterwards
   * (unless they come back: `returnFeeds`). @default true
   */
  readonly transfer?: boolean;
  /**
   * Have the thread move the feeds back with the result (InferenceResult.feeds), for a caller that still needs them
   * after the run (post-processing by attention mask) without paying for a copy either way. @default false
   */
  readonly returnFeeds?: boolean;
}

export interface InferenceThreadOptions {
  readonly providers?: readonly ExecutionProvider[];
  readonly threads?: number;
  /** Receives the session's log lines (execution provider fallback). */
  readonly log?: (message: string, fields?: Record<string, unknown>) => void;
  /**
   * URL of a module exporting `createSession`, a SessionFactory (src/inference/session.ts), that the thread creates
   * its session with instead of ONNX Runtime's own: a function cannot cross the thread boundary, a module can.
   * @default ort.InferenceSession.create
   */
  readonly sessionFactory?: string;
}

/** The thread died or answered something unexpected: the shard cannot go on. */
export class InferenceThreadError extends Error {
  override readonly name = 'InferenceThreadError';
}

/** The session could not be created (bad model, no provider); carries the name of the original error. */
export class ModelLoadError extends Error {
  override readonly name: string;
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/** Longest model error message kept in an error row: ONNX Runtime's can run to several kilobytes. */
const MAX_ERROR_CHARS = 500;

/** The main thread's handle on the inference thread. */
export class InferenceThread {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (r: InferenceResult) => void; reject: (e: Error) => void }
  >();
  private failure: Error | undefined;
  private closing: Promise<void> | undefined;
  /** Where the thread's log lines go: the shard's logger (a kept thread is given the next shard's). */
  private log: InferenceThreadOptions['log'];

  private constructor(
    private readonly worker: Worker,
    readonly inputs: readonly TensorInfo[],
    readonly outputs: readonly TensorInfo[],
    readonly executionProvider: ExecutionProvider,
  ) {}

  /**
   * Starts the thread and loads the model in it; resolves once the session exists. The model may still be on its way
   * (a promise): the thread boots meanwhile, which from source (compiling its modules) takes a moment.
   */
  static async start(
    modelBytes: Uint8Array | Promise<Uint8Array>,
    options: InferenceThreadOptions = {},
  ): Promise<InferenceThread> {
    const worker = spawnThread();
    let model: Uint8Array;
    try {
      model = await modelBytes;
    } catch (err) {
      await worker.terminate();
      throw err;
    }
    const loaded = await new Promise<Extract<FromThread, { kind: 'loaded' }>>((resolve, reject) => {
      const onMessage = (message: FromThread): void => {
        if (message.kind === 'log') options.log?.(message.message, message.fields);
        else if (message.kind === 'loaded') done(() => resolve(message));
        else if (message.kind === 'load-failed') {
          // A ModelError (bad artifact, no usable provider) stays one across the thread boundary.
          const err =
            message.name === 'ModelError'
              ? new ModelError(message.message)
              : new ModelLoadError(message.name, message.message);
          done(() => reject(err));
        }
      };
      const onError = (err: Error): void =>
        done(() => reject(new InferenceThreadError(`inference thread failed: ${err.message}`)));
      const onExit = (code: number): void =>
        done(() =>
          reject(new InferenceThreadError(`inference thread exited (${code}) while loading the model`)),
        );
      const done = (settle: () => void): void => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        settle();
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
      // A copy: the caller keeps its bytes (it may have hashed them, or hold them elsewhere).
      post(worker, {
        kind: 'load',
        model: model.slice(),
        providers: [...(options.providers ?? ['cpu'])],
        ...(options.threads ? { threads: options.threads } : {}),
        ...(options.sessionFactory ? { sessionFactory: options.sessionFactory } : {}),
      });
    }).catch(async (err: unknown) => {
      await worker.terminate();
      throw err;
    });
    const thread = new InferenceThread(worker, loaded.inputs, loaded.outputs, loaded.executionProvider);
    thread.log = options.log;
    thread.listen();
    return thread;
  }

  /** Runs one batch of `rows` records; see ResultSegment. Rejects only if the thread itself fails. */
  run(feeds: Record<string, ort.Tensor>, rows: number, options: RunOptions = {}): Promise<InferenceResult> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new InferenceThreadError('the inference thread is closed'));
    const id = this.nextId++;
    const transfer = options.transfer ?? true;
    const transferList: ArrayBuffer[] = [];
    const wire: WireFeeds = {};
    for (const [name, tensor] of Object.entries(feeds)) {
      wire[name] = toWire(tensor.type, tensor.dims, tensor.data, transfer ? transferList : undefined);
    }
    return new Promise<InferenceResult>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      post(
        this.worker,
        {
          kind: 'run',
          id,
          feeds: wire,
          rows,
          isolate: options.isolate ?? true,
          returnFeeds: options.returnFeeds ?? false,
        },
        transferList,
      );
    });
  }

  /** Releases the session and ends the thread. Pending runs are rejected. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      const timer = setTimeout(() => void this.worker.terminate().then(() => resolve()), 5_000);
      this.worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      post(this.worker, { kind: 'close' });
    });
    return this.closing;
  }

  /** Ends the thread at once (the session's native memory goes with it). */
  async terminate(): Promise<void> {
    await this.worker.terminate();
  }

  /** Whether the thread can run more batches: not closed, not failed, nothing in flight. */
  get usable(): boolean {
    return this.failure === undefined && this.closing === undefined && this.pending.size === 0;
  }

  /** Sends the thread's log lines to `log` from now on (a kept thread, lent to the next shard). */
  logTo(log: InferenceThreadOptions['log']): void {
    this.log = log;
  }

  /** Whether the thread keeps the process alive: a kept thread does not (a finished worker exits). */
  holdProcess(hold: boolean): void {
    if (hold) this.worker.ref();
    else this.worker.unref();
  }

  private listen(): void {
    this.worker.on('message', (message: FromThread) => {
      switch (message.kind) {
        case 'log':
          this.log?.(message.message, message.fields);
          return;
        case 'result': {
          const waiter = this.pending.get(message.id);
          this.pending.delete(message.id);
          waiter?.resolve({
            segments: message.segments.map((s) => ({
              start: s.start,
              count: s.count,
              ...(s.outputs ? { outputs: fromWireFeeds(s.outputs) } : {}),
              ...(s.error !== undefined ? { error: s.error } : {}),
            })),
            inferMs: message.inferMs,
            runs: message.runs,
            startedAt: message.startedAt,
            endedAt: message.endedAt,
            ...(message.feeds ? { feeds: fromWireFeeds(message.feeds) } : {}),
          });
          return;
        }
        case 'run-failed': {
          const waiter = this.pending.get(message.id);
          this.pending.delete(message.id);
          waiter?.reject(new InferenceThreadError(message.message));
          return;
        }
        default:
          return;
      }
    });
    const fail = (err: Error): void => {
      this.failure ??= err;
      for (const waiter of this.pending.values()) waiter.reject(this.failure);
      this.pending.clear();
    };
    this.worker.on('error', (err) =>
      fail(new InferenceThreadError(`inference thread failed: ${err.message}`)),
    );
    this.worker.on('exit', (code) => {
      if (!this.closing) fail(new InferenceThreadError(`inference thread exited unexpectedly (${code})`));
    });
  }
}

function post(
  target: Worker | MessagePort,
  message: ToThread | FromThread,
  transfer: ArrayBuffer[] = [],
): void {
  target.postMessage(message, transfer);
}

/**
 * A tensor for postMessage. A typed array that spans its whole buffer is moved when `transferList` is given; a view
 * into a larger buffer (a subarray, or Node's pooled small Buffers) is copied first, because moving its buffer would
 * detach memory that something else may still use.
 */
function toWire(
  type: ort.Tensor.Type,
  dims: readonly number[],
  data: ort.Tensor.DataType,
  transferList: ArrayBuffer[] | undefined,
): WireTensor {
  if (!transferList || !ArrayBuffer.isView(data)) return { type, dims: [...dims], data };
  const view = data;
  const owned =
    view.buffer instanceof ArrayBuffer && view.byteOffset === 0 && view.byteLength === view.buffer.byteLength;
  const moved = owned ? view : view.slice();
  if (!transferList.includes(moved.buffer as ArrayBuffer)) transferList.push(moved.buffer as ArrayBuffer);
  return { type, dims: [...dims], data: moved };
}

function fromWireFeeds(feeds: WireFeeds): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(feeds)) out[name] = makeTensor(t.type, t.data, t.dims);
  return out;
}

function makeTensor(type: ort.Tensor.Type, data: ort.Tensor.DataType, dims: readonly number[]): ort.Tensor {
  // The Tensor constructor's overloads pair each type with its array; the pair came from a Tensor, so it matches.
  return new ort.Tensor(type, data, dims);
}

/** Starts the thread on this module's own entry (spawn-thread.ts: from source, tsc's output or the bundle). */
function spawnThread(): Worker {
  return spawnModuleThread(import.meta.url, 'inference-thread', { role: THREAD_ROLE });
}

// ---------------------------------------------------------------------------------------------------------------
// The thread side

function serve(port: MessagePort): void {
  let session: ModelSession | undefined;
  // One run at a time, in arrival order: messages are queued here while a run is in progress.
  let queue: Promise<void> = Promise.resolve();
  port.on('message', (message: ToThread) => {
    queue = queue
      .then(() => handle(message))
      .catch((err: unknown) => {
        post(port, { kind: 'log', message: 'inference thread error', fields: { error: errorText(err) } });
      });
  });

  async function handle(message: ToThread): Promise<void> {
    switch (message.kind) {
      case 'load':
        try {
          const createSession = message.sessionFactory
            ? await importSessionFactory(message.sessionFactory)
            : undefined;
          session = await loadModel(message.model, {
            providers: message.providers,
            ...(message.threads ? { threads: message.threads } : {}),
            ...(createSession ? { createSession } : {}),
            log: (text, fields) => post(port, { kind: 'log', message: text, ...(fields ? { fields } : {}) }),
          });
          post(port, {
            kind: 'loaded',
            inputs: session.inputs,
            outputs: session.outputs,
            executionProvider: session.executionProvider,
          });
        } catch (err) {
          const e = err instanceof Error ? err : new Error(String(err));
          post(port, { kind: 'load-failed', name: e.name, message: e.message });
        }
        return;
      case 'run': {
        if (!session) {
          post(port, { kind: 'run-failed', id: message.id, message: 'no model loaded' });
          return;
        }
        try {
          const feeds = fromWireFeeds(message.feeds);
          const segments: WireSegment[] = [];
          const transferList: ArrayBuffer[] = [];
          const stats = { inferMs: 0, runs: 0 };
          const startedAt = epochNow();
          await runIsolating(
            session,
            feeds,
            message.rows,
            0,
            message.rows,
            message.isolate,
            segments,
            transferList,
            stats,
          );
          const endedAt = epochNow();
          let returned: WireFeeds | undefined;
          if (message.returnFeeds) {
            returned = {};
            for (const [name, tensor] of Object.entries(message.feeds)) {
              returned[name] = toWire(tensor.type, tensor.dims, tensor.data, transferList);
            }
          }
          post(
            port,
            {
              kind: 'result',
              id: message.id,
              segments,
              inferMs: stats.inferMs,
              runs: stats.runs,
              startedAt,
              endedAt,
              ...(returned ? { feeds: returned } : {}),
            },
            transferList,
          );
        } catch (err) {
          post(port, { kind: 'run-failed', id: message.id, message: errorText(err) });
        }
        return;
      }
      case 'close':
        await session?.release().catch(() => undefined);
        session = undefined;
        port.close();
        return;
    }
  }
}

/** The `createSession` export of a session factory module (InferenceThreadOptions.sessionFactory). */
async function importSessionFactory(url: string): Promise<SessionFactory> {
  const module = (await import(url)) as { createSession?: unknown };
  if (typeof module.createSession !== 'function') {
    throw new Error(`session factory module ${url} does not export a createSession function`);
  }
  return module.createSession as SessionFactory;
}

/**
 * Runs rows [start, start + count); on failure splits them in two and runs each half, down to single rows. Each
 * failing record costs about 2·log2(batch) extra runs of shrinking size; the others are still inferred in batches.
 */
async function runIsolating(
  session: ModelSession,
  feeds: Record<string, ort.Tensor>,
  rows: number,
  start: number,
  count: number,
  isolate: boolean,
  segments: WireSegment[],
  transferList: ArrayBuffer[],
  stats: { inferMs: number; runs: number },
): Promise<void> {
  const part = start === 0 && count === rows ? feeds : sliceFeeds(feeds, rows, start, count);
  const t = performance.now();
  let outputs: Record<string, ort.Tensor> | undefined;
  let failure: unknown;
  try {
    outputs = await session.run(part);
  } catch (err) {
    failure = err;
  }
  stats.inferMs += performance.now() - t;
  stats.runs++;
  if (outputs) {
    const wire: WireFeeds = {};
    for (const [name, tensor] of Object.entries(outputs)) {
      wire[name] = toWire(tensor.type, tensor.dims, tensor.data, transferList);
    }
    segments.push({ start, count, outputs: wire });
    return;
  }
  if (!isolate || count === 1) {
    segments.push({ start, count, error: truncate(errorText(failure), MAX_ERROR_CHARS) });
    return;
  }
  const half = Math.ceil(count / 2);
  await runIsolating(session, feeds, rows, start, half, isolate, segments, transferList, stats);
  await runIsolating(
    session,
    feeds,
    rows,
    start + half,
    count - half,
    isolate,
    segments,
    transferList,
    stats,
  );
}

/** Rows [start, start + count) of every feed (dimension 0 is the batch), as views: no copy. */
export function sliceFeeds(
  feeds: Record<string, ort.Tensor>,
  rows: number,
  start: number,
  count: number,
): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (const [name, tensor] of Object.entries(feeds)) {
    const per = rows === 0 ? 0 : tensor.size / rows;
    const dims = [count, ...tensor.dims.slice(1)];
    const data = tensor.data;
    const part = Array.isArray(data)
      ? data.slice(start * per, (start + count) * per)
      : (data as Float32Array).subarray(start * per, (start + count) * per);
    out[name] = makeTensor(tensor.type, part, dims);
  }
  return out;
}

/** Now, as epoch milliseconds with the precision of performance.now(); comparable between threads. */
export function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

if (!isMainThread && (workerData as { role?: unknown } | null)?.role === THREAD_ROLE && parentPort) {
  serve(parentPort);
}

/**
 * The inference thread kept between the shards a worker host runs (ADR 0021), as DecodePools keeps decode threads:
 * the thread of a shard that succeeded, with its session, is lent to the next shard of the same model and settings.
 * Measured on the demo, one host running 8 shards: each shard started a thread that loaded ONNX Runtime and the
 * model, about 0.1 s of CPU and 0.1-0.2 s before its first batch. One thread is kept at a time.
 */
export class KeptInferenceThreads {
  private kept: { readonly key: string; readonly thread: InferenceThread } | undefined;

  /** The kept thread when it was started with `key` and is usable (it is taken), else undefined. */
  take(key: string): InferenceThread | undefined {
    const kept = this.kept;
    this.kept = undefined;
    if (kept && kept.key === key && kept.thread.usable) {
      kept.thread.holdProcess(true);
      return kept.thread;
    }
    void kept?.thread.close();
    return undefined;
  }

  /** Keeps `thread`, started with `key`, for the next shard; only after a shard that succeeded. */
  keep(key: string, thread: InferenceThread): void {
    void this.kept?.thread.close();
    this.kept = thread.usable ? { key, thread } : undefined;
    // Kept, it must not keep a worker that has nothing left to do from exiting.
    if (this.kept) thread.holdProcess(false);
    else void thread.close();
  }
}
