/**
 * What starts the pipelines' runs:
 * - S3 "Object Created" events, through EventBridge rules filtered on each pipeline's bucket, prefix and suffix, to
 *   the trigger function, which starts one run per object under a name derived from bucket/key/ETag/version, so a
 *   duplicated event never starts a second run;
 * - EventBridge Scheduler schedules, to the same function with the scheduled time, which fills the pipeline's input
 *   template and names the run after the schedule and the time;
 * - volume triggers: the same S3 events to the volume function, which counts the bytes that arrived under a prefix
 *   and starts one run over the prefix once they reach the threshold.
 *
 * Every delivery that keeps failing (the target cannot be invoked, or the function keeps throwing) ends in the
 * trigger dead-letter queue, which the monitoring alarms on: a trigger never fails silently.
 */
import { Duration, TimeZone, Token } from 'aws-cdk-lib';
import type { RemovalPolicy } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as schedulerTargets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { scheduleId } from '../../src/triggers/execution-name.js';
import { FUNCTION_ENV } from '../workflow-contract.js';
import { grantS3, type S3Location } from '../s3-access.js';
import { NodeFunction } from './node-function.js';

/** A pipeline's S3 trigger, resolved to a bucket: one run per object created under the prefix. */
export interface S3TriggerTarget {
  /** Discriminates the trigger kinds. */
  readonly kind: 's3';
  /** The bucket's name (a token for the stack's data bucket). */
  readonly bucketName: string;
  /** Key prefix; '' for any key. */
  readonly prefix: string;
  /** @default - any key */
  readonly suffix?: string;
}

/** A pipeline's schedule: one run per scheduled time, which the run receives (`scheduledTime`). */
export interface ScheduleTriggerTarget {
  /** Discriminates the trigger kinds. */
  readonly kind: 'schedule';
  /** `cron(...)` or `rate(...)`, as EventBridge Scheduler takes it. */
  readonly expression: string;
  /** @default 'UTC' */
  readonly timezone?: string;
  /** The run's input URI template (`{date}`...). @default - the spec's input.uri */
  readonly input?: string;
  /** @default - none */
  readonly offset?: string;
}

/** A pipeline's volume trigger: one run over the prefix each time `minBytes` of new objects arrived. */
export interface VolumeTriggerTarget {
  /** Discriminates the trigger kinds. */
  readonly kind: 'volume';
  /** The bucket's name (a token for the stack's data bucket). */
  readonly bucketName: string;
  /** Key prefix counted and read by the run. */
  readonly prefix: string;
  /** Bytes since the last run that start the next one. */
  readonly minBytes: number;
}

export type TriggerTarget = S3TriggerTarget | ScheduleTriggerTarget | VolumeTriggerTarget;

export interface TriggeredPipeline {
  /** The pipeline's name (unique). */
  readonly name: string;
  /** The pipeline's state machine: the only one its triggers may start. */
  readonly stateMachine: sfn.IStateMachine;
  /** The spec every run is started with (the execution input's `spec`); string values may hold tokens. */
  readonly spec: Readonly<Record<string, unknown>>;
  /** What starts the pipeline's runs; a pipeline without triggers is started by hand only. */
  readonly triggers: readonly TriggerTarget[];
}

export interface PipelineTriggersProps {
  /** The pipelines and their triggers; one trigger function serves all of them. Unique names. */
  readonly pipelines: readonly TriggeredPipeline[];

  /**
   * Where the volume counters are kept, one object per pipeline under this location.
   *
   * @default - none; required when a pipeline has a volume trigger
   */
  readonly volumeState?: S3Location;

  /**
   * How long the trigger functions' logs are kept.
   *
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;

  /**
   * What happens to the functions' log groups when the stack is deleted.
   *
   * @default RemovalPolicy.DESTROY
   */
  readonly logRemovalPolicy?: RemovalPolicy;

  /**
   * How long an undeliverable trigger event stays in the dead-letter queue (1 minute to 14 days).
   *
   * @default Duration.days(14)
   */
  readonly deadLetterRetention?: Duration;
}

/** Delivery retries of EventBridge and Scheduler before an event goes to the dead-letter queue. */
const DELIVERY_RETRIES = 8;
const MAX_EVENT_AGE = Duration.hours(6);
const MAX_DLQ_RETENTION = Duration.days(14);

/** Escapes a literal for an EventBridge wildcard pattern, where `*` and `\` are special. */
function wildcardLiteral(text: string): string {
  return text.replace(/[\\*]/g, (c) => `\\${c}`);
}

/** The `detail.object.key` filter of a prefix and suffix; undefined for any key. */
function keyFilter(prefix: string, suffix: string | undefined): string[] | undefined {
  if (prefix && suffix) return events.Match.wildcard(`${wildcardLiteral(prefix)}*${wildcardLiteral(suffix)}`);
  if (prefix) return events.Match.prefix(prefix);
  if (suffix) return events.Match.suffix(suffix);
  return undefined;
}

/** `breast_cancer` -> `BreastCancer`, for construct ids. */
function idOf(name: string): string {
  return name.replace(/(^|[^A-Za-z0-9]+)([A-Za-z0-9])/g, (_m, _s: string, c: string) => c.toUpperCase());
}

export class PipelineTriggers extends Construct {
  /** Starts runs for S3 and schedule triggers; absent when no pipeline has one. */
  readonly triggerFunction?: NodeFunction;
  /** Counts bytes for volume triggers; absent when no pipeline has one. */
  readonly volumeFunction?: NodeFunction;
  /** Where undeliverable trigger events end up; absent when no pipeline has a trigger. */
  readonly deadLetterQueue?: sqs.Queue;
  readonly rules: readonly events.Rule[];
  readonly schedules: readonly scheduler.Schedule[];

  constructor(scope: Construct, id: string, props: PipelineTriggersProps) {
    super(scope, id);
    const all = props.pipelines.flatMap((p) => p.triggers.map((t) => ({ pipeline: p, trigger: t })));
    validate(props);

    const rules: events.Rule[] = [];
    const schedules: scheduler.Schedule[] = [];
    this.rules = rules;
    this.schedules = schedules;
    if (all.length === 0) return;

    const retention = props.deadLetterRetention ?? MAX_DLQ_RETENTION;
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: retention,
    });
    const dlq = this.deadLetterQueue;

    const functionProps = {
      logRetention: props.logRetention,
      logRemovalPolicy: props.logRemovalPolicy,
      memorySize: 256,
      timeout: Duration.seconds(30),
    };
    const needsTrigger = all.some(({ trigger }) => trigger.kind !== 'volume');
    const needsVolume = all.some(({ trigger }) => trigger.kind === 'volume');
    if (needsTrigger) {
      this.triggerFunction = new NodeFunction(this, 'TriggerFunction', {
        entry: 'lambdas/trigger/handler.ts',
        description: 'Starts a pipeline run for an S3 object or a schedule; duplicated events start nothing',
        ...functionProps,
      });
    }
    if (needsVolume && props.volumeState) {
      this.volumeFunction = new NodeFunction(this, 'VolumeFunction', {
        entry: 'lambdas/volume/handler.ts',
        description:
          'Counts bytes arriving under a pipeline prefix; starts one run when the threshold is reached',
        ...functionProps,
        // Counter updates are compare-and-swap writes that may wait and retry under contention.
        timeout: Duration.minutes(1),
        environment: {
          [FUNCTION_ENV.volumeStateBucket]: props.volumeState.bucket.bucketName,
          [FUNCTION_ENV.volumeStatePrefix]: props.volumeState.keyPrefix,
        },
      });
      grantS3(this.volumeFunction.role, props.volumeState, 'readwrite');
    }
    for (const fn of [this.triggerFunction, this.volumeFunction]) {
      // Asynchronous invocations (EventBridge rules) that keep failing: retried twice by Lambda, then kept.
      fn?.function.configureAsyncInvoke({
        retryAttempts: 2,
        maxEventAge: MAX_EVENT_AGE,
        onFailure: new destinations.SqsDestination(dlq),
      });
    }

    for (const pipeline of props.pipelines) {
      const pid = idOf(pipeline.name);
      const base = {
        pipeline: pipeline.name,
        stateMachineArn: pipeline.stateMachine.stateMachineArn,
        spec: pipeline.spec,
      };
      pipeline.triggers.forEach((trigger, index) => {
        if (trigger.kind === 'schedule') {
          const fn = this.triggerFunction!;
          pipeline.stateMachine.grantStartExecution(fn.function);
          const timezone = trigger.timezone ?? 'UTC';
          const idOfSchedule = scheduleId([
            trigger.expression,
            timezone,
            trigger.input ?? '',
            trigger.offset ?? '',
          ]);
          schedules.push(
            new scheduler.Schedule(this, `${pid}Schedule${index}`, {
              description: `Starts a run of pipeline ${pipeline.name} (${trigger.expression} ${timezone})`,
              schedule: scheduler.ScheduleExpression.expression(trigger.expression, TimeZone.of(timezone)),
              target: new schedulerTargets.LambdaInvoke(fn.function, {
                input: scheduler.ScheduleTargetInput.fromObject({
                  trigger: 'schedule',
                  ...base,
                  scheduleId: idOfSchedule,
                  scheduledTime: scheduler.ContextAttribute.scheduledTime,
                  ...(trigger.input !== undefined ? { input: trigger.input } : {}),
                  timezone,
                  ...(trigger.offset !== undefined ? { offset: trigger.offset } : {}),
                }),
                deadLetterQueue: dlq,
                retryAttempts: DELIVERY_RETRIES,
                maxEventAge: MAX_EVENT_AGE,
              }),
            }),
          );
          return;
        }
        const volume = trigger.kind === 'volume';
        const fn = volume ? this.volumeFunction! : this.triggerFunction!;
        pipeline.stateMachine.grantStartExecution(fn.function);
        const key = keyFilter(trigger.prefix, trigger.kind === 's3' ? trigger.suffix : undefined);
        const input = volume
          ? {
              trigger: 'volume',
              ...base,
              prefixUri: `s3://${trigger.bucketName}/${trigger.prefix}`,
              minBytes: trigger.minBytes,
              detail: events.EventField.fromPath('$.detail'),
            }
          : { trigger: 's3', ...base, detail: events.EventField.fromPath('$.detail') };
        rules.push(
          new events.Rule(this, `${pid}${volume ? 'Volume' : 'S3'}Rule${index}`, {
            description: `${volume ? 'Counts objects for' : 'Starts a run of'} pipeline ${pipeline.name} on new objects`,
            eventPattern: {
              source: ['aws.s3'],
              detailType: ['Object Created'],
              detail: {
                bucket: { name: [trigger.bucketName] },
                // Folder markers and empty objects carry no records (and a folder would mean "all of it").
                object: { ...(key ? { key } : {}), size: events.Match.greaterThan(0) },
              },
            },
            targets: [
              new targets.LambdaFunction(fn.function, {
                event: events.RuleTargetInput.fromObject(input),
                deadLetterQueue: dlq,
                retryAttempts: DELIVERY_RETRIES,
                maxEventAge: MAX_EVENT_AGE,
              }),
            ],
          }),
        );
      });
    }
  }
}

/** The construct's rules, one error each. */
function validate(props: PipelineTriggersProps): void {
  const names = new Set<string>();
  for (const pipeline of props.pipelines) {
    if (names.has(pipeline.name)) {
      throw new Error(`PipelineTriggers pipeline names must be unique: "${pipeline.name}" appears twice.`);
    }
    names.add(pipeline.name);
    for (const trigger of pipeline.triggers) {
      if (trigger.kind === 'schedule') {
        if (!/^(cron|rate)\(.+\)$/.test(trigger.expression)) {
          throw new Error(
            `PipelineTriggers schedule "${trigger.expression}" of pipeline ${pipeline.name} must be cron(...) or rate(...).`,
          );
        }
        continue;
      }
      if (trigger.prefix.startsWith('/')) {
        throw new Error(
          `PipelineTriggers prefix "${trigger.prefix}" of pipeline ${pipeline.name} must be an object key prefix, without a leading "/".`,
        );
      }
      if (trigger.kind === 'volume') {
        if (!props.volumeState) {
          throw new Error(
            `PipelineTriggers pipeline ${pipeline.name} has a volume trigger: pass volumeState, where its counter is kept.`,
          );
        }
        if (
          !Token.isUnresolved(trigger.minBytes) &&
          (!Number.isInteger(trigger.minBytes) || trigger.minBytes < 1)
        ) {
          throw new Error(
            `PipelineTriggers minBytes of pipeline ${pipeline.name} must be a whole number of bytes, at least 1, got ${trigger.minBytes}.`,
          );
        }
      }
    }
  }
  const retention = props.deadLetterRetention;
  if (
    retention !== undefined &&
    !Token.isUnresolved(retention.toSeconds()) &&
    (retention.toSeconds() < 60 || retention.toSeconds() > MAX_DLQ_RETENTION.toSeconds())
  ) {
    throw new Error('PipelineTriggers deadLetterRetention must be from 1 minute to 14 days (SQS bounds).');
  }
}
