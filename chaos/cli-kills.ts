/**
 * The CLI-kill loop of `npm run chaos` (issue 17): `batch-infer run` itself (the local CLI, which plans, runs the
 * worker pool, reconciles and finalizes) killed with SIGKILL, SIGTERM or SIGINT at a point of the run, then the same
 * command run again with the same `--run-id` (or `--resume <runId>`), until it succeeds. Each run is compared with
 * a clean run of the same job.
 *
 * Kill points are observable progress, never delays: the plan written, the n-th checkpoint or marker written, the
 * first file published by Finalize (docs/adr/0014 §9). The point, the signal's follow-up (rerun or resume) and the
 * number of kills per run come from one seeded PRNG (printed), so CHAOS_SEED replays a loop.
 *
 * "Exact" means: the finished run's `--json` counts equal the clean run's; the prediction rows a reader globbing the
 * output prefix finds (`read_parquet('<out>/**\/*.parquet', hive_partitioning = true)`) equal the clean run's (every
 * column but the Hive ones, EXCEPT ALL both ways, no duplicate (_source, _offset)); and nothing stale is left under the
 * output prefix: no temporary file, no staged file, no partition of another run, no file the manifest does not name.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  breastCancerInput,
  breastCancerSpec,
  filesUnder,
  repo,
  sql,
  tempDir,
  waitFor,
} from '../test/worker/helpers.js';
import { CHUNK_RECORDS_ENV } from '../src/worker/env.js';
import { seededRandom } from './worker-kills.js';

export type CliSignal = 'SIGKILL' | 'SIGTERM' | 'SIGINT';
export const CLI_SIGNALS: readonly CliSignal[] = ['SIGKILL', 'SIGTERM', 'SIGINT'];

/** Where in the run a kill lands. */
export type KillPoint = 'planned' | 'checkpoint' | 'marker' | 'publishing';
export const KILL_POINTS: readonly KillPoint[] = ['planned', 'checkpoint', 'marker', 'publishing'];

export interface CliKillLoopOptions {
  /** Runs in all; signals are taken in turn, kill points from the seeded PRNG. */
  readonly runs: number;
  /** Records in the input (the breast-cancer CSV, a few broken records). */
  readonly records: number;
  /** Shards of the run (records / shards per shard). @default 4 */
  readonly shards?: number;
  /** Records per chunk (a checkpoint after each). @default 250 */
  readonly chunkRecords?: number;
  /** Worker processes of the CLI. @default 2 */
  readonly workers?: number;
  readonly seed: number;
  /** Kill points to draw from. @default KILL_POINTS */
  readonly points?: readonly KillPoint[];
  /** Kills per run at most (1 to this many, seeded). @default 2 */
  readonly maxKills?: number;
  readonly progress?: (line: string) => void;
}

export interface CliKillOutcome {
  readonly run: number;
  readonly signal: CliSignal;
  /** The kill points drawn, in order; `(finished)` where the run ended before the point was reached. */
  readonly points: string[];
  /** Signals delivered to a CLI that was still running. */
  readonly kills: number;
  /** How each killed CLI ended: an exit code or a signal. */
  readonly exits: string[];
  /** Invocations of the CLI until it succeeded. */
  readonly invocations: number;
  /** Worker processes still alive after their CLI was killed (orphans). */
  readonly orphanWorkers: number;
  readonly exact: boolean;
  readonly problems: string[];
}

export interface CliKillLoopResult {
  readonly seed: number;
  readonly clean: { readonly records: number; readonly predictions: number; readonly errors: number };
  readonly outcomes: CliKillOutcome[];
}

interface RunSummary {
  readonly status?: string;
  readonly records?: number;
  readonly predictions?: number;
  readonly errors?: number;
}

interface Cli {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
}

const BIN = path.join(repo, 'bin/batch-infer.js');
const REGISTRY = path.join(repo, 'examples/breast-cancer/registry');

export async function cliKillLoop(options: CliKillLoopOptions): Promise<CliKillLoopResult> {
  const random = seededRandom(options.seed);
  const shards = options.shards ?? 4;
  const points = options.points ?? KILL_POINTS;
  const maxKills = options.maxKills ?? 2;
  const tmp = tempDir('chaos-cli-kills-');
  try {
    const inputDir = path.join(tmp.dir, 'in');
    await breastCancerInput(inputDir, options.records, shards, 997);
    const stateDir = path.join(tmp.dir, 'state');
    const env = { [CHUNK_RECORDS_ENV]: String(options.chunkRecords ?? 250) };
    const jobFile = (out: string): string => {
      const spec = breastCancerSpec(inputDir, path.join(tmp.dir, out), {
        batchSize: 50,
        shards: { targetRecords: Math.ceil(options.records / shards), targetBytes: '100GiB' },
      });
      const file = path.join(tmp.dir, `${out}.json`);
      writeFileSync(file, JSON.stringify(spec));
      return file;
    };
    const args = (job: string, out: string): string[] => [
      'run',
      job,
      '--json',
      '--workers',
      String(options.workers ?? 2),
      '--registry',
      REGISTRY,
      '--state-dir',
      stateDir,
      '--catalog',
      path.join(tmp.dir, `${out}.duckdb`),
    ];

    const cleanJob = jobFile('clean');
    const cleanCli = startCli([...args(cleanJob, 'clean'), '--run-id', 'clean'], env);
    const cleanExit = await cleanCli.exited;
    const clean = parseSummary(cleanCli.output());
    if (cleanExit.code !== 0 || clean?.status !== 'SUCCEEDED') {
      throw new Error(`the clean run failed (exit ${cleanExit.code}):\n${cleanCli.output().slice(-2000)}`);
    }
    const cleanOut = path.join(tmp.dir, 'clean');

    const outcomes: CliKillOutcome[] = [];
    for (let run = 0; run < options.runs; run++) {
      const signal = CLI_SIGNALS[run % CLI_SIGNALS.length]!;
      const out = `run-${run}`;
      const outDir = path.join(tmp.dir, out);
      const runId = `kill-${run}`;
      const job = jobFile(out);
      const killsWanted = 1 + Math.floor(random() * maxKills);
      const drawn: string[] = [];
      const exits: string[] = [];
      const problems: string[] = [];
      let kills = 0;
      let invocations = 0;
      let orphans = 0;
      let summary: RunSummary | undefined;
      let started = false;
      while (summary?.status !== 'SUCCEEDED' && invocations < killsWanted + 3) {
        invocations++;
        // The first start names the id; later ones rerun it (same command) or resume it, as the PRNG says.
        const resume = started && random() < 0.5;
        const cli = startCli(
          resume
            ? [...args(job, out).slice(0, 1), ...args(job, out).slice(2), '--resume', runId]
            : [...args(job, out), '--run-id', runId],
          env,
        );
        started = true;
        if (kills < killsWanted) {
          const point = points[Math.floor(random() * points.length)]!;
          const reached = await reach(point, outDir, runId, random, cli.exited);
          drawn.push(reached ? point : `${point} (finished)`);
          if (reached) {
            const workers = childPids(cli.child.pid);
            if (cli.child.kill(signal)) {
              kills++;
              const exit = await cli.exited;
              exits.push(exit.signal ?? String(exit.code));
              // Workers of a killed CLI must not outlive it: they would write beside the rerun's workers.
              const alive = await waitFor(async () => (workers.some(isAlive) ? undefined : true), {
                timeoutMs: 30_000,
                intervalMs: 50,
              });
              if (!alive) {
                const left = workers.filter(isAlive);
                orphans += left.length;
                for (const pid of left) process.kill(pid, 'SIGKILL');
              }
              summary = parseSummary(cli.output());
              continue;
            }
          }
        }
        const exit = await cli.exited;
        summary = parseSummary(cli.output());
        if (exit.code !== 0) {
          problems.push(
            `invocation ${invocations} exited ${exit.code ?? exit.signal}: ${cli.output().slice(-600)}`,
          );
        }
      }
      if (summary?.status !== 'SUCCEEDED') problems.push(`not SUCCEEDED after ${invocations} invocations`);
      else problems.push(...(await differences(clean, summary, cleanOut, outDir, runId)));
      if (orphans > 0) problems.push(`${orphans} worker process(es) outlived their killed CLI`);
      const outcome: CliKillOutcome = {
        run,
        signal,
        points: drawn,
        kills,
        exits,
        invocations,
        orphanWorkers: orphans,
        exact: problems.length === 0,
        problems,
      };
      outcomes.push(outcome);
      options.progress?.(
        `run ${run} ${signal} at ${drawn.join(', ')}: ${kills} kill(s) (${exits.join(', ')}), ${invocations} ` +
          `invocation(s), ${outcome.exact ? 'exact' : `NOT EXACT: ${problems.join('; ')}`}`,
      );
    }
    return {
      seed: options.seed,
      clean: { records: clean.records ?? 0, predictions: clean.predictions ?? 0, errors: clean.errors ?? 0 },
      outcomes,
    };
  } finally {
    tmp.cleanup();
  }
}

function startCli(args: readonly string[], env: Record<string, string>): Cli {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString('utf8')).slice(-20_000)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  return { child, exited, output: () => `${stdout}\n${stderr}` };
}

/** The `--json` summary: the last line of stdout that parses as a JSON object with a status. */
function parseSummary(output: string): RunSummary | undefined {
  const start = output.indexOf('{');
  if (start < 0) return undefined;
  const end = output.lastIndexOf('}');
  try {
    return JSON.parse(output.slice(start, end + 1)) as RunSummary;
  } catch {
    return undefined;
  }
}

/**
 * Waits until the run reaches `point` (observable in its files); false when the CLI exited first.
 */
async function reach(
  point: KillPoint,
  outDir: string,
  runId: string,
  random: () => number,
  exited: Promise<unknown>,
): Promise<boolean> {
  const runDir = path.join(outDir, '_runs', runId);
  const count = (dir: string, re: RegExp): number =>
    existsSync(dir) ? readdirSync(dir).filter((n) => re.test(n)).length : 0;
  // Which marker (the first to the third) a `marker` kill waits for.
  const nth = 1 + Math.floor(random() * 3);
  const check = (): boolean => {
    switch (point) {
      case 'planned':
        return existsSync(path.join(runDir, 'plan.json'));
      case 'checkpoint':
        // A shard part-way (its checkpoint); a marker too, in case every shard ran through between two looks.
        return (
          count(path.join(runDir, 'checkpoints'), /^\d+\.json$/) >= 1 ||
          count(path.join(runDir, 'shards'), /^\d+\.json$/) >= 1
        );
      case 'marker':
        return count(path.join(runDir, 'shards'), /^\d+\.json$/) >= nth;
      case 'publishing':
        return existsSync(outDir) && readdirSync(outDir).some((n) => n.startsWith('run_date='));
    }
  };
  const hit = await waitFor(async () => (check() ? true : undefined), {
    timeoutMs: 300_000,
    intervalMs: 2,
    until: exited,
  });
  return hit === true;
}

/** Direct children of a process (its workers), from /proc. */
function childPids(pid: number | undefined): number[] {
  if (pid === undefined) return [];
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) found.push(Number(name));
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function differences(
  clean: RunSummary,
  summary: RunSummary,
  cleanOut: string,
  outDir: string,
  runId: string,
): Promise<string[]> {
  const problems: string[] = [];
  for (const key of ['records', 'predictions', 'errors'] as const) {
    if (summary[key] !== clean[key]) problems.push(`${key}: ${summary[key]}, clean run ${clean[key]}`);
  }
  const glob = (dir: string): string =>
    `read_parquet('${path.join(dir, '**', '*.parquet').replace(/'/g, "''")}', hive_partitioning = true)`;
  const [diff] = await sql<{
    rows: bigint;
    left_only: bigint;
    right_only: bigint;
    keys: bigint;
    runs: string;
  }>(`
    WITH a AS (SELECT * EXCLUDE (run_date, run_id) FROM ${glob(outDir)}),
         b AS (SELECT * EXCLUDE (run_date, run_id) FROM ${glob(cleanOut)})
    SELECT (SELECT count(*) FROM a) AS rows,
           (SELECT count(*) FROM (SELECT * FROM a EXCEPT ALL SELECT * FROM b)) AS left_only,
           (SELECT count(*) FROM (SELECT * FROM b EXCEPT ALL SELECT * FROM a)) AS right_only,
           (SELECT count(DISTINCT (_source, _offset)) FROM a) AS keys,
           (SELECT string_agg(DISTINCT run_id, ',') FROM ${glob(outDir)}) AS runs`);
  const rows = Number(diff!.rows);
  if (rows !== clean.predictions)
    problems.push(`a glob of the output reads ${rows} rows, clean run ${clean.predictions}`);
  const differ = Number(diff!.left_only) + Number(diff!.right_only);
  if (differ > 0) problems.push(`${differ} rows differ from the clean run`);
  if (Number(diff!.keys) !== rows) problems.push(`${rows - Number(diff!.keys)} duplicate rows`);
  if (diff!.runs !== runId) problems.push(`a glob of the output reads runs ${diff!.runs}`);

  const manifest = JSON.parse(readFileSync(path.join(outDir, '_runs', runId, 'manifest.json'), 'utf8')) as {
    outputs: { files: { uri: string }[]; errorsFiles: { uri: string }[] };
  };
  const named = new Set(
    [...manifest.outputs.files, ...manifest.outputs.errorsFiles].map((f) =>
      path.relative(outDir, new URL(f.uri).pathname),
    ),
  );
  for (const file of filesUnder(outDir)) {
    const base = path.basename(file);
    if (base.startsWith('.tmp-')) problems.push(`temporary file left: ${file}`);
    else if (file.startsWith('_staging/')) problems.push(`staged file left: ${file}`);
    else if (file.startsWith('run_date=') && !named.has(file))
      problems.push(`unpublished file in a partition: ${file}`);
    else if (file.startsWith('_errors/') && !named.has(file))
      problems.push(`error file the manifest does not name: ${file}`);
  }
  return problems;
}

/** For a report: the figures of a loop. */
export function summarizeCliKills(result: CliKillLoopResult): Record<string, unknown> {
  const bySignal = Object.fromEntries(
    CLI_SIGNALS.map((signal) => {
      const runs = result.outcomes.filter((o) => o.signal === signal);
      return [
        signal,
        {
          runs: runs.length,
          exact: runs.filter((o) => o.exact).length,
          kills: runs.reduce((n, o) => n + o.kills, 0),
          exits: [...new Set(runs.flatMap((o) => o.exits))].sort(),
        },
      ];
    }),
  );
  const byPoint = Object.fromEntries(
    KILL_POINTS.map((p) => [p, result.outcomes.flatMap((o) => o.points).filter((x) => x === p).length]),
  );
  return {
    seed: result.seed,
    records: result.clean.records,
    runs: result.outcomes.length,
    exact: result.outcomes.filter((o) => o.exact).length,
    kills: result.outcomes.reduce((n, o) => n + o.kills, 0),
    invocations: result.outcomes.reduce((n, o) => n + o.invocations, 0),
    orphanWorkers: result.outcomes.reduce((n, o) => n + o.orphanWorkers, 0),
    killPoints: byPoint,
    bySignal,
  };
}
