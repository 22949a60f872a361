/**
 * Account policies: the AWS Control Tower proactive controls, run at synthesis by `@cdklabs/cdk-validator-cfnguard`
 * (offline: the plugin ships the rules and the cfn-guard binary), and this stack's acknowledgements of the controls
 * it does not meet, each with the reason, as lib/nag.ts does for cdk-nag. An account that enforces these controls
 * through Control Tower's proactive hooks rejects the deployment on an unacknowledged finding, so the list is kept
 * complete by a test (test/lib/account-policies.test.ts).
 */
import { Validations } from 'aws-cdk-lib';
import { CfnGuardValidator } from '@cdklabs/cdk-validator-cfnguard';
import type { IConstruct } from 'constructs';
import type { BatchInferenceStack } from './batch-inference-stack.js';

/** Registers the Control Tower proactive controls on an app (or stage): violations fail synthesis. */
export function addAccountPolicyChecks(scope: IConstruct): void {
  Validations.of(scope).addPlugins(new CfnGuardValidator({ controlTowerRulesEnabled: true }));
}

/**
 * Controls this stack does not meet, by the rule name the plugin reports, with the reason. Acknowledged on the whole
 * stack: each reason says which resources it is about and why.
 */
export const ACCOUNT_POLICY_ACKNOWLEDGEMENTS: Readonly<Record<string, string>> = {
  cloudwatch_log_group_retention_period_check:
    '[CT.CLOUDWATCH.PR.2] Log retention is the deployment setting logRetentionDays (default 30 days: execution ' +
    'logs hold execution data, and a year of ALL-level logs costs more than most runs). Set it to 365 or more where ' +
    'the account requires a year; every log group of the stack follows it.',
  cloudwatch_log_group_encrypted_check:
    '[CT.CLOUDWATCH.PR.3] Log groups are encrypted by CloudWatch Logs with service-managed keys; a customer key ' +
    "needs a key policy for the Logs service principal in every region. Not configurable yet: see ADR 0013's " +
    'consequences.',
  ec2_launch_template_monitoring_enabled_check:
    '[CT.EC2.PR.10] Worker instances live for one run and scale to zero; detailed (1-minute) EC2 monitoring is paid ' +
    'per instance, and jobs, queues and GPU use are watched through Batch, the queue-depth metrics and the worker logs.',
  kms_create_grant_aws_service_check:
    '[CT.KMS.PR.3] The notification key encrypts the alarm and run-event topics; its policy grants the services that ' +
    'publish (CloudWatch, EventBridge) GenerateDataKey and Decrypt, and no principal needs kms:CreateGrant on it.',
  lambda_inside_vpc_check:
    '[CT.LAMBDA.PR.3] The task and trigger functions call only AWS APIs (S3, Glue, SageMaker, Batch, Step Functions) ' +
    'and hold no network-reachable resources; outside a VPC they need no NAT or interface endpoints. Their access is ' +
    'limited by IAM, by prefix (docs/operations.md).',
  s3_bucket_default_encryption_kms_check:
    '[CT.S3.PR.10] The data bucket uses SSE-S3 (AES-256, enforced SSL): Athena, Glue and every reader of the ' +
    'predictions would otherwise need kms:Decrypt on a stack key. The access-logs bucket cannot use SSE-KMS at all ' +
    '(S3 server access logging delivers only to SSE-S3 buckets).',
  s3_bucket_logging_enabled_check:
    "[CT.S3.PR.2] The access-logs bucket is the target of the data bucket's server access logs; logging it into " +
    'itself would loop.',
  s3_event_notifications_enabled_check:
    '[CT.S3.PR.4] The access-logs bucket only receives logs; nothing consumes events from it. (The data bucket ' +
    'sends its events to EventBridge for the triggers.)',
  s3_bucket_object_lock_enabled_check:
    '[CT.S3.PR.9] Runs overwrite and delete their own objects by design (deterministic keys make retries idempotent, ' +
    'Finalize deletes stray parts, temporary data expires); Object Lock would block that. The bucket is versioned: ' +
    'an overwritten or deleted object stays recoverable as a noncurrent version for a configured number of days.',
  subnet_auto_assign_public_ip_disabled_check:
    '[CT.EC2.PR.11] The default network has public subnets and no NAT gateway, so nothing is billed by the hour ' +
    'between runs (ADR 0012); workers get a public address to reach S3, ECR and Batch, and their security group ' +
    'admits nothing inbound. `vpc.create.isolated: true` (private subnets with endpoints) meets the control.',
  sqs_dlq_check:
    '[CT.SQS.PR.1] The queue is itself the dead-letter queue of the trigger rules, schedules and functions; a ' +
    'dead-letter queue of its own would only move the problem. An alarm fires on its first message.',
};

/** Acknowledges the controls of ACCOUNT_POLICY_ACKNOWLEDGEMENTS on the stack. */
export function acknowledgeAccountPolicies(stack: BatchInferenceStack): void {
  for (const [id, reason] of Object.entries(ACCOUNT_POLICY_ACKNOWLEDGEMENTS)) {
    // The plugin's namespace, as its findings name themselves ("Acknowledge with 'cdk-validator-cfnguard::<rule>'").
    Validations.of(stack).acknowledge({ id: `cdk-validator-cfnguard::${id}`, reason });
  }
}
