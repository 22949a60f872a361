/**
 * What the run report is made of, read from the run's files only: manifest.json (verdict, counts, lineage,
 * distributions, drift), the completion markers (per-shard counts, timings, times), the shard index (planned
 * records), the first rows of the errors files (examples), and the previous succeeded run's manifest (the
 * distribution compared against). Nothing comes from a live service, so the report of any past run can be rebuilt.
 */
import { z } from 'zod';
import { RunStateError } from '../spec/errors.js';
import type { RunLayout } from '../runs/layout.js';
import type { ShardIndexEntry, ShardMarker } from '../runs/types.js';
import { NotFoundError, type ObjectStore } from '../storage/object-store.js';
import { asPrefix, joinUri } from '../storage/uri.js';
import { findBaseline } from '../results/drift.js';
import { historyComparisonOf, type HistoryComparison } from '../results/history-checks.js';
import { manifestSchema, type Manifest } from '../results/manifest.js';
import {
  DEFAULT_READ_CONCURRENCY,
  errorText,
  issuesText,
  layoutFromRunUri,
  scanMarkers,
} from '../results/run-files.js';
import { readShardIndex } from '../results/shard-list.js';

/** Example error rows shown per reason. */
export const EXAMPLES_PER_REASON = 3;
/** Errors files read for examples at most (their first EXAMPLE_READ_BYTES each). */
export const MAX_ERRORS_FILES_READ = 20;
export const EXAMPLE_READ_BYTES = 64 * 1024;

const errorRowSchema = z.object({
  reason: z.string(),
  message: z.string(),
  _source: z.string(),
  _offset: z.number(),
  _shard: z.number(),
  id: z.union([z.string(), z.number(), z.null()]).optional(),
});
export type ErrorExample = z.infer<typeof errorRowSchema>;

export interface RunReportData {
  readonly manifest: Manifest;
  readonly layout: RunLayout;
  /** Completed shards' markers, by shard id. */
  readonly markers: readonly ShardMarker[];
  /** Planned records per shard (absent when the shard list could not be read). */
  readonly planned?: readonly ShardIndexEntry[];
  readonly errorExamples: readonly ErrorExample[];
  /** The previous succeeded run of the job, when there is one. */
  readonly previous?: Manifest;
  /** This run against the job's last succeeded runs; absent with too little history. */
  readonly history?: HistoryComparison;
  /** Things the report could not read (it is still written, saying so). */
  readonly gaps: readonly string[];
}

export interface LoadOptions {
  /** Markers the caller holds already (Finalize), so they are not read twice. */
  readonly markers?: readonly ShardMarker[];
  /** The shard index the caller read already (Finalize), so it is not read twice. */
  readonly planned?: readonly ShardIndexEntry[];
  readonly concurrency?: number;
}

export function reportUriOf(runUri: string): string {
  return joinUri(asPrefix(runUri), 'report.html');
}

/** Reads the run at `runUri` for its report; throws only when its manifest is missing or unreadable. */
export async function loadRunReportData(
  store: ObjectStore,
  runUri: string,
  options: LoadOptions = {},
): Promise<RunReportData> {
  const manifest = await readManifest(store, joinUri(asPrefix(runUri), 'manifest.json'));
  const layout = layoutFromRunUri(runUri, manifest.runId, manifest.runDate);
  const gaps: string[] = [];
  const concurrency = options.concurrency ?? DEFAULT_READ_CONCURRENCY;

  let markers: readonly ShardMarker[] = options.markers ?? [];
  if (!options.markers) {
    try {
      const scan = await scanMarkers(store, layout, manifest.counts.shards, concurrency);
      markers = [...scan.markers.values()];
    } catch (err) {
      gaps.push(`the shard markers could not be read: ${errorText(err)}`);
    }
  }
  // Only the shards the verdict counted: a marker rejected at finalize time is a failed shard in the manifest.
  const failed = new Set(manifest.counts.failedShards.ids);
  markers = markers.filter((m) => !failed.has(m.shardId)).sort((a, b) => a.shardId - b.shardId);

  let planned: readonly ShardIndexEntry[] | undefined = options.planned;
  try {
    planned ??= await readShardIndex(store, layout, manifest.counts.shards);
  } catch (err) {
    gaps.push(`the shard list could not be read: ${errorText(err)}`);
  }

  let errorExamples: ErrorExample[] = [];
  try {
    errorExamples = await readErrorExamples(store, markers, manifest.counts.errorsByReason);
  } catch (err) {
    gaps.push(`the errors files could not be read: ${errorText(err)}`);
  }

  let previous: Manifest | undefined;
  try {
    previous = await findBaseline(store, layout, {
      runId: manifest.runId,
      name: manifest.spec.name,
      plannedAt: manifest.timings.plannedAt,
    });
  } catch (err) {
    gaps.push(`the previous run could not be read: ${errorText(err)}`);
  }

  // Finalize's comparison when the manifest has one; computed here for manifests written before it did.
  let history: HistoryComparison | undefined;
  try {
    const written = manifest.history;
    if (written?.status === 'compared') {
      const { status: _status, ...comparison } = written;
      history = comparison;
    } else if (written === undefined) {
      history = await historyComparisonOf(store, layout, { ...manifest, name: manifest.spec.name });
    }
  } catch (err) {
    gaps.push(`the job's history could not be read: ${errorText(err)}`);
  }

  return {
    manifest,
    layout,
    ...(history && { history }),
    markers,
    ...(planned && { planned }),
    errorExamples,
    ...(previous && { previous }),
    gaps,
  };
}

async function readManifest(store: ObjectStore, uri: string): Promise<Manifest> {
  let bytes: Uint8Array;
  try {
    bytes = await store.get(uri);
  } catch (err) {
    if (err instanceof NotFoundError) {
      throw new RunStateError(`The run has no manifest at ${uri}: Finalize has not run for it yet`);
    }
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new RunStateError(`The manifest ${uri} is not valid JSON: ${errorText(err)}`);
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) throw new RunStateError(`The manifest ${uri} is corrupt: ${issuesText(parsed.error)}`);
  return parsed.data;
}

/**
 * A few error rows per reason, from the first bytes of the errors files in shard order: enough to see what went
 * wrong without reading every errors file of a large run.
 */
export async function readErrorExamples(
  store: ObjectStore,
  markers: readonly ShardMarker[],
  errorsByReason: Readonly<Record<string, number>>,
): Promise<ErrorExample[]> {
  const wanted = new Map(
    Object.entries(errorsByReason)
      .filter(([, n]) => n > 0)
      .map(([reason, n]) => [reason, Math.min(n, EXAMPLES_PER_REASON)]),
  );
  const examples: ErrorExample[] = [];
  const files = markers.flatMap((m) => (m.errorsFile && m.errorsFile.rows > 0 ? [m.errorsFile] : []));
  for (const file of files.slice(0, MAX_ERRORS_FILES_READ)) {
    if ([...wanted.values()].every((n) => n === 0)) break;
    const end = Math.min(file.bytes, EXAMPLE_READ_BYTES);
    if (end === 0) continue;
    const text = new TextDecoder().decode(await store.get(file.uri, { start: 0, end }));
    const lines = text.split('\n');
    // A cut read ends in a partial line: drop it.
    if (end < file.bytes) lines.pop();
    for (const line of lines) {
      if (line.trim() === '') continue;
      let row: unknown;
      try {
        row = JSON.parse(line);
      } catch {
        continue;
      }
      const parsed = errorRowSchema.safeParse(row);
      if (!parsed.success) continue;
      const left = wanted.get(parsed.data.reason) ?? 0;
      if (left === 0) continue;
      wanted.set(parsed.data.reason, left - 1);
      examples.push(parsed.data);
    }
  }
  return examples;
}
