/**
 * The shipped text-embeddings example (examples/text-embeddings/job.yaml) run end to end, as
 * `batch-infer run examples/text-embeddings/job.yaml` runs it: the job spec loaded from its file, the local state
 * machine (Plan -> worker processes -> Reconcile -> Finalize), the local DuckDB catalogue. Only the output location
 * is moved to a temporary directory. Every sentence gets a unit-length embedding (the encoder's numpy reference
 * for the sentences it shares with test/fixtures/models/text/expected.json); the null text and the broken line are
 * the two error rows.
 */
import '../../src/runtime/polyfills.js';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { LocalCatalog, queryCatalog } from '../../src/catalog/local.js';
import { runLocal, type LocalRunOutcome } from '../../src/local/run-local.js';
import { LocalModelRegistry } from '../../src/registry/local.js';
import { createLogger } from '../../src/runtime/log.js';
import { loadJobSpecFile } from '../../src/spec/load.js';
import { LocalObjectStore } from '../../src/storage/local.js';

const repo = path.resolve(fileURLToPath(import.meta.url), '../../..');
const example = path.join(repo, 'examples/text-embeddings');

interface Sentence {
  readonly id: string;
  readonly text: string | null;
  readonly offset: number;
}

/** The example's input lines, read here independently of the product's readers (the broken one has no JSON). */
function inputLines(): { sentences: Sentence[]; broken: { offset: number }[] } {
  const bytes = readFileSync(path.join(example, 'data/sentences.jsonl'));
  const sentences: Sentence[] = [];
  const broken: { offset: number }[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const end = bytes.indexOf(10, offset);
    const line = bytes.subarray(offset, end < 0 ? bytes.length : end).toString('utf8');
    if (line.trim()) {
      try {
        const value = JSON.parse(line) as { id: string; text: string | null };
        sentences.push({ id: value.id, text: value.text, offset });
      } catch {
        broken.push({ offset });
      }
    }
    offset = end < 0 ? bytes.length : end + 1;
  }
  return { sentences, broken };
}

let dir: string;
let outcome: LocalRunOutcome;
let catalogPath: string;
let outDir: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'text-embeddings-'));
  outDir = path.join(dir, 'out');
  catalogPath = path.join(dir, 'catalog.duckdb');
  const spec = await loadJobSpecFile(path.join(example, 'job.yaml'));
  const store = new LocalObjectStore();
  const catalog = new LocalCatalog({ path: catalogPath });
  try {
    outcome = await runLocal(
      { ...spec, output: { ...spec.output, uri: `${pathToFileURL(outDir).href}/` } },
      {
        store,
        registry: new LocalModelRegistry(store, `${pathToFileURL(path.join(dir, 'registry')).href}/`),
        catalog,
        log: createLogger({}, { level: 'error' }),
      },
      { stateDir: path.join(dir, 'state'), workers: 1, runId: 'text-embeddings-1' },
    );
  } finally {
    await catalog.close();
  }
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('examples/text-embeddings/job.yaml, run end to end', () => {
  it('succeeds with the two bad lines as its only errors', () => {
    expectIn(outcome.error, outcome.cause).toBeUndefined();
    expect(outcome.status).toBe('SUCCEEDED');
    const { sentences, broken } = inputLines();
    expect(sentences.length + broken.length).toBe(32);
    expect(outcome.result).toMatchObject({ records: 32, predictions: 30, errors: 2, failedShards: 0 });
  });

  it('gives every sentence one unit-length 128-dimensional embedding, next to its text', async () => {
    const { sentences } = inputLines();
    const withText = sentences.filter((s) => typeof s.text === 'string');
    expect(withText).toHaveLength(30);
    const result = await queryCatalog(
      catalogPath,
      'select id, text, embedding, _offset from text_embeddings order by id',
    );
    const rows = result.rows.map(([id, text, embedding, offset]) => ({
      id: id as string,
      text: text as string,
      embedding: embedding as number[],
      offset: Number(offset),
    }));
    expect(rows.map((r) => [r.id, r.text, r.offset])).toEqual(withText.map((s) => [s.id, s.text, s.offset]));
    for (const row of rows) {
      expectIn(row.embedding, row.id).toHaveLength(128);
      expectIn(Math.hypot(...row.embedding), row.id).toBeCloseTo(1, 5);
    }
    // Different sentences, different vectors.
    expect(new Set(rows.map((r) => r.embedding.map((v) => v.toFixed(4)).join(','))).size).toBe(rows.length);
    // The encoder's numpy reference, for a sentence the example shares with the fixture's expected outputs.
    const expected = JSON.parse(
      readFileSync(path.join(repo, 'test/fixtures/models/text/expected.json'), 'utf8'),
    ) as {
      sentences: { text: string; meanNormalized: number[] }[];
    };
    let compared = 0;
    for (const row of rows) {
      const reference = expected.sentences.find((s) => s.text === row.text);
      if (!reference) continue;
      compared++;
      expect(
        Math.max(...row.embedding.map((v, k) => Math.abs(v - reference.meanNormalized[k]!))),
      ).toBeLessThan(1e-4);
    }
    expect(compared).toBeGreaterThanOrEqual(2);
  });

  it('writes the null text as MISSING_VALUE and the broken line as DECODE_ERROR, with their lineage', () => {
    const { sentences, broken } = inputLines();
    const folder = path.join(outDir, '_errors', 'run_id=text-embeddings-1');
    const lines = readdirSync(folder)
      .sort()
      .flatMap((f) => readFileSync(path.join(folder, f), 'utf8').split('\n').filter(Boolean))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const source = pathToFileURL(path.join(example, 'data/sentences.jsonl')).href;
    const nullText = sentences.find((s) => s.text === null)!;
    expect(lines).toEqual([
      expect.objectContaining({
        id: nullText.id,
        _source: source,
        _offset: nullText.offset,
        reason: 'MISSING_VALUE',
        message: 'column "text" is missing or null',
      }),
      // The broken line's id was readable before the break: the error row keeps it (issue 17).
      expect.objectContaining({
        id: 's032',
        _source: source,
        _offset: broken[0]!.offset,
        reason: 'DECODE_ERROR',
      }),
    ]);
  });
});
