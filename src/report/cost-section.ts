/**
 * The run report's cost section: what the run's completed shards cost (manifest.cost, src/cost/cost.ts), by Spot /
 * On-Demand, round and instance type, the price table it was priced with, and the spend cap's stop when it fired.
 */
import { formatMoney } from '../cost/prices.js';
import type { Manifest } from '../results/manifest.js';
import { esc } from './run-report.js';

const QUEUE = { first: 'first round (Spot, then On-Demand)', 'on-demand': 'retry (On-Demand)' } as const;

export function costSection(m: Pick<Manifest, 'cost'>): string {
  const cost = m.cost;
  if (!cost) {
    return '<section id="cost"><h2>Cost</h2><p>Not recorded: this manifest was written before runs were priced.</p></section>';
  }
  const money = (x: number): string => formatMoney(x, cost.currency);
  const table = (
    head: string,
    rows: readonly (readonly [string, { shards: number; seconds: number; cost: number }])[],
  ): string =>
    `<table class="cost-table"><thead><tr><th>${esc(head)}</th><th>shards</th><th>shard seconds</th><th>cost</th></tr></thead><tbody>` +
    rows
      .map(
        ([name, part]) =>
          `<tr><td>${esc(name)}</td><td>${part.shards}</td><td>${part.seconds.toFixed(1)}</td><td>${esc(money(part.cost))}</td></tr>`,
      )
      .join('') +
    '</tbody></table>';
  const parts = [
    `<p class="cost-total" data-cost="${cost.total}" data-currency="${esc(cost.currency)}"><strong>${esc(money(cost.total))}</strong> ` +
      `for ${cost.shardSeconds.toFixed(1)} shard seconds (completed shards; lost attempts and idle instances are not counted).</p>`,
  ];
  if (cost.spendCap) parts.push(`<p class="cost-cap">${esc(cost.spendCap.message)}</p>`);
  parts.push(
    table(
      'Spot / On-Demand',
      Object.entries(cost.byLifecycle).filter((e) => e[1] !== undefined),
    ),
  );
  parts.push(
    table(
      'Round',
      cost.byRound.map((r) => [`round ${r.round}: ${QUEUE[r.queue]}`, r] as const),
    ),
  );
  parts.push(table('Instance type', Object.entries(cost.byInstanceType)));
  if (cost.assumed) {
    parts.push(
      `<p>${cost.assumed.shards} shard(s) ran on an instance the price table does not price (or could not name): priced as ${esc(cost.assumed.referenceType)}.</p>`,
    );
  }
  parts.push(
    `<p class="cost-prices">Prices: ${esc(cost.prices.source)} (${esc(cost.prices.region)}, ${esc(cost.prices.asOf)}). An estimate of EC2 compute, not the bill.</p>`,
  );
  return `<section id="cost"><h2>Cost</h2>${parts.join('')}</section>`;
}
