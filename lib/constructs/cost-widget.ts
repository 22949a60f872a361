/**
 * The dashboard's cost widget of a pipeline: what each run cost (the RunCost metric Finalize emits from
 * manifest.cost.total, src/cost), one point per run, in the price table's currency.
 */
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { RUN_METRICS } from '../../src/runtime/metrics.js';
import { DEFAULT_PRICE_TABLE } from '../../src/cost/prices.js';

export function runCostWidget(
  pipeline: string,
  runMetric: (name: string, pipeline: string, label: string) => cloudwatch.Metric,
): cloudwatch.GraphWidget {
  const currency = DEFAULT_PRICE_TABLE.currency;
  return new cloudwatch.GraphWidget({
    title: `${pipeline}: cost per run (${currency})`,
    width: 6,
    left: [runMetric(RUN_METRICS.cost, pipeline, `cost (${currency})`)],
    leftYAxis: { label: currency, min: 0, showUnits: false },
  });
}
