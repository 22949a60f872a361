/**
 * Dry run: the first N records of a job's input through the real path (Plan with preflight, then the worker's
 * runWorkerTask on CPU), into a temporary folder, and back as the rows that would be written and the error rows
 * with their reasons. Nothing is written next to the real output and nothing is published.
 *
 * The sample is the first N records of the input in its own format (sample-input.ts: the head of the first CSV or
 * JSONL object, the first N rows of the first Parquet object, the first N objects of a `files` input), so the
 * records go through the same reader as in a run. A `files` sample is named by a list manifest: rows and error rows
 * name the real objects.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { listInput } from '../manifest/list-input.js';
import { planRun } from '../planning/plan-run.js';
import type { ModelRegistry } from '../registry/model-registry.js';
import type { JobSpec } from '../spec/schema.js';
import type { ObjectStore } from '../storage/object-store.js';
import { asPrefix, joinUri } from '../storage/uri.js';
import { runWorkerTask } from '../worker/run-shard.js';
import { preflightResolved } from './index.js';
import { sampleInput } from './sample-input.js';

/** A sample that cannot be made (see sample-input.ts `SampleError`). */
export { SampleError as DryRunUnsupportedError } from './sample-input.js';

export interface DryRunResult {
  /** Rows as the run would write them (JSON values), in input order. */
  readonly rows: readonly Record<string, unknown>[];
  /** Error rows: the record's identity, reason code and message. */
  readonly errors: readonly Record<string, unknown>[];
}

export interface DryRunDeps {
  readonly store: ObjectStore;
  readonly registry: ModelRegistry;
  readonly specFolderUri?: string;
}

export async function dryRun(spec: JobSpec, records: number, deps: DryRunDeps): Promise<DryRunResult> {
  const temp = mkdtempSync(path.join(os.tmpdir(), 'batch-infer-dry-run-'));
  try {
    const root = asPrefix(pathToFileURL(temp).href);
    const objects = await listInput(deps.store, spec.input, { outputUri: spec.output.uri });
    if (objects.length === 0) return { rows: [], errors: [] };
    const inputFolder = joinUri(root, 'input/');
    const sample = await sampleInput(deps.store, spec.input.format, objects, records, inputFolder);
    let input: JobSpec['input'];
    if (spec.input.format === 'files') {
      // The objects stay where they are: a list manifest names them, with the size and ETag just listed.
      const list = joinUri(root, 'sample.list.jsonl');
      await deps.store.put(list, sample.map((o) => `${JSON.stringify(o)}\n`).join(''));
      input = { ...spec.input, uri: list, manifest: 'list' };
    } else {
      input = { ...spec.input, uri: inputFolder, manifest: 'prefix' };
    }

    const dry: JobSpec = {
      ...spec,
      input,
      output: {
        ...spec.output,
        uri: joinUri(root, 'output/'),
        format: 'jsonl',
        singleFile: false,
        schema: undefined,
      },
      run: { ...spec.run, maxRounds: 0, shards: { ...spec.run.shards, max: 1 }, canary: undefined },
    };
    const state = await planRun({ runId: 'dry-run', spec: dry }, { ...deps, preflight: preflightResolved });
    const marker = await runWorkerTask(
      { runUri: state.runUri, round: 0, arrayIndex: 0, attempt: 1 },
      { store: deps.store, log: silentLog, providers: ['cpu'], threads: 1 },
    );
    const rows: Record<string, unknown>[] = [];
    for (const file of marker.outputs) rows.push(...(await readJsonLines(deps.store, file.uri)));
    const errors = marker.errorsFile ? await readJsonLines(deps.store, marker.errorsFile.uri) : [];
    return { rows, errors };
  } finally {
    rmSync(temp, { recursive: true, force: true });
  }
}

async function readJsonLines(store: ObjectStore, uri: string): Promise<Record<string, unknown>[]> {
  return new TextDecoder()
    .decode(await store.get(uri))
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const silentLog = { info: () => undefined, warn: () => undefined };
