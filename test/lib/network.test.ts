/**
 * Network: public worker subnets without NAT and without interface endpoints by default (nothing billed by the hour);
 * isolated worker subnets with the S3 gateway endpoint and the interface endpoints workers need as an option; flow
 * logs; or an imported VPC. One test per rule.
 */
import type { Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { Network, WORKER_INTERFACE_ENDPOINTS, type NetworkProps } from '../../lib/constructs/network.js';
import { synthConstruct } from './helpers.js';

const ENV = { account: '123456789012', region: 'eu-west-1' };

function network(props: NetworkProps = {}): Template {
  return synthConstruct((stack) => new Network(stack, 'Network', props), { env: ENV });
}

function importedVpc(stack: Stack): ec2.IVpc {
  return ec2.Vpc.fromVpcAttributes(stack, 'Imported', {
    vpcId: 'vpc-0123456789abcdef0',
    vpcCidrBlock: '10.1.0.0/16',
    availabilityZones: ['eu-west-1a', 'eu-west-1b'],
    privateSubnetIds: ['subnet-0123456789abcdef0', 'subnet-0123456789abcdef1'],
    privateSubnetRouteTableIds: ['rtb-0123456789abcdef0', 'rtb-0123456789abcdef1'],
  });
}

describe('Network (new VPC, default: public subnets)', () => {
  let template: Template;
  beforeAll(() => {
    template = network();
  });

  it('has public subnets in two zones behind an internet gateway, addresses on launch, and no NAT', () => {
    template.resourceCountIs('AWS::EC2::Subnet', 2);
    template.resourceCountIs('AWS::EC2::InternetGateway', 1);
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.allResourcesProperties('AWS::EC2::Subnet', { MapPublicIpOnLaunch: true });
    template.hasResourceProperties('AWS::EC2::Route', {
      DestinationCidrBlock: '0.0.0.0/0',
      GatewayId: Match.anyValue(),
    });
  });

  it('has the free S3 gateway endpoint and no interface endpoint', () => {
    template.resourceCountIs('AWS::EC2::VPCEndpoint', 1);
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Gateway',
      RouteTableIds: Match.arrayWith([{ Ref: Match.stringLikeRegexp('workersSubnet1RouteTable') }]),
    });
    template.resourceCountIs('AWS::EC2::SecurityGroup', 0);
  });

  it('logs all traffic to a log group with retention', () => {
    template.hasResourceProperties('AWS::EC2::FlowLog', { TrafficType: 'ALL' });
  });

  it('creates the interface endpoints in public subnets when asked', () => {
    const withEndpoints = network({ createEndpoints: true });
    withEndpoints.resourceCountIs(
      'AWS::EC2::VPCEndpoint',
      1 + Object.keys(WORKER_INTERFACE_ENDPOINTS).length,
    );
    withEndpoints.allResourcesProperties('AWS::EC2::Subnet', { MapPublicIpOnLaunch: true });
  });
});

describe('Network (new VPC, isolated)', () => {
  let template: Template;
  beforeAll(() => {
    template = network({ isolated: true });
  });

  it('has isolated subnets in two zones and no route out: no internet gateway, no NAT', () => {
    template.hasResourceProperties('AWS::EC2::VPC', { CidrBlock: '10.64.0.0/16' });
    template.resourceCountIs('AWS::EC2::Subnet', 2);
    template.resourceCountIs('AWS::EC2::InternetGateway', 0);
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::EC2::Route', 0);
    template.allResourcesProperties('AWS::EC2::Subnet', { MapPublicIpOnLaunch: false });
  });

  it('has an S3 gateway endpoint on the worker subnets route tables', () => {
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Gateway',
      ServiceName: Match.objectLike({
        'Fn::Join': ['', Match.arrayWith([Match.stringLikeRegexp('\\.s3$')])],
      }),
      RouteTableIds: Match.arrayWith([{ Ref: Match.stringLikeRegexp('workersSubnet1RouteTable') }]),
    });
  });

  it('has interface endpoints with private DNS for ECR (api, dkr), ECS (3), CloudWatch Logs and STS', () => {
    const endpoints = Object.values(
      template.findResources('AWS::EC2::VPCEndpoint', { Properties: { VpcEndpointType: 'Interface' } }),
    );
    expect(endpoints).toHaveLength(Object.keys(WORKER_INTERFACE_ENDPOINTS).length);
    const services = endpoints.map((e) =>
      JSON.stringify((e as { Properties: { ServiceName: unknown } }).Properties.ServiceName),
    );
    for (const suffix of ['ecr.api', 'ecr.dkr', '.ecs"', 'ecs-agent', 'ecs-telemetry', '.logs"', '.sts"']) {
      expectIn(
        services.some((s) => s.includes(suffix)),
        suffix,
      ).toBe(true);
    }
    for (const endpoint of endpoints)
      expect(endpoint).toMatchObject({ Properties: { PrivateDnsEnabled: true } });
  });

  it('lets only HTTPS from the VPC range into the endpoints', () => {
    template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: 'VPC interface endpoints: HTTPS from inside the VPC',
      SecurityGroupIngress: [
        {
          CidrIp: '10.64.0.0/16',
          FromPort: 443,
          ToPort: 443,
          IpProtocol: 'tcp',
          Description: 'HTTPS from the VPC',
        },
      ],
    });
  });

  it('logs all traffic to a log group with retention', () => {
    template.hasResourceProperties('AWS::EC2::FlowLog', {
      TrafficType: 'ALL',
      LogDestinationType: 'cloud-watch-logs',
    });
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
  });

  it('takes the zones and the range from props', () => {
    const wide = network({ isolated: true, maxAzs: 3, cidr: '10.20.0.0/16' });
    wide.resourceCountIs('AWS::EC2::Subnet', 3);
    wide.hasResourceProperties('AWS::EC2::VPC', { CidrBlock: '10.20.0.0/16' });
  });
});

describe('Network (imported VPC)', () => {
  it('adds the endpoints to the imported VPC, admitting its range', () => {
    const template = synthConstruct(
      (stack) => {
        const vpc = importedVpc(stack);
        new Network(stack, 'Network', { vpc, subnets: { subnets: vpc.privateSubnets } });
      },
      { env: ENV },
    );
    template.resourceCountIs('AWS::EC2::VPC', 0);
    template.resourceCountIs('AWS::EC2::VPCEndpoint', 1 + Object.keys(WORKER_INTERFACE_ENDPOINTS).length);
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Gateway',
      VpcId: 'vpc-0123456789abcdef0',
      RouteTableIds: ['rtb-0123456789abcdef0', 'rtb-0123456789abcdef1'],
    });
    template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      SecurityGroupIngress: [Match.objectLike({ CidrIp: '10.1.0.0/16', FromPort: 443 })],
    });
  });

  it('creates nothing when the imported VPC has its endpoints already', () => {
    const template = synthConstruct(
      (stack) => {
        const vpc = importedVpc(stack);
        new Network(stack, 'Network', {
          vpc,
          subnets: { subnets: vpc.privateSubnets },
          createEndpoints: false,
        });
      },
      { env: ENV },
    );
    expect(Object.keys((template.toJSON() as { Resources?: object }).Resources ?? {})).toEqual([]);
  });
});

describe('Network rules', () => {
  it('rule: maxAzs is 2 to 6', () => {
    expect(() => network({ maxAzs: 1 })).toThrow(/maxAzs must be a whole number from 2 to 6, got 1/);
  });
  it('rule: cidr is an IPv4 block from /16 to /24', () => {
    expect(() => network({ cidr: '10.0.0.0/8' })).toThrow(
      /cidr "10\.0\.0\.0\/8" must be an IPv4 block from \/16 to \/24/,
    );
  });
  it('rule: an isolated VPC needs its endpoints', () => {
    expect(() => network({ isolated: true, createEndpoints: false })).toThrow(
      /createEndpoints cannot be false for an isolated VPC/,
    );
  });
  it('rule: an imported VPC needs its worker subnets', () => {
    expect(() =>
      synthConstruct((stack) => new Network(stack, 'N', { vpc: importedVpc(stack) }), { env: ENV }),
    ).toThrow(/imported vpc needs subnets/);
  });
  it('rule: maxAzs and cidr only apply to a new VPC', () => {
    expect(() =>
      synthConstruct(
        (stack) => {
          const vpc = importedVpc(stack);
          new Network(stack, 'N', { vpc, subnets: { subnets: vpc.privateSubnets }, maxAzs: 3 });
        },
        { env: ENV },
      ),
    ).toThrow(/maxAzs, cidr and isolated only apply to a new VPC/);
    expect(() =>
      synthConstruct(
        (stack) => {
          const vpc = importedVpc(stack);
          new Network(stack, 'N', { vpc, subnets: { subnets: vpc.privateSubnets }, isolated: true });
        },
        { env: ENV },
      ),
    ).toThrow(/maxAzs, cidr and isolated only apply to a new VPC/);
  });
  it('rule: subnets only apply to an imported VPC', () => {
    expect(() => network({ subnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED } })).toThrow(
      /subnets only apply to an imported vpc/,
    );
  });
});
