/**
 * The local backend: runs recorded in the state directory (./local-records.ts), progress from their run files
 * (./run-progress.ts), logs from the worker pool's log files, cancel by signalling the `run` process.
 */
import { costFieldsOf } from '../cost/cli.js';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describeRunError } from '../results/run-error.js';
import { runLayout, runUriOf } from '../runs/layout.js';
import { planSchema, roundSchema } from '../runs/types.js';
import { getJson, NotFoundError, type ObjectStore } from '../storage/object-store.js';
import { joinUri } from '../storage/uri.js';
import {
  rateAndEta,
  type CancelResult,
  type LogLine,
  type LogQuery,
  type OperateBackend,
  type RunFilter,
  type RunList,
  type RunStatusReport,
} from './backend.js';
import { effectiveStatus, LocalRunRecords, processAlive, type LocalRunRecord } from './local-records.js';
import { readRunProgress } from './run-progress.js';

export class UnknownRunError extends Error {
  override readonly name = 'UnknownRunError';
}

/** `<runId>-r<round>-<array index>-attempt<n>.log`, as LocalWorkerPool names them. */
const WORKER_LOG = /-r(\d+)-(\d+)-attempt(\d+)\.log$/;
/** What `start` redirects the detached `run` process's output to. */
export const RUN_LOG_FILE = 'run.log';

export interface LocalBackendOptions {
  readonly stateDir: string;
  readonly store: ObjectStore;
  readonly now?: () => Date;
  readonly alive?: (pid: number) => boolean;
  readonly kill?: (pid: number, signal: NodeJS.Signals) => void;
}

export class LocalBackend implements OperateBackend {
  readonly kind = 'local' as const;
  readonly records: LocalRunRecords;
  private readonly now: () => Date;
  private readonly alive: (pid: number) => boolean;
  private readonly kill: (pid: number, signal: NodeJS.Signals) => void;

  constructor(private readonly options: LocalBackendOptions) {
    this.records = new LocalRunRecords(options.stateDir);
    this.now = options.now ?? (() => new Date());
    this.alive = options.alive ?? processAlive;
    this.kill = options.kill ?? ((pid, signal) => process.kill(pid, signal));
  }

  record(runId: string): LocalRunRecord {
    const record = this.records.read(runId);
    if (!record) {
      throw new UnknownRunError(
        `No local run "${runId}" in ${this.records.dir}; list the runs with: batch-infer runs --state-dir ${this.options.stateDir}`,
      );
    }
    return record;
  }

  async status(runId: string): Promise<RunStatusReport> {
    const record = this.record(runId);
    const status = effectiveStatus(record, this.alive);
    const progress = await readRunProgress(this.options.store, record.outputUri, runId);
    const end = record.finishedAt ? Date.parse(record.finishedAt) : this.now().getTime();
    const since = Date.parse(progress.plannedAt ?? record.startedAt);
    const { recordsPerSecond, etaSeconds } = rateAndEta(
      progress.recordsDone,
      progress.recordsPlanned,
      end - since,
    );
    return {
      backend: 'local',
      runId,
      pipeline: record.pipeline,
      status,
      startedAt: record.startedAt,
      ...(record.finishedAt ? { finishedAt: record.finishedAt } : {}),
      durationMs: Math.max(0, end - Date.parse(record.startedAt)),
      ...(record.error ? { error: record.error } : status === 'ABORTED' ? { error: 'Aborted' } : {}),
      ...(record.cause
        ? { cause: record.cause }
        : status === 'ABORTED'
          ? {
              cause: `its process ${record.pid} is gone; continue it with: batch-infer run --resume ${runId}`,
            }
          : {}),
      progress,
      recordsPerSecond,
      ...(status === 'RUNNING' && etaSeconds !== undefined ? { etaSeconds } : {}),
      outputUri: record.outputUri,
    };
  }

  async runs(filter: RunFilter): Promise<RunList> {
    const runs = [];
    for (const record of this.records.list()) {
      if (filter.pipeline !== undefined && record.pipeline !== filter.pipeline) continue;
      const status = effectiveStatus(record, this.alive);
      if (filter.status !== undefined && status !== filter.status.toUpperCase()) continue;
      if (filter.since !== undefined && Date.parse(record.startedAt) < filter.since.getTime()) continue;
      let modelVersion: string | undefined;
      try {
        const plan = planSchema.parse(
          await getJson(this.options.store, joinUri(runUriOf(record.outputUri, record.runId), 'plan.json')),
        );
        if (plan.model.version !== undefined)
          modelVersion = `${plan.model.group ?? 'model'}:${plan.model.version}`;
        else modelVersion = `sha256:${plan.model.sha256.slice(0, 12)}`;
      } catch {
        // failed in Plan, or its files were removed: no model to show
      }
      runs.push({
        runId: record.runId,
        pipeline: record.pipeline,
        status,
        startedAt: record.startedAt,
        ...(record.finishedAt
          ? {
              finishedAt: record.finishedAt,
              durationMs: Math.max(0, Date.parse(record.finishedAt) - Date.parse(record.startedAt)),
            }
          : {}),
        ...(record.records !== undefined ? { records: record.records } : {}),
        ...(record.predictions !== undefined ? { predictions: record.predictions } : {}),
        ...(record.errors !== undefined ? { errors: record.errors } : {}),
        ...(modelVersion ? { modelVersion } : {}),
        ...(record.error ? { failure: failureLine(record) } : {}),
        ...(record.firstError ? { error: record.firstError } : {}),
        ...(await costFieldsOf(this.options.store, record.manifestUri)),
      });
      if (filter.limit !== undefined && runs.length >= filter.limit) break;
    }
    return { backend: 'local', runs };
  }

  /**
   * Marks the record first (so the run writes CANCELLED, not ABORTED), then sends SIGTERM: the run stops its
   * workers (they checkpoint) and aborts the execution before Finalize, so nothing is published.
   */
  async cancel(runId: string): Promise<CancelResult> {
    const record = this.record(runId);
    // A record still RUNNING whose process died (shown ABORTED) is cancelled too: the user means it is over.
    if (record.status !== 'RUNNING' && record.status !== 'STARTING') {
      return { runId, status: effectiveStatus(record, this.alive), cancelled: false };
    }
    this.records.update(runId, { cancelRequestedAt: this.now().toISOString() });
    if (record.pid !== undefined) {
      try {
        this.kill(record.pid, 'SIGTERM');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
      }
    }
    // A run whose process is gone cannot write its own end: record it here.
    if (record.pid === undefined || !this.alive(record.pid)) {
      this.records.update(runId, {
        status: 'CANCELLED',
        finishedAt: this.now().toISOString(),
        error: 'Cancelled',
        cause: 'cancelled by batch-infer cancel',
      });
    }
    return { runId, status: 'CANCELLED', cancelled: true };
  }

  async logs(runId: string, query: LogQuery): Promise<{ lines: LogLine[]; cursor: string }> {
    const record = this.record(runId);
    const shardOf = await this.shardMapper(record);
    // The cursor is, per file, how many lines were already returned.
    const seen = query.cursor ? (JSON.parse(query.cursor) as Record<string, number>) : {};
    const lines: LogLine[] = [];
    const files = existsSync(record.logDir) ? readdirSync(record.logDir).sort(byRoundIndexAttempt) : [];
    for (const name of files) {
      const match = WORKER_LOG.exec(name);
      let shard: number | undefined;
      let attempt: number | undefined;
      let source = 'orchestrator';
      if (match) {
        source = 'worker';
        shard = shardOf(Number(match[1]), Number(match[2]));
        attempt = Number(match[3]);
      } else if (name !== RUN_LOG_FILE) continue;
      if (query.shard !== undefined && shard !== query.shard) continue;
      const file = path.join(record.logDir, name);
      const content = readFileSync(file, 'utf8').split('\n');
      if (content[content.length - 1] === '') content.pop();
      const from = seen[name] ?? 0;
      for (const message of content.slice(from)) {
        lines.push({
          source,
          ...(shard !== undefined ? { shard } : {}),
          ...(attempt !== undefined ? { attempt } : {}),
          stream: file,
          message,
        });
      }
      seen[name] = content.length;
    }
    return { lines, cursor: JSON.stringify(seen) };
  }

  /** Array index of round r -> shard id: the index itself in round 0, rounds/<r>.json's list after. */
  private async shardMapper(
    record: LocalRunRecord,
  ): Promise<(round: number, index: number) => number | undefined> {
    const rounds = new Map<number, number[]>();
    try {
      const plan = planSchema.parse(
        await getJson(this.options.store, joinUri(runUriOf(record.outputUri, record.runId), 'plan.json')),
      );
      const layout = runLayout(plan.spec.output.uri, plan.runId, plan.runDate);
      for (let r = 1; r <= plan.maxRounds; r++) {
        try {
          rounds.set(r, roundSchema.parse(await getJson(this.options.store, layout.roundUri(r))).shardIds);
        } catch (err) {
          if (err instanceof NotFoundError) break;
          throw err;
        }
      }
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
    return (round, index) => (round === 0 ? index : rounds.get(round)?.[index]);
  }
}

function byRoundIndexAttempt(a: string, b: string): number {
  const ma = WORKER_LOG.exec(a);
  const mb = WORKER_LOG.exec(b);
  if (!ma || !mb) return ma ? 1 : mb ? -1 : a.localeCompare(b);
  for (const i of [1, 2, 3]) {
    const d = Number(ma[i]) - Number(mb[i]);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * The FAILURE column: the Fail state's error, then the first failure's reason when the run recorded one (which the
 * cause may bury after the failed-shards summary), else the cause.
 */
function failureLine(record: LocalRunRecord): string {
  const reason = record.firstError ? describeRunError(record.firstError) : (record.cause ?? '');
  return `${record.error ?? 'Error'}: ${oneLine(reason)}`;
}

function oneLine(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 200 ? `${line.slice(0, 197)}...` : line;
}
