/**
 * Capacity by round, end to end through the local interpreter: the first round goes to the Spot task states, every
 * retry round to the On-Demand ones, and the local pool runs both the same way. The first round's workers are made
 * to fail (as if Spot never placed them, or reclaimed their hosts) by a module preloaded into every worker through
 * NODE_OPTIONS that exits when the round is 0; the retry round then completes every shard.
 */
import '../../src/runtime/polyfills.js';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { makeDemoInput } from '../../examples/breast-cancer/demo.js';
import { ON_DEMAND_INFER_STATES, WORKFLOW_STATES } from '../../lib/workflow-contract.js';
import { LocalCatalog } from '../../src/catalog/local.js';
import { runLocal } from '../../src/local/run-local.js';
import { LocalModelRegistry } from '../../src/registry/local.js';
import { parseManifest } from '../../src/results/manifest.js';
import { WORKER_ENV } from '../../src/runs/tasks.js';
import { createLogger } from '../../src/runtime/log.js';
import { loadJobSpecFile } from '../../src/spec/load.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import { taskFaultOptions } from '../support/worker-tasks.js';

const repo = path.resolve(fileURLToPath(import.meta.url), '../../..');
const example = path.join(repo, 'examples/breast-cancer');

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'capacity-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a local run whose first round gets no capacity', () => {
  it('runs the retry round on the On-Demand state, completing every shard', async () => {
    const input = path.join(dir, 'input');
    mkdirSync(input, { recursive: true });
    await makeDemoInput({ dir: input, records: 400, files: 1, badRecordEvery: 0 });
    const out = path.join(dir, 'out');
    const spec = YAML.parse(readFileSync(path.join(example, 'job.yaml'), 'utf8')) as Record<string, unknown>;
    const specFile = path.join(dir, 'job.yaml');
    writeFileSync(
      specFile,
      YAML.stringify({
        ...spec,
        name: 'capacity_rounds',
        input: { ...(spec.input as object), uri: `${input}/` },
        output: { ...(spec.output as object), uri: `${out}/` },
        run: { shards: { targetRecords: 200 }, maxRounds: 2 },
      }),
    );
    // Exit 1 (not a signal, which Batch's retry strategy would retry in place): the job fails, Reconcile plans round 1.
    const saved = process.env.NODE_OPTIONS;
    process.env.NODE_OPTIONS = taskFaultOptions(path.join(dir, 'no-capacity-in-round-0.mjs'), {
      when: `env.${WORKER_ENV.round} === '0'`,
      action: 'fail',
      message: 'injected: no capacity in round 0',
    });
    const store = new LocalObjectStore();
    const catalog = new LocalCatalog({ path: path.join(dir, 'catalog.duckdb') });
    let outcome;
    try {
      outcome = await runLocal(
        await loadJobSpecFile(specFile),
        {
          store,
          registry: new LocalModelRegistry(store, pathToFileURL(path.join(example, 'registry')).href + '/'),
          catalog,
          log: createLogger({}, { level: 'error' }),
        },
        { stateDir: path.join(dir, 'state'), workers: 2 },
      );
    } finally {
      if (saved === undefined) delete process.env.NODE_OPTIONS;
      else process.env.NODE_OPTIONS = saved;
      await catalog.close();
    }

    expect(outcome.rounds).toEqual([
      { round: 0, state: WORKFLOW_STATES.inferShards, shards: 2 },
      { round: 1, state: WORKFLOW_STATES.inferShardsOnDemand, shards: 2 },
    ]);
    expect(ON_DEMAND_INFER_STATES).toContain(outcome.rounds[1]!.state);
    expect({ status: outcome.status, error: outcome.error, cause: outcome.cause }).toEqual({
      status: 'SUCCEEDED',
      error: undefined,
      cause: undefined,
    });
    const manifest = parseManifest(
      JSON.parse(readFileSync(fileURLToPath(outcome.result!.manifestUri), 'utf8')),
    );
    expect(manifest.counts.completedShards).toBe(2);
    expect(manifest.counts.failedShards.count).toBe(0);
  }, 180_000);
});
