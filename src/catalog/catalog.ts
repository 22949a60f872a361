/**
 * The catalogue where validated runs are published: Glue in AWS, an embedded DuckDB database offline. A run's
 * predictions become visible only through `publishRun`, which Finalize calls after validation passes.
 */

export interface CatalogColumn {
  readonly name: string;
  /** Spec-level type: string, float, double, int, bigint, boolean, array<float>. */
  readonly type: string;
}

export interface PublishedRun {
  /** Table name: the job's name. */
  readonly table: string;
  readonly runId: string;
  readonly runDate: string;
  /** `<output.uri>/` (table location). */
  readonly outputUri: string;
  /** The run's partition prefix: `<output.uri>/run_date=.../run_id=.../`. */
  readonly partitionUri: string;
  /** The prediction files of the partition, for catalogues that track files. */
  readonly files: readonly string[];
  /** Format of the files (`output.format`); Parquet when absent. */
  readonly format?: 'parquet' | 'jsonl' | 'csv';
  readonly columns: readonly CatalogColumn[];
  readonly model: { readonly name: string; readonly version?: number; readonly sha256: string };
  readonly records: number;
  readonly predictions: number;
  readonly errors: number;
  readonly manifestUri: string;
  readonly finishedAt: string;
  /** What the run's completed shards cost (src/cost/cost.ts), in `costCurrency`. */
  readonly cost?: number;
  readonly costCurrency?: string;
}

export interface Catalog {
  /** Creates or updates the job's table and adds the run's partition. Idempotent: publishing twice is a no-op. */
  publishRun(run: PublishedRun): Promise<void>;
  /** Starts loading what publishing needs, while the caller has time to spare (a local run's workers run). */
  preload?(): void;
}
