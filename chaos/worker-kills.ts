/**
 * The worker-kill loop of `npm run chaos` (issue 17): shard workers killed the way Spot reclaims, OOM kills and
 * timeouts kill them, then resumed by the next attempt, and each run compared with an uninterrupted one.
 *
 * Modes, picked in turn:
 * - `sigkill-random`: SIGKILL at a random moment (seeded) after start, 1 to 3 times per run;
 * - `sigkill-after-checkpoint`: SIGKILL the moment a checkpoint with a new chunk appears;
 * - `sigterm-mid-chunk`: SIGTERM after the first checkpoint (must exit 143, then resume);
 * - `sigterm-startup`: SIGTERM within the first moments (often before the model is loaded).
 *
 * "Exact" means: the resumed shard's marker counts equal the clean run's, its Parquet rows equal the clean run's
 * (every column, lineage included, EXCEPT ALL both ways, no duplicate (_source, _offset)), its error rows equal the
 * clean run's, and its partition holds only the files its marker names. Randomness comes from one seed (printed), so
 * a failing run can be replayed with CHAOS_SEED.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  breastCancerInput,
  breastCancerSpec,
  errorLines,
  expectSameOutput,
  filesUnder,
  planWorkerRun,
  readCheckpointFile,
  readMarker,
  startWorker,
  tempDir,
  waitFor,
  type PlannedRun,
  type WorkerProcess,
} from '../test/worker/helpers.js';
import type { ShardMarker } from '../src/runs/types.js';
import { CHUNK_RECORDS_ENV, INTERRUPTED_EXIT_CODE } from '../src/worker/env.js';
import { seededRandom } from '../test/support/seeded-random.js';

export { seededRandom };

export type KillMode =
  'sigkill-random' | 'sigkill-after-checkpoint' | 'sigterm-mid-chunk' | 'sigterm-startup';
export const KILL_MODES: readonly KillMode[] = [
  'sigkill-random',
  'sigkill-after-checkpoint',
  'sigterm-mid-chunk',
  'sigterm-startup',
];

export interface KillLoopOptions {
  /** Runs in all; modes are taken in turn. */
  readonly runs: number;
  /** Records in the input (one CSV file, a few broken records). */
  readonly records: number;
  readonly seed: number;
  /** Records per chunk (a checkpoint after each). */
  readonly chunkRecords?: number;
  /** Upper bound of the random SIGKILL delay, in ms. @default 4000 */
  readonly maxDelayMs?: number;
  readonly progress?: (line: string) => void;
}

export interface KillRunOutcome {
  readonly run: number;
  readonly mode: KillMode;
  /** Signals delivered to workers that were still running. */
  readonly kills: number;
  /** Attempts until the shard completed. */
  readonly attempts: number;
  readonly exact: boolean;
  /** What differed, when not exact. */
  readonly problems: string[];
  /** Temporary files of cut writes left in the partition (see isTempFile). */
  readonly tempLeftovers: number;
}

export interface KillLoopResult {
  readonly seed: number;
  readonly clean: { readonly records: number; readonly predictions: number; readonly errors: number };
  readonly outcomes: KillRunOutcome[];
}

export async function workerKillLoop(options: KillLoopOptions): Promise<KillLoopResult> {
  const random = seededRandom(options.seed);
  const env = { [CHUNK_RECORDS_ENV]: String(options.chunkRecords ?? 1000) };
  const maxDelay = options.maxDelayMs ?? 4000;
  const tmp = tempDir('chaos-kills-');
  try {
    const inputDir = path.join(tmp.dir, 'in');
    await breastCancerInput(inputDir, options.records, 1, 997);
    const spec = (out: string) => breastCancerSpec(inputDir, path.join(tmp.dir, out), { batchSize: 250 });
    // One run id for all (each run has its own output folder): DuckDB reads run_id from the Hive path as a column.
    const cleanRun = await planWorkerRun(spec('clean'), 'chaos');
    const cleanWorker = startWorker(cleanRun.runUri, env, 1);
    const cleanExit = await cleanWorker.exited;
    if (cleanExit.code !== 0) throw new Error(`the clean run failed:\n${cleanWorker.output()}`);
    const clean = await readMarker(cleanRun);
    const outcomes: KillRunOutcome[] = [];
    for (let run = 0; run < options.runs; run++) {
      const mode = KILL_MODES[run % KILL_MODES.length]!;
      const planned = await planWorkerRun(spec(`run-${run}`), 'chaos');
      const killsWanted = mode === 'sigkill-random' ? 1 + Math.floor(random() * 3) : 1;
      let kills = 0;
      let attempt = 0;
      const problems: string[] = [];
      let marker: ShardMarker | undefined;
      while (!marker && attempt < 10) {
        attempt++;
        const worker = startWorker(planned.runUri, env, attempt);
        if (kills < killsWanted) {
          const delivered = await interrupt(worker, planned, mode, random, maxDelay);
          if (delivered) {
            kills++;
            const exit = await worker.exited;
            // Before its handler is installed (the loader still starting) the process dies of the signal itself,
            // which a container runtime reports as 143 too.
            const stopped =
              exit.code === INTERRUPTED_EXIT_CODE || exit.signal === 'SIGTERM' || exit.code === 0;
            if (mode.startsWith('sigterm') && !stopped) {
              problems.push(
                `SIGTERM: worker exited ${exit.code ?? exit.signal}, expected ${INTERRUPTED_EXIT_CODE}`,
              );
            }
            if (exit.code === 0) marker = await readMarker(planned);
            continue;
          }
        }
        const exit = await worker.exited;
        if (exit.code !== 0) {
          problems.push(
            `attempt ${attempt} exited ${exit.code ?? exit.signal}: ${worker.output().slice(-400)}`,
          );
          break;
        }
        marker = await readMarker(planned);
      }
      if (!marker) problems.push(`no completion marker after ${attempt} attempts`);
      else problems.push(...(await differences(clean, marker, planned)));
      const tempLeftovers = marker ? leftovers(marker, planned).filter(isTempFile).length : 0;
      const outcome = {
        run,
        mode,
        kills,
        attempts: attempt,
        exact: problems.length === 0,
        problems,
        tempLeftovers,
      };
      outcomes.push(outcome);
      options.progress?.(
        `run ${run} ${mode}: ${kills} kill(s), ${attempt} attempt(s), ${outcome.exact ? 'exact' : `NOT EXACT: ${problems.join('; ')}`}`,
      );
    }
    return {
      seed: options.seed,
      clean: { records: clean.records, predictions: clean.predictions, errors: clean.errors },
      outcomes,
    };
  } finally {
    tmp.cleanup();
  }
}

/** Delivers the mode's signal to a running worker; false when it finished first. */
async function interrupt(
  worker: WorkerProcess,
  planned: PlannedRun,
  mode: KillMode,
  random: () => number,
  maxDelay: number,
): Promise<boolean> {
  let exited = false;
  void worker.exited.then(() => (exited = true));
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  switch (mode) {
    case 'sigkill-random':
      await Promise.race([sleep(Math.floor(random() * maxDelay)), worker.exited]);
      break;
    case 'sigterm-startup':
      await Promise.race([sleep(Math.floor(random() * 300)), worker.exited]);
      break;
    case 'sigkill-after-checkpoint':
    case 'sigterm-mid-chunk': {
      const before = (await readCheckpointFile(planned))?.chunks.length ?? 0;
      await waitFor(
        async () => {
          const now = (await readCheckpointFile(planned))?.chunks.length ?? 0;
          return now > before ? now : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 5, until: worker.exited },
      );
      if (mode === 'sigterm-mid-chunk') await sleep(Math.floor(random() * 100));
      break;
    }
  }
  if (exited) return false;
  return worker.child.kill(mode.startsWith('sigterm') ? 'SIGTERM' : 'SIGKILL');
}

async function differences(clean: ShardMarker, marker: ShardMarker, planned: PlannedRun): Promise<string[]> {
  const problems: string[] = [];
  for (const key of ['records', 'predictions', 'errors'] as const) {
    if (marker[key] !== clean[key]) problems.push(`${key}: ${marker[key]}, clean run ${clean[key]}`);
  }
  if (JSON.stringify(marker.errorsByReason) !== JSON.stringify(clean.errorsByReason)) {
    problems.push(`errorsByReason ${JSON.stringify(marker.errorsByReason)}`);
  }
  const same = await expectSameOutput(clean, marker);
  if (same.differences !== 0 || same.rows !== clean.predictions) {
    problems.push(`prediction rows: ${same.rows} rows, ${same.differences} differ or repeat`);
  }
  const errorRows = (m: ShardMarker): string[] => errorLines(m).sort();
  if (JSON.stringify(errorRows(marker)) !== JSON.stringify(errorRows(clean)))
    problems.push('error rows differ');
  const stray = leftovers(marker, planned).filter((f) => !isTempFile(f));
  if (stray.length > 0) problems.push(`files no marker names: ${stray.join(', ')}`);
  return problems;
}

/** Files in the run's staging folder that its marker does not name. */
function leftovers(marker: ShardMarker, planned: PlannedRun): string[] {
  // Workers write to the run's staging folder; Finalize moves the files into the partition (docs/adr/0014 §9).
  const partition = fileURLToPath(planned.layout.stagingUri);
  return filesUnder(partition).filter(
    (f) => !marker.outputs.some((o) => path.relative(partition, fileURLToPath(o.uri)) === f),
  );
}

/**
 * The local store's temporary file of a write cut by SIGKILL (`.tmp-<name>-<random>`, renamed into place when the
 * write completes). Hidden and not named *.parquet, so readers skip it; counted apart (`tempLeftovers`), since it is
 * a finding of this loop (docs/reliability.md), not a wrong row. S3 has no such file: an unfinished upload is not
 * an object.
 */
function isTempFile(relative: string): boolean {
  return path.basename(relative).startsWith('.tmp-');
}

/** For a report: the figures of a loop. */
export function summarizeKills(result: KillLoopResult): Record<string, unknown> {
  const byMode = Object.fromEntries(
    KILL_MODES.map((mode) => {
      const runs = result.outcomes.filter((o) => o.mode === mode);
      return [mode, { runs: runs.length, exact: runs.filter((o) => o.exact).length, kills: sum(runs) }];
    }),
  );
  return {
    seed: result.seed,
    records: result.clean.records,
    runs: result.outcomes.length,
    exact: result.outcomes.filter((o) => o.exact).length,
    kills: sum(result.outcomes),
    runsLeavingTempFiles: result.outcomes.filter((o) => o.tempLeftovers > 0).length,
    byMode,
  };
}

function sum(runs: readonly KillRunOutcome[]): number {
  return runs.reduce((n, o) => n + o.kills, 0);
}
