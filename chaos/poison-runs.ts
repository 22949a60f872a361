/**
 * Whole-run poison input for `npm run chaos` (issue 17): the kinds of hostile input that the reader-level corpus
 * (test/chaos/poison-input.test.ts) cannot show end to end, each through a whole local run (Plan, workers, Reconcile,
 * Finalize, the catalogue):
 *
 * - Parquet whose columns have the wrong type for the model: a feature column stored as strings (numbers, words,
 *   empty strings and nulls), one stored as INT64 in one file and DOUBLE in another, one stored as BOOLEAN;
 * - a `files` input of images with corrupt ones among them: truncated JPEG and PNG, wrong magic bytes, text under
 *   an image name, and 0-byte files;
 * - a CSV folder with a 0-byte file and a header-only file among the data files.
 *
 * A run must either isolate each bad record (every input record exactly once, as a prediction equal to a clean
 * run's over well-typed data, or as an error row with a reason and a message) with counts that reconcile, or fail
 * with a clear run error (naming what is wrong) and publish nothing. Never a silent drop or alteration.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import sharp, { type Sharp } from 'sharp';
import { quoteIdentifier, quoteString, queryCatalog } from '../src/catalog/local.js';
import type { LocalRunOutcome } from '../src/local/run-local.js';
import { parseJobSpec } from '../src/spec/load.js';
import type { JobSpec } from '../src/spec/schema.js';
import { LocalObjectStore } from '../src/storage/local.js';
import type { ObjectStore } from '../src/storage/object-store.js';
import { catalogueOf, example, exampleSpec, repo, runOnce, visibleParquet } from './local-runs.js';

export interface PoisonRunOutcome {
  readonly name: string;
  readonly status: LocalRunOutcome['status'];
  /** How the run dealt with the poison: records isolated as error rows, or a run error. */
  readonly handled: 'isolated' | 'run-error' | 'neither';
  readonly records?: number;
  readonly predictions?: number;
  readonly errors?: number;
  readonly errorsByReason: Record<string, number>;
  readonly cause?: string;
  /** What did not hold; [] when the run isolated its poison or failed clearly. */
  readonly problems: string[];
}

interface Expected {
  /** Every record of the input, by its key (the id column, or the file's URI for a `files` input). */
  readonly keys: readonly string[];
  /** Keys whose records must be error rows (records that cannot be read as the model needs them). */
  readonly mustFail: readonly string[];
  /** A run error is acceptable if its cause matches this (it must name what is wrong). */
  readonly runErrorNames?: RegExp;
}

interface PoisonCase {
  readonly name: string;
  /** The table a successful run publishes to, its key column, and the value columns compared with the reference. */
  readonly table: string;
  readonly key: string;
  readonly compare: readonly string[];
  readonly referenceRunId: string;
  prepare(dir: string): Promise<{ spec: JobSpec; expected: Expected }>;
}

const store: ObjectStore = new LocalObjectStore();
const uri = (file: string): string => pathToFileURL(file).href;
const SOURCE_CSV = path.join(example, 'data', 'breast_cancer.csv');
const BC_COMPARE = ['patient_id', 'diagnosis', 'label', 'score'];

async function duck(statements: readonly string[]): Promise<Record<string, unknown>[]> {
  const db = await DuckDBInstance.create(':memory:');
  const connection = await db.connect();
  try {
    let rows: Record<string, unknown>[] = [];
    for (const s of statements) rows = (await connection.runAndReadAll(s)).getRowObjectsJS();
    return rows;
  } finally {
    connection.closeSync();
    db.closeSync();
  }
}

/** The example's data as a DuckDB relation, every feature DOUBLE, mean_area rounded (so INT64 can hold it). */
const SOURCE = `(SELECT * REPLACE (round(mean_area) AS mean_area) FROM read_csv(${quoteString(SOURCE_CSV)},
  header = true, types = {'patient_id': 'VARCHAR', 'diagnosis': 'VARCHAR'}) ORDER BY patient_id)`;

async function exampleIds(): Promise<string[]> {
  const rows = await duck([`SELECT patient_id FROM ${SOURCE}`]);
  return rows.map((r) => String(r.patient_id));
}

async function copyParquet(select: string, file: string): Promise<void> {
  mkdirSync(path.dirname(file), { recursive: true });
  await duck([`COPY (${select}) TO ${quoteString(file)} (FORMAT parquet)`]);
}

/** The example's spec over a Parquet folder; every run may be all errors and still publish, so all is seen. */
const parquetSpec = (input: string, output: string): Promise<JobSpec> =>
  exampleSpec(uri(input), uri(output), {
    input: { uri: `${uri(input)}/`, format: 'parquet', id: 'patient_id' },
    run: { shards: { targetRecords: 300 }, maxRounds: 1 },
    validation: { maxErrorRate: 1 },
  });

const PARQUET_CASES: readonly PoisonCase[] = [
  {
    name: 'parquet: a feature column of strings (numbers, words, empty, null)',
    table: 'breast_cancer',
    key: 'patient_id',
    compare: BC_COMPARE,
    referenceRunId: 'reference-tabular',
    async prepare(dir) {
      const input = path.join(dir, 'in');
      // Every 7th value a word, every 11th empty, every 13th null; the rest the number as text.
      await copyParquet(
        `SELECT * EXCLUDE (n) REPLACE (CASE WHEN n % 7 = 0 THEN 'wide' WHEN n % 11 = 0 THEN '' WHEN n % 13 = 0
           THEN NULL ELSE CAST(mean_radius AS VARCHAR) END AS mean_radius)
         FROM (SELECT *, row_number() OVER (ORDER BY patient_id) AS n FROM ${SOURCE}) ORDER BY patient_id`,
        path.join(input, 'part-0.parquet'),
      );
      const ids = await exampleIds();
      return {
        spec: await parquetSpec(input, path.join(dir, 'out')),
        expected: {
          keys: ids,
          mustFail: ids.filter((_, i) => (i + 1) % 7 === 0 || (i + 1) % 11 === 0 || (i + 1) % 13 === 0),
          runErrorNames: /mean_radius/,
        },
      };
    },
  },
  {
    name: 'parquet: a feature column INT64 in one file, DOUBLE in another',
    table: 'breast_cancer',
    key: 'patient_id',
    compare: BC_COMPARE,
    referenceRunId: 'reference-tabular',
    async prepare(dir) {
      const input = path.join(dir, 'in');
      const half = `(SELECT *, row_number() OVER (ORDER BY patient_id) AS n FROM ${SOURCE})`;
      await copyParquet(
        `SELECT * EXCLUDE (n) REPLACE (CAST(mean_area AS BIGINT) AS mean_area) FROM ${half} WHERE n <= 284
         ORDER BY patient_id`,
        path.join(input, 'part-0.parquet'),
      );
      await copyParquet(
        `SELECT * EXCLUDE (n) FROM ${half} WHERE n > 284 ORDER BY patient_id`,
        path.join(input, 'part-1.parquet'),
      );
      return {
        spec: await parquetSpec(input, path.join(dir, 'out')),
        expected: { keys: await exampleIds(), mustFail: [], runErrorNames: /mean_area/ },
      };
    },
  },
  {
    name: 'parquet: a feature column of BOOLEAN',
    table: 'breast_cancer',
    key: 'patient_id',
    compare: BC_COMPARE,
    referenceRunId: 'reference-tabular',
    async prepare(dir) {
      const input = path.join(dir, 'in');
      await copyParquet(
        `SELECT * REPLACE (mean_texture > 20 AS mean_texture) FROM ${SOURCE}`,
        path.join(input, 'part-0.parquet'),
      );
      const ids = await exampleIds();
      return {
        spec: await parquetSpec(input, path.join(dir, 'out')),
        // A boolean is not a measurement: 1.0 for "true" would be a silent alteration.
        expected: { keys: ids, mustFail: ids, runErrorNames: /mean_texture/ },
      };
    },
  },
];

/** Pattern k of scripts/make_image_models.py. */
function pattern(k: number, width: number, height: number): Buffer {
  const out = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      for (let c = 0; c < 3; c++) out[(y * width + x) * 3 + c] = (x * 7 + y * 13 + c * 50 + k * 31) % 256;
  return out;
}
const image = (k: number, width: number, height: number): Sharp =>
  sharp(pattern(k, width, height), { raw: { width, height, channels: 3 } });

const imageDir = path.join(repo, 'test/fixtures/models/image');
const imageExpected = JSON.parse(readFileSync(path.join(imageDir, 'expected.json'), 'utf8')) as {
  size: number;
  mean: number[];
  std: number[];
};

function imageSpec(input: string, output: string): JobSpec {
  return parseJobSpec({
    name: 'images',
    input: { uri: `${uri(input)}/`, format: 'files' },
    model: {
      uri: uri(path.join(imageDir, 'cnn.onnx')),
      inputs: [
        {
          tensor: 'pixel_values',
          from: {
            image: 'content',
            resize: { height: imageExpected.size, width: imageExpected.size },
            mean: imageExpected.mean,
            std: imageExpected.std,
          },
        },
      ],
      outputs: [
        {
          tensor: 'logits',
          postprocess: { softmax: true, argmax: { labels: 'labels.txt', as: 'label' }, keep: 'score' },
        },
      ],
    },
    output: { uri: `${uri(output)}/`, passthrough: ['name'] },
    run: { batchSize: 4, shards: { targetRecords: 8 }, maxRounds: 1 },
    validation: { maxErrorRate: 1 },
  });
}

/** Valid images, and the corrupt ones that must be error rows, written into `folder`. */
async function writeImages(
  folder: string,
  withCorrupt: boolean,
): Promise<{ valid: string[]; corrupt: string[] }> {
  mkdirSync(folder, { recursive: true });
  const valid: string[] = [];
  for (let k = 0; k < 6; k++) {
    const name = `img-${k}.${k % 2 === 0 ? 'png' : 'jpg'}`;
    const img = image(k, 32 + k, 30 + 2 * k);
    writeFileSync(path.join(folder, name), await (k % 2 === 0 ? img.png() : img.jpeg()).toBuffer());
    valid.push(name);
  }
  if (!withCorrupt) return { valid, corrupt: [] };
  const png = await image(7, 40, 40).png().toBuffer();
  const jpeg = await image(8, 40, 40).jpeg().toBuffer();
  const wrongMagic = Buffer.from(jpeg);
  wrongMagic.write('GIF', 0, 'latin1');
  const corrupt: [string, Buffer | string][] = [
    ['truncated.png', png.subarray(0, Math.floor(png.length / 2))],
    ['truncated.jpg', jpeg.subarray(0, Math.floor(jpeg.length / 2))],
    ['header-only.png', png.subarray(0, 8)],
    ['wrong-magic.jpg', wrongMagic],
    ['notes.png', 'not an image at all\n'],
    ['zero.png', ''],
    ['zero.jpg', ''],
  ];
  for (const [name, bytes] of corrupt) writeFileSync(path.join(folder, name), bytes);
  return { valid, corrupt: corrupt.map(([name]) => name) };
}

const IMAGE_CASE: PoisonCase = {
  name: 'files: corrupt and 0-byte images among valid ones',
  table: 'images',
  key: '_source',
  compare: ['name', 'label', 'score'],
  referenceRunId: 'reference-images',
  async prepare(dir) {
    const input = path.join(dir, 'in');
    const { valid, corrupt } = await writeImages(input, true);
    const keys = [...valid, ...corrupt].map((name) => uri(path.join(input, name)));
    return {
      spec: imageSpec(input, path.join(dir, 'out')),
      expected: { keys, mustFail: corrupt.map((name) => uri(path.join(input, name))) },
    };
  },
};

const CSV_EMPTY_CASE: PoisonCase = {
  name: 'csv: a 0-byte file and a header-only file among the data files',
  table: 'breast_cancer',
  key: 'patient_id',
  compare: BC_COMPARE,
  referenceRunId: 'reference-tabular',
  async prepare(dir) {
    const input = path.join(dir, 'in');
    mkdirSync(input, { recursive: true });
    // The reference's data exactly (rounded mean_area), split in two files, with the empty ones between them.
    await duck([
      `COPY (SELECT * FROM ${SOURCE} LIMIT 300) TO ${quoteString(path.join(input, 'a.csv'))} (HEADER)`,
      `COPY (SELECT * FROM ${SOURCE} OFFSET 300) TO ${quoteString(path.join(input, 'c.csv'))} (HEADER)`,
    ]);
    const header = readFileSync(SOURCE_CSV, 'utf8').split('\n')[0]!;
    writeFileSync(path.join(input, 'b-empty.csv'), '');
    writeFileSync(path.join(input, 'b-header-only.csv'), `${header}\n`);
    return {
      spec: await exampleSpec(uri(input), uri(path.join(dir, 'out')), {
        run: { shards: { targetRecords: 300 }, maxRounds: 1 },
        validation: { maxErrorRate: 1 },
      }),
      expected: { keys: await exampleIds(), mustFail: [] },
    };
  },
};

export const POISON_RUN_CASES: readonly PoisonCase[] = [...PARQUET_CASES, IMAGE_CASE, CSV_EMPTY_CASE];

export interface PoisonRunOptions {
  /** Case names to run (all by default). */
  readonly only?: (name: string) => boolean;
  readonly progress?: (line: string) => void;
}

interface ErrorRow {
  readonly _source: string;
  readonly _offset: number;
  readonly reason: string;
  readonly message: string;
  readonly [column: string]: unknown;
}

async function errorRows(outputUri: string, runId: string): Promise<ErrorRow[]> {
  const rows: ErrorRow[] = [];
  for await (const object of store.list(`${outputUri}_errors/run_id=${runId}/`)) {
    const text = Buffer.from(await store.get(object.uri)).toString('utf8');
    for (const line of text.split('\n').filter(Boolean)) rows.push(JSON.parse(line) as ErrorRow);
  }
  return rows;
}

export async function poisonRuns(options: PoisonRunOptions = {}): Promise<PoisonRunOutcome[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'chaos-poison-'));
  const catalogPath = path.join(dir, 'catalog.duckdb');
  const stateDir = path.join(dir, 'state');
  const outcomes: PoisonRunOutcome[] = [];
  try {
    // The references: the same data, well typed (a Parquet copy of the example; the valid images alone).
    const referenceDir = path.join(dir, 'reference');
    await copyParquet(`SELECT * FROM ${SOURCE}`, path.join(referenceDir, 'in', 'part-0.parquet'));
    const references: [JobSpec, string][] = [
      [await parquetSpec(path.join(referenceDir, 'in'), path.join(referenceDir, 'out')), 'reference-tabular'],
    ];
    const imagesReference = path.join(dir, 'images-reference');
    await writeImages(path.join(imagesReference, 'in'), false);
    references.push([
      imageSpec(path.join(imagesReference, 'in'), path.join(imagesReference, 'out')),
      'reference-images',
    ]);
    for (const [spec, runId] of references) {
      const outcome = await runOnce(spec, { store, catalogPath, stateDir, runId });
      if (outcome.status !== 'SUCCEEDED' || (outcome.result?.errors ?? 0) > 0) {
        throw new Error(`the reference run of ${spec.name} did not succeed cleanly: ${outcome.cause ?? ''}`);
      }
    }

    let n = 0;
    for (const poison of POISON_RUN_CASES) {
      if (options.only && !options.only(poison.name)) continue;
      const runId = `poison-${n}`;
      const caseDir = path.join(dir, `case-${n++}`);
      const { spec, expected } = await poison.prepare(caseDir);
      const outcome = await runOnce(spec, { store, catalogPath, stateDir, runId });
      const errors = outcome.status === 'SUCCEEDED' ? await errorRows(spec.output.uri, runId) : [];
      const result = await judge(poison, spec, expected, outcome, errors, catalogPath);
      outcomes.push({ name: poison.name, ...result });
      options.progress?.(
        `${poison.name}: ${outcome.status}, ${result.handled}` +
          (result.records !== undefined
            ? ` (${result.records} records, ${result.predictions} predictions, ${result.errors} errors ` +
              `${JSON.stringify(result.errorsByReason)})`
            : ` (${(outcome.cause ?? '').slice(0, 200)})`) +
          (result.problems.length === 0 ? '' : `: NOT AS EXPECTED: ${result.problems.join('; ')}`),
      );
    }
    return outcomes;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function judge(
  poison: PoisonCase,
  spec: JobSpec,
  expected: Expected,
  outcome: LocalRunOutcome,
  errors: readonly ErrorRow[],
  catalogPath: string,
): Promise<Omit<PoisonRunOutcome, 'name'>> {
  const problems: string[] = [];
  const base = {
    status: outcome.status,
    ...(outcome.cause !== undefined ? { cause: outcome.cause } : {}),
  };
  if (outcome.status !== 'SUCCEEDED') {
    // A clear run error: it names what is wrong, and nothing of the run is published or visible.
    if (!expected.runErrorNames || !expected.runErrorNames.test(outcome.cause ?? '')) {
      problems.push(
        `the run failed without naming what is wrong (${expected.runErrorNames ?? 'no run error expected'}): ` +
          (outcome.cause ?? outcome.error ?? '').slice(0, 400),
      );
    }
    const published = await catalogueOf(catalogPath, poison.table, outcome.runId);
    if (published.rows > 0 || published.listed) problems.push(`published ${published.rows} rows`);
    const visible = await visibleParquet(store, spec.output.uri, outcome.runId);
    if (visible.length > 0) problems.push(`visible: ${visible.join(', ')}`);
    return {
      ...base,
      handled: problems.length === 0 ? 'run-error' : 'neither',
      errorsByReason: {},
      problems,
    };
  }

  const result = outcome.result!;
  const errorsByReason: Record<string, number> = {};
  for (const e of errors) errorsByReason[e.reason] = (errorsByReason[e.reason] ?? 0) + 1;
  const t = quoteIdentifier(poison.table);
  const key = quoteIdentifier(poison.key);
  const run = quoteString(outcome.runId);
  const predictedKeys = (
    await queryCatalog(catalogPath, `SELECT ${key} FROM ${t} WHERE run_id = ${run}`)
  ).rows.map((r) => String(r[0]));
  // An error row's key: the declared id (tabular input), or the file (a files input).
  const errorKeys = errors.map((e) => String(poison.key === '_source' ? e._source : e[poison.key]));

  if (result.records !== expected.keys.length)
    problems.push(`records ${result.records}, the input has ${expected.keys.length}`);
  if (result.predictions + result.errors !== result.records)
    problems.push(`predictions ${result.predictions} + errors ${result.errors} != records ${result.records}`);
  if (predictedKeys.length !== result.predictions)
    problems.push(`${predictedKeys.length} rows published, the summary says ${result.predictions}`);
  if (errors.length !== result.errors)
    problems.push(`${errors.length} error rows, the summary says ${result.errors}`);
  const seen = new Map<string, number>();
  for (const k of [...predictedKeys, ...errorKeys]) seen.set(k, (seen.get(k) ?? 0) + 1);
  const missing = expected.keys.filter((k) => !seen.has(k));
  const repeated = [...seen].filter(([, count]) => count > 1).map(([k]) => k);
  const unknown = [...seen.keys()].filter((k) => !expected.keys.includes(k));
  if (missing.length > 0)
    problems.push(`silently dropped: ${missing.slice(0, 5).join(', ')} (${missing.length})`);
  if (repeated.length > 0) problems.push(`more than once: ${repeated.slice(0, 5).join(', ')}`);
  if (unknown.length > 0) problems.push(`keys not in the input: ${unknown.slice(0, 5).join(', ')}`);
  const predictedPoison = expected.mustFail.filter((k) => predictedKeys.includes(k));
  if (predictedPoison.length > 0) {
    problems.push(
      `predicted although unreadable as the model needs: ${predictedPoison.slice(0, 5).join(', ')} ` +
        `(${predictedPoison.length})`,
    );
  }
  const vague = errors.filter((e) => !e.reason || !e.message);
  if (vague.length > 0) problems.push(`${vague.length} error rows without a reason or message`);
  // Predicted rows equal the reference run's rows of the same records, in every compared column.
  const columns = poison.compare.map(quoteIdentifier).join(', ');
  const joinKey = poison.key === '_source' ? quoteIdentifier('name') : key;
  const [altered] = (
    await queryCatalog(
      catalogPath,
      `SELECT count(*) FROM (SELECT ${columns} FROM ${t} WHERE run_id = ${run}
         EXCEPT ALL SELECT ${columns} FROM ${t} WHERE run_id = ${quoteString(poison.referenceRunId)}
           AND ${joinKey} IN (SELECT ${joinKey} FROM ${t} WHERE run_id = ${run}))`,
    )
  ).rows;
  if (Number(altered?.[0] ?? 0) > 0)
    problems.push(`${String(altered?.[0])} predictions differ from the reference`);
  return {
    ...base,
    handled: problems.length === 0 ? 'isolated' : 'neither',
    records: result.records,
    predictions: result.predictions,
    errors: result.errors,
    errorsByReason,
    problems,
  };
}
