/**
 * Where workers run: private subnets with no route to the internet, and VPC endpoints for everything a worker and
 * its ECS agent talk to (S3 through the free gateway endpoint; ECR, ECS, CloudWatch Logs and STS through interface
 * endpoints). No NAT gateway: nothing to pay while idle, and no path out of the VPC.
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
   * Create the VPC endpoints. Only an imported VPC that already has them may go without: workers in a new VPC have
   * no other way to reach AWS.
   *
   * @default true
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
    const createEndpoints = props.createEndpoints ?? true;
    let vpcCidr: string;

    if (props.vpc) {
      if (!props.subnets) {
        throw new Error('Network with an imported vpc needs subnets: the private subnets where workers run.');
      }
      if (props.maxAzs !== undefined || props.cidr !== undefined) {
        throw new Error(
          'Network maxAzs and cidr only apply to a new VPC; leave them out with an imported vpc.',
        );
      }
      this.vpc = props.vpc;
      this.workerSubnets = props.subnets;
      vpcCidr = props.vpc.vpcCidrBlock;
    } else {
      if (props.subnets) throw new Error('Network subnets only apply to an imported vpc.');
      if (!createEndpoints) {
        throw new Error(
          'Network createEndpoints cannot be false for a new VPC: its subnets have no route out, so workers could reach neither ECR nor S3.',
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
      const vpc = new ec2.Vpc(this, 'Vpc', {
        ipAddresses: ec2.IpAddresses.cidr(cidr),
        ...zones,
        natGateways: 0,
        // Isolated only: no internet gateway, no NAT. /20 per zone leaves room for thousands of instances.
        subnetConfiguration: [{ name: 'workers', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 20 }],
        flowLogs: {
          all: {
            destination: ec2.FlowLogDestination.toCloudWatchLogs(this.flowLogGroup),
            trafficType: ec2.FlowLogTrafficType.ALL,
          },
        },
      });
      this.vpc = vpc;
      this.workerSubnets = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };
      // The literal range rather than the VPC's attribute: the endpoint rules then read as what they allow.
      vpcCidr = cidr;
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
      // Gateway endpoint: free, and the path of nearly all traffic (data, and ECR's image layers).
      this.vpc.addGatewayEndpoint('S3', {
        service: ec2.GatewayVpcEndpointAwsService.S3,
        subnets: [this.workerSubnets],
      });
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
