/**
 * Least privilege by prefix: what each role of a run may read and write in S3, derived from the pipelines. A run's
 * files have deterministic keys under its output prefix (src/runs/layout.ts), so each task is granted the part of
 * that layout it writes, and nothing outside its pipelines' prefixes:
 *
 *   <output>/_staging/run_id=<id>/part-*.staged   unpublished predictions  worker writes; Finalize moves them
 *   <output>/run_date=<d>/run_id=<id>/part-*      published predictions    Finalize (docs/adr/0014 §9)
 *   <output>/_errors/run_id=<id>/part-*.jsonl     failed records        worker
 *   <output>/_runs/<id>/plan.json, shards*, model/, snapshot  the plan  Plan
 *   <output>/_runs/<id>/rounds/<r>.json           the shards of round r Reconcile
 *   <output>/_runs/<id>/shards/, checkpoints/     markers, checkpoints  worker
 *   <output>/_challenger/...                      the same for a challenger, and its comparisons/  worker
 *   <output>/_runs/<id>/manifest.json, report, _runs/_succeeded.json, _single/  Finalize
 *
 * The table below is the source of truth; docs/operations.md ("Who may touch what in S3") prints it and a test
 * compares the synthesized template with that page. Roles are shared by every pipeline (one Plan, Reconcile and
 * Finalize function, one worker job role), so each role's grant is the union over the pipelines.
 */
import type { S3Access, S3Location } from './s3-access.js';

/** The roles that run a pipeline's runs. */
export type RunRole = 'plan' | 'worker' | 'reconcile' | 'finalize';

/** Which of a pipeline's locations a grant is on. */
export type PipelineLocationKind = 'input' | 'manifest objects' | 'output';

export interface RunPrefixGrant {
  readonly role: RunRole;
  readonly on: PipelineLocationKind;
  /** Appended to the location's key prefix (IAM wildcards allowed: `*` stands for the run id). */
  readonly suffix: string;
  readonly access: S3Access;
}

/** Every grant of a run's roles on a pipeline's locations. */
export const RUN_PREFIX_GRANTS: readonly RunPrefixGrant[] = [
  // Plan lists and heads the input, reads earlier runs' files (an existing plan, the succeeded-runs history) and
  // writes the new run's plan files.
  { role: 'plan', on: 'input', suffix: '', access: 'read' },
  { role: 'plan', on: 'manifest objects', suffix: '', access: 'read' },
  { role: 'plan', on: 'output', suffix: '', access: 'read' },
  { role: 'plan', on: 'output', suffix: '_runs/', access: 'readwrite' },
  // Workers read their input ranges and the run's plan, write predictions, error rows, markers and checkpoints.
  { role: 'worker', on: 'input', suffix: '', access: 'read' },
  { role: 'worker', on: 'manifest objects', suffix: '', access: 'read' },
  { role: 'worker', on: 'output', suffix: '', access: 'read' },
  // Predictions are staged; only Finalize writes the published partitions (docs/adr/0014 §9).
  { role: 'worker', on: 'output', suffix: '_staging/', access: 'readwrite' },
  { role: 'worker', on: 'output', suffix: '_errors/', access: 'readwrite' },
  { role: 'worker', on: 'output', suffix: '_runs/*/shards/', access: 'readwrite' },
  { role: 'worker', on: 'output', suffix: '_runs/*/checkpoints/', access: 'readwrite' },
  // A run with a challenger: the same files for the challenger's table under <output>_challenger/, plus the
  // champion-vs-challenger comparison of each chunk and shard (src/challenger/comparison-files.ts).
  { role: 'worker', on: 'output', suffix: '_challenger/_staging/', access: 'readwrite' },
  { role: 'worker', on: 'output', suffix: '_challenger/_errors/', access: 'readwrite' },
  { role: 'worker', on: 'output', suffix: '_challenger/_runs/*/shards/', access: 'readwrite' },
  { role: 'worker', on: 'output', suffix: '_challenger/_runs/*/checkpoints/', access: 'readwrite' },
  { role: 'worker', on: 'output', suffix: '_challenger/_runs/*/comparisons/', access: 'readwrite' },
  // Reconcile reads the plan and the markers, writes the next round's shard list.
  { role: 'reconcile', on: 'output', suffix: '_runs/', access: 'read' },
  { role: 'reconcile', on: 'output', suffix: '_runs/*/rounds/', access: 'readwrite' },
  // Finalize reads everything of the run, moves staged predictions into the partition, deletes stray ones, writes the manifest, the report, the
  // single-file output and the history of succeeded runs.
  { role: 'finalize', on: 'output', suffix: '', access: 'readwrite' },
];

/** A pipeline's locations, resolved to buckets. */
export interface PipelineLocations {
  readonly pipeline: string;
  readonly input: readonly S3Location[];
  readonly manifestObjects: readonly S3Location[];
  readonly output: S3Location;
}

/** One concrete grant: a role, a location (prefix + suffix) and the access. */
export interface RunDataGrant {
  readonly pipeline: string;
  readonly role: RunRole;
  readonly on: PipelineLocationKind;
  readonly location: S3Location;
  readonly access: S3Access;
}

/** The concrete grants of a set of pipelines, without duplicates (same role, location and access). */
export function runDataGrants(pipelines: readonly PipelineLocations[]): RunDataGrant[] {
  const out: RunDataGrant[] = [];
  const seen = new Set<string>();
  for (const p of pipelines) {
    for (const grant of RUN_PREFIX_GRANTS) {
      const bases = grant.on === 'output' ? [p.output] : grant.on === 'input' ? p.input : p.manifestObjects;
      for (const base of bases) {
        const location = { bucket: base.bucket, keyPrefix: `${base.keyPrefix}${grant.suffix}` };
        const key = `${grant.role}|${grant.access}|${base.bucket.node.path}|${location.keyPrefix}`;
        if (seen.has(key)) continue;
        seen.add(key);
        out.push({ pipeline: p.pipeline, role: grant.role, on: grant.on, location, access: grant.access });
      }
    }
  }
  return out;
}

/**
 * The key prefix a URI's objects share: a prefix as it is; an object's own key; a template (`{date}`) up to its
 * first placeholder, so every date it expands to is covered.
 */
export function keyPrefixOfTemplate(key: string): string {
  const brace = key.indexOf('{');
  return brace === -1 ? key : key.slice(0, brace);
}
