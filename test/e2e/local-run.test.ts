/**
 * Whole local runs through the synthesized state machine: Plan -> worker processes -> Reconcile -> Finalize, with
 * the shipped breast-cancer model, real files, real worker processes and the real DuckDB catalogue.
 */
import '../../src/runtime/polyfills.js';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { exampleDir, writeExampleJob, runExampleJob, sql } from '../support/local-e2e.js';
import { makeDemoInput } from '../../examples/breast-cancer/demo.js';
import { queryCatalog } from '../../src/catalog/local.js';
import type { LocalRunOutcome } from '../../src/local/run-local.js';
import { parseManifest } from '../../src/results/manifest.js';
import { WORKER_ENV } from '../../src/runs/tasks.js';
import { taskFaultOptions } from '../support/worker-tasks.js';

const example = exampleDir;

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'e2e-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A job spec like the shipped one, over `input` and writing to `out`, with overrides. */
function writeJob(name: string, input: string, out: string, overrides: Record<string, unknown> = {}): string {
  return writeExampleJob(
    dir,
    name,
    { input, out },
    { run: { shards: { targetRecords: 700 }, maxRounds: 1 }, ...overrides },
  );
}

const run = (specFile: string, catalogPath: string): Promise<LocalRunOutcome> =>
  runExampleJob(specFile, dir, catalogPath);

interface InputRow {
  readonly id: string;
  readonly source: string;
  readonly offset: number;
}

/** Every record of the CSV input, read independently of the product's readers. */
function inputRows(inputDir: string): InputRow[] {
  const rows: InputRow[] = [];
  for (const file of readdirSync(inputDir)
    .filter((f) => f.endsWith('.csv'))
    .sort()) {
    const bytes = readFileSync(path.join(inputDir, file));
    let offset = bytes.indexOf(10) + 1; // skip the header line
    while (offset < bytes.length) {
      const end = bytes.indexOf(10, offset);
      const line = bytes.subarray(offset, end < 0 ? bytes.length : end).toString('utf8');
      if (line.length > 0)
        rows.push({
          id: line.split(',')[0]!.replace(/"/g, ''),
          source: pathToFileURL(path.join(inputDir, file)).href,
          offset,
        });
      offset = end < 0 ? bytes.length : end + 1;
    }
  }
  return rows;
}

describe('a local run with bad records', () => {
  let input: string;
  let out: string;
  let outcome: LocalRunOutcome;
  let catalogPath: string;
  let badIds: string[];

  beforeAll(async () => {
    input = path.join(dir, 'input');
    out = path.join(dir, 'out');
    catalogPath = path.join(dir, 'catalog.duckdb');
    const made = await makeDemoInput({ dir: input, records: 3000, files: 3, badRecordEvery: 700 });
    // One more kind of poison: a row whose quoting is broken, so it cannot even be parsed.
    appendFileSync(made.files[1]!, 'D9999999,"unterminated,1,2\n');
    badIds = [...made.badRecordIds, 'D9999999'];
    outcome = await run(
      writeJob('e2e_bad_records', input, out, { validation: { maxErrorRate: 0.01 } }),
      catalogPath,
    );
  }, 120_000);

  it('succeeds, with several shards, and accounts for every input record: records = predictions + errors', () => {
    expectIn(outcome.error, outcome.cause).toBeUndefined();
    expect(outcome.status).toBe('SUCCEEDED');
    const result = outcome.result!;
    expect(result.records).toBe(3001);
    expect(result.errors).toBe(badIds.length);
    expect(result.predictions + result.errors).toBe(result.records);
  });

  it('writes exactly one prediction row per good record, readable by an independent Parquet reader', async () => {
    const parts = `${fileURLToPath(outcome.result!.outputUri)}*.parquet`;
    const [counts] = await sql<{ rows: bigint; ids: bigint; shards: bigint }>(
      `select count(*) as rows, count(distinct patient_id) as ids, count(distinct _shard) as shards from read_parquet('${parts}')`,
    );
    expect(Number(counts!.rows)).toBe(3001 - badIds.length);
    expect(Number(counts!.ids)).toBe(3001 - badIds.length);
    expect(Number(counts!.shards)).toBeGreaterThanOrEqual(4);

    const predicted = await sql<{ patient_id: string }>(`select patient_id from read_parquet('${parts}')`);
    const errors = readdirSync(path.join(out, '_errors', `run_id=${outcome.runId}`))
      .flatMap((f) =>
        readFileSync(path.join(out, '_errors', `run_id=${outcome.runId}`, f), 'utf8')
          .trim()
          .split('\n'),
      )
      .map(
        (l) =>
          JSON.parse(l) as { patient_id: string | null; _source: string; _offset: number; reason: string },
      );
    // Every input record is in exactly one of predictions and errors.
    const seen = [
      ...predicted.map((p) => p.patient_id),
      ...errors.map((e) => e.patient_id ?? `${e._source}@${e._offset}`),
    ];
    // Every error row names its record, the undecodable one too: its id field was readable (issue 17).
    const expected = inputRows(input).map((r) => r.id);
    expect(seen.sort()).toEqual(expected.sort());
  });

  it('keeps input order within each shard and carries the record identity on every row', async () => {
    const parts = `${fileURLToPath(outcome.result!.outputUri)}*.parquet`;
    const rows = await sql<{ patient_id: string; _shard: number; _source: string; _offset: bigint }>(
      `select patient_id, _shard, _source, _offset from read_parquet('${parts}', filename = true) order by filename, file_row_number`,
    );
    const byId = new Map(inputRows(input).map((r) => [r.id, r]));
    let previous: { shard: number; source: string; offset: number } | undefined;
    for (const row of rows) {
      const original = byId.get(row.patient_id)!;
      expect(row._source).toBe(original.source);
      expect(Number(row._offset)).toBe(original.offset);
      if (previous && previous.shard === row._shard && previous.source === row._source) {
        expect(Number(row._offset)).toBeGreaterThan(previous.offset);
      }
      previous = { shard: row._shard, source: row._source, offset: Number(row._offset) };
    }
  });

  it('isolates each bad record in the errors file with a reason and the place it came from', () => {
    const errorsDir = path.join(out, '_errors', `run_id=${outcome.runId}`);
    const errors = readdirSync(errorsDir)
      .flatMap((f) => readFileSync(path.join(errorsDir, f), 'utf8').trim().split('\n'))
      .map(
        (l) =>
          JSON.parse(l) as {
            patient_id: string | null;
            _source: string;
            _offset: number;
            reason: string;
            message: string;
          },
      );
    const reasons = errors.map((e) => e.reason).sort();
    expect(reasons).toEqual(
      ['DECODE_ERROR', 'INVALID_VALUE', 'INVALID_VALUE', 'MISSING_VALUE', 'MISSING_VALUE'].sort(),
    );
    for (const e of errors) {
      // The offset points at the record's line in its source file.
      const line = readFileSync(fileURLToPath(e._source))
        .subarray(e._offset)
        .toString('utf8')
        .split('\n')[0]!;
      expect(line.startsWith(e.patient_id ?? '(no id)')).toBe(true);
      expect(e.message.length).toBeGreaterThan(5);
    }
  });

  it('writes an audit manifest naming the model digest and the input snapshot, and publishes the run', async () => {
    const manifest = parseManifest(
      JSON.parse(readFileSync(fileURLToPath(outcome.result!.manifestUri), 'utf8')),
    );
    expect(manifest.status).toBe('SUCCEEDED');
    const modelBytes = readFileSync(path.join(example, 'registry/breast-cancer-mlp/1/model.onnx'));
    expect(manifest.model.sha256).toBe(createHash('sha256').update(modelBytes).digest('hex'));
    expect(manifest.model.version).toBe(1);
    expect(manifest.input.objects).toBe(3);
    expect(manifest.counts.records).toBe(3001);

    const published = await queryCatalog(
      catalogPath,
      `select count(*) as n, count(distinct run_id) as runs from e2e_bad_records where run_id = '${outcome.runId}'`,
    );
    expect(published.rows).toEqual([[3001 - badIds.length, 1]]);
  });

  it("merges the shards' output distributions into the manifest, matching the written predictions", async () => {
    const manifest = parseManifest(
      JSON.parse(readFileSync(fileURLToPath(outcome.result!.manifestUri), 'utf8')),
    );
    const parts = `${fileURLToPath(outcome.result!.outputUri)}*.parquet`;
    const labels = await sql<{ label: string; n: bigint }>(
      `select label, count(*) as n from read_parquet('${parts}') group by label`,
    );
    const label = manifest.summaries?.label;
    expect(label?.kind).toBe('categorical');
    expect(label?.kind === 'categorical' ? label.counts : undefined).toEqual(
      Object.fromEntries(labels.map((r) => [r.label, Number(r.n)])),
    );
    const score = manifest.summaries?.score;
    expect(score).toMatchObject({ kind: 'numeric', count: 3001 - badIds.length });
    expect(manifest.execution?.providers).toEqual({ cpu: manifest.counts.completedShards });
    // The feature columns the model reads, summarised over the same rows (input drift compares them).
    const features = manifest.spec.model.inputs.flatMap((i) => ('columns' in i.from ? i.from.columns : []));
    expect(features.length).toBeGreaterThan(0);
    expect(Object.keys(manifest.inputSummaries ?? {}).sort()).toEqual([...new Set(features)].sort());
    for (const column of features) {
      expectIn(manifest.inputSummaries?.[column], column).toMatchObject({
        kind: 'numeric',
        count: 3001 - badIds.length,
        missing: 0,
      });
    }
  });
});

describe('a local run that misses its quality bar', () => {
  it('fails validation, still writes the manifest, and publishes nothing', async () => {
    const input = path.join(dir, 'strict-input');
    const out = path.join(dir, 'strict-out');
    const catalogPath = path.join(dir, 'strict.duckdb');
    await makeDemoInput({ dir: input, records: 800, files: 1, badRecordEvery: 400 });
    const outcome = await run(
      writeJob('e2e_strict', input, out, { validation: { maxErrorRate: 0 } }),
      catalogPath,
    );
    expect(outcome.status).toBe('FAILED');
    expect(outcome.error).toBe('ValidationFailed');
    expect(outcome.cause).toMatch(/error rate/i);
    const manifest = parseManifest(
      JSON.parse(readFileSync(fileURLToPath(outcome.result!.manifestUri), 'utf8')),
    );
    expect(manifest.status).toBe('FAILED');
    expect(manifest.catalog?.published ?? false).toBe(false);
    // Nothing was ever published to this catalogue, so it was never created (queryCatalog says so), rather than
    // any query error being read as "no rows".
    expect(existsSync(catalogPath)).toBe(false);
    await expect(
      queryCatalog(catalogPath, `select count(*) from _runs where run_id = '${outcome.runId}'`),
    ).rejects.toThrow(
      `No catalogue at ${path.resolve(catalogPath)}: it is created when the first run is published`,
    );
  }, 120_000);
});

describe('a local run whose shard keeps failing', () => {
  it('retries only the missing shard, then fails with ShardsFailed naming it', async () => {
    const input = path.join(dir, 'broken-input');
    mkdirSync(input, { recursive: true });
    await makeDemoInput({ dir: input, records: 1000, files: 2, badRecordEvery: 0 });
    // Shard 1's worker fails in every round (exit 1, as a lost host's job does; a spec or data mistake would be
    // caught by preflight at Plan instead). Round 0 runs shard 1 as array child 1; later rounds run only the missing
    // shards.
    const saved = process.env.NODE_OPTIONS;
    process.env.NODE_OPTIONS = taskFaultOptions(path.join(dir, 'shard-1-keeps-failing.mjs'), {
      when: `env.${WORKER_ENV.round} !== undefined && (env.${WORKER_ENV.round} !== '0' || env.${WORKER_ENV.arrayIndex} === '1')`,
      action: 'fail',
      message: 'injected: the host of shard 1 is lost',
    });

    const out = path.join(dir, 'broken-out');
    let outcome: LocalRunOutcome;
    try {
      outcome = await run(
        writeJob('e2e_broken', input, out, { run: { shards: { targetRecords: 500 }, maxRounds: 1 } }),
        path.join(dir, 'broken.duckdb'),
      );
    } finally {
      if (saved === undefined) delete process.env.NODE_OPTIONS;
      else process.env.NODE_OPTIONS = saved;
    }
    expect(outcome.status).toBe('FAILED');
    expect(outcome.error).toBe('ShardsFailed');
    const manifest = parseManifest(
      JSON.parse(readFileSync(fileURLToPath(outcome.result!.manifestUri), 'utf8')),
    );
    const failed = manifest.counts.failedShards;
    expect(failed.ids).toEqual([1]);
    // Round 1 re-ran only the failed shards.
    const round1 = JSON.parse(
      readFileSync(path.join(out, '_runs', outcome.runId, 'rounds', '1.json'), 'utf8'),
    ) as {
      shardIds: number[];
    };
    expect(round1.shardIds).toEqual(failed.ids);
    expect(manifest.counts.completedShards).toBe(manifest.counts.shards - failed.count);
  }, 120_000);
});
