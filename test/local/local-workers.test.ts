/**
 * How many worker processes a local run starts, and the share of the cores each is told it has: a worker on the CSV
 * columnar path uses two cores by itself (decode threads), so it gets two; other runs get one process per core.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import YAML from 'yaml';
import { makeDemoInput } from '../../examples/breast-cancer/demo.js';
import { defaultLocalWorkers } from '../../src/local/run-local.js';
import { jobSpecSchema, type JobSpec } from '../../src/spec/schema.js';
import { expectIn } from '../support/expect-in.js';
import { exampleDir, runExampleJob, writeExampleJob } from '../support/local-e2e.js';

const shipped = jobSpecSchema.parse({
  ...(YAML.parse(readFileSync(path.join(exampleDir, 'job.yaml'), 'utf8')) as object),
  input: { uri: 'file:///in/', format: 'csv', id: 'patient_id' },
  output: { uri: 'file:///out/', passthrough: ['diagnosis'] },
});

const withInput = (format: JobSpec['input']['format']): JobSpec => ({
  ...shipped,
  input: { ...shipped.input, format },
});

describe('the default number of local workers', () => {
  it('is one per two cores for CSV into a tabular model, at least one', () => {
    expect([1, 2, 3, 4, 16].map((cores) => defaultLocalWorkers(shipped, cores))).toEqual([1, 1, 1, 2, 8]);
  });

  it('is one per core for a run that does not take the CSV columnar path', () => {
    expect(defaultLocalWorkers(withInput('parquet'), 4)).toBe(4);
    expect(defaultLocalWorkers(withInput('jsonl'), 4)).toBe(4);
    const processor = { ...shipped, model: { ...shipped.model, processor: { module: 'processor.mjs' } } };
    expect(defaultLocalWorkers(processor, 4)).toBe(4);
    expect(defaultLocalWorkers(shipped, 1)).toBe(1);
  });
});

describe('the share of the cores a local worker is given', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'local-workers-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('sizes its decode threads: two workers each decode on half of the cores', async () => {
    const input = path.join(dir, 'in');
    // Two shards of about 2.8 MiB each: several decode blocks, so the threads are not left out for size.
    await makeDemoInput({ dir: input, records: 24_000, files: 2 });
    const spec = writeExampleJob(
      dir,
      'local_workers',
      { input, out: path.join(dir, 'out') },
      { run: { shards: { targetRecords: 12_000 }, maxRounds: 1 } },
    );
    const outcome = await runExampleJob(spec, dir, path.join(dir, 'catalog.duckdb'));
    expect(outcome.status).toBe('SUCCEEDED');
    const logs = outcome.logDir;
    const reading = readdirSync(logs).flatMap((file) =>
      readFileSync(path.join(logs, file), 'utf8')
        .split('\n')
        .filter((line) => line.includes('"message":"reading"'))
        .map((line) => JSON.parse(line) as { path: string; decodeThreads: number }),
    );
    expect(reading).toHaveLength(2);
    // runExampleJob starts two workers: each has half of the cores, and a decode thread per core of its half.
    const share = Math.max(1, Math.floor(os.availableParallelism() / 2));
    for (const line of reading) {
      expectIn(line, { cores: os.availableParallelism() }).toMatchObject({
        path: 'columnar',
        decodeThreads: Math.min(8, share),
      });
    }
  }, 120_000);
});
