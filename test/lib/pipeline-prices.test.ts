/** The deploy configuration's `prices`: validated, and given to every pipeline that does not price the type itself. */
import { describe, expect, it } from '@jest/globals';
import { parseDeployConfig } from '../../lib/config.js';
import { withStackPrices } from '../../lib/pipeline-prices.js';
import type { Pipeline } from '../../lib/pipelines.js';
import { parseJobSpec } from '../../src/spec/load.js';

function pipeline(name: string, run: Record<string, unknown>): Pipeline {
  const spec = parseJobSpec({
    name,
    input: { uri: 's3://in-bucket/data/', format: 'jsonl' },
    model: {
      uri: 's3://model-bucket/m.onnx',
      inputs: [{ tensor: 'x', from: { columns: ['a'] } }],
      outputs: [{ tensor: 'y' }],
    },
    output: { uri: `s3://out-bucket/${name}/` },
    run,
  });
  return { name, file: `${name}.yaml`, spec, triggers: [], manifestObjects: [] };
}

describe('stack prices', () => {
  it('are validated in the deploy configuration, naming the key and the fix', () => {
    expect(parseDeployConfig({ prices: { 'g6.xlarge': { onDemand: 0.9 } } }).prices).toEqual({
      'g6.xlarge': { onDemand: 0.9 },
    });
    expect(() => parseDeployConfig({ prices: { g6: { onDemand: 0.9 } } })).toThrow(
      /prices[\s\S]*must be an EC2 instance type such as "g6.xlarge"/,
    );
  });

  it("apply to every pipeline, the pipeline's own price of a type winning", () => {
    const [plain, own] = withStackPrices(
      [pipeline('plain', {}), pipeline('own', { prices: { 'g6.xlarge': { onDemand: 2 } } })],
      { 'g6.xlarge': { onDemand: 1 }, 'g5.xlarge': { onDemand: 3 } },
    );
    expect(plain!.spec.run.prices).toEqual({ 'g6.xlarge': { onDemand: 1 }, 'g5.xlarge': { onDemand: 3 } });
    expect(own!.spec.run.prices).toEqual({ 'g6.xlarge': { onDemand: 2 }, 'g5.xlarge': { onDemand: 3 } });
    expect(withStackPrices([pipeline('plain', {})], undefined)[0]!.spec.run.prices).toBeUndefined();
  });
});
