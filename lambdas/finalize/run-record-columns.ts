/**
 * The row Finalize writes per run in a pipeline's runs table, and the table's columns. Free of heavy imports: the CDK
 * app reads the columns to declare the Glue table (lib/constructs/data-lake.ts), the Finalize function writes rows.
 */

/** One row of a pipeline's runs table. Snake case: the column names Athena shows. */
export interface RunRecord {
  readonly run_id: string;
  readonly pipeline: string;
  readonly status: string;
  readonly reason: string | null;
  readonly message: string;
  readonly records: number;
  readonly predictions: number;
  readonly errors: number;
  readonly error_rate: number;
  readonly failed_shards: number;
  readonly shards: number;
  readonly rounds: number;
  readonly model_name: string;
  readonly model_version: number | null;
  readonly model_sha256: string;
  readonly input_objects: number;
  readonly input_bytes: number;
  readonly input_snapshot_sha256: string;
  readonly planned_at: string;
  readonly finalized_at: string;
  readonly wall_seconds: number;
  readonly records_per_second: number;
  readonly output_uri: string;
  readonly manifest_uri: string;
  /** What the run's completed shards cost (manifest.cost.total), in cost_currency; null in rows of older runs. */
  readonly cost: number | null;
  readonly cost_currency: string | null;
  // The first failure's reason (manifest.error, issue 10): null on a run that passed.
  /** The error class (`PreflightError`, `ModelError`), `ShardFailed`, `CanaryFailed`, `ErrorRateAboveMax`... */
  readonly error_code: string | null;
  readonly error_message: string | null;
  /** The shard it came from, when one did. */
  readonly error_shard: number | null;
  /** Where that shard's log is: the Batch job or log stream. */
  readonly error_log: string | null;
}

/** The columns of RunRecord with their Hive types, in order: the runs table's schema (lib/constructs/data-lake.ts). */
export const RUN_RECORD_COLUMNS: readonly { readonly name: keyof RunRecord; readonly type: string }[] = [
  { name: 'run_id', type: 'string' },
  { name: 'pipeline', type: 'string' },
  { name: 'status', type: 'string' },
  { name: 'reason', type: 'string' },
  { name: 'message', type: 'string' },
  { name: 'records', type: 'bigint' },
  { name: 'predictions', type: 'bigint' },
  { name: 'errors', type: 'bigint' },
  { name: 'error_rate', type: 'double' },
  { name: 'failed_shards', type: 'int' },
  { name: 'shards', type: 'int' },
  { name: 'rounds', type: 'int' },
  { name: 'model_name', type: 'string' },
  { name: 'model_version', type: 'int' },
  { name: 'model_sha256', type: 'string' },
  { name: 'input_objects', type: 'bigint' },
  { name: 'input_bytes', type: 'bigint' },
  { name: 'input_snapshot_sha256', type: 'string' },
  { name: 'planned_at', type: 'string' },
  { name: 'finalized_at', type: 'string' },
  { name: 'wall_seconds', type: 'double' },
  { name: 'records_per_second', type: 'double' },
  { name: 'output_uri', type: 'string' },
  { name: 'manifest_uri', type: 'string' },
  { name: 'cost', type: 'double' },
  { name: 'cost_currency', type: 'string' },
  { name: 'error_code', type: 'string' },
  { name: 'error_message', type: 'string' },
  { name: 'error_shard', type: 'int' },
  { name: 'error_log', type: 'string' },
];
