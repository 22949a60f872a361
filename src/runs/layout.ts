/**
 * Where every file of a run lives (README "What a run writes"). Keys are deterministic, so a retried shard
 * or a re-run Finalize overwrites instead of duplicating.
 */
import { asPrefix, joinUri } from '../storage/uri.js';

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

export interface RunLayout {
  readonly runId: string;
  /** `<output.uri>/` */
  readonly outputUri: string;
  /** `<output.uri>/_runs/<runId>/`: plan, shard list, markers, manifest. */
  readonly runUri: string;
  readonly planUri: string;
  /** shards.jsonl: one line per shard, its input ranges (large: ~126 MiB for a million input objects). */
  readonly shardsUri: string;
  /**
   * shards.index.json: per shard, where its line is in shards.jsonl (byte offset and length) and its planned counts,
   * so a worker reads its own line with one ranged GET and Reconcile/Finalize never read shards.jsonl at all.
   */
  readonly shardIndexUri: string;
  readonly manifestUri: string;
  /** Prefix of the run's predictions partition: Finalize publishes the run's files here (publishedUriOf). */
  readonly partitionUri: string;
  /**
   * Where workers write the run's prediction files until Finalize publishes them: `<output.uri>/_staging/run_id=<id>/`
   * (docs/adr/0014 §9). A `_` folder is skipped by Hive, Athena, Spark and Glue crawlers, and the staged names end
   * in `.staged`, so a glob such as DuckDB's `<output.uri>/**\/*.parquet` sees no file of an unpublished run.
   */
  readonly stagingUri: string;
  /** Prefix of the run's error files. */
  readonly errorsPrefixUri: string;
  readonly markersPrefixUri: string;
  markerUri(shardId: number): string;
  checkpointUri(shardId: number): string;
  roundUri(round: number): string;
  /**
   * Where a worker writes a prediction file: `<stagingUri>part-<shard>-<chunk>.<extension>.staged` (`parquet` unless
   * the output format says otherwise). Markers and checkpoints name this URI; Finalize moves the file to
   * `publishedUriOf(uri)` when the run passes.
   */
  partUri(shardId: number, chunk: number, extension?: string): string;
  /** What every prediction file of a shard starts with: `<stagingUri>part-<shard>-`. */
  partPrefixUri(shardId: number): string;
  /** Where a staged prediction file is published: `<partitionUri>part-<shard>-<chunk>.<extension>`. */
  publishedUriOf(stagedUri: string): string;
  /**
   * The run's predictions as one file (`output.singleFile`): `<output.uri>/_single/<runId>.<extension>`. Outside
   * the partitions (a `_` folder is hidden from Hive, Athena and Spark), so tables never read it twice.
   */
  singleFileUri(extension: string): string;
  errorsUri(shardId: number): string;
}

/** The folder under `<output.uri>/` where unpublished prediction files live (RunLayout.stagingUri). */
export const STAGING_FOLDER = '_staging';
/** Ends the name of every staged prediction file, so that no `*.parquet` (`*.csv`, `*.jsonl`) glob matches it. */
export const STAGED_SUFFIX = '.staged';

/** `run_date` is the UTC date the run was planned; it is fixed in the plan so every shard agrees. */
export function runLayout(outputUri: string, runId: string, runDate: string): RunLayout {
  const out = asPrefix(outputUri);
  const runUri = asPrefix(joinUri(out, '_runs', runId));
  const partitionUri = asPrefix(joinUri(out, `run_date=${runDate}`, `run_id=${runId}`));
  const errorsPrefixUri = asPrefix(joinUri(out, '_errors', `run_id=${runId}`));
  const stagingUri = asPrefix(joinUri(out, STAGING_FOLDER, `run_id=${runId}`));
  const markersPrefixUri = asPrefix(joinUri(runUri, 'shards'));
  return {
    runId,
    outputUri: out,
    runUri,
    planUri: joinUri(runUri, 'plan.json'),
    shardsUri: joinUri(runUri, 'shards.jsonl'),
    shardIndexUri: joinUri(runUri, 'shards.index.json'),
    manifestUri: joinUri(runUri, 'manifest.json'),
    partitionUri,
    stagingUri,
    errorsPrefixUri,
    markersPrefixUri,
    markerUri: (id) => joinUri(markersPrefixUri, `${id}.json`),
    checkpointUri: (id) => joinUri(runUri, 'checkpoints', `${id}.json`),
    roundUri: (round) => joinUri(runUri, 'rounds', `${round}.json`),
    partUri: (id, chunk, extension = 'parquet') =>
      joinUri(stagingUri, `part-${pad(id, 5)}-${pad(chunk, 4)}.${extension}${STAGED_SUFFIX}`),
    partPrefixUri: (id) => joinUri(stagingUri, `part-${pad(id, 5)}-`),
    publishedUriOf: (staged) => {
      if (!staged.startsWith(stagingUri) || !staged.endsWith(STAGED_SUFFIX)) {
        throw new Error(`${staged} is not a staged file of run ${runId} (${stagingUri}*${STAGED_SUFFIX})`);
      }
      return joinUri(partitionUri, staged.slice(stagingUri.length, -STAGED_SUFFIX.length));
    },
    singleFileUri: (extension) => joinUri(out, '_single', `${runId}.${extension}`),
    errorsUri: (id) => joinUri(errorsPrefixUri, `part-${pad(id, 5)}.jsonl`),
  };
}

/** The run prefix of an output URI, for code that only knows the run URI (workers, reconcile). */
export function runUriOf(outputUri: string, runId: string): string {
  return asPrefix(joinUri(asPrefix(outputUri), '_runs', runId));
}

/**
 * Run ids are Step Functions execution names (at most 80 characters) and start the Batch job names of their rounds
 * (`<runId>-r<round>`: letters, digits, `-` and `_`, the first a letter or digit, at most 128 characters). So: 1-80
 * letters, digits, `-` and `_`, starting with a letter or digit. A dot, a space or a leading `-` would pass Step
 * Functions and fail at SubmitJob, after Plan. Generated ids sort by time.
 */
export const RUN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$/;
/** What RUN_ID_PATTERN means, for error messages. */
export const RUN_ID_RULE =
  'must be 1-80 letters, digits, "-" or "_", starting with a letter or digit (it is the Step Functions execution ' +
  'name and starts the Batch job names of the run)';

export function newRunId(now: Date = new Date()): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  const rand = Math.floor(Math.random() * 0xffffff)
    .toString(16)
    .padStart(6, '0');
  return `${stamp}-${rand}`;
}
