/** The challenger's section of manifest.json (docs/adr/0020); see finalize.ts for how it is filled. */
import { z } from 'zod';
import { resolvedModelSchema } from '../runs/types.js';
import { comparisonSchema } from './comparison.js';

const checkSchema = z.object({
  name: z.string(),
  description: z.string(),
  threshold: z.union([z.number(), z.string()]),
  actual: z.union([z.number(), z.string()]),
  passed: z.boolean(),
  message: z.string().optional(),
});

/** `manifest.challenger`: which model, where its table is, its counts, the comparison and its checks. */
export const challengerManifestSchema = z.object({
  model: resolvedModelSchema.extend({ name: z.string() }),
  table: z.string(),
  /** The challenger's partition of this run. */
  partitionUri: z.string(),
  counts: z.object({
    records: z.number().int().nonnegative(),
    predictions: z.number().int().nonnegative(),
    errors: z.number().int().nonnegative(),
    errorsByReason: z.record(z.string(), z.number().int().nonnegative()),
  }),
  comparison: comparisonSchema.optional(),
  /** Why the comparison is missing (a shard's comparison could not be read). */
  comparisonError: z.string().optional(),
  /** The challenger's checks (also in manifest.validation.checks, named `challenger.*`). */
  checks: z.array(checkSchema),
  catalog: z.object({
    table: z.string(),
    published: z.boolean(),
    publishedAt: z.string().optional(),
  }),
});
export type ChallengerManifest = z.infer<typeof challengerManifestSchema>;
