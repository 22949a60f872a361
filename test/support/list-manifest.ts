/**
 * A large planning input for scale tests and the plan benchmark: a folder with a stand-in model file and a JSONL list
 * manifest (S3 Inventory style: size and ETag on every line, so the planner HEADs nothing) naming `count` objects
 * that need not exist. Deterministic; sizes from 1 KB to ~8 MB; in reverse-ish order so the planner's sort has work.
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { PlanDeps } from '../../src/planning/plan-run.js';
import type { PlanRequest } from '../../src/runs/tasks.js';

export async function writeListManifestInput(dir: string, count: number): Promise<void> {
  await writeFile(path.join(dir, 'model.onnx'), 'model');
  const dataUri = pathToFileURL(path.join(dir, 'data')).href;
  const out = createWriteStream(path.join(dir, 'inventory.jsonl'));
  for (let i = 0; i < count; i++) {
    const n = count - i;
    const line =
      `{"uri":"${dataUri}/dt=${n % 30}/part-${String(n).padStart(8, '0')}.jsonl","size":${1000 + ((n * 7919) % 8_000_000)},` +
      `"etag":"${(n * 2654435761).toString(16).padStart(12, '0')}"}\n`;
    if (!out.write(line)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

/** The plan request over that folder's manifest, writing under `<dir>/out/`. */
export function listManifestPlanRequest(dir: string, runId: string): PlanRequest {
  const url = (p: string): string => pathToFileURL(path.join(dir, p)).href;
  return {
    runId,
    spec: {
      name: 'plan_scale',
      input: { uri: url('inventory.jsonl'), format: 'jsonl', manifest: 'list' },
      model: {
        uri: url('model.onnx'),
        inputs: [{ tensor: 'x', from: { columns: ['a'] } }],
        outputs: [{ tensor: 'y' }],
      },
      output: { uri: `${url('out')}/` },
    },
  };
}

/** A registry the request never consults (its spec names model.uri). */
export const UNUSED_REGISTRY: PlanDeps['registry'] = {
  resolve: () => Promise.reject(new Error('not used: the spec names model.uri')),
};
