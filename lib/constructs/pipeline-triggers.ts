/**
 * What starts the pipelines' runs:
 * - S3 "Object Created" events, through EventBridge rules filtered on each pipeline's bucket, prefix and suffix, to
 *   the trigger function, which starts one run per object under a name derived from bucket/key/ETag/version, so a
 *   duplicated event never starts a second run; or, for a batching trigger (`batch`), records the object in its
 *   upload window, whose timer (a state machine waiting until the window's end) calls the window function, which
 *   starts one run over a list manifest of exactly the window's objects (src/triggers/window.ts);
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
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as schedulerTargets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as logsLib from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import {
  DEFAULT_WINDOW_OBJECTS,
  MAX_WINDOW_OBJECTS,
  MAX_WINDOW_SECONDS,
  MIN_WINDOW_SECONDS,
} from '../../src/spec/triggers.js';
import { scheduleId, windowTriggerId } from '../../src/triggers/execution-name.js';
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
  /**
   * Batch the uploads: the objects created in one window become one run over a list manifest of exactly them.
   *
   * @default - one run per object
   */
  readonly batch?: S3BatchTarget;
}

/** How a batching S3 trigger groups uploads into runs. */
export interface S3BatchTarget {
  /** The window's length in seconds (aligned slices of the UTC clock), 10 s to 24 h. */
  readonly windowSeconds: number;
  /**
   * At most this many objects per run (1 to 100,000); a window with more becomes several runs.
   *
   * @default 1000
   */
  readonly maxObjects?: number;
  /**
   * At most this many bytes per run; an object larger than that is a run of its own.
   *
   * @default - no limit
   */
  readonly maxBytes?: number;
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
   * Where volume triggers write the list manifests of their runs (read by Plan): with it, a volume run scores exactly
   * the objects counted since the last run of its pipeline.
   *
   * @default - none: a volume run reads the whole prefix
   */
  readonly volumeManifests?: S3Location;

  /**
   * Where batching S3 triggers keep their upload windows (`state`: objects, claims, timers; written by the trigger
   * and window functions only) and the list manifests of their runs (`manifests`: written by the window function,
   * read by Plan).
   *
   * @default - none; required when a pipeline has a batching S3 trigger
   */
  readonly windowState?: { readonly state: S3Location; readonly manifests: S3Location };

  /**
   * How long the trigger functions' logs are kept.
   *
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logsLib.RetentionDays;

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

/** The trigger function's timeout: an upload is recorded in its window within it. */
const TRIGGER_TIMEOUT = Duration.seconds(30);
/**
 * How long a window's timer waits after the window's end before collecting it: longer than the trigger function's
 * timeout, so every invocation that started inside the window has written its object (src/triggers/window.ts).
 */
export const WINDOW_SETTLE = TRIGGER_TIMEOUT.plus(Duration.seconds(30));
/** Window bounds (seconds), as the spec schema has them. */
const WINDOW_BOUNDS = { min: MIN_WINDOW_SECONDS, max: MAX_WINDOW_SECONDS } as const;

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
  /** Collects an upload window into runs; absent when no pipeline has a batching S3 trigger. */
  readonly windowFunction?: NodeFunction;
  /** Waits until an upload window's end, then calls the window function; one execution per window. */
  readonly windowTimer?: sfn.StateMachine;
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
      timeout: TRIGGER_TIMEOUT,
    };
    const needsTrigger = all.some(({ trigger }) => trigger.kind !== 'volume');
    const needsVolume = all.some(({ trigger }) => trigger.kind === 'volume');
    const windowState = all.some(({ trigger }) => trigger.kind === 's3' && trigger.batch)
      ? props.windowState
      : undefined;
    if (needsTrigger) {
      this.triggerFunction = new NodeFunction(this, 'TriggerFunction', {
        entry: 'lambdas/trigger/handler.ts',
        description: 'Starts a pipeline run for an S3 object or a schedule; duplicated events start nothing',
        ...functionProps,
        ...(windowState
          ? {
              environment: {
                [FUNCTION_ENV.triggerStateBucket]: windowState.state.bucket.bucketName,
                [FUNCTION_ENV.windowStatePrefix]: windowState.state.keyPrefix,
              },
            }
          : {}),
      });
    }
    if (windowState) this.createWindowTimer(windowState, functionProps);
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
          ...(props.volumeManifests
            ? { [FUNCTION_ENV.triggerManifestPrefix]: props.volumeManifests.keyPrefix }
            : {}),
        },
      });
      grantS3(this.volumeFunction.role, props.volumeState, 'readwrite');
      if (props.volumeManifests) grantS3(this.volumeFunction.role, props.volumeManifests, 'readwrite');
    }
    for (const fn of [this.triggerFunction, this.volumeFunction, this.windowFunction]) {
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
        const batch = trigger.kind === 's3' ? trigger.batch : undefined;
        // A batching trigger's runs are started by the window function, its objects recorded by the trigger function.
        pipeline.stateMachine.grantStartExecution(batch ? this.windowFunction!.function : fn.function);
        const key = keyFilter(trigger.prefix, trigger.kind === 's3' ? trigger.suffix : undefined);
        const input = volume
          ? {
              trigger: 'volume',
              ...base,
              prefixUri: `s3://${trigger.bucketName}/${trigger.prefix}`,
              minBytes: trigger.minBytes,
              detail: events.EventField.fromPath('$.detail'),
            }
          : {
              trigger: 's3',
              ...base,
              detail: events.EventField.fromPath('$.detail'),
              ...(batch ? { batch: this.batchSettings(pipeline.name, trigger, batch) } : {}),
            };
        rules.push(
          new events.Rule(this, `${pid}${volume ? 'Volume' : 'S3'}Rule${index}`, {
            description: `${volume ? 'Counts objects for' : batch ? 'Batches objects for' : 'Starts a run of'} pipeline ${pipeline.name} on new objects`,
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
  /** What the rule passes the trigger function about a batching trigger (src/triggers/events.ts). */
  private batchSettings(
    pipeline: string,
    trigger: S3TriggerTarget,
    batch: S3BatchTarget,
  ): Record<string, unknown> {
    return {
      triggerId: windowTriggerId([
        pipeline,
        trigger.bucketName,
        trigger.prefix,
        trigger.suffix ?? '',
        String(batch.windowSeconds),
      ]),
      windowSeconds: batch.windowSeconds,
      settleSeconds: WINDOW_SETTLE.toSeconds(),
      maxObjects: batch.maxObjects ?? DEFAULT_WINDOW_OBJECTS,
      ...(batch.maxBytes !== undefined ? { maxBytes: batch.maxBytes } : {}),
      timerStateMachineArn: this.windowTimer!.stateMachineArn,
    };
  }

  /**
   * The window function and the timer state machine: Wait until the window's close time (from the execution input),
   * then invoke the window function, retried; what still fails goes to the dead-letter queue and fails the execution.
   */
  private createWindowTimer(
    windowState: NonNullable<PipelineTriggersProps['windowState']>,
    functionProps: {
      logRetention: logsLib.RetentionDays | undefined;
      logRemovalPolicy: RemovalPolicy | undefined;
      memorySize: number;
    },
  ): void {
    const trigger = this.triggerFunction!;
    const windowFunction = new NodeFunction(this, 'WindowFunction', {
      entry: 'lambdas/trigger-window/handler.ts',
      description:
        "Starts the runs of an upload window: one per part, over a list manifest of the window's objects",
      ...functionProps,
      memorySize: 512,
      // Lists, reads and claims up to a window's objects (16 requests at a time), then writes the manifests.
      timeout: Duration.minutes(5),
      environment: {
        [FUNCTION_ENV.triggerStateBucket]: windowState.state.bucket.bucketName,
        [FUNCTION_ENV.windowStatePrefix]: windowState.state.keyPrefix,
        [FUNCTION_ENV.triggerManifestPrefix]: windowState.manifests.keyPrefix,
      },
    });
    (this as { windowFunction?: NodeFunction }).windowFunction = windowFunction;
    grantS3(windowFunction.role, windowState.state, 'readwrite');
    grantS3(windowFunction.role, windowState.manifests, 'readwrite');
    // The trigger function checks for the window's timer and records objects: the window state only.
    grantS3(trigger.role, windowState.state, 'readwrite');

    const dlq = this.deadLetterQueue!;
    const collect = new tasks.LambdaInvoke(this, 'CollectWindow', {
      // The function gets the execution's input (the window) as it is, and its result is the task's output.
      lambdaFunction: windowFunction.function,
      payloadResponseOnly: true,
    });
    // Every step of the collector is idempotent: retrying any error is safe.
    collect.addRetry({
      errors: [sfn.Errors.ALL],
      interval: Duration.seconds(10),
      backoffRate: 2,
      maxAttempts: 5,
    });
    const deadLetter = new tasks.SqsSendMessage(this, 'WindowToDeadLetters', {
      queue: dlq,
      messageBody: sfn.TaskInput.fromObject({
        window: sfn.JsonPath.objectAt('$$.Execution.Input'),
        error: sfn.JsonPath.objectAt('$.error'),
      }),
    });
    collect.addCatch(deadLetter.next(new sfn.Fail(this, 'WindowFailed')), { resultPath: '$.error' });
    const wait = new sfn.Wait(this, 'UntilWindowCloses', { time: sfn.WaitTime.timestampPath('$.closeAt') });

    const logGroup = new logsLib.LogGroup(this, 'WindowTimerLogs', {
      retention: functionProps.logRetention ?? logsLib.RetentionDays.ONE_MONTH,
      ...(functionProps.logRemovalPolicy ? { removalPolicy: functionProps.logRemovalPolicy } : {}),
    });
    const timer = new sfn.StateMachine(this, 'WindowTimer', {
      definitionBody: sfn.DefinitionBody.fromChainable(wait.next(collect)),
      stateMachineType: sfn.StateMachineType.STANDARD,
      comment: 'Waits until an upload window closes, then starts its runs (one execution per window)',
      // The longest window plus the settle time and the collector's retries.
      timeout: Duration.seconds(WINDOW_BOUNDS.max).plus(Duration.hours(2)),
      tracingEnabled: true,
      logs: { destination: logGroup, level: sfn.LogLevel.ALL, includeExecutionData: true },
    });
    timer.grantStartExecution(trigger.function);
    (this as { windowTimer?: sfn.StateMachine }).windowTimer = timer;
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
      if (trigger.kind === 's3' && trigger.batch) {
        validateBatch(pipeline.name, trigger.batch, props);
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

/** A batching S3 trigger's rules. */
function validateBatch(pipeline: string, batch: S3BatchTarget, props: PipelineTriggersProps): void {
  if (!props.windowState) {
    throw new Error(
      `PipelineTriggers pipeline ${pipeline} has a batching S3 trigger: pass windowState, where its upload windows and list manifests are kept.`,
    );
  }
  const { windowSeconds, maxObjects, maxBytes } = batch;
  if (
    !Token.isUnresolved(windowSeconds) &&
    (!Number.isInteger(windowSeconds) ||
      windowSeconds < WINDOW_BOUNDS.min ||
      windowSeconds > WINDOW_BOUNDS.max)
  ) {
    throw new Error(
      `PipelineTriggers windowSeconds of pipeline ${pipeline} must be a whole number from ${WINDOW_BOUNDS.min} to ${WINDOW_BOUNDS.max} (24 hours), got ${windowSeconds}.`,
    );
  }
  if (
    maxObjects !== undefined &&
    !Token.isUnresolved(maxObjects) &&
    (!Number.isInteger(maxObjects) || maxObjects < 1 || maxObjects > MAX_WINDOW_OBJECTS)
  ) {
    throw new Error(
      `PipelineTriggers maxObjects of pipeline ${pipeline} must be a whole number from 1 to ${MAX_WINDOW_OBJECTS}, got ${maxObjects}.`,
    );
  }
  if (
    maxBytes !== undefined &&
    !Token.isUnresolved(maxBytes) &&
    (!Number.isInteger(maxBytes) || maxBytes < 1)
  ) {
    throw new Error(
      `PipelineTriggers maxBytes of pipeline ${pipeline} must be a whole number of bytes, at least 1, got ${maxBytes}.`,
    );
  }
}
