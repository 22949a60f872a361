/**
 * The local runs table: one JSON record per local run in `<stateDir>/runs/<runId>.json`, written when the run starts
 * and rewritten when it ends. It lists every run, also those that failed in Plan (before any run file existed),
 * were cancelled or were interrupted, which the catalogue's `_runs` table (published runs only) cannot.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { runErrorSchema } from '../runs/failures.js';

export const RUN_STATUSES = [
  'STARTING',
  'RUNNING',
  'SUCCEEDED',
  'FAILED',
  'CANCELLED',
  'ABORTED',
  'TIMED_OUT',
] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
export const TERMINAL_STATUSES: readonly RunStatus[] = [
  'SUCCEEDED',
  'FAILED',
  'CANCELLED',
  'ABORTED',
  'TIMED_OUT',
];

export const localRunRecordSchema = z.strictObject({
  version: z.literal(1),
  runId: z.string(),
  /** The job's name (`spec.name`): what `runs <pipeline>` filters on. */
  pipeline: z.string(),
  /** Absolute path of the job spec, so `run --resume` can run it again. */
  specFile: z.string(),
  outputUri: z.string(),
  /** `--input` of the run, when it overrode `input.uri`. */
  inputUri: z.string().optional(),
  /** The process running it (the `run` command). */
  pid: z.number().int().positive().optional(),
  status: z.enum(RUN_STATUSES),
  startedAt: z.string(),
  finishedAt: z.string().optional(),
  /** The failure's error name (PlanFailed, ShardsFailed, ValidationFailed, Cancelled...). */
  error: z.string().optional(),
  cause: z.string().optional(),
  /** The first failure's reason (`error: {code, message, shard, log}` of the run's summary), when it failed. */
  firstError: runErrorSchema.optional(),
  records: z.number().int().nonnegative().optional(),
  predictions: z.number().int().nonnegative().optional(),
  errors: z.number().int().nonnegative().optional(),
  manifestUri: z.string().optional(),
  modelVersion: z.string().optional(),
  logDir: z.string(),
  /** Set by `cancel` before it signals the run, so the run records CANCELLED rather than ABORTED. */
  cancelRequestedAt: z.string().optional(),
});
export type LocalRunRecord = z.infer<typeof localRunRecordSchema>;

export class LocalRunRecords {
  readonly dir: string;
  constructor(readonly stateDir: string) {
    this.dir = path.join(stateDir, 'runs');
  }

  fileOf(runId: string): string {
    return path.join(this.dir, `${runId}.json`);
  }

  /** Atomic: a reader sees the old record or the new one. */
  write(record: LocalRunRecord): void {
    mkdirSync(this.dir, { recursive: true });
    const file = this.fileOf(record.runId);
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(localRunRecordSchema.parse(record), null, 2)}\n`);
    renameSync(tmp, file);
  }

  update(runId: string, change: Partial<LocalRunRecord>): LocalRunRecord | undefined {
    const current = this.read(runId);
    if (!current) return undefined;
    const next = { ...current, ...change };
    this.write(next);
    return next;
  }

  read(runId: string): LocalRunRecord | undefined {
    let text: string;
    try {
      text = readFileSync(this.fileOf(runId), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const parsed = localRunRecordSchema.safeParse(JSON.parse(text));
    if (!parsed.success) {
      throw new Error(
        `${this.fileOf(runId)} is not a run record: ${parsed.error.issues[0]?.message ?? 'invalid'}`,
      );
    }
    return parsed.data;
  }

  /** Every record, newest first. Unreadable files are skipped: one bad file must not hide the history. */
  list(): LocalRunRecord[] {
    let names: string[];
    try {
      names = readdirSync(this.dir).filter((n) => n.endsWith('.json'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const records: LocalRunRecord[] = [];
    for (const name of names) {
      try {
        const record = this.read(name.slice(0, -'.json'.length));
        if (record) records.push(record);
      } catch {
        // skipped, see above
      }
    }
    return records.sort((a, b) => b.startedAt.localeCompare(a.startedAt) || b.runId.localeCompare(a.runId));
  }
}

/** Whether a process is alive (signal 0 checks without signalling). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A record that says RUNNING while its process is gone was killed without a chance to write its end (SIGKILL,
 * a crash, a reboot): it is reported as ABORTED, and `run --resume` continues it.
 */
export function effectiveStatus(
  record: LocalRunRecord,
  alive: (pid: number) => boolean = processAlive,
): RunStatus {
  if (
    (record.status === 'RUNNING' || record.status === 'STARTING') &&
    record.pid !== undefined &&
    !alive(record.pid)
  ) {
    return 'ABORTED';
  }
  return record.status;
}
