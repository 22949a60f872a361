/**
 * The deploy configuration read from the `batchInfer` context key.
 */
import { App } from 'aws-cdk-lib';
import { describe, expect, it } from 'vitest';
import { glueDatabaseName, loadDeployConfig, parseDeployConfig, stackName } from '../../lib/config.js';

describe('deploy config', () => {
  it('defaults every key when the context key is absent', () => {
    expect(parseDeployConfig(undefined)).toEqual({
      stage: 'dev',
      gpuInstanceTypes: ['g5.xlarge', 'g5.2xlarge', 'g6.xlarge', 'g6.2xlarge'],
      maxvCpus: 64,
      spot: true,
      workerCpu: 4,
      workerMemoryMiB: 14336,
    });
  });

  it('reads the batchInfer context key of the app', () => {
    const app = new App({
      context: { batchInfer: { stage: 'prod', spot: false, gpuInstanceTypes: ['g6'] } },
    });
    expect(loadDeployConfig(app)).toMatchObject({ stage: 'prod', spot: false, gpuInstanceTypes: ['g6'] });
  });

  it('accepts the JSON text that `cdk -c batchInfer=...` passes', () => {
    expect(parseDeployConfig('{"maxvCpus": 256}').maxvCpus).toBe(256);
  });

  it('names the key, the value and the fix of an invalid value', () => {
    expect(() => parseDeployConfig({ maxvCpus: 'lots' })).toThrow(
      /batchInfer\.maxvCpus: got "lots"; .*Fix: use a whole number of vCPUs/,
    );
  });

  it('rejects instance types without an NVIDIA GPU supported by the AMI, naming the element', () => {
    expect(() => parseDeployConfig({ gpuInstanceTypes: ['g5.xlarge', 'm5.large'] })).toThrow(
      /batchInfer\.gpuInstanceTypes\.1: got "m5\.large".*Fix: list x86_64 NVIDIA GPU/,
    );
    expect(() => parseDeployConfig({ gpuInstanceTypes: ['p3.2xlarge'] })).toThrow(/gpuInstanceTypes\.0/);
    expect(() => parseDeployConfig({ gpuInstanceTypes: [] })).toThrow(/gpuInstanceTypes: got \[\]/);
  });

  it('rejects a stage that cannot name a stack and a Glue database', () => {
    expect(() => parseDeployConfig({ stage: 'Prod_1' })).toThrow(/batchInfer\.stage: got "Prod_1".*Fix:/);
  });

  it('rejects maxvCpus below workerCpu: no job could start', () => {
    expect(() => parseDeployConfig({ maxvCpus: 2, workerCpu: 4 })).toThrow(
      /batchInfer\.maxvCpus: got 2; is below/,
    );
  });

  it('rejects unknown keys, listing the known ones', () => {
    expect(() => parseDeployConfig({ spotty: true })).toThrow(
      /unknown key\(s\) spotty.*stage, gpuInstanceTypes/,
    );
  });

  it('rejects context text that is not JSON', () => {
    expect(() => parseDeployConfig('stage=prod')).toThrow(/not JSON.*-c batchInfer=/);
  });

  it('lists every problem at once', () => {
    let message = '';
    try {
      parseDeployConfig({ spot: 'yes', workerCpu: 0 });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/batchInfer\.spot/);
    expect(message).toMatch(/batchInfer\.workerCpu/);
  });

  it('derives the stack and Glue database names from the stage', () => {
    expect(stackName({ stage: 'prod-eu' })).toBe('BatchInfer-prod-eu');
    expect(glueDatabaseName({ stage: 'prod-eu' })).toBe('batch_infer_prod_eu');
  });
});
