/**
 * A whole local run whose output is in S3 (s3rver on loopback): it publishes to the local catalogue (from local
 * copies of the run's files, ADR 0014), and a run whose publish fails still reports its true counts.
 */
import '../../src/runtime/polyfills.js';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Catalog } from '../../src/catalog/catalog.js';
import { LocalCatalog, queryCatalog } from '../../src/catalog/local.js';
import { runLocal, type LocalRunOutcome } from '../../src/local/run-local.js';
import { LocalModelRegistry } from '../../src/registry/local.js';
import { createLogger } from '../../src/runtime/log.js';
import { loadJobSpecFile } from '../../src/spec/load.js';
import type { JobSpec } from '../../src/spec/schema.js';
import { createObjectStore } from '../../src/storage/index.js';
import { startS3Server, useS3TestEnv, type S3TestServer } from '../support/s3-server.js';
import { expectIn } from '../support/expect-in.js';

const repo = path.resolve(fileURLToPath(import.meta.url), '../../..');
const example = path.join(repo, 'examples/breast-cancer');
const registryUri = pathToFileURL(path.join(example, 'registry')).href + '/';
/** Rows of the shipped example's data. */
const EXAMPLE_RECORDS = 569;

let server: S3TestServer;
let restoreEnv: () => void;
let dir: string;
let spec: JobSpec;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'e2e-s3-'));
  server = await startS3Server();
  restoreEnv = useS3TestEnv(server.endpoint);
  await server.createBucket('lake');
  const shipped = await loadJobSpecFile(path.join(example, 'job.yaml'));
  spec = { ...shipped, output: { ...shipped.output, uri: 's3://lake/predictions/breast_cancer/' } };
}, 60_000);
afterAll(async () => {
  restoreEnv();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function run(runId: string, catalog: Catalog): Promise<LocalRunOutcome> {
  const store = createObjectStore({ s3Endpoint: server.endpoint });
  return runLocal(
    spec,
    {
      store,
      registry: new LocalModelRegistry(store, registryUri),
      catalog,
      log: createLogger({}, { level: 'error' }),
    },
    { runId, stateDir: path.join(dir, 'state'), workers: 2, s3Endpoint: server.endpoint },
  );
}

describe('a local run writing to s3://', () => {
  it('succeeds and is published to the local catalogue', async () => {
    const catalogPath = path.join(dir, 'catalog.duckdb');
    const store = createObjectStore({ s3Endpoint: server.endpoint });
    const catalog = new LocalCatalog({ path: catalogPath, store });
    const outcome = await run('s3-out-1', catalog);
    await catalog.close();
    expectIn(outcome.status, outcome.cause).toBe('SUCCEEDED');
    expect(outcome.result?.records).toBe(EXAMPLE_RECORDS);
    const rows = await queryCatalog(
      catalogPath,
      "SELECT count(*) AS n, count(DISTINCT patient_id) AS ids FROM breast_cancer WHERE run_id = 's3-out-1'",
    );
    expect(rows.rows).toEqual([[EXAMPLE_RECORDS, EXAMPLE_RECORDS]]);
  }, 180_000);

  it('reports the true counts when publishing fails', async () => {
    const failing: Catalog = {
      publishRun: () => Promise.reject(new Error('catalogue unavailable')),
    };
    const outcome = await run('s3-out-2', failing);
    expect(outcome.status).toBe('FAILED');
    expectIn(outcome.cause, 'the publish error').toMatch(/catalogue unavailable/);
    expect(outcome.result?.records).toBe(EXAMPLE_RECORDS);
    expect((outcome.result?.predictions ?? 0) + (outcome.result?.errors ?? 0)).toBe(EXAMPLE_RECORDS);
  }, 180_000);
});
