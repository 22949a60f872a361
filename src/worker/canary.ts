/**
 * The canary (`run.canary`, issue 10): before the array job fans out, the worker runs the first N records of shard 0
 * through the real worker path, as a run of its own beside the real one: `<runUri>canary/` holds its sample input,
 * its plan (the run's plan with the sample as its one shard), its marker, predictions and error rows. Nothing of the
 * real run's output is touched, so round 0 starts clean. Whether the canary passed is decided by the canary check
 * (src/results/canary.ts), from this marker or the failure record the worker leaves when it throws.
 */
import { parquetLayout } from '../formats/parquet-read.js';
import { sampleInput } from '../preflight/sample-input.js';
import { canaryLayout } from '../runs/canary-layout.js';
import { runLayout } from '../runs/layout.js';
import { planSchema, type InputObject, type Plan, type Shard, type ShardMarker } from '../runs/types.js';
import { RunStateError } from '../spec/errors.js';
import { getJson, putJson, type ObjectStore } from '../storage/object-store.js';
import { asPrefix, joinUri } from '../storage/uri.js';
import { readShardLine, writeShardList } from '../results/shard-list.js';
import { runWorkerTask, type WorkerDeps, type WorkerTask } from './run-shard.js';

/** Runs the canary of the run at `task.runUri`: the first `records` records of its shard 0. Returns its marker. */
export async function runCanary(task: WorkerTask, records: number, deps: WorkerDeps): Promise<ShardMarker> {
  const { store } = deps;
  const planUri = joinUri(asPrefix(task.runUri), 'plan.json');
  const parsed = planSchema.safeParse(await getJson(store, planUri));
  if (!parsed.success) throw new RunStateError(`${planUri} is not a valid plan: ${parsed.error.message}`);
  const plan = parsed.data;
  const layout = runLayout(plan.spec.output.uri, plan.runId, plan.runDate);
  const canary = canaryLayout(task.runUri, plan);
  const shard = await readShardLine(store, layout, 0);
  deps.log.info('canary started', { records, sources: shard.ranges.length });

  const objects: InputObject[] = shard.ranges.map((r) => ({
    uri: r.uri,
    size: r.size,
    etag: r.etag,
    ...(r.versionId !== undefined && { versionId: r.versionId }),
  }));
  const sample = await sampleInput(
    store,
    plan.spec.input.format,
    objects,
    records,
    joinUri(canary.outputUri, 'input/'),
  );
  await writeShardList(store, canary, [await canaryShard(store, plan.spec.input.format, sample, records)]);
  const canaryPlan: Plan = {
    ...plan,
    spec: {
      ...plan.spec,
      output: { ...plan.spec.output, uri: canary.outputUri, singleFile: false },
      run: { ...plan.spec.run, canary: undefined, maxRounds: 0 },
    },
    input: { ...plan.input, objects: sample.length, bytes: sample.reduce((n, o) => n + o.size, 0) },
    shardCount: 1,
    maxRounds: 0,
  };
  await putJson(store, canary.planUri, canaryPlan);
  return runWorkerTask({ ...task, runUri: canary.runUri, round: 0, arrayIndex: 0 }, deps);
}

/** The canary's one shard: the sample, with exact counts where the format gives them. */
async function canaryShard(
  store: ObjectStore,
  format: Plan['spec']['input']['format'],
  sample: readonly InputObject[],
  records: number,
): Promise<Shard> {
  const whole = (o: InputObject) => ({ uri: o.uri, etag: o.etag, size: o.size, start: 0, end: o.size });
  const bytes = sample.reduce((n, o) => n + o.size, 0);
  if (format === 'files') {
    return {
      id: 0,
      ranges: sample.map((o) => ({ ...whole(o), records: 1 })),
      bytes,
      records: sample.length,
      recordsExact: true,
    };
  }
  if (format === 'parquet') {
    const [object] = sample;
    const groups = object ? (await parquetLayout(store, object.uri, object.size)).rowGroups : [];
    const rows = groups.reduce((n, g) => n + g.rows, 0);
    return {
      id: 0,
      ranges: object
        ? [{ ...whole(object), rowGroupStart: 0, rowGroupEnd: groups.length, rowStart: 0, records: rows }]
        : [],
      bytes,
      records: rows,
      recordsExact: true,
    };
  }
  return {
    id: 0,
    ranges: sample.map(whole),
    bytes,
    records,
    recordsExact: false,
  };
}
