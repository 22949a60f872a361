/**
 * A run's price before it runs: records to score × seconds per record × the hourly price of the instance it will
 * run on. Seconds per record come from this pipeline's last succeeded runs (their manifests: shard seconds over
 * records), or from this run's completed shards once it has some (the spend cap, spend-cap.ts).
 *
 * The first round goes to the Spot-first queue, retry rounds to On-Demand (ADR 0012): the estimate gives the run at
 * the Spot price and, as the bound a person should plan for, at the On-Demand price.
 */
import { z } from 'zod';
import { readHistory } from '../results/drift.js';
import { manifestSchema } from '../results/manifest.js';
import { runLayout } from '../runs/layout.js';
import type { ShardMarker } from '../runs/types.js';
import type { JobSpec } from '../spec/schema.js';
import { NotFoundError, type ObjectStore } from '../storage/object-store.js';
import { joinUri } from '../storage/uri.js';
import { shardSeconds } from './cost.js';
import { formatMoney, hourlyPrice, priceTableOf, referenceInstanceType, type PriceTable } from './prices.js';

/** Succeeded runs whose speed the estimate averages. */
export const ESTIMATE_HISTORY_RUNS = 5;

/** Where a seconds-per-record figure comes from. */
export interface MeasuredSpeed {
  readonly secondsPerRecord: number;
  readonly source: 'history' | 'this-run';
  /** The runs measured (history), oldest first. */
  readonly runIds?: readonly string[];
  /** Records the measurement covers. */
  readonly records: number;
  /** Input bytes per record in the runs measured (history), to guess a new input's records from its size. */
  readonly bytesPerRecord?: number;
  /** The newest measured run's records (history). */
  readonly lastRecords?: number;
}

export const costEstimateSchema = z.object({
  currency: z.string(),
  records: z.number().int().nonnegative(),
  /** False when some shard's record count is the planner's estimate from sizes. */
  recordsExact: z.boolean(),
  shards: z.number().int().nonnegative(),
  /** Retry rounds allowed after the first (`run.maxRounds`). */
  maxRounds: z.number().int().nonnegative(),
  instanceType: z.string(),
  /** Hourly price of the first round's instance (Spot for a deployed run) and of a retry round's (On-Demand). */
  hourlyPrice: z.number().nonnegative(),
  onDemandHourlyPrice: z.number().nonnegative(),
  /** Absent when nothing has been measured yet (a pipeline's first run). */
  secondsPerRecord: z.number().nonnegative().optional(),
  speedSource: z.enum(['history', 'this-run', 'none']),
  historyRunIds: z.array(z.string()).optional(),
  /** Instance seconds for every record, once. */
  computeSeconds: z.number().nonnegative().optional(),
  /** At the first round's price, and with every shard On-Demand (the bound). */
  cost: z.number().nonnegative().optional(),
  onDemandCost: z.number().nonnegative().optional(),
  maxCost: z.number().positive().optional(),
  /** What to do when there is nothing to estimate from. */
  note: z.string().optional(),
  prices: z.object({ region: z.string(), asOf: z.string(), source: z.string() }),
});
export type CostEstimate = z.infer<typeof costEstimateSchema>;

export interface EstimateInput {
  readonly spec: Pick<JobSpec, 'name' | 'run'>;
  readonly records: number;
  readonly recordsExact: boolean;
  readonly shards: number;
  /** A local run: priced as the `local` instance. */
  readonly local: boolean;
  readonly speed?: MeasuredSpeed;
  /** @default the default table with the spec's `run.prices` */
  readonly table?: PriceTable;
}

export function estimateRunCost(input: EstimateInput): CostEstimate {
  const { spec, speed } = input;
  const table = input.table ?? priceTableOf(spec.run.prices);
  const type = referenceInstanceType(table, spec.run.compute, input.local);
  const firstLifecycle = input.local ? 'local' : 'spot';
  const price = hourlyPrice(table, type, firstLifecycle) ?? 0;
  const onDemand = hourlyPrice(table, type, input.local ? 'local' : 'on-demand') ?? 0;
  const base: CostEstimate = {
    currency: table.currency,
    records: input.records,
    recordsExact: input.recordsExact,
    shards: input.shards,
    maxRounds: spec.run.maxRounds,
    instanceType: type,
    hourlyPrice: price,
    onDemandHourlyPrice: onDemand,
    speedSource: speed?.source ?? 'none',
    ...(spec.run.maxCost !== undefined && { maxCost: spec.run.maxCost }),
    prices: { region: table.region, asOf: table.asOf, source: table.source },
  };
  if (!speed) {
    return {
      ...base,
      note:
        `no succeeded run of ${spec.name} to measure seconds per record from yet: this run's cost is in its ` +
        'manifest when it ends, and the next run gets an estimate (measure speed now with: batch-infer run <job.yaml> --dry-run 1000)',
    };
  }
  const computeSeconds = input.records * speed.secondsPerRecord;
  return {
    ...base,
    secondsPerRecord: speed.secondsPerRecord,
    ...(speed.runIds && { historyRunIds: [...speed.runIds] }),
    computeSeconds,
    cost: (computeSeconds / 3600) * price,
    onDemandCost: (computeSeconds / 3600) * onDemand,
  };
}

/** Seconds per record over completed shards (their seconds over their records); undefined without records. */
export function speedOfMarkers(
  markers: readonly Pick<ShardMarker, 'seconds' | 'timings' | 'records'>[],
): MeasuredSpeed | undefined {
  let seconds = 0;
  let records = 0;
  for (const m of markers) {
    seconds += shardSeconds(m);
    records += m.records;
  }
  return records > 0 ? { secondsPerRecord: seconds / records, source: 'this-run', records } : undefined;
}

/**
 * The parts of a manifest the speed is measured from. A manifest is mostly distribution summaries (about 250 KiB
 * on the demo); checking all of it took 130 ms of the CLI's start on the first of five, for five numbers.
 */
const manifestSpeedSchema = manifestSchema.pick({
  runId: true,
  status: true,
  input: true,
  counts: true,
  timings: true,
  cost: true,
});

/**
 * Seconds per record of the pipeline's last ESTIMATE_HISTORY_RUNS succeeded runs (the job's history of succeeded
 * runs under `<output.uri>/_runs/`): their shard seconds over their records. Undefined when there is none. A
 * manifest that cannot be read is skipped; an unreadable history is no history.
 */
export async function speedFromHistory(
  store: ObjectStore,
  outputUri: string,
  name: string,
  limit = ESTIMATE_HISTORY_RUNS,
): Promise<MeasuredSpeed | undefined> {
  const layout = runLayout(outputUri, 'estimate', '1970-01-01');
  const history = await readHistory(store, layout);
  const candidates = history.runs.filter((r) => r.name === name).slice(-limit);
  let seconds = 0;
  let records = 0;
  let bytes = 0;
  let lastRecords: number | undefined;
  const runIds: string[] = [];
  for (const run of candidates) {
    try {
      const text = await store.get(joinUri(layout.outputUri, '_runs', run.runId, 'manifest.json'));
      const parsed = manifestSpeedSchema.safeParse(JSON.parse(new TextDecoder().decode(text)));
      if (!parsed.success || parsed.data.status !== 'SUCCEEDED' || parsed.data.counts.records === 0) continue;
      const m = parsed.data;
      seconds += m.cost?.shardSeconds ?? m.timings.shards.totalMs / 1000;
      records += m.counts.records;
      bytes += m.input.bytes;
      lastRecords = m.counts.records;
      runIds.push(m.runId);
    } catch (err) {
      if (err instanceof NotFoundError || err instanceof SyntaxError) continue;
      throw err;
    }
  }
  if (records === 0) return undefined;
  return {
    secondsPerRecord: seconds / records,
    source: 'history',
    runIds,
    records,
    ...(bytes > 0 && { bytesPerRecord: bytes / records }),
    ...(lastRecords !== undefined && { lastRecords }),
  };
}

/** The estimate as lines for a person (stderr). */
export function describeEstimate(e: CostEstimate): string[] {
  const money = (x: number): string => formatMoney(x, e.currency);
  const lines = [
    `Estimate: ${e.recordsExact ? '' : 'about '}${e.records.toLocaleString('en-US')} records in ${e.shards} ` +
      `shard${e.shards === 1 ? '' : 's'}, up to ${e.maxRounds} retry round${e.maxRounds === 1 ? '' : 's'}`,
  ];
  const priced =
    e.instanceType === 'local'
      ? `local machine at ${money(e.hourlyPrice)}/hour`
      : `${e.instanceType} at ${money(e.hourlyPrice)}/hour Spot, ${money(e.onDemandHourlyPrice)}/hour On-Demand`;
  lines.push(`  price        ${priced} (prices ${e.prices.region}, ${e.prices.asOf})`);
  if (e.secondsPerRecord === undefined || e.cost === undefined) {
    lines.push(`  cost         unknown: ${e.note ?? 'no speed measured yet'}`);
  } else {
    const from =
      e.speedSource === 'history'
        ? `measured in the last ${e.historyRunIds?.length ?? 0} succeeded run(s)`
        : 'measured in this run';
    lines.push(`  speed        ${(e.secondsPerRecord * 1000).toPrecision(3)} ms per record (${from})`);
    const bound = e.instanceType === 'local' ? '' : ` (every shard On-Demand: ${money(e.onDemandCost ?? 0)})`;
    lines.push(`  cost         about ${money(e.cost)}${bound}`);
  }
  if (e.maxCost !== undefined) lines.push(`  spend cap    ${money(e.maxCost)} (run.maxCost)`);
  return lines;
}
