/**
 * The challenger's side of a shard (docs/adr/0020). The shard runner (worker/run-shard.ts) decodes each batch once;
 * the lane runs the same feeds through the challenger's session in its own inference thread (a copy of the feeds,
 * sent before the champion's run moves them), post-processes the challenger's outputs with its own outputs spec,
 * and writes them with a second ShardWriter to the challenger's table (`<output.uri>/_challenger/`, same identity
 * columns). Each written window is also added to the comparison (comparison.ts).
 *
 * Checkpoints stay in step: the challenger's writer never seals a chunk on its own; it seals when the champion's
 * does (ShardWriterOptions.onSeal), right after receiving the same window, so chunk k of both tables covers the same
 * records. Before sealing chunk k the lane stores chunk k's comparison partial. A resumed shard resumes only when
 * both checkpoints cover the same chunks (`agreeOnResume`); otherwise both start over (the keys are deterministic:
 * nothing is duplicated). At the end the challenger's marker is written before the champion's, so a champion marker
 * always means a complete challenger shard.
 */
import type * as ort from 'onnxruntime-node';
import os from 'node:os';
import type { SourceRecord } from '../formats/records.js';
import { loadModelFiles } from '../inference/model-files.js';
import { createPostprocessor, type Postprocessor } from '../inference/postprocess.js';
import type { RunLayout } from '../runs/layout.js';
import type { Plan, ShardMarker } from '../runs/types.js';
import { putJson, type ObjectStore } from '../storage/object-store.js';
import { readCheckpoint, type Checkpoint, type StageTimings } from '../worker/checkpoint.js';
import type { InferenceResult, InferenceThread } from '../worker/inference-thread.js';
import { ShardWriter, type BatchRows } from '../worker/shard-writer.js';
import {
  assembleBatchRows,
  gatherWindowRows,
  placeBatchRows,
  type InferredBatch,
  type RowError,
  type WindowValues,
} from '../worker/batch-rows.js';
import { ComparisonAccumulator, compareColumnsOf, mergePartials } from './comparison.js';
import { challengerLayoutOf, challengerPlanOf } from './plan.js';
import { chunkComparisonUri, readComparisonPartial, shardComparisonUri } from './comparison-files.js';

/**
 * Which checkpoints a shard resumes from: the champion's and the challenger's when both cover the same chunks, else
 * none (both tables start over). Without a challenger: the champion's as it is.
 */
export async function agreeOnResume(
  store: ObjectStore,
  plan: Plan,
  shardId: number,
  champion: Checkpoint | undefined,
  warn: (message: string, fields?: Record<string, unknown>) => void,
): Promise<{ resume?: Checkpoint; challenger?: Checkpoint }> {
  const layout = challengerLayoutOf(plan);
  if (!layout || !champion) return champion ? { resume: champion } : {};
  const reading = await readCheckpoint(store, layout, plan.runId, shardId);
  const challenger = reading.kind === 'usable' ? reading.checkpoint : undefined;
  if (
    challenger &&
    challenger.chunks.length === champion.chunks.length &&
    challenger.records === champion.records
  ) {
    return { resume: champion, challenger };
  }
  warn('the challenger checkpoint does not match the champion checkpoint; the shard starts over', {
    shardId,
    championChunks: champion.chunks.length,
    challengerChunks: challenger?.chunks.length ?? null,
    ...(reading.kind === 'unusable' ? { reason: reading.reason } : {}),
  });
  return {};
}

export interface LaneOptions {
  readonly store: ObjectStore;
  /** The champion's plan (the lane derives the challenger's). */
  readonly plan: Plan;
  readonly thread: InferenceThread;
  readonly shardId: number;
  readonly batchSize: number;
  readonly appendUnit: number;
  /** URIs of the shard's input objects (ShardWriterOptions.sources). */
  readonly sources: readonly string[];
  /** The champion's label columns (argmax outputs), to pick the compared label columns. */
  readonly championColumns: readonly { readonly name: string; readonly type: string }[];
  readonly championLabels: ReadonlySet<string>;
  readonly resume?: Checkpoint;
  readonly tmpDir?: string;
  /** The champion's stage timings (the challenger's marker reports its own inference and writing on top). */
  readonly timings: () => StageTimings;
}

interface WindowState extends WindowValues {
  direct?: BatchRows;
}

export class ChallengerLane {
  private pendingSeal = false;
  private chunk: number;
  private acc: ComparisonAccumulator;
  private readonly windows = new Map<object, WindowState>();
  private inferMs = 0;
  private writeMs = 0;

  private constructor(
    private readonly options: LaneOptions,
    private readonly plan: Plan,
    private readonly layout: RunLayout,
    readonly post: Postprocessor,
    private readonly writer: ShardWriter,
    private readonly newAccumulator: () => ComparisonAccumulator,
  ) {
    this.chunk = options.resume?.chunks.length ?? 0;
    this.acc = newAccumulator();
  }

  /** The lane for a shard of a run with a challenger (its thread started by the caller). */
  static async open(options: LaneOptions): Promise<ChallengerLane> {
    const plan = challengerPlanOf(options.plan);
    const layout = challengerLayoutOf(options.plan);
    if (!plan || !layout) throw new Error('ChallengerLane.open: the plan has no challenger');
    const files = await loadModelFiles(options.store, plan);
    const post = createPostprocessor(plan.spec.model.outputs, options.thread.outputs, files);
    const labels = new Set(
      plan.spec.model.outputs.flatMap((o) => (o.postprocess?.argmax ? [o.postprocess.argmax.as] : [])),
    );
    const writer = new ShardWriter({
      store: options.store,
      layout,
      runId: plan.runId,
      shardId: options.shardId,
      spec: plan.spec,
      predictionColumns: post.columns.map((c) => ({ name: c.name, type: c.type })),
      labelColumns: labels,
      sources: options.sources,
      batchSize: options.batchSize,
      appendUnit: options.appendUnit,
      // Sealed only when the champion's writer seals (see the module comment).
      chunkRecords: Number.MAX_SAFE_INTEGER,
      chunkBytes: Number.POSITIVE_INFINITY,
      // Its inputs are the champion's (summarised by the champion's writer): plucking them again per row cost
      // about a tenth of the challenger's work on the 30-column tabular benchmark.
      inputSummaries: false,
      tmpDir: options.tmpDir ?? os.tmpdir(),
      timings: options.timings,
      ...(options.resume ? { resume: options.resume } : {}),
    });
    const columns = compareColumnsOf(
      options.championColumns as { name: string; type: never }[],
      post.columns,
      { champion: options.championLabels, challenger: labels },
    );
    return new ChallengerLane(
      options,
      plan,
      layout,
      post,
      writer,
      () => new ComparisonAccumulator(columns, plan.spec.input.id),
    );
  }

  /** Sends a batch's feeds to the challenger; call before the champion's run moves them (they are copied here). */
  dispatch(feeds: Record<string, ort.Tensor>, rows: number): Promise<InferenceResult> {
    const result = this.options.thread.run(feeds, rows, { transfer: false });
    // Settled by `assemble`, or dropped on interruption: never an unhandled rejection.
    result.catch(() => undefined);
    return result;
  }

  /**
   * The challenger's rows of one batch, in batch order. `errors` are the batch's decode and feature errors (before
   * the champion's post-processing adds its own); `feeds` the feeds as the champion's run handed them back.
   */
  async assemble(
    item: InferredBatch & { readonly errors: ReadonlyMap<number, RowError> },
    pending: Promise<InferenceResult> | undefined,
    feeds: Record<string, ort.Tensor> | undefined,
  ): Promise<BatchRows> {
    const result = pending ? await pending : undefined;
    this.inferMs += result?.inferMs ?? 0;
    return assembleBatchRows(item, result, this.post, {
      errors: new Map(item.errors),
      feeds,
      model: 'challenger model',
    });
  }

  /**
   * Places a batch's rows into its window: `order` maps the batch's records to window indexes (length bucketing);
   * without it the batch is the whole window, in order.
   */
  place(window: object, windowSize: number, order: readonly number[] | undefined, rows: BatchRows): void {
    let state = this.windows.get(window);
    if (!state) {
      state = { values: new Array<unknown[] | undefined>(order ? windowSize : 0), errors: new Map() };
      this.windows.set(window, state);
    }
    if (!order) {
      state.direct = rows;
      return;
    }
    placeBatchRows(state, order, rows);
  }

  /**
   * Writes a completed window (called right after the champion's writer took the same window): compares it with
   * the champion's rows, appends it, and seals the chunk when the champion's writer sealed one.
   */
  async append(
    window: object,
    batch: { readonly records: readonly SourceRecord[]; readonly ranges: readonly number[] },
    champion: BatchRows,
  ): Promise<void> {
    const state = this.windows.get(window);
    this.windows.delete(window);
    const t = performance.now();
    const rows = state?.direct ?? gatherWindowRows(batch, state, this.post.columns.length);
    const names = (cols: readonly { name: string }[]): string[] => cols.map((c) => c.name);
    this.acc.add(
      batch.records,
      {
        rowOf: champion.rowOf,
        columns: names(this.options.championColumns),
        predictions: champion.predictions,
      },
      { rowOf: rows.rowOf, columns: names(this.post.columns), predictions: rows.predictions },
    );
    await this.writer.appendBatch(rows);
    if (this.pendingSeal) await this.seal();
    this.writeMs += performance.now() - t;
  }

  /** ShardWriterOptions.onSeal of the champion's writer: the challenger seals at the same record. */
  championSealed(): void {
    this.pendingSeal = true;
  }

  /** The shard was interrupted: seal where the champion sealed and wait for the upload. */
  async interrupt(): Promise<void> {
    if (this.pendingSeal) await this.seal();
    await this.writer.flush();
  }

  /** Seals the last chunk and writes the shard's comparison and the challenger's marker (before the champion's). */
  async finish(champion: ShardMarker): Promise<ShardMarker> {
    const { store } = this.options;
    const t = performance.now();
    if (this.acc.records > 0) await this.storePartial();
    const finished = await this.writer.finish();
    const done = finished.checkpoint;
    const partials = await Promise.all(
      done.chunks.map((_, k) =>
        readComparisonPartial(store, chunkComparisonUri(this.layout, this.options.shardId, k)),
      ),
    );
    const merged = mergePartials(partials) ?? this.newAccumulator().toPartial();
    await putJson(store, shardComparisonUri(this.layout, this.options.shardId), merged);
    this.writeMs += performance.now() - t;
    const ms = (x: number): number => (x > 0 ? Math.max(0.1, Math.round(x * 10) / 10) : 0);
    const marker: ShardMarker = {
      ...champion,
      records: done.records,
      predictions: done.predictions,
      errors: done.errors,
      errorsByReason: done.errorsByReason,
      outputs: finished.outputs,
      ...(finished.errorsFile ? { errorsFile: finished.errorsFile } : { errorsFile: undefined }),
      columns: done.chunks.length > 0 ? done.columns : this.writer.columnTypes(),
      timings: {
        readMs: 0,
        decodeMs: 0,
        inferMs: ms(this.inferMs),
        writeMs: ms(this.writeMs),
        totalMs: champion.timings.totalMs,
      },
      executionProvider: this.options.thread.executionProvider,
      summaries: done.summaries,
      inputSummaries: undefined,
      batchSizeProbe: undefined,
    };
    const clean = JSON.parse(JSON.stringify(marker)) as ShardMarker;
    await putJson(store, this.layout.markerUri(this.options.shardId), clean);
    return clean;
  }

  /** After the champion's marker: the checkpoint and the per-chunk partials are no longer needed. */
  async cleanUp(): Promise<void> {
    const checkpoint = this.writer.checkpoint;
    await this.writer.cleanUp();
    for (let k = 0; k < checkpoint.chunks.length; k++) {
      await this.options.store.delete(chunkComparisonUri(this.layout, this.options.shardId, k));
    }
  }

  async abort(): Promise<void> {
    await this.writer.abort();
  }

  get challengerPlan(): Plan {
    return this.plan;
  }

  private async seal(): Promise<void> {
    this.pendingSeal = false;
    await this.storePartial();
    await this.writer.sealCurrent();
  }

  /** The open chunk's comparison, stored before the chunk is sealed (its checkpoint then implies the partial). */
  private async storePartial(): Promise<void> {
    const uri = chunkComparisonUri(this.layout, this.options.shardId, this.chunk);
    await putJson(this.options.store, uri, this.acc.toPartial());
    this.chunk++;
    this.acc = this.newAccumulator();
  }
}
