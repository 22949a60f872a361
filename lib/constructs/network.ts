/**
 * Where workers run. Two shapes of a new VPC, neither with a NAT gateway:
 * - public (the default): public subnets behind an internet gateway, instances with public addresses and a security
 *   group that admits nothing in; S3 through the free gateway endpoint. Nothing in it bills by the hour, so an idle
 *   stage costs nothing here.
 * - isolated: private subnets with no route to the internet, and VPC endpoints for everything a worker and its ECS
 *   agent talk to (S3 through the gateway endpoint; ECR, ECS, CloudWatch Logs and STS through interface endpoints,
 *   which bill per endpoint, per zone and per hour whether or not anything runs). No path out of the VPC.
 * Or an existing VPC, with or without the endpoints.
 */
import { Fn, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

/**
 * The interface endpoints a Batch worker needs without NAT: the image (ECR API and registry), the ECS agent
 * (registration, task state, telemetry), logs (the awslogs driver) and STS (regional credentials for SDKs that ask
 * for them). S3 (data, and ECR's image layers) uses the gateway endpoint.
 */
export const WORKER_INTERFACE_ENDPOINTS: Readonly<Record<string, ec2.InterfaceVpcEndpointAwsService>> = {
  EcrApi: ec2.InterfaceVpcEndpointAwsService.ECR,
  EcrDocker: ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
  Ecs: ec2.InterfaceVpcEndpointAwsService.ECS,
  EcsAgent: ec2.InterfaceVpcEndpointAwsService.ECS_AGENT,
  EcsTelemetry: ec2.InterfaceVpcEndpointAwsService.ECS_TELEMETRY,
  Logs: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
  Sts: ec2.InterfaceVpcEndpointAwsService.STS,
};

export interface NetworkProps {
  /**
   * An existing VPC. Workers go in `subnets`, which must be private; endpoints are added unless `createEndpoints`
   * is false.
   *
   * @default - a new VPC with isolated subnets only
   */
  readonly vpc?: ec2.IVpc;

  /**
   * The worker subnets of an imported `vpc`.
   *
   * @default - the new VPC's isolated subnets (required with an imported VPC)
   */
  readonly subnets?: ec2.SubnetSelection;

  /**
   * Availability zones of a new VPC (2 to 6). In an environment-agnostic stack (no account and region at synth) the
   * zones are the region's first `maxAzs` (`Fn::GetAZs`, by index), so the region must have that many.
   *
   * @default 2
   */
  readonly maxAzs?: number;

  /**
   * Address range of a new VPC (/16 to /24).
   *
   * @default '10.64.0.0/16'
   */
  readonly cidr?: string;

  /**
   * A new VPC's worker subnets are isolated (no route out; the interface endpoints are the only way to AWS) instead
   * of public (an internet gateway; instances get public addresses and admit nothing in). Isolated costs the interface
   * endpoints' hourly price while idle (docs/operations.md, "Idle cost").
   *
   * @default false
   */
  readonly isolated?: boolean;

  /**
   * Create the interface VPC endpoints (the S3 gateway endpoint, free, is always created). An isolated VPC needs
   * them: its workers have no other way to reach AWS.
   *
   * @default - true for an imported VPC and an isolated one; false for a new public VPC
   */
  readonly createEndpoints?: boolean;

  /**
   * How long VPC flow logs (rejected and accepted traffic of a new VPC) are kept.
   *
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly flowLogRetention?: logs.RetentionDays;

  /**
   * What happens to the flow log group when the stack is deleted.
   *
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
}

export class Network extends Construct {
  readonly vpc: ec2.IVpc;
  /** Where workers are placed. */
  readonly workerSubnets: ec2.SubnetSelection;
  /** The interface endpoints, by name (empty when not created). */
  readonly interfaceEndpoints: Readonly<Record<string, ec2.InterfaceVpcEndpoint>>;
  /** The flow log group of a new VPC. */
  readonly flowLogGroup?: logs.LogGroup;
  /** The interface endpoints' security group (absent when endpoints are not created). */
  readonly endpointSecurityGroup?: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: NetworkProps = {}) {
    super(scope, id);
    const isolated = props.isolated ?? false;
    const createEndpoints = props.createEndpoints ?? (props.vpc !== undefined || isolated);
    let vpcCidr: string;

    if (props.vpc) {
      if (!props.subnets) {
        throw new Error('Network with an imported vpc needs subnets: the private subnets where workers run.');
      }
      if (props.maxAzs !== undefined || props.cidr !== undefined || props.isolated !== undefined) {
        throw new Error(
          'Network maxAzs, cidr and isolated only apply to a new VPC; leave them out with an imported vpc.',
        );
      }
      this.vpc = props.vpc;
      this.workerSubnets = props.subnets;
      vpcCidr = props.vpc.vpcCidrBlock;
    } else {
      if (props.subnets) throw new Error('Network subnets only apply to an imported vpc.');
      if (isolated && !createEndpoints) {
        throw new Error(
          'Network createEndpoints cannot be false for an isolated VPC: its subnets have no route out, so workers could reach neither ECR nor S3. Leave isolated out for public subnets without endpoints.',
        );
      }
      const maxAzs = props.maxAzs ?? 2;
      if (!Number.isInteger(maxAzs) || maxAzs < 2 || maxAzs > 6) {
        throw new Error(`Network maxAzs must be a whole number from 2 to 6, got ${maxAzs}.`);
      }
      const cidr = props.cidr ?? '10.64.0.0/16';
      const mask = /^(?:\d{1,3}\.){3}\d{1,3}\/(\d{1,2})$/.exec(cidr)?.[1];
      if (mask === undefined || Number(mask) < 16 || Number(mask) > 24) {
        throw new Error(`Network cidr "${cidr}" must be an IPv4 block from /16 to /24, e.g. 10.64.0.0/16.`);
      }
      this.flowLogGroup = new logs.LogGroup(this, 'FlowLogs', {
        retention: props.flowLogRetention ?? logs.RetentionDays.ONE_MONTH,
        removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
      });
      // An environment-agnostic stack only knows two zones by name (CDK's `Stack.availabilityZones`), and `maxAzs`
      // alone would silently stop there: select the region's zones by index instead.
      const zones = Token.isUnresolved(Stack.of(this).region)
        ? { availabilityZones: Array.from({ length: maxAzs }, (_, i) => Fn.select(i, Fn.getAzs())) }
        : { maxAzs };
      const subnetType = isolated ? ec2.SubnetType.PRIVATE_ISOLATED : ec2.SubnetType.PUBLIC;
      const vpc = new ec2.Vpc(this, 'Vpc', {
        ipAddresses: ec2.IpAddresses.cidr(cidr),
        ...zones,
        // Never a NAT gateway (hourly). Public: an internet gateway (free) and public addresses on launch, which the
        // instances need to reach ECR, ECS and S3 without endpoints; their security group admits nothing in.
        // Isolated: no internet gateway either. /20 per zone leaves room for thousands of instances.
        natGateways: 0,
        subnetConfiguration: [
          {
            name: 'workers',
            subnetType,
            cidrMask: 20,
            ...(isolated ? {} : { mapPublicIpOnLaunch: true }),
          },
        ],
        flowLogs: {
          all: {
            destination: ec2.FlowLogDestination.toCloudWatchLogs(this.flowLogGroup),
            trafficType: ec2.FlowLogTrafficType.ALL,
          },
        },
      });
      this.vpc = vpc;
      this.workerSubnets = { subnetType };
      // The literal range rather than the VPC's attribute: the endpoint rules then read as what they allow.
      vpcCidr = cidr;
    }

    // Gateway endpoint: free, and the path of nearly all traffic (data, and ECR's image layers), in every new VPC.
    // An imported VPC without createEndpoints has its own (a second one on the same route tables fails to deploy).
    if (!props.vpc || createEndpoints) {
      this.vpc.addGatewayEndpoint('S3', {
        service: ec2.GatewayVpcEndpointAwsService.S3,
        subnets: [this.workerSubnets],
      });
    }
    const endpoints: Record<string, ec2.InterfaceVpcEndpoint> = {};
    if (createEndpoints) {
      // One security group for the interface endpoints: HTTPS in from the VPC's own range, nothing else.
      const endpointSecurityGroup = new ec2.SecurityGroup(this, 'EndpointSecurityGroup', {
        vpc: this.vpc,
        description: 'VPC interface endpoints: HTTPS from inside the VPC',
        allowAllOutbound: false,
      });
      endpointSecurityGroup.addIngressRule(ec2.Peer.ipv4(vpcCidr), ec2.Port.tcp(443), 'HTTPS from the VPC');
      this.endpointSecurityGroup = endpointSecurityGroup;
      for (const [name, service] of Object.entries(WORKER_INTERFACE_ENDPOINTS)) {
        endpoints[name] = this.vpc.addInterfaceEndpoint(name, {
          service,
          subnets: this.workerSubnets,
          privateDnsEnabled: true,
          securityGroups: [endpointSecurityGroup],
          open: false,
        });
      }
    }
    this.interfaceEndpoints = endpoints;
  }
}
