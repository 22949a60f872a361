import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { planRun } from '../../src/planning/plan-run.js';
import { RUN_ID_PATTERN } from '../../src/runs/layout.js';
import { expectIn } from '../support/expect-in.js';
import { specFolderUri } from '../../src/spec/load.js';
import type { PlanRequest } from '../../src/runs/tasks.js';
import { LocalModelRegistry } from '../../src/registry/local.js';
import { inputObjectSchema, planSchema, shardSchema, type Shard } from '../../src/runs/types.js';
import { InputError, ModelError, RunStateError, SpecError } from '../../src/spec/errors.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import type { ObjectStore } from '../../src/storage/object-store.js';
import { tarGz } from '../registry/tar-fixture.js';
import { firstQuotedLineBreak } from '../../src/formats/lines.js';

const store = new LocalObjectStore();
let root: string;
let registryUri: string;
let registry: LocalModelRegistry;
const url = (...parts: string[]): string => pathToFileURL(path.join(root, ...parts)).href;
const write = async (rel: string, body: string | Uint8Array): Promise<void> => {
  const file = path.join(root, rel);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, body);
};
const read = (uri: string): Promise<string> => readFile(fileURLToPath(uri), 'utf8');
const sha256 = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');
const jsonLines = (n: number, from = 0): string =>
  Array.from({ length: n }, (_, i) => `{"id":${from + i},"a":${i % 7},"b":${(i * 13) % 11}}\n`).join('');
const fixedNow = (): Date => new Date('2024-06-01T23:30:00Z');

const MODEL_BYTES = 'not really onnx, planning never loads it';

function spec(
  overrides: { input?: object; model?: object; output?: object; run?: object } = {},
): Record<string, unknown> {
  return {
    name: 'iris_scores',
    input: { uri: `${url('in')}/`, format: 'jsonl', id: 'id', ...overrides.input },
    model: {
      registry: { group: 'iris' },
      inputs: [{ tensor: 'input', from: { columns: ['a', 'b'] } }],
      outputs: [
        { tensor: 'probabilities', postprocess: { argmax: { labels: 'labels.txt' }, keep: 'score' } },
      ],
      ...overrides.model,
    },
    output: { uri: `${url('out')}/`, ...overrides.output },
    run: { shards: { targetBytes: 2000 }, ...overrides.run },
  };
}

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'plan-run-'));
  registryUri = `${url('registry')}/`;
  registry = new LocalModelRegistry(store, registryUri);
  await write('registry/iris/1/metadata.json', '{"status": "Approved"}');
  await write('registry/iris/1/model.onnx', MODEL_BYTES);
  await write('registry/iris/1/labels.txt', 'setosa\nversicolor\nvirginica\n');
  await write('registry/iris/2/metadata.json', '{"status": "PendingManualApproval"}');
  await write('registry/iris/2/model.onnx', 'v2');
  await write('registry/draft/1/metadata.json', '{"status": "Rejected"}');
  await write('registry/draft/1/model.onnx', 'x');
  await write('registry/nolabels/1/metadata.json', '{"status": "Approved"}');
  await write('registry/nolabels/1/model.onnx', 'x');
  await write('in/part-0.jsonl', jsonLines(100));
  await write('in/part-1.jsonl', jsonLines(10, 100));
  await write('in/part-2.jsonl', jsonLines(150, 110));
  await write('in/_SUCCESS', '');
  await mkdir(path.join(root, 'empty'), { recursive: true });
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('planRun', () => {
  it('plans a jsonl run end to end with the local registry', async () => {
    const state = await planRun({ runId: 'run-1', spec: spec() }, { store, registry, now: fixedNow });
    const runUri = `${url('out')}/_runs/run-1/`;
    const plan = planSchema.parse(JSON.parse(await read(`${runUri}plan.json`)));
    expect(state).toEqual({
      runId: 'run-1',
      runUri,
      shardCount: plan.shardCount,
      round: 0,
      maxRounds: 2,
      pending: plan.shardCount,
      compute: 'gpu',
      next: 'infer',
    });
    expect(plan.runDate).toBe('2024-06-01');
    expect(plan.createdAt).toBe('2024-06-01T23:30:00.000Z');
    expect(plan.model).toEqual({
      source: 'registry',
      group: 'iris',
      version: 1,
      status: 'Approved',
      artifactUri: `${registryUri}iris/1/model.onnx`,
      etag: expect.any(String),
      size: MODEL_BYTES.length,
      sha256: sha256(MODEL_BYTES),
      files: { 'labels.txt': `${registryUri}iris/1/labels.txt` },
      fileLocations: { 'labels.txt': 'artifact' },
    });

    // The snapshot: one InputObject per line, sorted, hashed exactly as stored.
    const snapshotText = await read(plan.input.snapshotUri);
    expect(plan.input.snapshotUri).toBe(`${runUri}input.jsonl`);
    expect(plan.input.snapshotSha256).toBe(sha256(snapshotText));
    const snapshot = snapshotText
      .trimEnd()
      .split('\n')
      .map((l) => inputObjectSchema.parse(JSON.parse(l)));
    expect(snapshot.map((o) => o.uri)).toEqual(
      ['part-0', 'part-1', 'part-2'].map((p) => url(`in/${p}.jsonl`)),
    );
    expect(plan.input.objects).toBe(3);
    expect(plan.input.bytes).toBe(snapshot.reduce((s, o) => s + o.size, 0));

    // The shards cover the input; record estimates come from the sampled line length.
    const shards = (await read(`${runUri}shards.jsonl`))
      .trimEnd()
      .split('\n')
      .map((l) => shardSchema.parse(JSON.parse(l)));
    expect(shards.length).toBe(plan.shardCount);
    expect(shards.length).toBeGreaterThan(1);
    expect(shards.map((s) => s.id)).toEqual(shards.map((_, i) => i));
    expect(shards.reduce((s, sh) => s + sh.bytes, 0)).toBe(plan.input.bytes);
    const records = shards.reduce((s, sh) => s + sh.records, 0);
    expect(Math.abs(records - 260)).toBeLessThanOrEqual(shards.length);
  });

  it('is idempotent: a retried Plan returns the same state without planning again', async () => {
    const first = await planRun({ runId: 'run-2', spec: spec() }, { store, registry, now: fixedNow });
    const planText = await read(`${first.runUri}plan.json`);
    const snapshotText = await read(`${first.runUri}input.jsonl`);
    await write('in/part-3.jsonl', jsonLines(500, 1000));
    try {
      const again = await planRun(
        { runId: 'run-2', spec: spec() },
        { store, registry, now: () => new Date('2030-01-01T00:00:00Z') },
      );
      expect(again).toEqual(first);
      expect(await read(`${first.runUri}plan.json`)).toBe(planText);
      expect(await read(`${first.runUri}input.jsonl`)).toBe(snapshotText);
    } finally {
      await rm(path.join(root, 'in/part-3.jsonl'));
    }
  });

  it('refuses a rerun of a run id with a changed spec, naming what changed (issue 17)', async () => {
    const first = await planRun({ runId: 'run-changed', spec: spec() }, { store, registry, now: fixedNow });
    const changed = spec({
      model: { registry: { group: 'iris', version: 2 } },
      run: { shards: { targetBytes: 4000 } },
    });
    const again = planRun({ runId: 'run-changed', spec: changed }, { store, registry, now: fixedNow });
    await expect(again).rejects.toThrow(RunStateError);
    await expect(again).rejects.toThrow(
      /run run-changed was planned with a different job spec; changed: model\.registry\.version \(was "latest-approved", now 2\); run\.shards\.targetBytes \(was 2000, now 4000\)\. .*new run id/,
    );
    // The same spec still resumes the run.
    expect(await planRun({ runId: 'run-changed', spec: spec() }, { store, registry, now: fixedNow })).toEqual(
      first,
    );
  });

  it('re-plans identically after a crash before plan.json, and rejects a corrupt plan.json', async () => {
    const state = await planRun({ runId: 'run-3', spec: spec() }, { store, registry, now: fixedNow });
    const shardsText = await read(`${state.runUri}shards.jsonl`);
    await rm(fileURLToPath(`${state.runUri}plan.json`));
    await writeFile(fileURLToPath(`${state.runUri}shards.jsonl`), 'partial');
    expect(await planRun({ runId: 'run-3', spec: spec() }, { store, registry, now: fixedNow })).toEqual(
      state,
    );
    expect(await read(`${state.runUri}shards.jsonl`)).toBe(shardsText);

    await writeFile(fileURLToPath(`${state.runUri}plan.json`), '{"version": 1}');
    await expect(planRun({ runId: 'run-3', spec: spec() }, { store, registry })).rejects.toThrow(
      RunStateError,
    );
  });

  it('applies inputUri (a trigger object) and rejects one that overlaps the output', async () => {
    const state = await planRun(
      { runId: 'run-4', spec: spec(), inputUri: url('in/part-1.jsonl') },
      { store, registry, now: fixedNow },
    );
    const plan = planSchema.parse(JSON.parse(await read(`${state.runUri}plan.json`)));
    expect(plan.spec.input.uri).toBe(url('in/part-1.jsonl'));
    expect(plan.input.objects).toBe(1);
    expect(state.shardCount).toBe(1);

    const err = await planRun(
      { runId: 'run-5', spec: spec(), inputUri: url('out/day=1/') },
      { store, registry },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpecError);
    expect((err as Error).message).toContain('overlaps input.uri');
    expect((err as Error).message).toContain('PlanRequest.inputUri');
    // The spec itself is checked the same way.
    await expect(
      planRun(
        { runId: 'run-5', spec: spec({ output: { uri: `${url('in')}/preds/` } }) },
        { store, registry },
      ),
    ).rejects.toThrow(/overlaps input.uri/);
    await expect(
      planRun({ runId: 'run-5', spec: spec(), inputUri: 'in/x.jsonl' }, { store, registry }),
    ).rejects.toThrow(/relative paths are only allowed in a spec file/);
  });

  it('fails with a ModelError naming a missing labels file', async () => {
    const err = await planRun(
      { runId: 'run-6', spec: spec({ model: { registry: { group: 'nolabels' } } }) },
      { store, registry },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect((err as Error).message).toBe(
      `model.outputs[0].postprocess.argmax.labels "labels.txt" was not found next to the model artifact ` +
        `(${registryUri}nolabels/1/labels.txt), nor next to the job spec (not looked at: the spec was sent inline, ` +
        'so its folder is not known; send specUri); put the file in one of those places or give its full URI',
    );
    expect(await store.tryHead(`${url('out')}/_runs/run-6/plan.json`)).toBeUndefined();
  });

  it('fails with the registry message when no version is approved', async () => {
    await expect(
      planRun(
        { runId: 'run-7', spec: spec({ model: { registry: { group: 'draft' } } }) },
        { store, registry },
      ),
    ).rejects.toThrow(
      `model group "draft" in the local registry ${registryUri} has no Approved version (it has version 1 (Rejected))`,
    );
  });

  it('resolves a model.uri, with labels next to it', async () => {
    const direct = { registry: undefined, uri: `${registryUri}iris/2/model.onnx` };
    await write('registry/iris/2/labels.txt', 'a\nb\n');
    const state = await planRun(
      { runId: 'run-8', spec: spec({ model: direct }) },
      { store, registry, now: fixedNow },
    );
    const plan = planSchema.parse(JSON.parse(await read(`${state.runUri}plan.json`)));
    expect(plan.model).toMatchObject({ source: 'uri', artifactUri: direct.uri, sha256: sha256('v2') });
    expect(plan.model.group).toBeUndefined();
    expect(plan.model.files).toEqual({ 'labels.txt': `${registryUri}iris/2/labels.txt` });
  });

  it('rejects a missing model.uri', async () => {
    const missing = { registry: undefined, uri: `${registryUri}iris/9/model.onnx` };
    await expect(
      planRun({ runId: 'run-9', spec: spec({ model: missing }) }, { store, registry }),
    ).rejects.toThrow(
      new ModelError(`model.uri ${missing.uri} does not exist; check the path or the registry entry`),
    );
  });

  it('extracts a model.tar.gz into the run folder; companions are found inside the archive first', async () => {
    const archive = tarGz([
      { path: './' },
      { path: './model/model.onnx', content: 'archived model' },
      { path: './model/labels.txt', content: 'x\ny\n' },
    ]);
    await write('registry/packed/1/metadata.json', '{"status": "Approved"}');
    await write('registry/packed/1/model.tar.gz', archive);
    // A labels.txt next to the archive too: the archive's own one wins.
    await write('registry/packed/1/labels.txt', 'outside\n');
    const state = await planRun(
      { runId: 'run-9a', spec: spec({ model: { registry: { group: 'packed' } } }) },
      { store, registry, now: fixedNow },
    );
    const plan = planSchema.parse(JSON.parse(await read(`${state.runUri}plan.json`)));
    const archiveUri = `${registryUri}packed/1/model.tar.gz`;
    expect(plan.model).toEqual({
      source: 'registry',
      group: 'packed',
      version: 1,
      status: 'Approved',
      artifactUri: `${state.runUri}model/model/model.onnx`,
      etag: (await store.head(`${state.runUri}model/model/model.onnx`)).etag,
      size: 'archived model'.length,
      sha256: sha256('archived model'),
      files: { 'labels.txt': `${state.runUri}model/model/labels.txt` },
      fileLocations: { 'labels.txt': 'archive' },
      archive: {
        uri: archiveUri,
        etag: (await store.head(archiveUri)).etag,
        size: archive.length,
        sha256: sha256(archive),
      },
    });
    expect(await read(plan.model.files['labels.txt']!)).toBe('x\ny\n');
    expect(await read(plan.model.artifactUri)).toBe('archived model');
  });

  it('fails the plan with a ModelError for a corrupt archive, and writes no plan', async () => {
    await write('registry/broken-archive/1/metadata.json', '{"status": "Approved"}');
    await write(
      'registry/broken-archive/1/model.tar.gz',
      tarGz([{ path: 'model.onnx', content: 'm'.repeat(4000) }]).subarray(0, 60),
    );
    const err = await planRun(
      { runId: 'run-9b', spec: spec({ model: { registry: { group: 'broken-archive' } } }) },
      { store, registry },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect((err as Error).message).toContain(
      `the artifact of model broken-archive version 1 (Approved) ${registryUri}broken-archive/1/model.tar.gz is a corrupt model archive`,
    );
    expect(await store.tryHead(`${url('out')}/_runs/run-9b/plan.json`)).toBeUndefined();
  });

  it('names a companion missing from an archive and from next to it', async () => {
    const uri = url('direct/model.tar.gz');
    await write('direct/model.tar.gz', tarGz([{ path: 'model.onnx', content: 'm' }]));
    const err = await planRun(
      { runId: 'run-9c', spec: spec({ model: { registry: undefined, uri } }) },
      { store, registry },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect((err as Error).message).toContain(
      `model.outputs[0].postprocess.argmax.labels "labels.txt" was not found in the model archive ${uri} ` +
        `(at ${url('out/_runs/run-9c/model/labels.txt')}), nor next to the model artifact (${url('direct/labels.txt')})`,
    );
  });

  it('reads the spec from specUri (YAML)', async () => {
    const { stringify } = await import('yaml');
    await write('specs/job.yaml', stringify(spec({ run: { compute: 'cpu', maxRounds: 0 } })));
    const state = await planRun(
      { runId: 'run-10', specUri: url('specs/job.yaml') },
      { store, registry, now: fixedNow },
    );
    expect(state).toMatchObject({ compute: 'cpu', maxRounds: 0 });
    await expect(
      planRun({ runId: 'run-10b', specUri: url('specs/none.yaml') }, { store, registry }),
    ).rejects.toThrow(SpecError);
  });

  it('rejects run ids that Step Functions accepts but Batch job names do not (a dot, a leading "-" or "_")', async () => {
    for (const runId of ['run.1', '-run', '_run', 'run id']) {
      await expectIn(planRun({ runId, spec: spec() }, { store, registry }), runId).rejects.toThrow(
        /runId: must be 1-80 letters, digits, "-" or "_", starting with a letter or digit/,
      );
    }
    // Ids the triggers and the CLI generate stay valid, as does the longest.
    for (const runId of [
      's3-patients_csv-1a2b',
      'sched-nightly-20261206T0200Z',
      '20261206T103000Z-abc123',
      'a'.repeat(80),
    ]) {
      expectIn(RUN_ID_PATTERN.test(runId), runId).toBe(true);
    }
  });

  it('validates the request', async () => {
    await expect(planRun({ runId: 'bad id!', spec: spec() }, { store, registry })).rejects.toThrow(
      /runId: must be 1-80/,
    );
    await expect(planRun({ runId: 'x'.repeat(81), spec: spec() }, { store, registry })).rejects.toThrow(
      SpecError,
    );
    await expect(
      planRun({ runId: 'ok', spec: spec(), specUri: url('specs/job.yaml') }, { store, registry }),
    ).rejects.toThrow(/exactly one of spec/);
    await expect(planRun({ runId: 'ok' }, { store, registry })).rejects.toThrow(/exactly one of spec/);
    const extra = { runId: 'ok', spec: spec(), input: 's3://b/x' } as PlanRequest;
    await expect(planRun(extra, { store, registry })).rejects.toThrow(
      /\(root\): has unknown field\(s\).*\(got input\)/,
    );
  });

  it('refuses empty input and input of another format with a run error, never 0 records published (issue 17)', async () => {
    await expect(
      planRun(
        { runId: 'run-11', spec: spec({ input: { uri: `${url('empty')}/` } }) },
        { store, registry, now: fixedNow },
      ),
    ).rejects.toThrow(/holds no jsonl input: the folder is empty/);
    await write('csvs/a.csv', 'id,a,b\n1,2,3\n');
    await write('csvs/_SUCCESS', '');
    const wrongFormat = planRun(
      { runId: 'run-13', spec: spec({ input: { uri: `${url('csvs')}/`, format: 'jsonl' } }) },
      { store, registry, now: fixedNow },
    );
    await expect(wrongFormat).rejects.toThrow(InputError);
    await expect(wrongFormat).rejects.toThrow(
      /holds no jsonl input \(objects ending in \.jsonl, \.json, \.ndjson\): it holds 2 other object\(s\), e\.g\. a\.csv\. Set input\.format/,
    );
    await expect(
      planRun({ runId: 'run-12', spec: spec({ input: { uri: `${url('nothing')}/` } }) }, { store, registry }),
    ).rejects.toThrow(InputError);
  });
});

describe('planRun: companion files next to the model artifact or next to the job spec', () => {
  /** A spec whose processor module (and labels) are relative references. */
  const withProcessor = (module: string, labels = 'labels.txt'): Record<string, unknown> =>
    spec({
      model: {
        processor: { module, columns: { extra: 'float' } },
        outputs: [{ tensor: 'probabilities', postprocess: { argmax: { labels }, keep: 'score' } }],
      },
    });

  async function planOf(request: PlanRequest, specFolder?: string) {
    const state = await planRun(request, {
      store,
      registry,
      now: fixedNow,
      ...(specFolder !== undefined && { specFolderUri: specFolder }),
    });
    return planSchema.parse(JSON.parse(await read(`${state.runUri}plan.json`)));
  }

  it('finds a processor module next to the job spec (specUri) and records that it came from there', async () => {
    const { stringify } = await import('yaml');
    await write('jobs/scoring/job.yaml', stringify(withProcessor('post.mjs')));
    await write('jobs/scoring/post.mjs', 'export function postprocess() { return []; }\n');
    const plan = await planOf({ runId: 'run-c1', specUri: url('jobs/scoring/job.yaml') });
    expect(plan.model.files).toEqual({
      'post.mjs': url('jobs/scoring/post.mjs'),
      'labels.txt': `${registryUri}iris/1/labels.txt`,
    });
    expect(plan.model.fileLocations).toEqual({ 'post.mjs': 'spec', 'labels.txt': 'artifact' });
  });

  it('prefers the copy shipped with the model artifact when both places have one', async () => {
    const { stringify } = await import('yaml');
    await write('jobs/both/job.yaml', stringify(withProcessor('shared.mjs')));
    await write('jobs/both/shared.mjs', '// next to the spec\n');
    await write('registry/iris/1/shared.mjs', '// shipped with the model\n');
    const plan = await planOf({ runId: 'run-c2', specUri: url('jobs/both/job.yaml') });
    expect(plan.model.files['shared.mjs']).toBe(`${registryUri}iris/1/shared.mjs`);
    expect(plan.model.fileLocations?.['shared.mjs']).toBe('artifact');
  });

  it('uses the folder of a spec file sent inline (the local runner passes specFolderUri)', async () => {
    await write('jobs/local/job.yaml', 'name: placeholder\n');
    await write('jobs/local/processors/post.mjs', '// local processor\n');
    const folder = specFolderUri(path.join(root, 'jobs/local/job.yaml'));
    expect(folder).toBe(`${url('jobs/local')}/`);
    const plan = await planOf({ runId: 'run-c3', spec: withProcessor('processors/post.mjs') }, folder);
    expect(plan.model.files['processors/post.mjs']).toBe(url('jobs/local/processors/post.mjs'));
    expect(plan.model.fileLocations?.['processors/post.mjs']).toBe('spec');
  });

  it('fails the plan listing both places looked at when neither has the module', async () => {
    const { stringify } = await import('yaml');
    await write('jobs/missing/job.yaml', stringify(withProcessor('nowhere.mjs')));
    const err = await planRun(
      { runId: 'run-c4', specUri: url('jobs/missing/job.yaml') },
      { store, registry },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect((err as Error).message).toBe(
      `model.processor.module "nowhere.mjs" was not found next to the model artifact ` +
        `(${registryUri}iris/1/nowhere.mjs), nor next to the job spec (${url('jobs/missing/nowhere.mjs')}); ` +
        'put the file in one of those places or give its full URI',
    );
    expect(await store.tryHead(`${url('out')}/_runs/run-c4/plan.json`)).toBeUndefined();
  });

  it('takes a full URI as it is, recorded as such, and names it when it does not exist', async () => {
    await write('elsewhere/post.mjs', '// anywhere\n');
    const plan = await planOf({ runId: 'run-c5', spec: withProcessor(url('elsewhere/post.mjs')) });
    expect(plan.model.fileLocations?.[url('elsewhere/post.mjs')]).toBe('uri');
    await expect(
      planRun({ runId: 'run-c6', spec: withProcessor(url('elsewhere/none.mjs')) }, { store, registry }),
    ).rejects.toThrow(
      `model.processor.module "${url('elsewhere/none.mjs')}" does not exist at ${url('elsewhere/none.mjs')}`,
    );
  });

  it('specFolderUri: the folder of a path or of a spec URI', () => {
    expect(specFolderUri('s3://bucket/pipelines/daily/job.yaml')).toBe('s3://bucket/pipelines/daily/');
    expect(specFolderUri('file:///srv/jobs/job.yaml')).toBe('file:///srv/jobs/');
    expect(specFolderUri('/srv/jobs/a b/job.yaml')).toBe('file:///srv/jobs/a%20b/');
  });
});

describe('planRun with Parquet input', () => {
  const parquet = (rows: number, rowGroupSize: number, columns = ['id', 'a', 'b']): Uint8Array =>
    new Uint8Array(
      parquetWriteBuffer({
        columnData: columns.map((name) => ({
          name,
          data: Array.from({ length: rows }, (_, i) => (name === 'id' ? i : (i % 10) / 10)),
          type: name === 'id' ? 'INT32' : 'DOUBLE',
        })),
        rowGroupSize,
      }),
    );

  it('shards by row groups with exact record counts', async () => {
    await write('pq/a.parquet', parquet(1000, 250));
    await write('pq/b.parquet', parquet(300, 100));
    const state = await planRun(
      {
        runId: 'pq-1',
        spec: spec({
          input: { uri: `${url('pq')}/`, format: 'parquet' },
          run: { shards: { targetRecords: 500 } },
        }),
      },
      { store, registry, now: fixedNow },
    );
    const shards = (await read(`${state.runUri}shards.jsonl`))
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Shard);
    expect(shards.map((s) => [s.records, s.recordsExact])).toEqual([
      [500, true],
      [500, true],
      [300, true],
    ]);
    expect(shards[1]!.ranges).toEqual([
      expect.objectContaining({
        uri: url('pq/a.parquet'),
        rowGroupStart: 2,
        rowGroupEnd: 4,
        rowStart: 500,
        records: 500,
      }),
    ]);
    expect(shards[2]!.ranges).toEqual([
      expect.objectContaining({
        uri: url('pq/b.parquet'),
        rowGroupStart: 0,
        rowGroupEnd: 3,
        rowStart: 0,
        records: 300,
      }),
    ]);
  });

  it('fails the plan when a file lacks a column the job reads', async () => {
    await write('pq2/a.parquet', parquet(10, 10));
    await write('pq2/b.parquet', parquet(10, 10, ['id', 'a']));
    const err = await planRun(
      { runId: 'pq-2', spec: spec({ input: { uri: `${url('pq2')}/`, format: 'parquet' } }) },
      { store, registry },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toContain(`${url('pq2/b.parquet')} has no column "b" (it has id, a)`);
  });
});

describe('planRun: input replaced while it is being planned', () => {
  /** The real store, except that the first read of `uri` finds it rewritten since it was listed. */
  function rewrittenOnFirstRead(uri: string, body: string | Uint8Array): ObjectStore {
    let done = false;
    const before = async (u: string): Promise<void> => {
      if (u !== uri || done) return;
      done = true;
      await store.put(uri, body);
    };
    return {
      head: (u) => store.head(u),
      tryHead: (u) => store.tryHead(u),
      get: async (u, r, o) => (await before(u), store.get(u, r, o)),
      getStream: async (u, r, o) => (await before(u), store.getStream(u, r, o)),
      put: (u, b) => store.put(u, b),
      putStream: (u, b) => store.putStream(u, b),
      list: (u) => store.list(u),
      delete: (u) => store.delete(u),
      listPrefixes: (u) => store.listPrefixes(u),
    };
  }

  it('fails the plan when a sampled line-format object no longer has its listed ETag', async () => {
    await write('moving/in/part-0.jsonl', jsonLines(20));
    const uri = url('moving/in/part-0.jsonl');
    const planned = await store.head(uri);
    const err = await planRun(
      {
        runId: 'run-m1',
        spec: spec({ input: { uri: `${url('moving/in')}/` }, output: { uri: `${url('moving/out')}/` } }),
      },
      { store: rewrittenOnFirstRead(uri, jsonLines(25)), registry },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toBe(
      `input object ${uri} changed while the run was being planned (ETag was ${planned.etag}); start again once ` +
        'the data has stopped changing',
    );
    expect(await store.tryHead(`${url('moving/out')}/_runs/run-m1/plan.json`)).toBeUndefined();
  });

  it('fails the plan when a Parquet footer is read from a file replaced since the listing', async () => {
    const table = (rows: number): Uint8Array =>
      new Uint8Array(
        parquetWriteBuffer({
          columnData: ['id', 'a', 'b'].map((name) => ({
            name,
            data: Array.from({ length: rows }, (_, i) => i),
            type: 'INT32',
          })),
        }),
      );
    await write('moving-pq/in/a.parquet', table(10));
    const uri = url('moving-pq/in/a.parquet');
    const err = await planRun(
      {
        runId: 'run-m2',
        spec: spec({
          input: { uri: `${url('moving-pq/in')}/`, format: 'parquet' },
          output: { uri: `${url('moving-pq/out')}/` },
        }),
      },
      // Rewritten with the very same bytes: only the ETag (and the pinned footer read) can tell.
      { store: rewrittenOnFirstRead(uri, table(10)), registry },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toMatch(
      /^input object .*a\.parquet changed while the run was being planned/,
    );
  });
});

describe('planRun with files input (one object, one record)', () => {
  it('snapshots every object whatever its extension and cuts exact shards without sampling', async () => {
    for (let i = 0; i < 12; i++)
      await write(
        `imgs/day=1/img-${String(i).padStart(2, '0')}.${i % 2 ? 'png' : 'jpg'}`,
        'x'.repeat(100 + i),
      );
    await write('imgs/_SUCCESS', '');
    const state = await planRun(
      {
        runId: 'files-1',
        spec: spec({
          input: { uri: `${url('imgs')}/`, format: 'files', id: undefined },
          model: {
            inputs: [{ from: { text: 'content', tokenizer: 'labels.txt', maxLength: 8 } }],
          },
          run: { shards: { targetRecords: 5, targetBytes: '1GiB' } },
        }),
      },
      { store, registry, now: fixedNow },
    );
    const shards = (await read(`${state.runUri}shards.jsonl`))
      .trimEnd()
      .split('\n')
      .map((l) => shardSchema.parse(JSON.parse(l)));
    expect(shards.map((s) => [s.records, s.recordsExact])).toEqual([
      [5, true],
      [5, true],
      [2, true],
    ]);
    expect(
      shards.flatMap((s) =>
        s.ranges.map((r) => [r.uri.slice(r.uri.lastIndexOf('/') + 1), r.start, r.end - r.size, r.records]),
      ),
    ).toEqual(
      Array.from({ length: 12 }, (_, i) => [
        `img-${String(i).padStart(2, '0')}.${i % 2 ? 'png' : 'jpg'}`,
        0,
        0,
        1,
      ]),
    );
  });
});

describe('planRun refuses input under the output prefix', () => {
  it('when a list manifest names objects there', async () => {
    await write('ov/out/earlier/part-0.jsonl', jsonLines(3));
    await write('ov/list.txt', `${url('in/part-0.jsonl')}\nout/earlier/part-0.jsonl\n`);
    const err = await planRun(
      {
        runId: 'ov-1',
        spec: spec({
          input: { uri: url('ov/list.txt'), manifest: 'list' },
          output: { uri: `${url('ov/out')}/` },
        }),
      },
      { store, registry },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toContain(`names 1 object(s) under output.uri ${url('ov/out')}/`);
  });
});

describe('planRun over long lines (issue 17)', () => {
  const TEN_MB = 10 << 20;
  it('does not cut a 10 MB line into thousands of shards', async () => {
    const long = `{"id":2,"a":1,"b":2,"pad":"${'x'.repeat(TEN_MB)}"}\n`;
    await write('long/part-0.jsonl', jsonLines(2) + long + jsonLines(2, 3));
    const state = await planRun(
      {
        runId: 'long-line',
        spec: spec({ input: { uri: `${url('long')}/` }, run: { shards: { targetRecords: 1 } } }),
      },
      { store, registry, now: fixedNow },
    );
    // 5 records: never more shards than records, whatever the line lengths.
    expect(state.shardCount).toBeLessThanOrEqual(5);
    expect(state.shardCount).toBeGreaterThanOrEqual(1);
  });

  it('plans one shard for a 10 MB file with no newline at all', async () => {
    await write('nonewline/a.csv', 'h'.repeat(TEN_MB));
    const state = await planRun(
      {
        runId: 'no-newline',
        spec: spec({
          input: { uri: `${url('nonewline')}/`, format: 'csv' },
          run: { shards: { targetRecords: 1, targetBytes: 4096 } },
        }),
      },
      { store, registry, now: fixedNow },
    );
    expect(state.shardCount).toBe(1);
  });
});

describe('planRun over CSV with quoted line breaks (issue 17)', () => {
  const rows = (quoted: boolean): string =>
    'id,a,b,text\n' +
    Array.from(
      { length: 400 },
      (_, i) => `${i},1,2,${quoted && i % 50 === 7 ? '"two\nlines"' : 'one line'}\n`,
    ).join('');

  it('keeps an object whose sample shows a quoted line break in one range; cuts the same object without one', async () => {
    await write('quoted/a.csv', rows(true));
    await write('plain/a.csv', rows(false));
    const plan = async (folder: string): Promise<number> =>
      (
        await planRun(
          {
            runId: `quoted-${folder}`,
            spec: spec({
              input: { uri: `${url(folder)}/`, format: 'csv' },
              run: { shards: { targetRecords: 50, targetBytes: 1024 } },
            }),
          },
          { store, registry, now: fixedNow },
        )
      ).shardCount;
    expect(await plan('plain')).toBeGreaterThan(4);
    expect(await plan('quoted')).toBe(1);
  });

  it('firstQuotedLineBreak follows the reader: a stray quote opens nothing, "" stays inside the field', () => {
    const at = (text: string): number => firstQuotedLineBreak(Buffer.from(text));
    expect(at('a,b\n1,2\n')).toBe(-1);
    expect(at('a,b\n1,5\'11"\n2,x"\n')).toBe(-1);
    expect(at('a,b\n1,"x ""y""\nz"\n')).toBe(14);
    expect(at('a,b\n1,"open to the end\n')).toBe(22);
  });
});
