/**
 * The deploy configuration read from the `batchInfer` context key: defaults, the three ways to pass it, and one test
 * per validation rule, each checking that the message names the key, the value and the fix.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { glueDatabaseName, loadDeployConfig, parseDeployConfig, stackName } from '../../lib/config.js';
import { REPO_ROOT } from '../../lib/paths.js';

/** A construct scope as the config loader sees one: its context. */
function scope(context: Record<string, unknown>): { node: { tryGetContext(key: string): unknown } } {
  return { node: { tryGetContext: (key: string) => context[key] } };
}

function problem(raw: unknown): string {
  try {
    parseDeployConfig(raw);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected the configuration to be rejected');
}

describe('deploy config', () => {
  it('defaults every key when the context key is absent', () => {
    expect(parseDeployConfig(undefined)).toEqual({
      stage: 'dev',
      pipelinesDir: 'pipelines',
      gpuInstanceTypes: ['g6.xlarge', 'g6.2xlarge', 'g5.xlarge', 'g5.2xlarge', 'g4dn.xlarge', 'g4dn.2xlarge'],
      maxvCpus: 64,
      spot: true,
      workerCpu: 4,
      workerMemoryMiB: 14336,
      cpuInstanceTypes: ['c6i', 'c7i', 'm6i', 'm7i'],
      cpuMaxvCpus: 32,
      cpuWorkerCpu: 2,
      cpuWorkerMemoryMiB: 4096,
      attemptTimeoutMinutes: 120,
      runnableTimeoutMinutes: 60,
      spotRunnableTimeoutMinutes: 15,
      runTimeoutHours: 24,
      vpc: { create: { maxAzs: 2, cidr: '10.64.0.0/16', isolated: false } },
      removalPolicy: 'retain',
      logRetentionDays: 30,
      tempDataExpirationDays: 7,
      modelPackageGroups: [],
      modelArtifactUris: ['s3://${dataBucket}/models/'],
      driftThreshold: 0.2,
      queueDepthMetrics: true,
      glueDatabase: {},
    });
  });

  it('reads the batchInfer context key of the app, pipelinesDir relative to the repository', () => {
    const app = scope({ batchInfer: { stage: 'prod', spot: false, gpuInstanceTypes: ['g6'] } });
    const loaded = loadDeployConfig(app);
    expect(loaded.config).toMatchObject({ stage: 'prod', spot: false, gpuInstanceTypes: ['g6'] });
    expect(loaded.pipelinesDir).toBe(path.join(REPO_ROOT, 'pipelines'));
  });

  it('accepts the JSON text that `cdk -c batchInfer=...` passes', () => {
    expect(parseDeployConfig('{"maxvCpus": 256}').maxvCpus).toBe(256);
  });

  it('reads a YAML config file named by the context, pipelinesDir relative to that file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'batch-infer-config-'));
    try {
      const file = path.join(dir, 'stack.yaml');
      fs.writeFileSync(file, 'stage: prod\npipelinesDir: jobs\nalarmEmail: oncall@example.com\n');
      const loaded = loadDeployConfig(scope({ batchInfer: file }));
      expect(loaded.config).toMatchObject({ stage: 'prod', alarmEmail: 'oncall@example.com' });
      expect(loaded.pipelinesDir).toBe(path.join(dir, 'jobs'));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the file of an invalid or missing config file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'batch-infer-config-'));
    try {
      const file = path.join(dir, 'stack.yaml');
      fs.writeFileSync(file, 'stage: Prod\n');
      expect(() => loadDeployConfig(scope({ batchInfer: file }))).toThrow(
        new RegExp(`Invalid deploy configuration \\(${file}\\):\\n  batchInfer\\.stage: got "Prod"`),
      );
      expect(() => loadDeployConfig(scope({ batchInfer: path.join(dir, 'nope.yaml') }))).toThrow(
        /Cannot read the deploy configuration file .*nope\.yaml: ENOENT/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects context text that is neither JSON nor a file path', () => {
    expect(problem('stage=prod')).toMatch(/neither JSON nor a \.yaml\/\.json file path.*-c batchInfer=/);
  });

  it('rejects unknown keys, listing the known ones', () => {
    expect(problem({ spotty: true })).toMatch(
      /unknown key\(s\) spotty.*stage, pipelinesDir, gpuInstanceTypes/,
    );
  });

  it('lists every problem at once', () => {
    const message = problem({ spot: 'yes', workerCpu: 0 });
    expect(message).toMatch(/batchInfer\.spot/);
    expect(message).toMatch(/batchInfer\.workerCpu/);
  });

  describe('one rule per key', () => {
    it.each([
      [
        'stage: lowercase, starting with a letter',
        { stage: 'Prod_1' },
        /batchInfer\.stage: got "Prod_1".*Fix: use 1-16 lowercase/,
      ],
      [
        'maxvCpus: a whole number',
        { maxvCpus: 'lots' },
        /batchInfer\.maxvCpus: got "lots"; .*Fix: use a whole number of vCPUs/,
      ],
      [
        'maxvCpus: at least workerCpu',
        { maxvCpus: 2, workerCpu: 4 },
        /batchInfer\.maxvCpus: got 2; is below workerCpu/,
      ],
      [
        'gpuInstanceTypes: NVIDIA types the AMI supports',
        { gpuInstanceTypes: ['g5.xlarge', 'm5.large'] },
        /batchInfer\.gpuInstanceTypes\.1: got "m5\.large".*Fix: list x86_64 NVIDIA GPU/,
      ],
      ['gpuInstanceTypes: not Volta p3', { gpuInstanceTypes: ['p3.2xlarge'] }, /gpuInstanceTypes\.0/],
      ['gpuInstanceTypes: at least one', { gpuInstanceTypes: [] }, /gpuInstanceTypes: got \[\]/],
      [
        'spot: a boolean',
        { spot: 'yes' },
        /batchInfer\.spot: got "yes".*Fix: use true \(first round on Spot, retry rounds On-Demand/,
      ],
      ['workerMemoryMiB: at least 1024', { workerMemoryMiB: 512 }, /batchInfer\.workerMemoryMiB: got 512/],
      [
        'cpuInstanceTypes: x86_64 c/m/r families',
        { cpuInstanceTypes: ['c7g'] },
        /batchInfer\.cpuInstanceTypes\.0: got "c7g".*Fix: list x86_64/,
      ],
      [
        'cpuMaxvCpus: at least cpuWorkerCpu',
        { cpuMaxvCpus: 1, cpuWorkerCpu: 2 },
        /batchInfer\.cpuMaxvCpus: got 1; is below cpuWorkerCpu/,
      ],
      [
        'attemptTimeoutMinutes: 1 to 20160',
        { attemptTimeoutMinutes: 0 },
        /batchInfer\.attemptTimeoutMinutes: got 0/,
      ],
      [
        'runnableTimeoutMinutes: Batch bounds, 10 to 1440',
        { runnableTimeoutMinutes: 5 },
        /batchInfer\.runnableTimeoutMinutes: got 5.*how long a job may wait RUNNABLE/,
      ],
      [
        'spotRunnableTimeoutMinutes: Batch bounds, 10 to 1440',
        { spotRunnableTimeoutMinutes: 1441 },
        /batchInfer\.spotRunnableTimeoutMinutes: got 1441.*wait for Spot before the next round goes On-Demand/,
      ],
      ['runTimeoutHours: 1 to 8760', { runTimeoutHours: 9000 }, /batchInfer\.runTimeoutHours: got 9000/],
      [
        'alarmEmail: an email address',
        { alarmEmail: 'on-call' },
        /batchInfer\.alarmEmail: got "on-call".*Fix: use an email address/,
      ],
      [
        'vpc: create or import, not both',
        { vpc: {} },
        /batchInfer\.vpc: got \{\}; must have exactly one of "create" and "import"/,
      ],
      [
        'vpc.create.maxAzs: at least 2',
        { vpc: { create: { maxAzs: 1 } } },
        /batchInfer\.vpc\.create\.maxAzs: got 1; must be at least 2/,
      ],
      [
        'vpc.create.isolated: a boolean',
        { vpc: { create: { isolated: 'yes' } } },
        /batchInfer\.vpc\.create\.isolated: got "yes"/,
      ],
      [
        'vpc.create.cidr: an IPv4 block',
        { vpc: { create: { cidr: '10.0.0.0/8' } } },
        /batchInfer\.vpc\.create\.cidr: got "10\.0\.0\.0\/8"/,
      ],
      [
        'vpc.import: one subnet per zone',
        {
          vpc: {
            import: {
              vpcId: 'vpc-0123456789abcdef0',
              cidr: '10.0.0.0/16',
              availabilityZones: ['a', 'b'],
              subnetIds: ['subnet-0123456789abcdef0'],
              routeTableIds: ['rtb-0123456789abcdef0'],
            },
          },
        },
        /batchInfer\.vpc\.import\.subnetIds: .*lists 1 subnet\(s\) for 2 availability zone/,
      ],
      [
        'vpc.import: ids have their shape',
        {
          vpc: {
            import: {
              vpcId: 'my-vpc',
              cidr: '10.0.0.0/16',
              availabilityZones: ['a', 'b'],
              subnetIds: [],
              routeTableIds: [],
            },
          },
        },
        /batchInfer\.vpc\.import\.vpcId: got "my-vpc"; must be a VPC id/,
      ],
      [
        'removalPolicy: retain or destroy',
        { removalPolicy: 'delete' },
        /batchInfer\.removalPolicy: got "delete".*Fix: use "retain"/,
      ],
      [
        'logRetentionDays: a CloudWatch retention',
        { logRetentionDays: 10 },
        /batchInfer\.logRetentionDays: got 10; is not a CloudWatch Logs retention.*Fix: use one of 1, 3, 5/,
      ],
      [
        'tempDataExpirationDays: 1 to 365',
        { tempDataExpirationDays: 0 },
        /batchInfer\.tempDataExpirationDays: got 0/,
      ],
      [
        'dataBucketName: a bucket name',
        { dataBucketName: 'My_Bucket' },
        /batchInfer\.dataBucketName: got "My_Bucket"; is not a valid S3 bucket name/,
      ],
      [
        'modelPackageGroups: SageMaker group names',
        { modelPackageGroups: ['bad name'] },
        /batchInfer\.modelPackageGroups\.0: got "bad name"/,
      ],
      [
        'modelArtifactUris: s3:// prefixes',
        { modelArtifactUris: ['s3://bucket/models'] },
        /batchInfer\.modelArtifactUris\.0: got "s3:\/\/bucket\/models"; must be an s3:\/\/ prefix ending in "\/"/,
      ],
      ['driftThreshold: above 0', { driftThreshold: 0 }, /batchInfer\.driftThreshold: got 0/],
      [
        'queueDepthMetrics: a boolean',
        { queueDepthMetrics: 'on' },
        /batchInfer\.queueDepthMetrics: got "on"/,
      ],
    ])('%s', (_rule, raw, message) => {
      expect(problem(raw)).toMatch(message);
    });
  });

  it('accepts an imported VPC and an imported data bucket', () => {
    const config = parseDeployConfig({
      dataBucketName: 'corp-ml-data',
      vpc: {
        import: {
          vpcId: 'vpc-0123456789abcdef0',
          cidr: '10.1.0.0/16',
          availabilityZones: ['eu-west-1a', 'eu-west-1b'],
          subnetIds: ['subnet-0123456789abcdef0', 'subnet-0123456789abcdef1'],
          routeTableIds: ['rtb-0123456789abcdef0', 'rtb-0123456789abcdef1'],
        },
      },
    });
    expect(config.vpc.import?.endpoints).toBe(true);
    expect(config.dataBucketName).toBe('corp-ml-data');
  });

  it('takes an existing Glue database by its Glue name, and Lake Formation locations as S3 ARNs', () => {
    const config = parseDeployConfig({
      glueDatabase: { existing: 'batch_infer_prod' },
      lakeFormation: { dataLocationArns: ['arn:aws:s3:::corp-data/predictions'] },
    });
    expect(config.glueDatabase).toEqual({ existing: 'batch_infer_prod' });
    expect(config.lakeFormation).toEqual({ dataLocationArns: ['arn:aws:s3:::corp-data/predictions'] });
    expect(parseDeployConfig({ lakeFormation: {} }).lakeFormation).toEqual({ dataLocationArns: [] });
    expect(problem({ glueDatabase: { existing: 'Batch-Infer' } })).toContain(
      'batchInfer.glueDatabase.existing: got "Batch-Infer"; is not a Glue database name',
    );
    expect(problem({ lakeFormation: { dataLocationArns: ['s3://corp-data/'] } })).toContain(
      'batchInfer.lakeFormation.dataLocationArns.0: got "s3://corp-data/"; is not an S3 bucket or prefix ARN',
    );
  });

  it('derives the stack and Glue database names from the stage', () => {
    expect(stackName({ stage: 'prod-eu' })).toBe('BatchInfer-prod-eu');
    expect(glueDatabaseName({ stage: 'prod-eu' })).toBe('batch_infer_prod_eu');
  });
});
