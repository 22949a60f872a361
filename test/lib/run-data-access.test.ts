/**
 * The worker's grants cover every object a worker writes, for the champion and for a challenger: each URI the run
 * layout gives a worker (staged parts, error rows, markers, checkpoints, comparisons) falls under a worker write
 * grant of RUN_PREFIX_GRANTS, and nothing it writes lands in a published partition.
 */
import { describe, expect, it } from '@jest/globals';
import { RUN_PREFIX_GRANTS } from '../../lib/run-data-access.js';
import { chunkComparisonUri, shardComparisonUri } from '../../src/challenger/comparison-files.js';
import { runLayout, type RunLayout } from '../../src/runs/layout.js';
import { challengerOutputUri } from '../../src/spec/challenger.js';

const OUTPUT = 's3://lake/predictions/breast_cancer/';

/** A grant's suffix as a pattern on the key below the output prefix (`*` is IAM's: any characters). */
function grantPattern(suffix: string): RegExp {
  const escaped = suffix.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}.*`);
}

const workerWrites = RUN_PREFIX_GRANTS.filter(
  (g) => g.role === 'worker' && g.on === 'output' && g.access === 'readwrite',
).map((g) => grantPattern(g.suffix));

function covered(uri: string): boolean {
  expect(uri.startsWith(OUTPUT)).toBe(true);
  const key = uri.slice(OUTPUT.length);
  return workerWrites.some((p) => p.test(key));
}

function workerUris(layout: RunLayout): string[] {
  return [
    layout.partUri(3, 0),
    layout.partUri(3, 7, 'jsonl'),
    layout.errorsUri(3),
    layout.markerUri(3),
    layout.checkpointUri(3),
  ];
}

describe('the worker grants', () => {
  const champion = runLayout(OUTPUT, 'run-0007', '2026-12-06');
  const challenger = runLayout(challengerOutputUri(OUTPUT), 'run-0007', '2026-12-06');

  it.each([
    ['the champion', champion, []],
    ['a challenger', challenger, [chunkComparisonUri(challenger, 3, 0), shardComparisonUri(challenger, 3)]],
  ] as const)('cover every object the worker writes for %s', (_, layout, extra) => {
    const uris = [...workerUris(layout), ...extra];
    expect(uris.filter((u) => !covered(u))).toEqual([]);
  });

  it('do not cover a published partition, the plan or the manifest (only Plan and Finalize write those)', () => {
    for (const layout of [champion, challenger]) {
      const published = layout.publishedUriOf(layout.partUri(3, 0));
      expect([published, layout.planUri, layout.manifestUri, layout.roundUri(1)].filter(covered)).toEqual([]);
    }
  });
});
