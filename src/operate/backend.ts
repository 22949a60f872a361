/**
 * One command set, two backends (ARCHITECTURE "One CLI, two backends"): the commands talk to this interface; the
 * local implementation reads the state directory and run files, the AWS one the stack's outputs, Step Functions,
 * Batch, S3 and CloudWatch Logs. Both compute progress from run files with ./run-progress.ts.
 */
import { z } from 'zod';
import { runErrorSchema } from '../runs/failures.js';
import { RUN_STATUSES } from './local-records.js';
import { runProgressSchema } from './run-progress.js';

export const runStatusSchema = z.strictObject({
  backend: z.enum(['local', 'aws']),
  runId: z.string(),
  pipeline: z.string(),
  status: z.enum(RUN_STATUSES),
  startedAt: z.string(),
  finishedAt: z.string().optional(),
  durationMs: z.number().nonnegative(),
  /** Why it failed: the error name and its cause (Fail state, Cancelled, Aborted). */
  error: z.string().optional(),
  cause: z.string().optional(),
  progress: runProgressSchema,
  recordsPerSecond: z.number().nonnegative(),
  /** Seconds left at the current rate; absent when unknown. */
  etaSeconds: z.number().nonnegative().optional(),
  /** Batch array job status summary (deployed runs). */
  batch: z.record(z.string(), z.number().int().nonnegative()).optional(),
  outputUri: z.string(),
});
export type RunStatusReport = z.infer<typeof runStatusSchema>;

export const runListEntrySchema = z.strictObject({
  runId: z.string(),
  pipeline: z.string(),
  status: z.enum(RUN_STATUSES),
  startedAt: z.string(),
  finishedAt: z.string().optional(),
  durationMs: z.number().nonnegative().optional(),
  records: z.number().int().nonnegative().optional(),
  predictions: z.number().int().nonnegative().optional(),
  errors: z.number().int().nonnegative().optional(),
  modelVersion: z.string().optional(),
  /** The failure's error and cause, one line. */
  failure: z.string().optional(),
  /** What the run's completed shards cost (its manifest's `cost.total`), in `costCurrency`. */
  cost: z.number().nonnegative().optional(),
  costCurrency: z.string().optional(),
  /** The first failure's reason, where the run recorded it (issue 10). */
  error: runErrorSchema.optional(),
});
export type RunListEntry = z.infer<typeof runListEntrySchema>;

export const runListSchema = z.strictObject({
  backend: z.enum(['local', 'aws']),
  runs: z.array(runListEntrySchema),
});
export type RunList = z.infer<typeof runListSchema>;

export const cancelResultSchema = z.strictObject({
  runId: z.string(),
  /** The status after cancelling; a run that had already ended keeps its status. */
  status: z.enum(RUN_STATUSES),
  /** Whether this call stopped it (false: it had ended already). */
  cancelled: z.boolean(),
  /** Batch jobs terminated (deployed runs). */
  terminatedJobs: z.array(z.string()).optional(),
});
export type CancelResult = z.infer<typeof cancelResultSchema>;

export const logLineSchema = z.strictObject({
  /** Where the line comes from: `orchestrator`, `worker`. */
  source: z.string(),
  shard: z.number().int().nonnegative().optional(),
  attempt: z.number().int().positive().optional(),
  /** The log file or stream. */
  stream: z.string(),
  message: z.string(),
  timestamp: z.string().optional(),
});
export type LogLine = z.infer<typeof logLineSchema>;
export const logsSchema = z.strictObject({ runId: z.string(), lines: z.array(logLineSchema) });

export interface RunFilter {
  readonly pipeline?: string;
  readonly status?: string;
  readonly since?: Date;
  readonly limit?: number;
}

export interface LogQuery {
  readonly shard?: number;
  /** Only lines after this many already returned (for --follow): the backend's own cursor. */
  readonly cursor?: string;
}

export interface OperateBackend {
  readonly kind: 'local' | 'aws';
  status(runId: string): Promise<RunStatusReport>;
  runs(filter: RunFilter): Promise<RunList>;
  cancel(runId: string): Promise<CancelResult>;
  logs(runId: string, query: LogQuery): Promise<{ lines: LogLine[]; cursor: string }>;
}

export const TERMINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED', 'ABORTED', 'TIMED_OUT']);

/** Rate and ETA from records done over the time since planning. */
export function rateAndEta(
  recordsDone: number,
  recordsPlanned: number,
  elapsedMs: number,
): { recordsPerSecond: number; etaSeconds?: number } {
  const recordsPerSecond = elapsedMs > 0 ? (recordsDone / elapsedMs) * 1000 : 0;
  if (recordsPerSecond <= 0 || recordsPlanned <= recordsDone) return { recordsPerSecond };
  return { recordsPerSecond, etaSeconds: (recordsPlanned - recordsDone) / recordsPerSecond };
}
