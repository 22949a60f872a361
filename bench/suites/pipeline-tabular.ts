/**
 * The whole local pipeline on the demo input (`batch-infer run` of examples/breast-cancer/demo.yaml: plan, workers,
 * finalize, catalogue), against DuckDB copying the same files to Parquet with the same number of threads, measured
 * in the same run: once with the demo's CSV files, once with the same rows as Parquet files.
 *
 * The pipeline runs as a user runs it: the CLI in a child process (`node bin/batch-infer.js run <spec>`), with the
 * default worker count (defaultLocalWorkers: one per two cores for the CSV input, one per core for Parquet). DuckDB is the strongest baseline at hand: its native, multi-threaded reader
 * and writer, given every file at once, with as many threads as the machine has cores (what the pipeline's workers
 * share). Both rates are records over wall time; the pipeline's CPU time (all its processes) is in the notes,
 * because on a shared machine it moves far less than the wall time.
 */
import { spawn } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import YAML from 'yaml';
import { DEFAULT_DEMO_FILES, EXAMPLE_DIR, makeDemoInput } from '../../examples/breast-cancer/demo.js';
import { bundleWorker } from '../../src/local/worker-bundle.js';
import type { BenchContext, BenchResult, BenchSuite } from '../suite.js';
import { CORES, mib, rate } from './worker-tabular.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.join(here, '..', '..');

const q = (s: string): string => `'${s.replace(/'/g, "''")}'`;

interface PipelineRun {
  readonly wallMs: number;
  /** User + system time of the CLI and every process it waited for (its workers). */
  readonly cpuMs: number;
}

/** `batch-infer run` of the demo spec over `inputDir` (format csv or parquet), output under `outDir`. */
async function runPipeline(
  workDir: string,
  name: string,
  inputDir: string,
  format: 'csv' | 'parquet',
): Promise<PipelineRun> {
  const demo = YAML.parse(await readFile(path.join(EXAMPLE_DIR, 'demo.yaml'), 'utf8')) as Record<
    string,
    Record<string, unknown>
  >;
  const spec = {
    ...demo,
    name: `bench_${name}`,
    input: { ...demo.input, uri: `${pathToFileURL(inputDir).href}/`, format },
    output: { ...demo.output, uri: `${pathToFileURL(path.join(workDir, `out-${name}`)).href}/` },
  };
  const specFile = path.join(workDir, `${name}.yaml`);
  writeFileSync(specFile, YAML.stringify(spec));
  const args = [
    path.join(repo, 'bin', 'batch-infer.js'),
    'run',
    specFile,
    '--json',
    '--registry',
    path.join(EXAMPLE_DIR, 'registry'),
    '--state-dir',
    path.join(workDir, `state-${name}`),
  ];
  // bash's `times` prints the CPU time of the children it waited for (the CLI, and through it its workers).
  const script = '"$@"; rc=$?; times >&2; exit $rc';
  const started = performance.now();
  const child = spawn('bash', ['-c', script, 'bash', process.execPath, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr?.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-8000)));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const wallMs = performance.now() - started;
  if (code !== 0) throw new Error(`batch-infer run exited with ${code}:\n${log}`);
  // The second line of `times`: children's user and system time, e.g. "0m12.340s 0m1.200s".
  const children = log.trim().split('\n').at(-1) ?? '';
  const seconds = [...children.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
  return { wallMs, cpuMs: ((seconds[0] ?? 0) + (seconds[1] ?? 0)) * 1000 };
}

/** Runs of each side per benchmark run (the median is reported). */
const ROUNDS = 3;

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

/** The run of median wall time. */
function medianRun(runs: readonly PipelineRun[]): PipelineRun {
  const wall = median(runs.map((r) => r.wallMs));
  return runs.find((r) => r.wallMs === wall)!;
}

/** Builds the CLI's bundle (its first start does) and the worker's (the first run does) when they are stale. */
async function warmBundles(): Promise<void> {
  const child = spawn(process.execPath, [path.join(repo, 'bin', 'batch-infer.js'), '--version'], {
    stdio: 'ignore',
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`batch-infer --version exited with ${code}`);
  await bundleWorker();
}

/** DuckDB's own copy of every file in `files` into one Parquet file, with `threads` threads; wall ms. */
async function duckdbCopy(source: string, out: string, threads: number): Promise<number> {
  const db = await DuckDBInstance.create(':memory:', { threads: String(threads) });
  const connection = await db.connect();
  try {
    const started = performance.now();
    await connection.run(`COPY (SELECT * FROM ${source}) TO ${q(out)} (FORMAT parquet, COMPRESSION snappy)`);
    return performance.now() - started;
  } finally {
    connection.closeSync();
    db.closeSync();
  }
}

/** The CSV files rewritten as Parquet files of the same rows (one per CSV file, default row groups). */
async function toParquet(csvFiles: readonly string[], dir: string): Promise<string[]> {
  const db = await DuckDBInstance.create(':memory:');
  const connection = await db.connect();
  try {
    const out: string[] = [];
    for (const [k, csv] of csvFiles.entries()) {
      const file = path.join(dir, `part-${String(k).padStart(5, '0')}.parquet`);
      // Typed columns (DOUBLE features), as a Parquet input would have them; the few deliberately broken values
      // (`n/a`, empty) become nulls, which the pipeline turns into error rows as it does in the CSV.
      await connection.run(
        `COPY (SELECT * FROM read_csv(${q(csv)}, header = true, nullstr = ['', 'n/a'])) TO ${q(file)} ` +
          '(FORMAT parquet, COMPRESSION snappy)',
      );
      out.push(file);
    }
    return out;
  } finally {
    connection.closeSync();
    db.closeSync();
  }
}

export const suite: BenchSuite = {
  name: 'pipeline-tabular',
  description:
    'The whole local pipeline (`batch-infer run`, plan to catalogue) on the demo input, CSV and Parquet, vs DuckDB ' +
    'copying the same files to Parquet with as many threads as cores.',
  async run(ctx: BenchContext): Promise<BenchResult[]> {
    const records = ctx.quick ? 200_000 : 1_000_000;
    const csvDir = path.join(ctx.workDir, 'csv');
    const parquetDir = path.join(ctx.workDir, 'parquet');
    ctx.log(
      `generating the demo input: ${records.toLocaleString('en-US')} records in ${DEFAULT_DEMO_FILES} files`,
    );
    const input = await makeDemoInput({ dir: csvDir, records, files: DEFAULT_DEMO_FILES });
    await mkdir(parquetDir, { recursive: true });
    await toParquet(input.files, parquetDir);
    // Steady state, as every run after the first one on a checkout: the CLI's and the worker's bundles are built
    // once and kept while the sources are unchanged (docs/adr/0022), so a first run would time esbuild too.
    ctx.log('building the CLI and worker bundles if the sources changed since they were built');
    await warmBundles();

    const csvList = `[${input.files.map(q).join(', ')}]`;
    const parquetFiles = readdirSync(parquetDir).map((f) => path.join(parquetDir, f));
    // Each side is run ROUNDS times, interleaved, and its median reported: on the shared build machine one run of
    // the same pipeline took 9.6 s or 11.5 s (and 17 or 21 s of CPU) from one benchmark run to the next.
    const rounds = ctx.quick ? 1 : ROUNDS;
    const sides = {
      csv: {
        label: 'CSV',
        dir: csvDir,
        // ignore_errors: the input has a few deliberately broken records, which DuckDB would otherwise stop at.
        duckdbSource: `read_csv(${csvList}, header = true, ignore_errors = true)`,
        runs: [] as PipelineRun[],
        duckdbMs: [] as number[],
      },
      parquet: {
        label: 'Parquet',
        dir: parquetDir,
        duckdbSource: `read_parquet([${parquetFiles.map(q).join(', ')}])`,
        runs: [] as PipelineRun[],
        duckdbMs: [] as number[],
      },
    };
    for (let round = 1; round <= rounds; round++) {
      for (const [format, side] of Object.entries(sides) as ['csv' | 'parquet', (typeof sides)['csv']][]) {
        ctx.log(`round ${round} of ${rounds}: batch-infer run, ${side.label} input`);
        const run = await runPipeline(ctx.workDir, `${format}_${round}`, side.dir, format);
        side.runs.push(run);
        ctx.log(`  ${rate((records * 1000) / run.wallMs)}, CPU ${Math.round(run.cpuMs)} ms`);
        const ms = await duckdbCopy(
          side.duckdbSource,
          path.join(ctx.workDir, `duck-${format}.parquet`),
          CORES,
        );
        side.duckdbMs.push(ms);
        ctx.log(`  DuckDB: ${rate((records * 1000) / ms)}`);
      }
    }
    const csvRuns = sides.csv.runs;
    const parquetRuns = sides.parquet.runs;
    const duckCsv = sides.csv.duckdbMs;
    const duckParquet = sides.parquet.duckdbMs;
    const csvRun = medianRun(csvRuns);
    const parquetRun = medianRun(parquetRuns);
    const duckCsvMs = median(duckCsv);
    const duckParquetMs = median(duckParquet);

    const shape = (
      runs: readonly PipelineRun[],
      duck: readonly number[],
      run: PipelineRun,
      what: string,
    ): string =>
      `median of ${runs.length} interleaved runs of each side (pipeline ` +
      `${runs.map((r) => Math.round(r.wallMs)).join(' / ')} ms, DuckDB ${duck.map((ms) => Math.round(ms)).join(' / ')} ms); ` +
      `${records.toLocaleString('en-US')} records in ${DEFAULT_DEMO_FILES} ${what} files ` +
      `(${mib(input.bytes)} MiB as CSV), ${CORES} cores, default workers (${what === 'CSV' ? 'one per two cores' : 'one per core'}); pipeline wall ` +
      `${Math.round(run.wallMs)} ms, CPU of all its processes ${Math.round(run.cpuMs)} ms (plan, workers, finalize, ` +
      `catalogue, and Node start-up per process; the CLI's and the worker's bundles built before, as after any ` +
      `first run)`;
    return [
      {
        name: 'demo input, CSV: whole local pipeline vs DuckDB CSV -> Parquet copy',
        metric: 'records/s',
        value: (records * 1000) / csvRun.wallMs,
        baseline: {
          name: `DuckDB COPY read_csv(${DEFAULT_DEMO_FILES} files) -> parquet, ${CORES} threads`,
          value: (records * 1000) / duckCsvMs,
        },
        higherIsBetter: true,
        target: { ratio: 0.5 },
        notes: shape(csvRuns, duckCsv, csvRun, 'CSV'),
      },
      {
        name: 'demo input, Parquet: whole local pipeline vs DuckDB Parquet -> Parquet copy',
        metric: 'records/s',
        value: (records * 1000) / parquetRun.wallMs,
        baseline: {
          name: `DuckDB COPY read_parquet(${DEFAULT_DEMO_FILES} files) -> parquet, ${CORES} threads`,
          value: (records * 1000) / duckParquetMs,
        },
        higherIsBetter: true,
        target: { ratio: 0.5 },
        notes: `${shape(parquetRuns, duckParquet, parquetRun, 'Parquet')}; the Parquet files hold the CSV's rows with DOUBLE feature columns`,
      },
    ];
  },
};
