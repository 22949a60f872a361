/**
 * Finalize: the last state of a run. Reads the plan, the shard index and every marker, checks each marker against
 * the files it names (`verifyMarkerOutputs`), validates the run (`validateRun`), and only when it passed: moves the
 * staged prediction files into the run's partition and removes stray files (`publishRunFiles`), assembles the single output file (`output.singleFile`), publishes the
 * run to the catalogue and adds it to the job's history of succeeded runs. It always writes manifest.json, with
 * the run's output distributions and their drift against the previous succeeded run (drift.ts).
 *
 * Re-running Finalize is safe: it reads the same files, cleaning and assembling are idempotent, publishing is
 * idempotent, and the manifest is overwritten with the latest verdict.
 */
import type { Catalog, PublishedRun } from '../catalog/catalog.js';
import { RunStateError } from '../spec/errors.js';
import type { RunLayout } from '../runs/layout.js';
import { writeRunReportSafely } from '../report/run-report.js';
import { runStateSchema, type RunResult, type RunState } from '../runs/tasks.js';
import type { OutputSummaries } from '../runs/stats.js';
import type { Plan } from '../runs/types.js';
import { describeFailureRecord, readFailureRecords, type FailureRecord } from '../runs/failures.js';
import { readRunStop, runErrorOfStop } from '../runs/stop.js';
import { NotFoundError, putJson, type ObjectStore } from '../storage/object-store.js';
import { resolveCodeVersion, resolveWorkerImage } from './code-version.js';
import { catalogColumnType } from './column-types.js';
import {
  computeDrift,
  driftGateCheck,
  findBaseline,
  recordSucceededRun,
  withInputSummaries,
} from './drift.js';
import {
  buildManifest,
  modelName,
  runSummaries,
  type Drift,
  type Manifest,
  type ManifestFailedShard,
} from './manifest.js';
import {
  describeInferError,
  describeShardError,
  reconcileRecordSchema,
  type ReconcileRecord,
  type ShardError,
} from './reconcile.js';
import {
  DEFAULT_READ_CONCURRENCY,
  forEachLimit,
  readPlan,
  reconcileRecordUri,
  scanMarkers,
  verifyMarkerOutputs,
} from './run-files.js';
import { readShardIndex } from './shard-list.js';
import { publishRunFiles } from './publish-files.js';
import { assembleSingleFile, type SingleFile } from './single-file.js';
import {
  validateRun,
  withCheck,
  type FailedShard,
  type ValidationCheck,
  type ValidationReport,
} from './validate.js';
import { checkWrittenSchema } from './written-schema.js';
import { manifestHistoryOf } from './history-checks.js';
import { applyRunCost, priceRun, withRunCost } from '../cost/run-cost.js';
import { finalizeChallenger, withChallengerChecks } from '../challenger/finalize.js';
import { runErrorOf, withFirstError } from './run-error.js';

export { validateRun, shardIntegrityProblem, sumTotals } from './validate.js';
export type { ValidationCheck, ValidationReport, FailedShard, RunTotals } from './validate.js';

export interface FinalizeDeps {
  readonly store: ObjectStore;
  readonly catalog: Catalog;
  readonly now?: () => Date;
  /** Recorded in the manifest: which build of this code finalized the run. @default resolveCodeVersion() */
  readonly codeVersion?: string;
  /** Recorded in the manifest: the worker image. @default $BATCH_INFER_WORKER_IMAGE */
  readonly workerImage?: string;
  /** Parallel marker reads. */
  readonly concurrency?: number;
}

export async function finalizeRun(state: RunState, deps: FinalizeDeps): Promise<RunResult> {
  const parsed = runStateSchema.safeParse(state);
  if (!parsed.success) throw new RunStateError(`Finalize got an invalid run state: ${parsed.error.message}`);
  const { runId, runUri, round } = parsed.data;
  const concurrency = deps.concurrency ?? DEFAULT_READ_CONCURRENCY;

  const { plan, layout } = await readPlan(deps.store, runUri, runId);
  const [shards, scan, records] = await Promise.all([
    readShardIndex(deps.store, layout, plan.shardCount),
    scanMarkers(deps.store, layout, plan.shardCount, concurrency),
    readReconcileRecords(deps.store, layout, round, concurrency),
  ]);

  const listing = await verifyMarkerOutputs(deps.store, layout, scan);
  // A shard without a marker whose worker left a failure record fails with that reason, not "no completion marker".
  const failures = await failureRecordsOf(deps.store, runUri, plan.shardCount, scan.markers);
  for (const [id, record] of failures) {
    if (!scan.problems.has(id))
      scan.problems.set(id, describeFailureRecord(record).replace(/^shard \d+: /, ''));
  }
  let report = validateRun(plan, shards, scan.markers, scan.problems);
  // A run stopped on purpose (canary, early stop: src/runs/stop.ts) fails with that reason whatever else passed.
  const stop = await readRunStop(deps.store, runUri);
  if (stop) report = withCheck(report, stopCheck(stop.message));
  if (report.accepted.some((m) => m.predictions > 0)) {
    report = withCheck(
      report,
      await checkWrittenSchema(deps.store, plan.spec.output.format, report.accepted),
    );
  }
  const failedShards = explainFailures(report.failedShards, records);
  const priced = priceRun(plan, report.accepted, records);

  // Drift before publishing: `validation.drift.gate` makes it a check that can stop publication.
  const summaries = runSummaries(report.accepted);
  const drift = summaries.summaries
    ? await driftOf(
        deps.store,
        layout,
        plan,
        withInputSummaries(summaries.summaries, summaries.inputSummaries),
      )
    : {};
  report = withDriftGate(report, plan, drift.drift);
  // model.challenger (docs/adr/0020): its table's checks and the comparison thresholds are part of the verdict.
  const challenger = await finalizeChallenger(deps.store, plan, shards, report.accepted, concurrency);
  report = withChallengerChecks(report, challenger);

  let publishedAt: string | undefined;
  let publishError: Error | undefined;
  let singleFile: SingleFile | undefined;
  let strays: string[] | undefined;
  if (report.passed) {
    try {
      // The staged files move into the partition only now (docs/adr/0014 §9); the report names them there.
      ({ report, strays } = await publishRunFiles(deps.store, layout, listing, report, concurrency));
      const format = plan.spec.output.format;
      if (plan.spec.output.singleFile && format !== 'parquet') {
        singleFile = await assembleSingleFile(deps.store, layout, format, report.accepted, concurrency);
      }
      const run = withRunCost(
        publishedRunOf(plan, layout, report, (deps.now?.() ?? new Date()).toISOString()),
        priced.cost,
      );
      await deps.catalog.publishRun(run);
      await challenger?.publish(deps.catalog, run.finishedAt);
      // The job's history of succeeded runs is where the next run finds its drift baseline.
      await recordSucceededRun(deps.store, layout, {
        runId,
        name: plan.spec.name,
        plannedAt: plan.createdAt,
        finalizedAt: run.finishedAt,
      });
      publishedAt = run.finishedAt;
    } catch (err) {
      publishError = err instanceof Error ? err : new Error(String(err));
    }
  }

  const finalizedAt = deps.now?.() ?? new Date();
  const manifest = buildManifest({
    summaries,
    ...drift,
    plan,
    layout,
    report,
    failedShards,
    rounds: round + 1,
    finalizedAt,
    catalog: {
      table: plan.spec.name,
      ...(publishedAt !== undefined && { publishedAt }),
      ...(publishError !== undefined && { error: publishError.message }),
    },
    codeVersion: deps.codeVersion ?? resolveCodeVersion(),
    workerImage: deps.workerImage ?? resolveWorkerImage(),
    ...(singleFile && { singleFile }),
    ...(strays && { strayFilesRemoved: strays }),
  });
  // When a schedule started the run: the time it was due, which the run's data window is usually derived from.
  if (parsed.data.scheduledTime !== undefined) manifest.scheduledTime = parsed.data.scheduledTime;
  if (challenger) manifest.challenger = challenger.manifest(publishedAt);
  const error = runErrorOf({
    ...report,
    failures,
    failedShards,
    ...(stop && { stopped: runErrorOfStop(stop) }),
  });
  if (error) manifest.error = error;
  // The first error leads the message: it is the Fail state's cause, which the run-finished event carries.
  manifest.message = withFirstError(manifest.message, error);
  applyRunCost(manifest, priced);
  Object.assign(manifest, await historyOf(deps.store, layout, manifest));
  await putJson(deps.store, layout.manifestUri, manifest);
  // The run report (src/report) next to the manifest: a view of the run files, never part of the verdict.
  await writeRunReportSafely(deps.store, layout.runUri, { markers: report.accepted, planned: shards });

  // A catalogue failure is not a verdict on the data: rethrow so the state machine retries Finalize, which
  // rewrites the manifest and publishes again (idempotently).
  if (publishError !== undefined) throw publishError;
  return runResultOf(manifest, layout);
}

/**
 * Drift against the previous succeeded run of the job (drift.ts); nothing on the job's first run. A baseline that
 * cannot be read is reported in the manifest, never a reason to fail the run.
 */
async function driftOf(
  store: ObjectStore,
  layout: RunLayout,
  plan: Plan,
  summaries: OutputSummaries,
): Promise<{ drift?: Drift; driftError?: string }> {
  try {
    const baseline = await findBaseline(store, layout, {
      runId: plan.runId,
      name: plan.spec.name,
      plannedAt: plan.createdAt,
    });
    if (!baseline?.summaries) return {};
    const drift = computeDrift(
      baseline.runId,
      withInputSummaries(baseline.summaries, baseline.inputSummaries),
      summaries,
    );
    return drift ? { drift } : {};
  } catch (err) {
    return {
      driftError: `the baseline run could not be read: ${err instanceof Error ? err.message : String(err)}`,
    };
  }
}

/**
 * The run's duration, throughput, error rate and record count against the job's last succeeded runs (history-
 * checks.ts), for `manifest.history`. Never a verdict: a history that cannot be read is reported as `historyError`.
 */
async function historyOf(
  store: ObjectStore,
  layout: RunLayout,
  manifest: Manifest,
): Promise<Pick<Manifest, 'history' | 'historyError'>> {
  try {
    return { history: await manifestHistoryOf(store, layout, { ...manifest, name: manifest.spec.name }) };
  } catch (err) {
    return {
      historyError: `the job's history could not be read: ${err instanceof Error ? err.message : String(err)}`,
    };
  }
}

/** The failing check of a run that was stopped before its shards all ran (canary, early stop). */
function stopCheck(message: string): ValidationCheck {
  return {
    name: 'runStopped',
    description: 'the run was not stopped early (run.canary, validation.stopEarly)',
    threshold: 'not stopped',
    actual: 'stopped',
    passed: false,
    message: `run stopped: ${message}`,
  };
}

/** The report with the drift gate's check when the spec makes drift a gate (`validation.drift.gate`). */
function withDriftGate(report: ValidationReport, plan: Plan, drift: Drift | undefined): ValidationReport {
  const gate = plan.spec.validation.drift;
  return gate?.gate ? withCheck(report, driftGateCheck(gate.maxPsi, drift)) : report;
}

/** What the catalogue is told about a validated run: the accepted shards' files and the written columns. */
export function publishedRunOf(
  plan: Plan,
  layout: RunLayout,
  report: ValidationReport,
  finishedAt: string,
): PublishedRun {
  const { version } = plan.model;
  return {
    table: plan.spec.name,
    runId: plan.runId,
    runDate: plan.runDate,
    outputUri: layout.outputUri,
    partitionUri: layout.partitionUri,
    files: report.accepted.flatMap((m) => m.outputs.map((f) => f.uri)),
    format: plan.spec.output.format,
    columns: Object.entries(report.columns).map(([name, type]) => ({ name, type: catalogColumnType(type) })),
    model: {
      name: modelName(plan.model),
      ...(version !== undefined && { version }),
      sha256: plan.model.sha256,
    },
    records: report.totals.records,
    predictions: report.totals.predictions,
    errors: report.totals.errors,
    manifestUri: layout.manifestUri,
    finishedAt,
  };
}

/**
 * Adds to each failed shard what the reconcile records knew: the last round in which it was still missing (the
 * last round that ran it), that round's Batch error, and the failed child that ran it (exit code, status reason,
 * log stream) when the inspector found it.
 */
export function explainFailures(
  failed: readonly FailedShard[],
  records: readonly ReconcileRecord[],
): ManifestFailedShard[] {
  const byRound = [...records].sort((a, b) => b.round - a.round);
  // Newest record first: the first record that lists a shard as missing is the last round that ran it. Linear in
  // the size of the records, which matters when a whole 10,000-shard run failed.
  const last = new Map<number, { record: ReconcileRecord; invalid?: string; child?: ShardError }>();
  for (const record of byRound) {
    const invalid = new Map(record.invalid.map((i) => [i.shardId, i.problem]));
    const children = new Map((record.shardErrors ?? []).map((e) => [e.shardId, e]));
    for (const id of record.missing) {
      if (!last.has(id)) last.set(id, { record, invalid: invalid.get(id), child: children.get(id) });
    }
  }
  return failed.map((f) => {
    const seen = last.get(f.shardId);
    if (!seen) return { ...f };
    const { record, invalid, child } = seen;
    const parts = [
      invalid === undefined
        ? `no marker after round ${record.round}`
        : `marker invalid after round ${record.round}: ${invalid}`,
    ];
    if (child) parts.push(`Batch job failed: ${describeShardError(child)}`);
    else if (record.inferError) parts.push(`Batch: ${describeInferError(record.inferError)}`);
    return {
      ...f,
      lastRound: record.round,
      lastError: parts.join('; '),
      ...(child?.exitCode !== undefined && { exitCode: child.exitCode }),
      ...(child?.statusReason !== undefined && { statusReason: child.statusReason }),
      ...(child?.reason !== undefined && { reason: child.reason }),
      ...(child?.logStream !== undefined && { logStream: child.logStream }),
      ...(child?.jobId !== undefined && { jobId: child.jobId }),
    };
  });
}

/** Failure records of the shards that have no accepted marker. */
async function failureRecordsOf(
  store: ObjectStore,
  runUri: string,
  shardCount: number,
  markers: ReadonlyMap<number, unknown>,
): Promise<Map<number, FailureRecord>> {
  const missing = new Set<number>();
  for (let id = 0; id < shardCount; id++) if (!markers.has(id)) missing.add(id);
  return readFailureRecords(store, runUri, missing);
}

/** Reconcile records of rounds 0..lastRound; a round without a readable record is skipped (it explains less). */
export async function readReconcileRecords(
  store: ObjectStore,
  layout: RunLayout,
  lastRound: number,
  concurrency = DEFAULT_READ_CONCURRENCY,
): Promise<ReconcileRecord[]> {
  const rounds = Array.from({ length: lastRound + 1 }, (_, r) => r);
  const found: (ReconcileRecord | undefined)[] = new Array<ReconcileRecord | undefined>(rounds.length);
  await forEachLimit(rounds, concurrency, async (r) => {
    let bytes: Uint8Array;
    try {
      bytes = await store.get(reconcileRecordUri(layout, r));
    } catch (err) {
      if (err instanceof NotFoundError) return;
      throw err;
    }
    try {
      const parsed = reconcileRecordSchema.safeParse(JSON.parse(new TextDecoder().decode(bytes)));
      if (parsed.success) found[r] = parsed.data;
    } catch {
      // A corrupt record only costs the explanation of a failure, never the verdict.
    }
  });
  return found.filter((r): r is ReconcileRecord => r !== undefined);
}

function runResultOf(manifest: Manifest, layout: RunLayout): RunResult {
  const reason = manifest.reason;
  return {
    runId: manifest.runId,
    status: manifest.status,
    // RunResult's reasons are the state machine's Fail states; a publish failure never returns (it throws).
    ...(reason !== undefined && reason !== 'PublishFailed' && { reason }),
    message: manifest.message,
    ...(manifest.error && { error: manifest.error }),
    records: manifest.counts.records,
    predictions: manifest.counts.predictions,
    errors: manifest.counts.errors,
    failedShards: manifest.counts.failedShards.count,
    outputUri: layout.partitionUri,
    manifestUri: layout.manifestUri,
  };
}
