/**
 * Reading a run's stored files (plan, shard list, completion markers), shared by Reconcile and Finalize.
 *
 * The markers prefix is listed once (one LIST page per 1,000 keys on S3) instead of probing every shard, so a
 * 10,000-shard run costs ~10 LIST calls plus one GET per marker that exists; shards without a marker cost nothing.
 */
import type { ZodError } from 'zod';
import { RunStateError } from '../spec/errors.js';
import { runLayout, type RunLayout } from '../runs/layout.js';
import { planSchema, shardMarkerSchema, type Plan, type ShardMarker } from '../runs/types.js';
import { NotFoundError, type ObjectInfo, type ObjectStore } from '../storage/object-store.js';
import { asPrefix, joinUri } from '../storage/uri.js';

/** Parallel GETs: enough to hide S3 latency, few enough to stay far from request-rate limits and file limits. */
export const DEFAULT_READ_CONCURRENCY = 32;

/** Only canonical decimal names count: `007.json` or `1.json.bak` are not shard 7 or shard 1. */
const MARKER_NAME = /^(0|[1-9][0-9]*)\.json$/;

export interface MarkerScan {
  /** Markers that exist, parse and belong to this run and shard, by shard id. */
  readonly markers: Map<number, ShardMarker>;
  /** Shards whose marker exists but is unusable, with why. A retry overwrites such a marker. */
  readonly problems: Map<number, string>;
  /** Keys under the prefix that are not a marker of a shard of this run (kept for the record, never read). */
  readonly unexpected: string[];
  /** How many objects the listing returned. */
  readonly listed: number;
}

/**
 * Lists the markers prefix and reads every marker whose name is a shard id of this run. Problems with a single
 * marker are collected, not thrown: one bad shard must not hide the state of the others.
 */
export async function scanMarkers(
  store: ObjectStore,
  layout: RunLayout,
  shardCount: number,
  concurrency = DEFAULT_READ_CONCURRENCY,
): Promise<MarkerScan> {
  const prefix = layout.markersPrefixUri;
  const candidates: { id: number; uri: string }[] = [];
  const unexpected: string[] = [];
  let listed = 0;
  for await (const info of store.list(prefix)) {
    listed++;
    const name = info.uri.startsWith(prefix) ? info.uri.slice(prefix.length) : info.uri;
    const match = MARKER_NAME.exec(name);
    const id = match ? Number(match[1]) : -1;
    if (id >= 0 && id < shardCount) candidates.push({ id, uri: info.uri });
    else unexpected.push(info.uri);
  }

  const markers = new Map<number, ShardMarker>();
  const problems = new Map<number, string>();
  await forEachLimit(candidates, concurrency, async ({ id, uri }) => {
    let bytes: Uint8Array;
    try {
      bytes = await store.get(uri);
    } catch (err) {
      // Listed but gone (a retry rewriting it on a store without atomic rename): same as never written.
      if (err instanceof NotFoundError) return;
      throw err;
    }
    const result = parseMarker(bytes, layout.runId, id);
    if (typeof result === 'string') problems.set(id, result);
    else markers.set(id, result);
  });
  return { markers, problems, unexpected, listed };
}

/** What the listings of a run's output prefixes found: every file, by URI. */
export interface OutputListing {
  readonly files: ReadonlyMap<string, ObjectInfo>;
}

/**
 * Checks every marker's files against storage: each prediction file must lie in the run's staging folder and be
 * named for the marker's shard (`part-<shard, 5 digits>-*`), the errors file must be the shard's own under the run's
 * errors prefix, and each must exist with the size and ETag the marker recorded and be claimed by no other shard.
 * A prediction file that an earlier Finalize already published (moved to `layout.publishedUriOf(uri)`: docs/adr/0014
 * §9) counts when the published file has the recorded size; the marker is then returned pointing at it, so every
 * later reader finds the bytes where they are. A marker that fails is moved from `scan.markers` to `scan.problems`
 * (the shard is not done: a retry rewrites it). Costs one listing of each prefix (one LIST request per 1,000 files
 * on S3), never a HEAD per file.
 */
export async function verifyMarkerOutputs(
  store: ObjectStore,
  layout: RunLayout,
  scan: MarkerScan,
): Promise<OutputListing> {
  const files = new Map<string, ObjectInfo>();
  for (const prefix of [layout.stagingUri, layout.partitionUri, layout.errorsPrefixUri]) {
    for await (const info of store.list(prefix)) files.set(info.uri, info);
  }
  const claimedBy = new Map<string, number>();
  for (const id of [...scan.markers.keys()].sort((a, b) => a - b)) {
    const marker = scan.markers.get(id)!;
    const problem = outputProblem(marker, layout, files, claimedBy);
    if (problem === undefined) {
      scan.markers.set(id, withPublishedOutputs(marker, layout, files));
      continue;
    }
    scan.markers.delete(id);
    scan.problems.set(id, `corrupt marker: ${problem}`);
  }
  return { files };
}

function outputProblem(
  marker: ShardMarker,
  layout: RunLayout,
  files: ReadonlyMap<string, ObjectInfo>,
  claimedBy: Map<string, number>,
): string | undefined {
  const id = marker.shardId;
  const claims: {
    file: ShardMarker['outputs'][number];
    prefix: string;
    what: string;
    /** Whether the name is one this shard's worker writes. */
    owned: (uri: string) => boolean;
    expected: string;
  }[] = [
    ...marker.outputs.map((file) => ({
      file,
      prefix: layout.stagingUri,
      what: 'output file',
      owned: (uri: string) => uri.startsWith(layout.partPrefixUri(id)),
      expected: `${layout.partPrefixUri(id).slice(layout.stagingUri.length)}*`,
    })),
    ...(marker.errorsFile
      ? [
          {
            file: marker.errorsFile,
            prefix: layout.errorsPrefixUri,
            what: 'errors file',
            owned: (uri: string) => uri === layout.errorsUri(id),
            expected: layout.errorsUri(id).slice(layout.errorsPrefixUri.length),
          },
        ]
      : []),
  ];
  for (const { file, prefix, what, owned, expected } of claims) {
    if (!file.uri.startsWith(prefix)) return `${what} ${file.uri} is not under the run's prefix ${prefix}`;
    // Workers name every file after their shard, so a file named for another shard is not this shard's output,
    // whichever shard's marker was read first.
    if (!owned(file.uri)) return `${what} ${file.uri} is not named ${expected}: it is not shard ${id}'s file`;
    const other = claimedBy.get(file.uri);
    if (other !== undefined) return `${what} ${file.uri} is also claimed by shard ${other}`;
    const stored = files.get(file.uri);
    if (!stored) {
      const published = publishedCopy(file, layout, files);
      if (published) continue;
      return `${what} ${file.uri} does not exist`;
    }
    if (stored.size !== file.bytes) {
      return `${what} ${file.uri} has ${stored.size} bytes, the marker says ${file.bytes}`;
    }
    if (stored.etag !== file.etag) {
      return `${what} ${file.uri} has ETag ${stored.etag}, the marker says ${file.etag}: it was rewritten after the shard completed`;
    }
  }
  for (const { file } of claims) claimedBy.set(file.uri, marker.shardId);
  return undefined;
}

/**
 * The published file of a staged prediction file that is no longer staged: an earlier Finalize of this run moved it
 * (docs/adr/0014 §9). Only Finalize writes the run's partition, and only by moving a staged file it verified, so the
 * published key with the recorded size is that file (the ETag is not compared: an S3 copy of a multipart object gets
 * a new one).
 */
function publishedCopy(
  file: { readonly uri: string; readonly bytes: number },
  layout: RunLayout,
  files: ReadonlyMap<string, ObjectInfo>,
): ObjectInfo | undefined {
  if (!file.uri.startsWith(layout.stagingUri)) return undefined;
  const published = files.get(layout.publishedUriOf(file.uri));
  return published && published.size === file.bytes ? published : undefined;
}

/** The marker with each prediction file that was already published named by its published URI. */
function withPublishedOutputs(
  marker: ShardMarker,
  layout: RunLayout,
  files: ReadonlyMap<string, ObjectInfo>,
): ShardMarker {
  if (marker.outputs.every((f) => files.has(f.uri))) return marker;
  return {
    ...marker,
    outputs: marker.outputs.map((f) =>
      files.has(f.uri)
        ? f
        : { ...f, uri: layout.publishedUriOf(f.uri), etag: files.get(layout.publishedUriOf(f.uri))!.etag },
    ),
  };
}

/** A marker, or a sentence saying why it does not count. */
export function parseMarker(bytes: Uint8Array, runId: string, shardId: number): ShardMarker | string {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    return `marker is not valid JSON (${errorText(err)})`;
  }
  const parsed = shardMarkerSchema.safeParse(json);
  if (!parsed.success) return `marker does not match the marker schema: ${issuesText(parsed.error)}`;
  const marker = parsed.data;
  if (marker.runId !== runId) return `marker belongs to run "${marker.runId}", not "${runId}"`;
  if (marker.shardId !== shardId) return `marker file of shard ${shardId} names shard ${marker.shardId}`;
  return marker;
}

/** Runs `fn` over `items` with at most `limit` calls in flight; rejects with the first error. */
export async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      await fn(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
}

/**
 * The layout of a run known by its run URI. The state machine carries `runUri`, and the plan carries the run
 * date; the output prefix is the run URI without the `_runs/<runId>/` suffix that `runLayout` gives it.
 */
export function layoutFromRunUri(runUri: string, runId: string, runDate: string): RunLayout {
  const suffix = `_runs/${runId}/`;
  const prefix = asPrefix(runUri);
  if (!prefix.endsWith(`/${suffix}`)) {
    throw new RunStateError(
      `Run URI ${runUri} does not end with ${suffix}: it is not the run URI of run ${runId}`,
    );
  }
  const layout = runLayout(prefix.slice(0, -suffix.length), runId, runDate);
  if (layout.runUri !== prefix) {
    throw new RunStateError(`Run URI ${runUri} does not match the layout of run ${runId} (${layout.runUri})`);
  }
  return layout;
}

/**
 * Reads and checks plan.json of the run at `runUri`, and returns it with the run's layout. The plan is the only
 * place the run date lives, so the layout can only be completed once it is read.
 */
export async function readPlan(
  store: ObjectStore,
  runUri: string,
  runId: string,
): Promise<{ plan: Plan; layout: RunLayout }> {
  // The plan's key does not depend on the run date; any date gives the same planUri.
  const planUri = layoutFromRunUri(runUri, runId, '1970-01-01').planUri;
  const plan = planSchema.safeParse(await readJson(store, planUri, 'plan'));
  if (!plan.success) throw new RunStateError(`The plan ${planUri} is corrupt: ${issuesText(plan.error)}`);
  if (plan.data.runId !== runId) {
    throw new RunStateError(`The plan ${planUri} belongs to run "${plan.data.runId}", not "${runId}"`);
  }
  return { plan: plan.data, layout: layoutFromRunUri(runUri, runId, plan.data.runDate) };
}

async function readJson(store: ObjectStore, uri: string, what: string): Promise<unknown> {
  let bytes: Uint8Array;
  try {
    bytes = await store.get(uri);
  } catch (err) {
    if (err instanceof NotFoundError) throw new RunStateError(`The ${what} ${uri} is missing`);
    throw err;
  }
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as unknown;
  } catch (err) {
    throw new RunStateError(`The ${what} ${uri} is not valid JSON: ${errorText(err)}`);
  }
}

/** Where Reconcile records what it saw in a round; next to the round file, never overwritten by a worker. */
export function reconcileRecordUri(layout: RunLayout, round: number): string {
  return joinUri(layout.runUri, 'rounds', `${round}.reconcile.json`);
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function issuesText(error: ZodError): string {
  const shown = error.issues
    .slice(0, 3)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
  return error.issues.length > 3 ? `${shown}; and ${error.issues.length - 3} more` : shown;
}
