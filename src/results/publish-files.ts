/**
 * Publishing a run's prediction files (docs/adr/0014 §9). Workers write them under the run's staging folder
 * (`<output.uri>/_staging/run_id=<id>/…​.staged`), invisible to a reader that globs the output prefix; only a run that
 * passed validation gets them moved into its partition (`run_date=…/run_id=…/`), just before the catalogue learns of
 * it. Champion and challenger tables publish the same way, each with its own layout.
 *
 * Killed at any point and run again, Finalize converges: a file still staged is moved (again: a copy that was made
 * before the kill is overwritten by the same bytes), a file already moved is found in the partition by
 * `verifyMarkerOutputs`, and nothing is published twice because every file has one published key.
 */
import type { RunLayout } from '../runs/layout.js';
import type { OutputFile, ShardMarker } from '../runs/types.js';
import { moveObject, type ObjectStore } from '../storage/object-store.js';
import { forEachLimit, type OutputListing } from './run-files.js';

export interface PublishedFiles<M extends { readonly accepted: readonly ShardMarker[] }> {
  /** `report` with every accepted marker's prediction files named by their published URIs. */
  readonly report: M;
  /**
   * Files that no accepted shard claims, deleted: in the partition (an earlier attempt's, a rejected marker's) and
   * in the staging folder (chunks of failed attempts).
   */
  readonly strays: string[];
}

/**
 * Moves the accepted shards' staged prediction files into the run's partition, then deletes every other file of
 * the run's partition and staging folder found by `listing` (verifyMarkerOutputs). Returns the report with the
 * published URIs, for the catalogue and the manifest.
 */
export async function publishRunFiles<M extends { readonly accepted: readonly ShardMarker[] }>(
  store: ObjectStore,
  layout: RunLayout,
  listing: OutputListing,
  report: M,
  concurrency: number,
): Promise<PublishedFiles<M>> {
  const moves: { from: OutputFile; to: string }[] = [];
  const published = new Set<string>();
  for (const marker of report.accepted) {
    for (const file of marker.outputs) {
      if (file.uri.startsWith(layout.stagingUri)) {
        const to = layout.publishedUriOf(file.uri);
        moves.push({ from: file, to });
        published.add(to);
      } else {
        published.add(file.uri);
      }
    }
  }
  const moved = new Map<string, OutputFile>();
  await forEachLimit(moves, concurrency, async ({ from, to }) => {
    const info = await moveObject(store, from.uri, to);
    moved.set(from.uri, { ...from, uri: to, etag: info.etag });
  });

  const strays = [...listing.files.keys()]
    .filter(
      (uri) =>
        (uri.startsWith(layout.partitionUri) && !published.has(uri)) ||
        (uri.startsWith(layout.stagingUri) && !moved.has(uri)),
    )
    .sort();
  await forEachLimit(strays, concurrency, (uri) => store.delete(uri));

  const accepted = report.accepted.map((m) =>
    m.outputs.some((f) => moved.has(f.uri))
      ? { ...m, outputs: m.outputs.map((f) => moved.get(f.uri) ?? f) }
      : m,
  );
  return { report: { ...report, accepted }, strays };
}
