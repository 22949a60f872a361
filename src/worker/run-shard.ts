/**
 * The worker's core: one array child of one round runs one shard. It streams the shard's records through the
 * model and writes predictions in chunks with deterministic keys, the error rows, and finally the completion
 * marker. A re-run of the same shard (Batch retry, retry round) writes the same keys with the same content, so it
 * overwrites and never duplicates; a shard whose marker already exists is not run again.
 */
import { createHash } from 'node:crypto';
import type * as ort from 'onnxruntime-node';
import { readRange } from '../formats/index.js';
import { encodeParquet, type OutputColumn } from '../formats/parquet-write.js';
import type { DecodedRecord, SourceRecord } from '../formats/records.js';
import { createFeatureBuilder } from '../inference/features.js';
import { createPostprocessor, parseLabels, type ColumnType } from '../inference/postprocess.js';
import { loadModel, type ExecutionProvider, type ModelSession } from '../inference/session.js';
import { runLayout, type RunLayout } from '../runs/layout.js';
import {
  planSchema,
  roundSchema,
  shardMarkerSchema,
  shardSchema,
  type ErrorReason,
  type ErrorRow,
  type OutputFile,
  type Plan,
  type Shard,
  type ShardMarker,
} from '../runs/types.js';
import { ModelError, RunStateError } from '../spec/errors.js';
import type { JobSpec } from '../spec/schema.js';
import { getJson, putJson, type ObjectStore } from '../storage/object-store.js';
import { joinUri } from '../storage/uri.js';

/** Which piece of work this process is: Batch tells it through the environment. */
export interface WorkerTask {
  readonly runUri: string;
  readonly round: number;
  /** AWS_BATCH_JOB_ARRAY_INDEX; 0 for a single (non-array) job. */
  readonly arrayIndex: number;
  /** AWS_BATCH_JOB_ATTEMPT, from 1. */
  readonly attempt: number;
}

export interface WorkerLog {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
}

export interface ShardProgress {
  readonly shardId: number;
  readonly records: number;
  /** The planner's record count for the shard (exact or estimated). */
  readonly expected: number;
}

export interface WorkerDeps {
  readonly store: ObjectStore;
  readonly log: WorkerLog;
  /** @default ['cpu'] */
  readonly providers?: readonly ExecutionProvider[];
  readonly threads?: number;
  /** Prediction rows per output file. @default 250_000 */
  readonly chunkRows?: number;
  readonly onProgress?: (progress: ShardProgress) => void;
}

/** Records per inference call when the spec says `auto`. */
const AUTO_BATCH_SIZE = 2048;
const DEFAULT_CHUNK_ROWS = 250_000;

export async function runWorkerTask(task: WorkerTask, deps: WorkerDeps): Promise<ShardMarker> {
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const { store, log } = deps;
  const plan = await readPlan(store, task.runUri);
  const layout = runLayout(plan.spec.output.uri, plan.runId, plan.runDate);
  const shardId = await resolveShardId(store, layout, plan, task);

  const existing = await readMarker(store, layout, shardId);
  if (existing) {
    log.info('shard already complete; nothing to do', { shardId, attempt: existing.attempt });
    return existing;
  }
  const shard = await readShard(store, layout, shardId);
  log.info('shard started', { shardId, round: task.round, attempt: task.attempt, records: shard.records });

  const session = await loadVerifiedModel(store, plan, deps);
  try {
    const labels = await loadLabels(store, plan);
    const features = createFeatureBuilder(plan.spec.model.inputs, session.inputs);
    const post = createPostprocessor(plan.spec.model.outputs, session.outputs, labels);
    const writer = new ShardWriter(store, layout, shardId, plan.spec, post.columns, deps.chunkRows);
    const batchSize = plan.spec.run.batchSize === 'auto' ? AUTO_BATCH_SIZE : plan.spec.run.batchSize;
    const readColumns = [
      ...new Set([
        ...(plan.spec.input.id ? [plan.spec.input.id] : []),
        ...plan.spec.output.passthrough,
        ...features.columns,
      ]),
    ];
    const timings = { readMs: 0, decodeMs: 0, inferMs: 0, writeMs: 0 };
    let records = 0;

    for (const range of shard.ranges) {
      const batches = readRange(store, plan.spec.input.format, range, { batchSize, columns: readColumns })[
        Symbol.asyncIterator
      ]();
      for (;;) {
        let t = performance.now();
        const next = await batches.next();
        timings.readMs += performance.now() - t;
        if (next.done) break;
        const batch = next.value;
        records += batch.length;

        t = performance.now();
        const decoded: DecodedRecord[] = [];
        for (const rec of batch) {
          if (rec.error) writer.addError(rec, rec.error.reason, rec.error.message);
          else decoded.push(rec);
        }
        const built = features.build(decoded);
        for (const issue of built.issues) writer.addError(decoded[issue.index]!, issue.reason, issue.message);
        timings.decodeMs += performance.now() - t;

        if (built.included.length > 0) {
          t = performance.now();
          const outputs = await runWithIsolation(session, built.feeds, built.included.length);
          timings.inferMs += performance.now() - t;

          t = performance.now();
          if (outputs.ok) {
            const result = post.apply(outputs.tensors, built.included.length);
            const failedRows = new Map(result.issues.map((i) => [i.row, i]));
            for (let row = 0; row < built.included.length; row++) {
              const rec = decoded[built.included[row]!]!;
              const issue = failedRows.get(row);
              if (issue) writer.addError(rec, issue.reason, issue.message);
              else writer.addPrediction(rec, result.values, row);
            }
          } else {
            for (const idx of built.included)
              writer.addError(decoded[idx]!, 'INFERENCE_ERROR', outputs.message);
          }
          timings.decodeMs += performance.now() - t;
        }
        const w = performance.now();
        await writer.flushFullChunks();
        timings.writeMs += performance.now() - w;
        deps.onProgress?.({ shardId, records, expected: shard.records });
      }
    }
    const w = performance.now();
    const written = await writer.finish();
    timings.writeMs += performance.now() - w;

    const marker: ShardMarker = {
      version: 1,
      runId: plan.runId,
      shardId,
      round: task.round,
      attempt: task.attempt,
      records,
      predictions: written.predictions,
      errors: written.errors,
      errorsByReason: written.errorsByReason,
      outputs: written.outputs,
      ...(written.errorsFile ? { errorsFile: written.errorsFile } : {}),
      columns: written.columns,
      timings: { ...roundTimings(timings), totalMs: Math.round(performance.now() - started) },
      executionProvider: session.executionProvider,
      batchSize,
      startedAt,
      finishedAt: new Date().toISOString(),
    };
    // The marker is written last: its presence is the only proof that the shard's outputs are complete.
    await putJson(store, layout.markerUri(shardId), marker);
    log.info('shard complete', {
      shardId,
      records,
      predictions: marker.predictions,
      errors: marker.errors,
      ms: marker.timings.totalMs,
    });
    return marker;
  } finally {
    await session.release();
  }
}

async function readPlan(store: ObjectStore, runUri: string): Promise<Plan> {
  const uri = joinUri(runUri, 'plan.json');
  const parsed = planSchema.safeParse(await getJson(store, uri));
  if (!parsed.success) throw new RunStateError(`${uri} is not a valid plan: ${parsed.error.message}`);
  return parsed.data;
}

async function resolveShardId(
  store: ObjectStore,
  layout: RunLayout,
  plan: Plan,
  task: WorkerTask,
): Promise<number> {
  let shardId = task.arrayIndex;
  if (task.round > 0) {
    const uri = layout.roundUri(task.round);
    const parsed = roundSchema.safeParse(await getJson(store, uri));
    if (!parsed.success) throw new RunStateError(`${uri} is not a valid round file: ${parsed.error.message}`);
    const id = parsed.data.shardIds[task.arrayIndex];
    if (id === undefined) {
      throw new RunStateError(
        `array index ${task.arrayIndex} is beyond round ${task.round}'s ${parsed.data.shardIds.length} shards`,
      );
    }
    shardId = id;
  }
  if (shardId >= plan.shardCount) {
    throw new RunStateError(`shard ${shardId} does not exist: the plan has ${plan.shardCount} shards`);
  }
  return shardId;
}

async function readMarker(
  store: ObjectStore,
  layout: RunLayout,
  shardId: number,
): Promise<ShardMarker | undefined> {
  const uri = layout.markerUri(shardId);
  if (!(await store.tryHead(uri))) return undefined;
  const parsed = shardMarkerSchema.safeParse(await getJson(store, uri).catch(() => undefined));
  // A corrupt marker is treated as absent: the shard runs again and overwrites it.
  return parsed.success && parsed.data.shardId === shardId ? parsed.data : undefined;
}

async function readShard(store: ObjectStore, layout: RunLayout, shardId: number): Promise<Shard> {
  const text = new TextDecoder().decode(await store.get(layout.shardsUri));
  // Line i is shard i: find it without parsing every line.
  let start = 0;
  for (let i = 0; i < shardId; i++) {
    start = text.indexOf('\n', start) + 1;
    if (start === 0) break;
  }
  const end = text.indexOf('\n', start);
  const line = text.slice(start, end < 0 ? undefined : end);
  const parsed = shardSchema.safeParse(line ? (JSON.parse(line) as unknown) : undefined);
  if (!parsed.success || parsed.data.id !== shardId) {
    throw new RunStateError(`${layout.shardsUri} has no valid line for shard ${shardId}`);
  }
  return parsed.data;
}

async function loadVerifiedModel(store: ObjectStore, plan: Plan, deps: WorkerDeps): Promise<ModelSession> {
  const bytes = await store.get(plan.model.artifactUri);
  const digest = createHash('sha256').update(bytes).digest('hex');
  if (digest !== plan.model.sha256) {
    // The artifact changed after planning: running it would attribute predictions to the wrong model.
    throw new ModelError(
      `${plan.model.artifactUri} changed since the run was planned (sha256 ${digest}, planned ${plan.model.sha256})`,
    );
  }
  return loadModel(bytes, {
    providers: deps.providers,
    threads: deps.threads,
    log: (message, fields) => deps.log.warn(message, fields),
  });
}

async function loadLabels(store: ObjectStore, plan: Plan): Promise<Map<string, string[]>> {
  const labels = new Map<string, string[]>();
  for (const out of plan.spec.model.outputs) {
    const ref = out.postprocess?.argmax?.labels;
    if (!ref || labels.has(ref)) continue;
    const uri = plan.model.files[ref];
    if (!uri) throw new RunStateError(`the plan has no resolved location for labels file "${ref}"`);
    labels.set(ref, parseLabels(new TextDecoder().decode(await store.get(uri))));
  }
  return labels;
}

type InferenceOutcome =
  | { readonly ok: true; readonly tensors: Record<string, ort.Tensor> }
  | { readonly ok: false; readonly message: string };

/** A failing batch fails only its records (bisection to the bad record comes with the worker's next version). */
async function runWithIsolation(
  session: ModelSession,
  feeds: Record<string, ort.Tensor>,
  _rows: number,
): Promise<InferenceOutcome> {
  try {
    return { ok: true, tensors: await session.run(feeds) };
  } catch (err) {
    return { ok: false, message: `the model failed on this batch: ${(err as Error).message}` };
  }
}

function roundTimings(t: Record<'readMs' | 'decodeMs' | 'inferMs' | 'writeMs', number>) {
  return {
    readMs: Math.round(t.readMs),
    decodeMs: Math.round(t.decodeMs),
    inferMs: Math.round(t.inferMs),
    writeMs: Math.round(t.writeMs),
  };
}

interface WrittenShard {
  readonly predictions: number;
  readonly errors: number;
  readonly errorsByReason: Record<string, number>;
  readonly outputs: OutputFile[];
  readonly errorsFile?: OutputFile;
  readonly columns: Record<string, string>;
}

interface ColumnSlot {
  readonly name: string;
  type: ColumnType | undefined;
  values: unknown[];
}

/**
 * Buffers prediction rows into chunks and error rows for the errors file. Output columns: the id, passthrough
 * columns, the predictions, then lineage (`_shard`, `_source`, `_offset`).
 */
class ShardWriter {
  private readonly identity: ColumnSlot[];
  private readonly predictions: ColumnSlot[];
  private readonly lineage = {
    shard: [] as number[],
    source: [] as string[],
    offset: [] as bigint[],
  };
  private readonly outputs: OutputFile[] = [];
  private readonly errorLines: string[] = [];
  private readonly errorsByReason: Record<string, number> = {};
  private buffered = 0;
  private chunk = 0;
  private predictionCount = 0;
  private readonly chunkRows: number;

  constructor(
    private readonly store: ObjectStore,
    private readonly layout: RunLayout,
    private readonly shardId: number,
    private readonly spec: JobSpec,
    predictionColumns: readonly { name: string; type: ColumnType }[],
    chunkRows?: number,
  ) {
    this.chunkRows = chunkRows ?? DEFAULT_CHUNK_ROWS;
    const declared = spec.output.schema ?? {};
    const identityNames = [
      ...(spec.input.id ? [spec.input.id] : []),
      ...spec.output.passthrough.filter((c) => c !== spec.input.id),
    ];
    this.identity = identityNames.map((name) => ({ name, type: declared[name], values: [] }));
    this.predictions = predictionColumns.map((c) => ({ name: c.name, type: c.type, values: [] }));
  }

  addPrediction(rec: DecodedRecord, values: readonly unknown[][], row: number): void {
    for (const slot of this.identity) {
      const v = rec.values[slot.name];
      slot.type ??= inferType(v);
      slot.values.push(coerce(v, slot.type));
    }
    this.predictions.forEach((slot, c) => slot.values.push(values[c]![row]));
    this.lineage.shard.push(this.shardId);
    this.lineage.source.push(rec.source);
    this.lineage.offset.push(BigInt(rec.offset));
    this.buffered++;
    this.predictionCount++;
  }

  addError(rec: SourceRecord, reason: ErrorReason, message: string): void {
    const idColumn = this.spec.input.id;
    const idValue = idColumn && rec.values ? rec.values[idColumn] : undefined;
    const row: ErrorRow = {
      ...(idColumn ? { id: isScalarId(idValue) ? idValue : null } : {}),
      _shard: this.shardId,
      _source: rec.source,
      _offset: rec.offset,
      reason,
      message,
    };
    this.errorLines.push(JSON.stringify(row));
    this.errorsByReason[reason] = (this.errorsByReason[reason] ?? 0) + 1;
  }

  async flushFullChunks(): Promise<void> {
    while (this.buffered >= this.chunkRows) await this.writeChunk(this.chunkRows);
  }

  async finish(): Promise<WrittenShard> {
    await this.flushFullChunks();
    if (this.buffered > 0) await this.writeChunk(this.buffered);
    let errorsFile: OutputFile | undefined;
    if (this.errorLines.length > 0) {
      const uri = this.layout.errorsUri(this.shardId);
      const info = await this.store.put(uri, `${this.errorLines.join('\n')}\n`, {
        contentType: 'application/x-ndjson',
      });
      errorsFile = { uri, rows: this.errorLines.length, bytes: info.size, etag: info.etag };
    }
    const columns: Record<string, string> = {};
    for (const c of this.columnsInOrder()) columns[c.name] = c.type;
    return {
      predictions: this.predictionCount,
      errors: this.errorLines.length,
      errorsByReason: this.errorsByReason,
      outputs: this.outputs,
      ...(errorsFile ? { errorsFile } : {}),
      columns,
    };
  }

  private columnsInOrder(): { name: string; type: ColumnType; values: unknown[] }[] {
    return [
      ...[...this.identity, ...this.predictions].map((s) => ({
        name: s.name,
        type: s.type ?? 'string',
        values: s.values,
      })),
      { name: '_shard', type: 'int', values: this.lineage.shard },
      { name: '_source', type: 'string', values: this.lineage.source },
      { name: '_offset', type: 'bigint', values: this.lineage.offset },
    ];
  }

  private async writeChunk(rows: number): Promise<void> {
    const columns: OutputColumn[] = this.columnsInOrder().map((c) => ({
      ...c,
      values: c.values.slice(0, rows),
    }));
    for (const slot of [...this.identity, ...this.predictions]) slot.values.splice(0, rows);
    this.lineage.shard.splice(0, rows);
    this.lineage.source.splice(0, rows);
    this.lineage.offset.splice(0, rows);
    this.buffered -= rows;
    const uri = this.layout.partUri(this.shardId, this.chunk++);
    const body = encodeParquet(columns);
    const info = await this.store.put(uri, body, { contentType: 'application/vnd.apache.parquet' });
    this.outputs.push({ uri, rows, bytes: info.size, etag: info.etag });
  }
}

function isScalarId(v: unknown): v is string | number {
  return typeof v === 'string' || typeof v === 'number';
}

function inferType(v: unknown): ColumnType | undefined {
  switch (typeof v) {
    case 'string':
      return 'string';
    case 'number':
      return Number.isInteger(v) ? 'bigint' : 'double';
    case 'bigint':
      return 'bigint';
    case 'boolean':
      return 'boolean';
    default:
      return v === null || v === undefined ? undefined : 'string';
  }
}

/**
 * Passthrough values keep their type; a value of another type is converted (a number in a string column becomes
 * its text). A value that cannot be converted (text in a column declared numeric in output.schema) is written as
 * null: the prediction itself is still valid.
 */
function coerce(v: unknown, type: ColumnType | undefined): unknown {
  if (v === null || v === undefined) return null;
  switch (type) {
    case 'string':
      if (typeof v === 'string') return v;
      if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return v.toString();
      return v instanceof Date ? v.toISOString() : JSON.stringify(v);
    case 'bigint':
      return typeof v === 'bigint' ? v : Number.isInteger(Number(v)) ? BigInt(Number(v)) : null;
    case 'int':
      return Number.isInteger(Number(v)) ? Number(v) : null;
    case 'double':
    case 'float': {
      const n = Number(v);
      return Number.isFinite(n) ? n : null;
    }
    case 'boolean':
      return typeof v === 'boolean' ? v : v === 'true' ? true : v === 'false' ? false : null;
    default:
      return v;
  }
}
