import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { dryRun, DryRunUnsupportedError } from '../../src/preflight/dry-run.js';
import { LocalModelRegistry } from '../../src/registry/local.js';
import { loadJobSpecFile, specFolderUri } from '../../src/spec/load.js';
import { LocalObjectStore } from '../../src/storage/local.js';

const store = new LocalObjectStore();
let root: string;

beforeAll(() => {
  root = mkdtempSync(path.join(tmpdir(), 'dry-run-'));
  cpSync(path.resolve('examples/breast-cancer'), root, {
    recursive: true,
    filter: (src) => !/(generated|[\\/]out)$/.test(src),
  });
  // The third record has a value that is not a number: an error row with its reason.
  const csv = readFileSync(path.join(root, 'data/breast_cancer.csv'), 'utf8').split('\n');
  const fields = csv[3]!.split(',');
  fields[2] = 'n/a';
  csv[3] = fields.join(',');
  writeFileSync(path.join(root, 'data/breast_cancer.csv'), csv.join('\n'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('dryRun', () => {
  it('runs the first N records through the worker and returns the rows and the error rows', async () => {
    const file = path.join(root, 'job.yaml');
    const spec = await loadJobSpecFile(file);
    const result = await dryRun(spec, 4, {
      store,
      registry: new LocalModelRegistry(store, pathToFileURL(path.join(root, 'registry')).href + '/'),
      specFolderUri: specFolderUri(file),
    });
    expect(result.rows.map((r) => r.patient_id)).toEqual(['P00001', 'P00002', 'P00004']);
    expect(result.rows[0]).toMatchObject({ diagnosis: 'malignant', label: 'malignant' });
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]).toMatchObject({ id: 'P00003', reason: 'INVALID_VALUE' });
    expect(JSON.stringify(result.errors[0])).toContain('mean_texture');
    // Nothing next to the real output.
    expect(
      await store.tryHead(pathToFileURL(path.join(root, 'out/')).href + '_runs/dry-run/plan.json'),
    ).toBeUndefined();
  });

  it('says which input formats it samples', async () => {
    const spec = await loadJobSpecFile(path.join(root, 'job.yaml'));
    await expect(
      dryRun({ ...spec, input: { ...spec.input, format: 'parquet' } }, 1, {
        store,
        registry: new LocalModelRegistry(store, pathToFileURL(path.join(root, 'registry')).href + '/'),
      }),
    ).rejects.toThrow(DryRunUnsupportedError);
  });
});
