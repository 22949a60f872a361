import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { LocalModelRegistry } from '../../src/registry/local.js';
import { ModelError } from '../../src/spec/errors.js';
import { LocalObjectStore } from '../../src/storage/local.js';

let root: string;
let rootUri: string;
let registry: LocalModelRegistry;

async function version(group: string, v: string, metadata: unknown): Promise<void> {
  const dir = path.join(root, group, v);
  await mkdir(dir, { recursive: true });
  await writeFile(
    path.join(dir, 'metadata.json'),
    typeof metadata === 'string' ? metadata : JSON.stringify(metadata),
  );
  await writeFile(path.join(dir, 'model.onnx'), `onnx ${group} ${v}`);
}

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'registry-'));
  rootUri = pathToFileURL(root).href; // no trailing slash: the registry adds it
  // "9" sorts after "10" as text: versions must compare as numbers.
  await version('iris', '9', { status: 'Approved', createdAt: '2024-01-09T00:00:00Z' });
  await version('iris', '10', {
    status: 'Approved',
    createdAt: '2024-01-10T00:00:00Z',
    metrics: { f1: 0.9 },
  });
  await version('iris', '11', { status: 'PendingManualApproval' });
  await version('iris', '12', { status: 'Rejected' });
  // Not versions: ignored.
  await mkdir(path.join(root, 'iris', 'notes'), { recursive: true });
  await writeFile(path.join(root, 'iris', 'notes', 'metadata.json'), '{"status": "Approved"}');
  await version('iris', '0', { status: 'Approved' });
  await version('draft', '1', { status: 'PendingManualApproval' });
  await version('draft', '2', { status: 'Rejected' });
  await version('broken', '1', { status: 'approved' });
  await version('garbled', '1', '{ not json');
  registry = new LocalModelRegistry(new LocalObjectStore(), rootUri);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('LocalModelRegistry', () => {
  it('latest-approved is the highest Approved version, compared as numbers', async () => {
    await expect(registry.resolve('iris', 'latest-approved')).resolves.toEqual({
      group: 'iris',
      version: 10,
      status: 'Approved',
      artifactUri: `${rootUri}/iris/10/model.onnx`,
      createdAt: '2024-01-10T00:00:00Z',
      ref: `${rootUri}/iris/10/`,
    });
  });

  it('latest is the highest version whatever its status (as in SageMaker)', async () => {
    await expect(registry.resolve('iris', 'latest')).resolves.toMatchObject({
      version: 12,
      status: 'Rejected',
    });
  });

  it('a number is exactly that version', async () => {
    await expect(registry.resolve('iris', 11)).resolves.toMatchObject({
      version: 11,
      status: 'PendingManualApproval',
      artifactUri: `${rootUri}/iris/11/model.onnx`,
    });
    await expect(registry.resolve('iris', 9)).resolves.toMatchObject({ version: 9 });
  });

  it('no approved version: names the group, the root, the versions and the fix', async () => {
    const err = await registry.resolve('draft', 'latest-approved').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect((err as Error).message).toBe(
      `model group "draft" in the local registry ${rootUri}/ has no Approved version (it has versions ` +
        '1 (PendingManualApproval), 2 (Rejected)). Approve one by setting "status": "Approved" in its ' +
        'metadata.json, or pin a version with model.registry.version',
    );
  });

  it('a missing version lists the ones that exist', async () => {
    await expect(registry.resolve('iris', 7)).rejects.toThrow(
      'has no version 7 (it has versions 9 (Approved), 10 (Approved), 11 (PendingManualApproval), 12 (Rejected))',
    );
  });

  it('an unknown group lists the groups there are', async () => {
    const err = await registry.resolve('irsi', 'latest-approved').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect((err as Error).message).toContain(
      `model group "irsi" has no versions in the local registry ${rootUri}/`,
    );
    expect((err as Error).message).toContain('Groups there: broken, draft, garbled, iris.');
    await expect(registry.resolve('a/b', 'latest')).rejects.toThrow(ModelError);
  });

  it('bad metadata is a ModelError naming the file', async () => {
    await expect(registry.resolve('broken', 'latest')).rejects.toThrow(
      `${rootUri}/broken/1/metadata.json: "status" must be "Approved", "PendingManualApproval" or "Rejected"`,
    );
    await expect(registry.resolve('garbled', 'latest')).rejects.toThrow(
      `${rootUri}/garbled/1/metadata.json is not valid JSON`,
    );
  });

  it('a version holding model.tar.gz (and no model.onnx) resolves to the archive, flagged as one', async () => {
    const other = new LocalModelRegistry(new LocalObjectStore(), `${rootUri}/elsewhere`);
    const dir = path.join(root, 'elsewhere', 'packed', '3');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'metadata.json'), '{"status": "Approved"}');
    await writeFile(path.join(dir, 'model.tar.gz'), 'gz bytes');
    await expect(other.resolve('packed', 'latest-approved')).resolves.toEqual({
      group: 'packed',
      version: 3,
      status: 'Approved',
      artifactUri: `${rootUri}/elsewhere/packed/3/model.tar.gz`,
      archive: true,
      ref: `${rootUri}/elsewhere/packed/3/`,
    });
    // model.onnx wins when a version has both.
    await writeFile(path.join(dir, 'model.onnx'), 'onnx');
    const both = await other.resolve('packed', 3);
    expect(both.artifactUri).toBe(`${rootUri}/elsewhere/packed/3/model.onnx`);
    expect(both.archive).toBeUndefined();
  });

  it('a version without an artifact is a ModelError naming the folder and the files it should hold', async () => {
    const other = new LocalModelRegistry(new LocalObjectStore(), `${rootUri}/elsewhere`);
    const dir = path.join(root, 'elsewhere', 'hollow', '1');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'metadata.json'), '{"status": "Approved"}');
    await writeFile(path.join(dir, 'model.onnx'), '');
    await expect(other.resolve('hollow', 'latest-approved')).rejects.toThrow(
      new ModelError(
        `model group "hollow" version 1 (Approved) in the local registry has no artifact: ${rootUri}/elsewhere/hollow/1/ ` +
          'holds neither model.onnx nor model.tar.gz. Add the model file to that folder',
      ),
    );
  });

  it('an empty registry says so', async () => {
    const empty = new LocalModelRegistry(new LocalObjectStore(), `${rootUri}/nowhere/`);
    await expect(empty.resolve('iris', 'latest')).rejects.toThrow('The registry is empty.');
  });
});
