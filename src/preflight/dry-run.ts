/**
 * Dry run: the first N records of a job's input through the real path (Plan with preflight, then the worker's
 * runWorkerTask on CPU), into a temporary folder, and back as the rows that would be written and the error rows
 * with their reasons. Nothing is written next to the real output and nothing is published.
 *
 * The sample is the head of the first input object in its own format (the CSV header and the first N lines, the
 * first N JSON lines), so the records go through the same reader as in a run. Parquet and files inputs are not
 * sampled yet (DryRunUnsupportedError).
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

export class DryRunUnsupportedError extends Error {
  override readonly name = 'DryRunUnsupportedError';
}

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

/** Bytes read from the head of the first input object: enough for N ordinary lines. */
const HEAD_BYTES = 4 << 20;

export async function dryRun(spec: JobSpec, records: number, deps: DryRunDeps): Promise<DryRunResult> {
  if (spec.input.format !== 'csv' && spec.input.format !== 'jsonl') {
    throw new DryRunUnsupportedError(
      `a dry run samples csv and jsonl inputs; this input is ${spec.input.format}: run on a small input instead`,
    );
  }
  const temp = mkdtempSync(path.join(os.tmpdir(), 'batch-infer-dry-run-'));
  try {
    const root = asPrefix(pathToFileURL(temp).href);
    const [first] = await listInput(deps.store, spec.input, { outputUri: spec.output.uri });
    if (!first) return { rows: [], errors: [] };
    const head = new TextDecoder().decode(
      await deps.store.get(first.uri, { start: 0, end: Math.min(first.size, HEAD_BYTES) }),
    );
    const lines = head.split('\n').filter((l) => l.trim() !== '');
    const keep = lines.slice(0, records + (spec.input.format === 'csv' ? 1 : 0));
    const sampleUri = joinUri(root, 'input', `sample.${spec.input.format}`);
    await deps.store.put(sampleUri, `${keep.join('\n')}\n`);

    const dry: JobSpec = {
      ...spec,
      input: { ...spec.input, uri: joinUri(root, 'input/'), manifest: 'prefix' },
      output: {
        ...spec.output,
        uri: joinUri(root, 'output/'),
        format: 'jsonl',
        singleFile: false,
        schema: undefined,
      },
      run: { ...spec.run, maxRounds: 0, shards: { ...spec.run.shards, max: 1 } },
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
