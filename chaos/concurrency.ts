/**
 * The concurrency loop of `npm run chaos` (issue 17), with local runs of the shipped example:
 *
 * - `same-id-twice`: one run id started twice at once. One run must win (SUCCEEDED, exact rows), the other fail at
 *   once with a message saying the id is running (or join it and report the same result); and the id must stay
 *   usable: a rerun with the same spec succeeds and publishes no second copy of the rows.
 * - `changed-spec`: the same run id rerun with a changed spec must fail naming the changed field, leaving the
 *   published rows as they were.
 * - `neighbouring-prefixes`: pipelines writing at once into `out/a`, `out/ab` and `out/a-b` (prefixes of each
 *   other as strings): each one's catalogue table, visible files, and counts hold exactly its own run.
 *
 * Each check returns what did not hold; [] when it held.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { queryCatalog, quoteIdentifier, quoteString } from '../src/catalog/local.js';
import type { LocalRunOutcome } from '../src/local/run-local.js';
import { LocalObjectStore } from '../src/storage/local.js';
import {
  catalogueOf,
  example,
  exampleSpec,
  publishedDifferences,
  runOnce,
  visibleParquet,
} from './local-runs.js';

export type ConcurrencyCheck = 'same-id-twice' | 'changed-spec' | 'neighbouring-prefixes';
export const CONCURRENCY_CHECKS: readonly ConcurrencyCheck[] = [
  'same-id-twice',
  'changed-spec',
  'neighbouring-prefixes',
];

export interface ConcurrencyOutcome {
  readonly check: ConcurrencyCheck;
  /** One line per run: its id, status and cause. */
  readonly runs: string[];
  readonly problems: string[];
}

const EXAMPLE_ROWS = 569;
const ID = 'patient_id';
const store = new LocalObjectStore();
const uri = (p: string): string => pathToFileURL(p).href;

/** A run's outcome, or the error it threw (a refused lock throws before the run starts). */
async function attempt(run: () => Promise<LocalRunOutcome>): Promise<LocalRunOutcome | Error> {
  try {
    return await run();
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

const describeRun = (o: LocalRunOutcome | Error): string =>
  o instanceof Error
    ? `threw ${o.name}: ${o.message.slice(0, 300)}`
    : `${o.runId} ${o.status}${o.cause ? `: ${o.cause.slice(0, 300)}` : ''}`;

export async function concurrencyLoop(
  options: { readonly progress?: (line: string) => void } = {},
): Promise<ConcurrencyOutcome[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'chaos-concurrency-'));
  const input = path.join(dir, 'in');
  cpSync(path.join(example, 'data'), input, { recursive: true });
  const catalogPath = path.join(dir, 'catalog.duckdb');
  const stateDir = path.join(dir, 'state');
  const setup = (runId: string) => ({ store, catalogPath, stateDir, runId, workers: 1 });
  const outcomes: ConcurrencyOutcome[] = [];
  const report = (outcome: ConcurrencyOutcome): void => {
    outcomes.push(outcome);
    options.progress?.(
      `${outcome.check}: ${outcome.runs.join(' | ')}: ` +
        (outcome.problems.length === 0 ? 'held' : `DID NOT HOLD: ${outcome.problems.join('; ')}`),
    );
  };
  try {
    const out = path.join(dir, 'out', 'twice');
    const spec = await exampleSpec(uri(input), uri(out), { run: { shards: { targetRecords: 200 } } });
    const reference = await runOnce(spec, setup('reference'));
    if (reference.status !== 'SUCCEEDED') throw new Error(`the reference run failed: ${reference.cause}`);

    // The same run id twice at once.
    {
      const problems: string[] = [];
      const both = await Promise.all([
        attempt(() => runOnce(spec, setup('twice'))),
        attempt(() => runOnce(spec, setup('twice'))),
      ]);
      const won = both.filter((o): o is LocalRunOutcome => !(o instanceof Error) && o.status === 'SUCCEEDED');
      const refused = both.filter((o) => o instanceof Error || o.status !== 'SUCCEEDED');
      if (won.length === 0) problems.push('neither run succeeded');
      // This product does not join a running id: two runs of it at once race on its markers (issue 17).
      if (won.length > 1) problems.push('both runs ran the id at once: the second was not refused');
      for (const o of refused) {
        const message = o instanceof Error ? o.message : (o.cause ?? '');
        if (!/already running/.test(message))
          problems.push(`the loser did not say the id is running: ${describeRun(o)}`);
      }
      problems.push(
        ...(await publishedDifferences(catalogPath, spec.name, 'twice', 'reference', ID, EXAMPLE_ROWS)),
      );
      // The id stays usable: the same spec again succeeds, and publishes no second copy.
      const again = await attempt(() => runOnce(spec, setup('twice')));
      if (again instanceof Error || again.status !== 'SUCCEEDED')
        problems.push(`the rerun: ${describeRun(again)}`);
      else if (again.result?.records !== EXAMPLE_ROWS)
        problems.push(`the rerun counted ${again.result?.records} records`);
      problems.push(
        ...(await publishedDifferences(catalogPath, spec.name, 'twice', 'reference', ID, EXAMPLE_ROWS)).map(
          (p) => `after the rerun: ${p}`,
        ),
      );
      report({ check: 'same-id-twice', runs: [...both, again].map(describeRun), problems });
    }

    // A changed spec under the old run id.
    {
      const problems: string[] = [];
      const changed = await exampleSpec(uri(input), uri(out), {
        run: { shards: { targetRecords: 300 } },
        validation: { maxErrorRate: 0.02 },
      });
      const rerun = await attempt(() => runOnce(changed, setup('twice')));
      const message =
        rerun instanceof Error ? rerun.message : rerun.status === 'FAILED' ? (rerun.cause ?? '') : '';
      if (!(rerun instanceof Error) && rerun.status === 'SUCCEEDED')
        problems.push('a changed spec was accepted');
      else if (
        !/different job spec/.test(message) ||
        !/run\.shards\.targetRecords/.test(message) ||
        !/validation\.maxErrorRate/.test(message)
      )
        problems.push(`the refusal does not name the changed fields: ${describeRun(rerun)}`);
      problems.push(
        ...(await publishedDifferences(catalogPath, spec.name, 'twice', 'reference', ID, EXAMPLE_ROWS)).map(
          (p) => `after the refused rerun: ${p}`,
        ),
      );
      report({ check: 'changed-spec', runs: [describeRun(rerun)], problems });
    }

    // Pipelines into neighbouring prefixes, at once.
    {
      const problems: string[] = [];
      const neighbours = [
        { table: 'neighbour_a', out: path.join(dir, 'out', 'n', 'a'), runId: 'n-a' },
        { table: 'neighbour_ab', out: path.join(dir, 'out', 'n', 'ab'), runId: 'n-ab' },
        { table: 'neighbour_a_b', out: path.join(dir, 'out', 'n', 'a-b'), runId: 'n-a-b' },
      ];
      const specs = await Promise.all(
        neighbours.map((n) =>
          exampleSpec(uri(input), uri(n.out), { name: n.table, run: { shards: { targetRecords: 200 } } }),
        ),
      );
      const runs = await Promise.all(
        neighbours.map((n, i) => attempt(() => runOnce(specs[i]!, setup(n.runId)))),
      );
      for (const [i, n] of neighbours.entries()) {
        const o = runs[i]!;
        if (o instanceof Error || o.status !== 'SUCCEEDED') {
          problems.push(`${n.table}: ${describeRun(o)}`);
          continue;
        }
        if (o.result?.records !== EXAMPLE_ROWS || o.result.predictions !== EXAMPLE_ROWS)
          problems.push(
            `${n.table}: counted ${o.result?.records} records, ${o.result?.predictions} predictions`,
          );
        // The table holds its own run only, exactly.
        const runIds = await queryCatalog(
          catalogPath,
          `SELECT DISTINCT run_id FROM ${quoteIdentifier(n.table)}`,
        );
        const ids = runIds.rows.map((r) => String(r[0]));
        if (JSON.stringify(ids) !== JSON.stringify([n.runId]))
          problems.push(`${n.table} holds runs ${ids.join(', ')}`);
        problems.push(
          ...(
            await publishedDifferences(
              catalogPath,
              n.table,
              n.runId,
              'reference',
              ID,
              EXAMPLE_ROWS,
              spec.name,
            )
          ).map((p) => `${n.table}: ${p}`),
        );
        const listed = await catalogueOf(catalogPath, n.table, n.runId);
        if (!listed.listed) problems.push(`${n.table}: ${n.runId} missing from _runs`);
        // Its prefix shows its own run's files, and no neighbour's.
        for (const other of neighbours) {
          const visible = await visibleParquet(store, uri(n.out), other.runId);
          if (other === n ? visible.length === 0 : visible.length > 0)
            problems.push(`${n.out} shows ${visible.length} Parquet files of ${other.runId}`);
        }
        const files = await queryCatalog(
          catalogPath,
          `SELECT count(*) FROM _runs WHERE run_id = ${quoteString(n.runId)} AND table_name <> ${quoteString(n.table)}`,
        );
        if (Number(files.rows[0]?.[0] ?? 0) > 0) problems.push(`${n.runId} listed under another table`);
      }
      report({ check: 'neighbouring-prefixes', runs: runs.map(describeRun), problems });
    }
    return outcomes;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
