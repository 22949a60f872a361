/**
 * Champion and challenger end to end (docs/adr/0020): a local run through the synthesized state machine scores the
 * shipped breast-cancer model's version 1 (champion) and version 2 (challenger) on the same records, writes both
 * tables, publishes both to the DuckDB catalogue, and records the comparison in the manifest and the report. The
 * same job with a `validation.challenger.minAgreement` above the models' agreement fails and publishes nothing.
 */
import '../../src/runtime/polyfills.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { writeExampleJob, runExampleJob, manifestOf, sql } from '../support/local-e2e.js';
import { makeDemoInput } from '../../examples/breast-cancer/demo.js';
import type { LocalRunOutcome } from '../../src/local/run-local.js';

let dir: string;
let input: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'challenger-e2e-'));
  input = path.join(dir, 'input');
  await makeDemoInput({ dir: input, records: 1200, files: 2 });
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writeJob(name: string, out: string, overrides: Record<string, unknown> = {}): string {
  return writeExampleJob(
    dir,
    name,
    { input, out, model: { challenger: { registry: { group: 'breast-cancer-mlp', version: 2 } } } },
    { run: { shards: { targetRecords: 500 }, maxRounds: 1 }, ...overrides },
  );
}

const run = (specFile: string, catalogPath: string): Promise<LocalRunOutcome> =>
  runExampleJob(specFile, dir, catalogPath);

describe('a local run with a champion and a challenger', () => {
  let out: string;
  let outcome: LocalRunOutcome;
  let catalogPath: string;

  beforeAll(async () => {
    out = path.join(dir, 'out');
    catalogPath = path.join(dir, 'catalog.duckdb');
    outcome = await run(
      writeJob('bc_promotion', out, {
        validation: { maxErrorRate: 0.01, challenger: { minAgreement: 0.5 } },
      }),
      catalogPath,
    );
  }, 180_000);

  it('succeeds and writes the challenger table next to the champion table, the same records by identity', async () => {
    expectIn(outcome.error, outcome.cause).toBeUndefined();
    expect(outcome.status).toBe('SUCCEEDED');
    const champion = `${fileURLToPath(outcome.result!.outputUri)}*.parquet`;
    const challengerDir = path.join(
      out,
      '_challenger',
      `run_date=${manifestOf(outcome).runDate}`,
      `run_id=${outcome.runId}`,
    );
    const challenger = path.join(challengerDir, '*.parquet');
    const rows = await sql<{ a: string; b: string; sa: string; sb: string; oa: bigint; ob: bigint }>(
      `select a.patient_id as a, b.patient_id as b, a._source as sa, b._source as sb, a._offset as oa, b._offset as ob
       from read_parquet('${champion}') a full outer join read_parquet('${challenger}') b
       on a._source = b._source and a._offset = b._offset`,
    );
    expect(rows).toHaveLength(1200);
    for (const row of rows) {
      expectIn(row.a, `${row.sa}@${String(row.oa)} vs ${row.sb}@${String(row.ob)}`).toBe(row.b);
      expect(row.a).not.toBeNull();
    }
  });

  it('scores the challenger with model version 2: its rows differ from the champion on some score', async () => {
    const m = manifestOf(outcome);
    expect(m.model.version).toBe(1);
    expect(m.challenger?.model.version).toBe(2);
    expect(m.challenger?.model.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(m.challenger?.model.sha256).not.toBe(m.model.sha256);
    expect(m.challenger?.counts.records).toBe(1200);
  });

  it('records the comparison in the manifest, matching one computed from the two tables independently', async () => {
    const m = manifestOf(outcome);
    const comparison = m.challenger!.comparison!;
    const champion = `${fileURLToPath(outcome.result!.outputUri)}*.parquet`;
    const challenger = path.join(m.challenger!.partitionUri.replace('file://', ''), '*.parquet');
    const [truth] = await sql<{ n: bigint; agree: bigint; mean: number; mabs: number }>(
      `select count(*) as n, sum(case when a.label = b.label then 1 else 0 end) as agree,
              avg(b.score - a.score) as mean, avg(abs(b.score - a.score)) as mabs
       from read_parquet('${champion}') a join read_parquet('${challenger}') b
       on a._source = b._source and a._offset = b._offset`,
    );
    expect(comparison.compared).toBe(Number(truth!.n));
    const label = comparison.labels.label!;
    expect(label.agreeing).toBe(Number(truth!.agree));
    expect(label.agreement).toBeCloseTo(Number(truth!.agree) / Number(truth!.n), 10);
    const total = Object.values(label.confusion)
      .flatMap((row) => Object.values(row))
      .reduce((s, n) => s + n, 0);
    expect(total).toBe(1200);
    expect(comparison.scores.score!.mean).toBeCloseTo(truth!.mean, 5);
    expect(comparison.scores.score!.meanAbs).toBeCloseTo(truth!.mabs, 5);
    expect(comparison.scores.score!.quantiles.p0).toBeLessThanOrEqual(
      comparison.scores.score!.quantiles.p50!,
    );
    // The models disagree on some labels: the gate below (minAgreement 1) has something to block.
    expect(label.agreement).toBeLessThan(1);
    expect(label.agreement).toBeGreaterThan(0.5);
    expect(m.validation.checks.find((c) => c.name === 'challenger.minAgreement.label')?.passed).toBe(true);
    expect(comparison.disagreements.length).toBeGreaterThan(0);
    const top = comparison.disagreements[0]!;
    expect(top._source).toMatch(/^file:/);
    expect(typeof top.id).toBe('string');
  });

  it('publishes both tables to the catalogue', async () => {
    const tables = await sql<{ name: string }>(
      `select table_name as name from information_schema.tables order by 1`,
      catalogPath,
    );
    const names = tables.map((t) => t.name);
    expect(names).toContain('bc_promotion');
    expect(names).toContain('bc_promotion_challenger');
  });

  it('shows the comparison in the run report', () => {
    const html = readFileSync(path.join(out, '_runs', outcome.runId, 'report.html'), 'utf8');
    expect(html).toContain('id="challenger"');
    expect(html).toContain('breast-cancer-mlp');
  });
});

describe('a promotion run whose challenger agrees less than validation.challenger.minAgreement', () => {
  let out: string;
  let outcome: LocalRunOutcome;
  let catalogPath: string;

  beforeAll(async () => {
    out = path.join(dir, 'out-gated');
    catalogPath = path.join(dir, 'catalog-gated.duckdb');
    outcome = await run(
      writeJob('bc_gated', out, { validation: { maxErrorRate: 0.01, challenger: { minAgreement: 1 } } }),
      catalogPath,
    );
  }, 180_000);

  it('fails with ValidationFailed, saying which threshold and by how much', () => {
    expect(outcome.status).toBe('FAILED');
    const m = manifestOf(outcome);
    expect(m.reason).toBe('ValidationFailed');
    expect(m.message).toMatch(
      /champion and challenger agree on \d+\.\d+% of label labels .* below validation\.challenger\.minAgreement 100\.00%/,
    );
    const check = m.validation.checks.find((c) => c.name === 'challenger.minAgreement.label')!;
    expect(check.passed).toBe(false);
    expect(check.actual).toBe(m.challenger!.comparison!.labels.label!.agreement);
  });

  it('publishes neither table, though both were written', async () => {
    const m = manifestOf(outcome);
    expect(m.catalog.published).toBe(false);
    expect(m.challenger!.catalog.published).toBe(false);
    expect(m.challenger!.counts.predictions).toBe(1200);
    const tables = await sql<{ name: string }>(
      `select table_name as name from information_schema.tables`,
      catalogPath,
    ).catch(() => []);
    expect(tables.map((t) => t.name)).not.toContain('bc_gated');
    expect(tables.map((t) => t.name)).not.toContain('bc_gated_challenger');
  });

  it('shows the failed gate in the report', () => {
    const html = readFileSync(path.join(out, '_runs', outcome.runId, 'report.html'), 'utf8');
    expect(html).toContain('class="challenger-failures"');
    expect(html).toContain('(not published)');
  });
});
