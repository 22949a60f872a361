/**
 * The shapes of a history comparison (history-checks.ts), apart from the code that computes them: the manifest
 * schema (manifest.ts) embeds them, and history-checks.ts reads manifests, so keeping the schemas here avoids an
 * import cycle between the two.
 */
import { z } from 'zod';

export const historyCheckSchema = z.object({
  metric: z.enum(['durationMs', 'recordsPerSecond', 'errorRate', 'records']),
  value: z.number(),
  median: z.number(),
  mad: z.number().nonnegative(),
  /** (value - median) / (1.4826 · MAD); absent when MAD is 0. */
  robustZ: z.number().optional(),
  relativeChange: z.number().optional(),
  differs: z.boolean(),
});
export type HistoryCheck = z.infer<typeof historyCheckSchema>;

export const historyComparisonSchema = z.object({
  /** The runs compared with, oldest first. */
  runIds: z.array(z.string()),
  checks: z.array(historyCheckSchema),
  /** True when any metric differs. */
  differs: z.boolean(),
});
export type HistoryComparison = z.infer<typeof historyComparisonSchema>;

/**
 * `manifest.history`: the run against the job's last succeeded runs, or why it was not compared (too few succeeded
 * runs before it: a job's first runs).
 */
export const manifestHistorySchema = z.discriminatedUnion('status', [
  historyComparisonSchema.extend({ status: z.literal('compared') }),
  z.object({
    status: z.literal('notEnoughHistory'),
    /** Succeeded runs with a readable manifest found before this one. */
    runs: z.number().int().nonnegative(),
    /** Runs needed before any metric is judged (MIN_HISTORY). */
    required: z.number().int().positive(),
    message: z.string(),
  }),
]);
export type ManifestHistory = z.infer<typeof manifestHistorySchema>;
