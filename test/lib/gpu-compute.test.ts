/**
 * GpuCompute: Spot then On-Demand GPU environments that scale to zero on the NVIDIA AMI, a queue that cancels jobs
 * stuck RUNNABLE, the GPU and CPU job definitions with their retry strategy, hardened instances; one test per rule.
 */
import { Duration } from 'aws-cdk-lib';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import {
  DEFAULT_GPU_INSTANCE_TYPES,
  GpuCompute,
  type GpuComputeProps,
} from '../../lib/constructs/gpu-compute.js';
import { DETERMINISTIC_EXIT_CODE, WORKER_RETRY } from '../../src/runs/worker-retry.js';
import { synthConstruct } from './helpers.js';

/** A registry image: no Docker asset to stage in these tests. */
const IMAGE = ecs.ContainerImage.fromRegistry('public.ecr.aws/example/worker:1');

function compute(props: Partial<GpuComputeProps> = {}): Template {
  return synthConstruct((stack) => {
    const vpc = new ec2.Vpc(stack, 'Vpc', {
      natGateways: 0,
      subnetConfiguration: [{ name: 'w', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }],
    });
    new GpuCompute(stack, 'GpuCompute', { vpc, image: IMAGE, ...props });
  });
}

type Resource = { Properties: Record<string, unknown> };

describe('GpuCompute', () => {
  let template: Template;
  beforeAll(() => {
    template = compute({ cpu: {}, queueNamePrefix: 'batch-infer-test' });
  });

  it('has a Spot environment and an On-Demand one, both GPU, from zero, NVIDIA AL2023, optimal classes off', () => {
    const environments = Object.values(
      template.findResources('AWS::Batch::ComputeEnvironment'),
    ) as Resource[];
    const gpu = environments.filter((e) => JSON.stringify(e).includes('ECS_AL2023_NVIDIA'));
    expect(gpu.map((e) => (e.Properties.ComputeResources as { Type: string }).Type).sort()).toEqual([
      'EC2',
      'SPOT',
    ]);
    for (const env of gpu) {
      expect(env.Properties).toMatchObject({
        Type: 'managed',
        ComputeResources: {
          MinvCpus: 0,
          MaxvCpus: 64,
          InstanceTypes: [...DEFAULT_GPU_INSTANCE_TYPES],
          Ec2Configuration: [{ ImageType: 'ECS_AL2023_NVIDIA' }],
        },
      });
      // useOptimalInstanceClasses: false means "optimal" is not added to the instance types.
      expect(JSON.stringify(env)).not.toContain('optimal');
    }
  });

  it('uses SPOT_PRICE_CAPACITY_OPTIMIZED on Spot and BEST_FIT_PROGRESSIVE On-Demand', () => {
    template.hasResourceProperties('AWS::Batch::ComputeEnvironment', {
      ComputeResources: Match.objectLike({
        Type: 'SPOT',
        AllocationStrategy: 'SPOT_PRICE_CAPACITY_OPTIMIZED',
      }),
    });
    template.hasResourceProperties('AWS::Batch::ComputeEnvironment', {
      ComputeResources: Match.objectLike({
        Type: 'EC2',
        AllocationStrategy: 'BEST_FIT_PROGRESSIVE',
        Ec2Configuration: [{ ImageType: 'ECS_AL2023_NVIDIA' }],
      }),
    });
  });

  it('orders the GPU queue Spot first (1), On-Demand second (2)', () => {
    const queue = Object.values(
      template.findResources('AWS::Batch::JobQueue', {
        Properties: { JobQueueName: 'batch-infer-test-gpu' },
      }),
    )[0] as Resource;
    const order = queue.Properties.ComputeEnvironmentOrder as {
      ComputeEnvironment: { 'Fn::GetAtt': string[] };
      Order: number;
    }[];
    expect(
      order.map((o) => [o.ComputeEnvironment['Fn::GetAtt'][0]!.replace(/[0-9A-F]{8}$/, ''), o.Order]),
    ).toEqual([
      ['GpuComputeSpotComputeEnvironment', 1],
      ['GpuComputeOnDemandComputeEnvironment', 2],
    ]);
  });

  it('spans three GPU families by default (g6, g5, g4dn), single-GPU sizes that fit the default job', () => {
    const families = new Set(DEFAULT_GPU_INSTANCE_TYPES.map((t) => t.split('.')[0]));
    expect([...families]).toEqual(['g6', 'g5', 'g4dn']);
    expect(DEFAULT_GPU_INSTANCE_TYPES.every((t) => /\.(x|2x)large$/.test(t))).toBe(true);
  });

  /** A queue's environments as [logical id without hash, order]. */
  const queueOrder = (name: string): [string, number][] => {
    const queues = Object.values(
      template.findResources('AWS::Batch::JobQueue', { Properties: { JobQueueName: name } }),
    ) as Resource[];
    expectIn(queues, name).toHaveLength(1);
    const order = queues[0]!.Properties.ComputeEnvironmentOrder as {
      ComputeEnvironment: { 'Fn::GetAtt': string[] };
      Order: number;
    }[];
    return order.map((o) => [o.ComputeEnvironment['Fn::GetAtt'][0]!.replace(/[0-9A-F]{8}$/, ''), o.Order]);
  };

  it('has an On-Demand-only GPU queue for retry rounds', () => {
    expect(queueOrder('batch-infer-test-gpu-ondemand')).toEqual([
      ['GpuComputeOnDemandComputeEnvironment', 1],
    ]);
  });

  it('gives the CPU queue the same fallback: Spot then On-Demand, and an On-Demand-only queue', () => {
    expect(queueOrder('batch-infer-test-cpu')).toEqual([
      ['GpuComputeCpuComputeEnvironment', 1],
      ['GpuComputeCpuOnDemandComputeEnvironment', 2],
    ]);
    expect(queueOrder('batch-infer-test-cpu-ondemand')).toEqual([
      ['GpuComputeCpuOnDemandComputeEnvironment', 1],
    ]);
    const cpuEnvironments = Object.values(template.findResources('AWS::Batch::ComputeEnvironment'))
      .map((e) => (e as Resource).Properties.ComputeResources as { Type: string; AllocationStrategy: string })
      .filter((r) => !JSON.stringify(r).includes('ECS_AL2023_NVIDIA'));
    expect(cpuEnvironments.map((r) => [r.Type, r.AllocationStrategy]).sort()).toEqual([
      ['EC2', 'BEST_FIT_PROGRESSIVE'],
      ['SPOT', 'SPOT_PRICE_CAPACITY_OPTIMIZED'],
    ]);
  });

  it('cancels jobs RUNNABLE for too long, for every capacity reason: Spot queues sooner, so a retry round goes On-Demand', () => {
    const limits = (seconds: number) =>
      [
        'CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY',
        'MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE',
        'MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT',
      ].map((Reason) => ({ Action: 'CANCEL', MaxTimeSeconds: seconds, Reason, State: 'RUNNABLE' }));
    template.resourceCountIs('AWS::Batch::JobQueue', 4);
    for (const [name, seconds] of [
      ['batch-infer-test-gpu', 900],
      ['batch-infer-test-cpu', 900],
      ['batch-infer-test-gpu-ondemand', 3600],
      ['batch-infer-test-cpu-ondemand', 3600],
    ] as const) {
      const queue = Object.values(
        template.findResources('AWS::Batch::JobQueue', { Properties: { JobQueueName: name } }),
      )[0] as Resource;
      expectIn(queue.Properties.JobStateTimeLimitActions, name).toEqual(limits(seconds));
    }
    compute({ spotRunnableTimeout: Duration.minutes(20) }).hasResourceProperties('AWS::Batch::JobQueue', {
      ComputeEnvironmentOrder: Match.arrayWith([Match.objectLike({ Order: 2 })]),
      JobStateTimeLimitActions: Match.arrayWith([Match.objectLike({ MaxTimeSeconds: 1200 })]),
    });
  });

  it('defines the GPU job: 1 GPU, cpu and memory from props, CUDA provider, attempt timeout, retry strategy', () => {
    template.hasResourceProperties('AWS::Batch::JobDefinition', {
      Type: 'container',
      PlatformCapabilities: ['EC2'],
      Timeout: { AttemptDurationSeconds: 7200 },
      RetryStrategy: {
        Attempts: WORKER_RETRY.attempts,
        EvaluateOnExit: [
          // A deterministic failure first: not retried even when its host went away.
          { Action: 'EXIT', OnExitCode: String(DETERMINISTIC_EXIT_CODE) },
          { Action: 'RETRY', OnStatusReason: 'Host EC2*' },
          { Action: 'RETRY', OnReason: 'CannotPullContainerError:*' },
          { Action: 'EXIT', OnReason: '*' },
        ],
      },
      ContainerProperties: Match.objectLike({
        ResourceRequirements: [
          { Type: 'MEMORY', Value: '14336' },
          { Type: 'VCPU', Value: '4' },
          { Type: 'GPU', Value: '1' },
        ],
        Environment: [
          { Name: 'BATCH_INFER_EXECUTION_PROVIDERS', Value: 'cuda,cpu' },
          { Name: 'AWS_REGION', Value: { Ref: 'AWS::Region' } },
        ],
        User: '10001:10001',
      }),
    });
  });

  it('names the job definitions after the queue name prefix, so the state machines can be granted exactly them', () => {
    const names = Object.values(template.findResources('AWS::Batch::JobDefinition')).map(
      (d) => (d as Resource).Properties.JobDefinitionName,
    );
    expect(names.sort()).toEqual(['batch-infer-test-cpu-worker', 'batch-infer-test-worker']);
  });

  it('runs every worker container under an init process, so SIGTERM reaches node (not PID 1) and its exit status counts', () => {
    const definitions = Object.values(template.findResources('AWS::Batch::JobDefinition')) as Resource[];
    expect(definitions).toHaveLength(2);
    for (const d of definitions) {
      expect(d.Properties.ContainerProperties).toMatchObject({
        LinuxParameters: { InitProcessEnabled: true },
      });
    }
  });

  it("sets AWS_REGION in every worker job to the stack's region, not leaving it to the ECS agent's environment", () => {
    const definitions = Object.values(template.findResources('AWS::Batch::JobDefinition')) as Resource[];
    expect(definitions).toHaveLength(2);
    for (const d of definitions) {
      const environment = (d.Properties.ContainerProperties as { Environment: unknown[] }).Environment;
      expect(environment).toContainEqual({ Name: 'AWS_REGION', Value: { Ref: 'AWS::Region' } });
    }
  });

  it('keeps old job definition revisions registered across deploys (runs in flight still submit them)', () => {
    const definitions = Object.values(template.findResources('AWS::Batch::JobDefinition')) as (Resource & {
      DeletionPolicy?: string;
      UpdateReplacePolicy?: string;
    })[];
    expect(definitions).toHaveLength(2);
    for (const d of definitions) {
      expect(d.Properties.ResourceRetentionPolicy).toEqual({ SkipDeregisterOnUpdate: true });
      expect([d.DeletionPolicy, d.UpdateReplacePolicy]).toEqual(['Retain', 'Retain']);
    }
  });

  it('lets CloudFormation name the job definitions without a queue name prefix', () => {
    for (const d of Object.values(compute().findResources('AWS::Batch::JobDefinition'))) {
      expect((d as Resource).Properties).not.toHaveProperty('JobDefinitionName');
    }
  });

  it('defines the CPU job on its own queue: no GPU, CPU provider, the ECS_AL2023 AMI', () => {
    const cpuJob = Object.values(template.findResources('AWS::Batch::JobDefinition')).find((d) =>
      JSON.stringify(d).includes('"Value":"cpu"'),
    ) as Resource;
    expect(JSON.stringify(cpuJob)).not.toContain('"GPU"');
    expect(cpuJob.Properties).toMatchObject({
      ContainerProperties: expect.objectContaining({
        ResourceRequirements: expect.arrayContaining([
          { Type: 'VCPU', Value: '2' },
          { Type: 'MEMORY', Value: '4096' },
        ]) as unknown,
      }) as unknown,
    });
    template.hasResourceProperties('AWS::Batch::ComputeEnvironment', {
      ComputeResources: Match.objectLike({
        Ec2Configuration: [{ ImageType: 'ECS_AL2023' }],
        InstanceTypes: ['c6i', 'c7i', 'm6i', 'm7i'],
        MinvCpus: 0,
      }),
    });
    template.hasResourceProperties('AWS::Batch::JobQueue', { JobQueueName: 'batch-infer-test-cpu' });
  });

  it('hardens instances: IMDSv2 only with one hop, encrypted gp3 root volume', () => {
    template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
      LaunchTemplateData: Match.objectLike({
        MetadataOptions: { HttpTokens: 'required', HttpPutResponseHopLimit: 1 },
        BlockDeviceMappings: [
          {
            DeviceName: '/dev/xvda',
            Ebs: { Encrypted: true, VolumeType: 'gp3', VolumeSize: 100, DeleteOnTermination: true },
          },
        ],
      }),
    });
    const environments = Object.values(
      template.findResources('AWS::Batch::ComputeEnvironment'),
    ) as Resource[];
    for (const env of environments) expect(JSON.stringify(env.Properties)).toContain('LaunchTemplateId');
  });

  it('lets instances out on HTTPS only, and nothing in', () => {
    template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: 'Batch worker instances: HTTPS out to VPC endpoints, no inbound',
      SecurityGroupEgress: [
        {
          CidrIp: '0.0.0.0/0',
          FromPort: 443,
          ToPort: 443,
          IpProtocol: 'tcp',
          Description: 'HTTPS to VPC endpoints and the S3 gateway',
        },
      ],
      SecurityGroupIngress: Match.absent(),
    });
  });

  it('runs jobs as a job role assumed by ECS tasks, logging to a log group with retention', () => {
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [Match.objectLike({ Principal: { Service: 'ecs-tasks.amazonaws.com' } })],
      },
      Description: Match.stringLikeRegexp('Worker jobs'),
    });
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
  });

  it('with spot off, has one On-Demand environment and one queue per kind, which serves every round', () => {
    const onDemand = compute({ spot: false, cpu: {} });
    onDemand.resourceCountIs('AWS::Batch::ComputeEnvironment', 2);
    onDemand.allResourcesProperties('AWS::Batch::ComputeEnvironment', {
      ComputeResources: Match.objectLike({ Type: 'EC2' }),
    });
    onDemand.resourceCountIs('AWS::Batch::JobQueue', 2);
    onDemand.allResourcesProperties('AWS::Batch::JobQueue', {
      JobStateTimeLimitActions: Match.arrayWith([Match.objectLike({ MaxTimeSeconds: 3600 })]),
    });
  });

  it('passes instance families as families and sizes as types', () => {
    compute({ instanceTypes: ['g6', 'g5.xlarge'] }).hasResourceProperties('AWS::Batch::ComputeEnvironment', {
      ComputeResources: Match.objectLike({ InstanceTypes: ['g5.xlarge', 'g6'] }),
    });
  });
});

describe('GpuCompute rules', () => {
  it('rule: at least one instance type', () => {
    expect(() => compute({ instanceTypes: [] })).toThrow(/instanceTypes must name at least one/);
  });
  it('rule: maxvCpus is at least workerCpu', () => {
    expect(() => compute({ maxvCpus: 2, workerCpu: 4 })).toThrow(/maxvCpus \(2\) is below workerCpu \(4\)/);
  });
  it('rule: workerCpu is a whole number of vCPUs, at least 1', () => {
    expect(() => compute({ workerCpu: 0 })).toThrow(
      /GpuCompute workerCpu must be a whole number of vCPUs, at least 1, got 0/,
    );
    expect(() => compute({ workerCpu: 1.5 })).toThrow(
      /workerCpu must be a whole number of vCPUs, at least 1, got 1\.5/,
    );
  });
  it('rule: maxvCpus is a whole number of vCPUs, at least 1', () => {
    expect(() => compute({ maxvCpus: 0, workerCpu: 1 })).toThrow(
      /GpuCompute maxvCpus must be a whole number of vCPUs, at least 1, got 0/,
    );
    expect(() => compute({ maxvCpus: 8.5 })).toThrow(
      /GpuCompute maxvCpus must be a whole number of vCPUs, at least 1, got 8\.5/,
    );
  });
  it('rule: queueNamePrefix is 1-100 letters, digits, hyphens or underscores, starting with a letter or digit', () => {
    for (const bad of ['', '-batch', 'batch infer', 'batch.infer', 'x'.repeat(101)]) {
      expectIn(() => compute({ queueNamePrefix: bad }), JSON.stringify(bad)).toThrow(
        /GpuCompute queueNamePrefix must be 1-100 letters, digits, hyphens or underscores/,
      );
    }
    expect(() => compute({ queueNamePrefix: 'Batch_infer-2' })).not.toThrow();
  });
  it('rule: the CPU workerCpu and maxvCpus are whole numbers of vCPUs, at least 1', () => {
    expect(() => compute({ cpu: { workerCpu: 0 } })).toThrow(
      /GpuCompute cpu\.workerCpu must be a whole number/,
    );
    expect(() => compute({ cpu: { maxvCpus: 2.5 } })).toThrow(
      /GpuCompute cpu\.maxvCpus must be a whole number/,
    );
  });
  it('rule: workerMemoryMiB is at least 1024', () => {
    expect(() => compute({ workerMemoryMiB: 512 })).toThrow(/workerMemoryMiB must be at least 1024/);
  });
  it('rule: attemptTimeout is at least 60 seconds', () => {
    expect(() => compute({ attemptTimeout: Duration.seconds(30) })).toThrow(
      /attemptTimeout must be at least 60 seconds/,
    );
  });
  it('rule: runnableTimeout is within Batch bounds (10 minutes to 24 hours)', () => {
    expect(() => compute({ runnableTimeout: Duration.minutes(5) })).toThrow(
      /runnableTimeout must be from 10 minutes to 24 hours/,
    );
    expect(() => compute({ runnableTimeout: Duration.hours(25) })).toThrow(/runnableTimeout/);
  });
  it('rule: spotRunnableTimeout is within Batch bounds (10 minutes to 24 hours)', () => {
    expect(() => compute({ spotRunnableTimeout: Duration.minutes(9) })).toThrow(
      /GpuCompute spotRunnableTimeout must be from 10 minutes to 24 hours \(Batch's bounds\), got 540 seconds/,
    );
  });
  it('rule: the CPU queue has at least one instance type', () => {
    expect(() => compute({ cpu: { instanceTypes: [] } })).toThrow(
      /cpu\.instanceTypes must name at least one/,
    );
  });
  it('rule: the CPU maxvCpus is at least its workerCpu', () => {
    expect(() => compute({ cpu: { maxvCpus: 1, workerCpu: 2 } })).toThrow(
      /cpu\.maxvCpus \(1\) is below cpu\.workerCpu \(2\)/,
    );
  });
});
