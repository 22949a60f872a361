/**
 * The price table: what an hour of each instance type the compute environments may launch costs, On-Demand and
 * typical Spot. Runs are priced from it before they start (estimate.ts), after they end (cost.ts) and while they
 * run (the spend cap, spend-cap.ts).
 *
 * The defaults below are a snapshot, not a live price feed: a run's cost is an estimate of the EC2 compute its shards
 * used, never the bill. A pipeline overrides or adds prices with `run.prices` in its spec (its own region, a Savings
 * Plan rate, another currency), and a deployment with `prices` in its deploy configuration (applied to every
 * pipeline that does not set the type itself).
 */
import { z } from 'zod';

/** Whether an instance was Spot, On-Demand, a laptop (local runs), or could not be told. */
export const LIFECYCLES = ['spot', 'on-demand', 'local', 'unknown'] as const;
export type Lifecycle = (typeof LIFECYCLES)[number];

/** An EC2 instance type name (`g6.xlarge`), or `local` for the machine of a local run. */
export const INSTANCE_TYPE_NAME = /^(local|[a-z][a-z0-9-]*\.[a-z0-9-]+)$/;

/** Hourly prices of one instance type. */
export const instancePriceSchema = z.strictObject({
  /** Price of an On-Demand hour. */
  onDemand: z.number().nonnegative('must be a price per hour, 0 or more'),
  /** A typical Spot hour; absent: SPOT_SHARE_OF_ON_DEMAND of the On-Demand price. */
  spot: z.number().nonnegative('must be a price per hour, 0 or more').optional(),
});
export type InstancePrice = z.infer<typeof instancePriceSchema>;

/** `run.prices` of a spec and `prices` of a deploy configuration: instance type -> hourly prices. */
export const priceOverridesSchema = z.record(z.string(), instancePriceSchema).superRefine((prices, ctx) => {
  for (const type of Object.keys(prices)) {
    if (INSTANCE_TYPE_NAME.test(type)) continue;
    ctx.addIssue({
      code: 'custom',
      path: [type],
      message: `"${type}" must be an EC2 instance type such as "g6.xlarge" (family.size), or "local" for local runs`,
    });
  }
});
export type PriceOverrides = z.infer<typeof priceOverridesSchema>;

export interface PriceTable {
  /** The currency of every price here, of `run.maxCost` and of every cost the product reports. */
  readonly currency: string;
  readonly region: string;
  /** When the prices were taken. */
  readonly asOf: string;
  /** Where they were taken from. */
  readonly source: string;
  readonly instances: Readonly<Record<string, InstancePrice>>;
}

/**
 * When a type has no Spot price of its own. Spot prices move with supply and demand (every few minutes, per zone);
 * the Spot Instance Advisor shows savings of roughly 60-70% for these families in us-east-1, so 0.4 errs on the
 * expensive side. An assumption, not a measurement: set `spot` per type where it matters.
 */
export const SPOT_SHARE_OF_ON_DEMAND = 0.4;

/**
 * The default price table: Amazon EC2 On-Demand Linux prices, US East (N. Virginia), per instance-hour, in USD.
 *
 * Source: the public EC2 On-Demand price list (https://aws.amazon.com/ec2/pricing/on-demand/, and the Price List
 * API's AmazonEC2 offer for us-east-1). The author could not reach the web when writing this table (2026-12-06):
 * the g5.xlarge price ($1.006) matches a published comparison dated 2026-06-17 (factualminds.com, "Amazon EC2
 * On-Demand Pricing ... (2026)"); the others are the list prices of these types as published since their launch
 * and were not re-checked online on that date. Spot is SPOT_SHARE_OF_ON_DEMAND of On-Demand for every type (see
 * there). Check https://aws.amazon.com/ec2/pricing/on-demand/ for your region and override with `run.prices`.
 *
 * `local` prices the machine of a local run: 0 (a laptop bills nothing by the hour).
 *
 * Lambda, Step Functions, S3 requests and CloudWatch are not priced: a run's Lambda time (Plan, Reconcile, Finalize:
 * seconds at 1-3 GB) and its state transitions (about ten per round) cost well under a cent, against dollars of
 * instance time (docs/operations.md, "What a run costs").
 */
export const DEFAULT_PRICE_TABLE: PriceTable = {
  currency: 'USD',
  region: 'us-east-1',
  asOf: '2026-12-06',
  source:
    'Amazon EC2 On-Demand Linux prices, us-east-1 (aws.amazon.com/ec2/pricing/on-demand); Spot assumed 40% of On-Demand',
  instances: {
    // GPU queue (DEFAULT_GPU_INSTANCE_TYPES in lib/config.ts): one GPU each.
    'g6.xlarge': { onDemand: 0.8048 },
    'g6.2xlarge': { onDemand: 0.9776 },
    'g5.xlarge': { onDemand: 1.006 },
    'g5.2xlarge': { onDemand: 1.212 },
    'g4dn.xlarge': { onDemand: 0.526 },
    'g4dn.2xlarge': { onDemand: 0.752 },
    // CPU queue (families c6i, c7i, m6i, m7i by default): the sizes a 2-vCPU worker is placed on.
    'c6i.large': { onDemand: 0.085 },
    'c6i.xlarge': { onDemand: 0.17 },
    'c6i.2xlarge': { onDemand: 0.34 },
    'c7i.large': { onDemand: 0.08925 },
    'c7i.xlarge': { onDemand: 0.1785 },
    'c7i.2xlarge': { onDemand: 0.357 },
    'm6i.large': { onDemand: 0.096 },
    'm6i.xlarge': { onDemand: 0.192 },
    'm6i.2xlarge': { onDemand: 0.384 },
    'm7i.large': { onDemand: 0.1008 },
    'm7i.xlarge': { onDemand: 0.2016 },
    'm7i.2xlarge': { onDemand: 0.4032 },
    local: { onDemand: 0, spot: 0 },
  },
};

/** The instance types each kind of compute may run on by default; the dearest prices an unidentified instance. */
export const DEFAULT_TYPES_BY_COMPUTE: Readonly<Record<'gpu' | 'cpu', readonly string[]>> = {
  gpu: ['g6.xlarge', 'g6.2xlarge', 'g5.xlarge', 'g5.2xlarge', 'g4dn.xlarge', 'g4dn.2xlarge'],
  cpu: [
    'c6i.large',
    'c6i.xlarge',
    'c6i.2xlarge',
    'c7i.large',
    'c7i.xlarge',
    'c7i.2xlarge',
    'm6i.large',
    'm6i.xlarge',
    'm6i.2xlarge',
    'm7i.large',
    'm7i.xlarge',
    'm7i.2xlarge',
  ],
};

/** The default table with `overrides` (a spec's `run.prices`) applied on top, type by type. */
export function priceTableOf(overrides?: PriceOverrides, base: PriceTable = DEFAULT_PRICE_TABLE): PriceTable {
  if (!overrides || Object.keys(overrides).length === 0) return base;
  return {
    ...base,
    source: `${base.source}; overridden for ${Object.keys(overrides).sort().join(', ')}`,
    instances: { ...base.instances, ...overrides },
  };
}

/** One hour of `type` as `lifecycle`; undefined when the table has no price for the type. */
export function hourlyPrice(table: PriceTable, type: string, lifecycle: Lifecycle): number | undefined {
  const price = table.instances[type];
  if (!price) return undefined;
  if (lifecycle === 'spot') return price.spot ?? price.onDemand * SPOT_SHARE_OF_ON_DEMAND;
  return price.onDemand;
}

/**
 * The instance type a run is priced at when the instance is not known (an estimate, or a worker that could not read
 * its instance type): the dearest default type of the compute kind that the table prices, so that a spend cap errs
 * on the safe side. Local runs: `local`.
 */
export function referenceInstanceType(table: PriceTable, compute: 'gpu' | 'cpu', local: boolean): string {
  if (local) return 'local';
  let best: string | undefined;
  let bestPrice = -1;
  for (const type of DEFAULT_TYPES_BY_COMPUTE[compute]) {
    const price = table.instances[type]?.onDemand;
    if (price !== undefined && price > bestPrice) {
      best = type;
      bestPrice = price;
    }
  }
  return best ?? DEFAULT_TYPES_BY_COMPUTE[compute][0]!;
}

/** `1.2345` -> `$1.23`, small amounts with more digits (`$0.0042`); other currencies as `1.23 EUR`. */
export function formatMoney(amount: number, currency: string): string {
  const digits = amount !== 0 && Math.abs(amount) < 0.1 ? 4 : 2;
  const text = amount.toFixed(digits);
  return currency === 'USD' ? `$${text}` : `${text} ${currency}`;
}
