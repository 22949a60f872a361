/**
 * What the on-call engineer looks at: a dashboard (executions, durations, records/s, error rate, failed shards,
 * drift, queue depth, triggers), alarms on what needs a human (a run failed or timed out, a run's error rate above
 * the pipeline's bar, drift, jobs stuck RUNNABLE, a function failing, a trigger event undeliverable) sent to an SNS
 * topic (optionally to an email), and the run-finished events: every terminal status of a pipeline's state machine,
 * as Step Functions emits it to EventBridge, routed to a "run events" SNS topic for downstream consumers.
 */
import { runCostWidget } from './cost-widget.js';
import { Duration, Names, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as schedulerTargets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import {
  METRICS_NAMESPACE,
  PREDICTION_METRICS,
  QUEUE_METRICS,
  RUN_METRICS,
} from '../../src/runtime/metrics.js';
import { FUNCTION_ENV } from '../workflow-contract.js';
import { NodeFunction } from './node-function.js';

/** Terminal statuses of an execution: a run has finished, one way or another. */
export const RUN_FINISHED_STATUSES = ['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED'] as const;

/** Statuses the RunFailed alarm counts: each such run is also notified with its reason. */
export const RUN_ALARM_STATUSES = ['FAILED', 'TIMED_OUT'] as const;

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const PERIOD = Duration.minutes(5);
/** Run metrics come once per run: an hour per point shows each run of the dashboard's week as one point. */
const RUN_PERIOD = Duration.hours(1);
/** The prediction-distribution metrics the dashboard shows per pipeline (PREDICTION_METRICS). */
const PREDICTION_QUANTILES = [
  PREDICTION_METRICS.p10,
  PREDICTION_METRICS.p50,
  PREDICTION_METRICS.p90,
] as const;

/** A pipeline to watch: its runs' alarms, dashboard rows and run-finished events. */
export interface MonitoredPipeline {
  /** The pipeline's name: the `Pipeline` dimension of the run metrics (RUN_METRICS), and the alarms' names. */
  readonly name: string;
  /** The pipeline's state machine: its failed and timed-out executions alarm, its finished runs are published. */
  readonly stateMachine: sfn.IStateMachine;
  /** The pipeline's validation.maxErrorRate: a run above it alarms. 0..1. */
  readonly maxErrorRate: number;
  /**
   * The pipeline's run.compute. A GPU pipeline alarms when a run had a shard on the CPU execution provider.
   *
   * @default 'gpu'
   */
  readonly compute?: 'gpu' | 'cpu';
}

/** A job queue to watch. */
export interface MonitoredQueue {
  /** A short label for the dashboard (gpu, cpu). */
  readonly label: string;
  /** The queue's name: the JobQueue dimension of the queue-depth metrics. */
  readonly jobQueueName: string;
}

/** A function whose errors alarm. */
export interface MonitoredFunction {
  /** A short name for the alarm and the dashboard (plan, reconcile, trigger...). */
  readonly label: string;
  /** The function: its `Errors` metric (any error in 5 minutes) alarms. */
  readonly function: lambda.IFunction;
}

export interface MonitoringProps {
  /** The pipelines: per pipeline, alarms on failed runs, error rate and drift, and dashboard rows. Unique names. */
  readonly pipelines: readonly MonitoredPipeline[];

  /**
   * Job queues whose depth is measured every minute (a scheduled function) and alarmed on when stuck.
   *
   * @default - none
   */
  readonly jobQueues?: readonly MonitoredQueue[];

  /**
   * Measure the queues' depth. Off: no function, no schedule, no queue-depth widgets or alarms.
   *
   * @default true
   */
  readonly queueDepthMetrics?: boolean;

  /**
   * Functions alarmed on when they report errors.
   *
   * @default - none
   */
  readonly functions?: readonly MonitoredFunction[];

  /**
   * Queues alarmed on as soon as they hold a message (trigger dead letters).
   *
   * @default - none
   */
  readonly deadLetterQueues?: readonly sqs.IQueue[];

  /**
   * Subscribed to the alarm topic (a confirmation email is sent at deploy time).
   *
   * @default - no subscription
   */
  readonly alarmEmail?: string;

  /**
   * The drift alarm's threshold on RUN_METRICS.drift (a population stability index).
   *
   * @default 0.2
   */
  readonly driftThreshold?: number;

  /**
   * How long jobs may wait RUNNABLE with nothing running before the stuck-queue alarm fires: a multiple of 5
   * minutes, up to 24 hours. Keep it below the queue's RUNNABLE time limit, so a human hears before Batch cancels.
   *
   * @default Duration.minutes(30)
   */
  readonly stuckRunnableAfter?: Duration;

  /**
   * The Finalize function's log group: the dashboard's table of last runs is a Logs Insights query over the run
   * metrics Finalize writes there (one EMF line per run, with its pipeline, run id and status).
   *
   * @default - no table of last runs
   */
  readonly finalizeLogGroup?: logs.ILogGroup;

  /**
   * Dashboard name.
   *
   * @default - generated
   */
  readonly dashboardName?: string;

  /**
   * The queue-depth function's log retention.
   *
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;

  /**
   * What happens to the notification key and the function's logs when the stack is deleted.
   *
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
}

export class Monitoring extends Construct {
  /** Where alarms are sent. */
  readonly alarmTopic: sns.Topic;
  /** Where run-finished events are sent: subscribe downstream systems here. */
  readonly runEventsTopic: sns.Topic;
  /** Encrypts both topics. */
  readonly key: kms.Key;
  readonly alarms: readonly cloudwatch.Alarm[];
  readonly dashboard: cloudwatch.Dashboard;
  /** The rule matching every run's end. */
  readonly runFinishedRule?: events.Rule;
  /** The rule sending each failed or timed-out run, with its reason, to the alarm topic. */
  readonly runFailedNotificationRule?: events.Rule;
  readonly queueDepthFunction?: NodeFunction;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    validate(props);
    const driftThreshold = props.driftThreshold ?? 0.2;
    const stuckAfter = props.stuckRunnableAfter ?? Duration.minutes(30);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const queues = props.queueDepthMetrics === false ? [] : (props.jobQueues ?? []);
    const stack = Stack.of(this);

    // A customer managed key: CloudWatch alarms and EventBridge cannot publish to a topic encrypted with the AWS
    // managed SNS key, so they are given use of this one (as the SNS guide's key policy for AWS event sources, with
    // explicit actions). What they may publish to, and from where, is decided by the topic policies below.
    this.key = new kms.Key(this, 'NotificationKey', {
      description: 'Encrypts the batch-infer alarm and run-event topics',
      enableKeyRotation: true,
      removalPolicy,
    });
    for (const service of ['cloudwatch.amazonaws.com', 'events.amazonaws.com']) {
      this.key.addToResourcePolicy(
        new iam.PolicyStatement({
          principals: [new iam.ServicePrincipal(service)],
          actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
          resources: ['*'],
        }),
      );
    }
    this.alarmTopic = new sns.Topic(this, 'AlarmTopic', {
      displayName: 'batch-infer alarms',
      masterKey: this.key,
      enforceSSL: true,
    });
    if (props.alarmEmail)
      this.alarmTopic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    // The topic policy (created for the TLS-only rule) replaces SNS's default one: CloudWatch alarms of this account
    // are allowed to publish explicitly.
    this.alarmTopic.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.alarmTopic.topicArn],
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
    );
    this.runEventsTopic = new sns.Topic(this, 'RunEventsTopic', {
      displayName: 'batch-infer run finished events',
      masterKey: this.key,
      enforceSSL: true,
    });

    const alarms: cloudwatch.Alarm[] = [];
    const alarm = (alarmId: string, props: cloudwatch.AlarmProps): cloudwatch.Alarm => {
      const created = new cloudwatch.Alarm(this, alarmId, {
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        ...props,
      });
      created.addAlarmAction(new cwActions.SnsAction(this.alarmTopic));
      created.addOkAction(new cwActions.SnsAction(this.alarmTopic));
      alarms.push(created);
      return created;
    };
    const runMetric = (name: string, pipeline: string, statistic = 'Maximum'): cloudwatch.Metric =>
      new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName: name,
        dimensionsMap: { [RUN_METRICS.dimension]: pipeline },
        statistic,
        period: PERIOD,
        label: pipeline,
      });

    // --- Per pipeline -------------------------------------------------------------------------------------------
    for (const pipeline of props.pipelines) {
      const pid = pipeline.name.replace(/(^|_)([a-z0-9])/g, (_m, _s: string, c: string) => c.toUpperCase());
      const sm = pipeline.stateMachine;
      alarm(`${pid}RunFailedAlarm`, {
        alarmDescription: `A run of pipeline ${pipeline.name} failed or timed out. See docs/operations.md, "A run failed".`,
        metric: new cloudwatch.MathExpression({
          expression: 'failed + timedOut',
          usingMetrics: {
            failed: sm.metricFailed({ period: PERIOD, statistic: 'Sum' }),
            timedOut: sm.metricTimedOut({ period: PERIOD, statistic: 'Sum' }),
          },
          period: PERIOD,
          label: `${pipeline.name} failed + timed out`,
        }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      });
      alarm(`${pid}ErrorRateAlarm`, {
        alarmDescription:
          `A run of pipeline ${pipeline.name} had an error rate above its validation.maxErrorRate ` +
          `(${pipeline.maxErrorRate}). See the run's _errors/ files.`,
        metric: runMetric(RUN_METRICS.errorRate, pipeline.name),
        threshold: pipeline.maxErrorRate,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      });
      if ((pipeline.compute ?? 'gpu') === 'gpu') {
        alarm(`${pid}GpuRunOnCpuAlarm`, {
          alarmDescription:
            `A run of GPU pipeline ${pipeline.name} ran shards on the CPU execution provider ` +
            `(${RUN_METRICS.shardsOnCpu} at least 1): its workers could not load CUDA and its spec allows ` +
            'run.cpuFallback. See the worker logs ("execution provider cuda unavailable") and the manifest\'s ' +
            'execution.providers.',
          metric: runMetric(RUN_METRICS.shardsOnCpu, pipeline.name),
          threshold: 1,
          evaluationPeriods: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        });
      }
      alarm(`${pid}DriftAlarm`, {
        alarmDescription:
          `The predictions of pipeline ${pipeline.name} drifted (${RUN_METRICS.drift} above ${driftThreshold}): ` +
          `${RUN_METRICS.drift} is the largest population stability index of a run's prediction columns against its ` +
          "baseline run (the manifest's drift.maxPsi, per column in drift.columns). Runs without a baseline emit " +
          'nothing, and the alarm stays OK.',
        metric: runMetric(RUN_METRICS.drift, pipeline.name),
        threshold: driftThreshold,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      });
      this.addHistoryAlarm(pipeline, pid, alarm, runMetric);
    }

    // --- Queues -------------------------------------------------------------------------------------------------
    const queueMetric = (name: string, queue: MonitoredQueue, statistic: string): cloudwatch.Metric =>
      new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName: name,
        dimensionsMap: { [QUEUE_METRICS.dimension]: queue.jobQueueName },
        statistic,
        period: PERIOD,
        label: `${queue.label} ${name}`,
      });
    if (queues.length > 0) {
      this.queueDepthFunction = new NodeFunction(this, 'QueueDepthFunction', {
        entry: 'lambdas/queue-depth/handler.ts',
        description: 'Measures how many Batch jobs wait, start and run per queue, as metrics, every minute',
        memorySize: 256,
        timeout: Duration.seconds(50),
        logRetention: props.logRetention,
        logRemovalPolicy: removalPolicy,
        environment: { [FUNCTION_ENV.jobQueues]: stack.toJsonString(queues.map((q) => q.jobQueueName)) },
      });
      // ListJobs supports no resource-level permissions.
      this.queueDepthFunction.role.addToPolicy(
        new iam.PolicyStatement({ actions: ['batch:ListJobs'], resources: ['*'] }),
      );
      new scheduler.Schedule(this, 'QueueDepthSchedule', {
        description: 'Measures the Batch job queues every minute (dashboard and stuck-RUNNABLE alarm)',
        schedule: scheduler.ScheduleExpression.rate(Duration.minutes(1)),
        target: new schedulerTargets.LambdaInvoke(this.queueDepthFunction.function, {
          // A missed measurement is replaced by the next one a minute later.
          retryAttempts: 0,
          maxEventAge: Duration.minutes(1),
        }),
      });
      for (const queue of queues) {
        const qid = queue.label.replace(/[^A-Za-z0-9]/g, '');
        alarm(`${qid}QueueStuckAlarm`, {
          alarmDescription:
            `Jobs of the ${queue.label} queue have waited RUNNABLE for ${stuckAfter.toMinutes()} minutes with nothing ` +
            'running. See docs/operations.md, "Jobs stuck in RUNNABLE".',
          metric: new cloudwatch.MathExpression({
            expression: 'IF(runnable > 0 AND running == 0, 1, 0)',
            usingMetrics: {
              runnable: queueMetric(QUEUE_METRICS.runnable, queue, 'Minimum'),
              running: queueMetric(QUEUE_METRICS.running, queue, 'Maximum'),
            },
            period: PERIOD,
            label: `${queue.label} stuck`,
          }),
          threshold: 1,
          evaluationPeriods: Math.round(stuckAfter.toMinutes() / PERIOD.toMinutes()),
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        });
      }
    }

    // --- Functions and dead letters -----------------------------------------------------------------------------
    const monitoredFunctions = [
      ...(props.functions ?? []),
      ...(this.queueDepthFunction
        ? [{ label: 'queue-depth', function: this.queueDepthFunction.function }]
        : []),
    ];
    for (const fn of monitoredFunctions) {
      const fid = fn.label.replace(/(^|[^A-Za-z0-9]+)([A-Za-z0-9])/g, (_m, _s: string, c: string) =>
        c.toUpperCase(),
      );
      alarm(`${fid}FunctionErrorsAlarm`, {
        alarmDescription: `The ${fn.label} function reported errors. See its log group.`,
        metric: fn.function.metricErrors({ period: PERIOD, statistic: 'Sum' }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      });
    }
    (props.deadLetterQueues ?? []).forEach((queue, i) => {
      alarm(`DeadLetters${i}Alarm`, {
        alarmDescription:
          'A trigger event could not be delivered or processed and is kept in the dead-letter queue: a run may be ' +
          'missing. See docs/operations.md, "A trigger did not start a run".',
        metric: queue.metricApproximateNumberOfMessagesVisible({ period: PERIOD, statistic: 'Maximum' }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      });
    });
    this.alarms = alarms;

    // --- Run finished ---------------------------------------------------------------------------------------------
    if (props.pipelines.length > 0) {
      this.runFinishedRule = new events.Rule(this, 'RunFinishedRule', {
        description: 'A batch-infer run finished (succeeded, failed, timed out or aborted)',
        eventPattern: {
          source: ['aws.states'],
          detailType: ['Step Functions Execution Status Change'],
          detail: {
            stateMachineArn: props.pipelines.map((p) => p.stateMachine.stateMachineArn),
            status: [...RUN_FINISHED_STATUSES],
          },
        },
      });
      // Not targets.SnsTopic: it grants EventBridge kms:GenerateDataKey* on the key. The key policy above already
      // lets EventBridge use the key (explicit actions); the topic lets this rule, and only it, publish.
      const topic = this.runEventsTopic;
      this.runFinishedRule.addTarget({ bind: () => ({ arn: topic.topicArn }) });
      topic.addToResourcePolicy(
        new iam.PolicyStatement({
          principals: [new iam.ServicePrincipal('events.amazonaws.com')],
          actions: ['sns:Publish'],
          resources: [topic.topicArn],
          conditions: { ArnEquals: { 'aws:SourceArn': this.runFinishedRule.ruleArn } },
        }),
      );
    }

    if (props.pipelines.length > 0) this.runFailedNotificationRule = this.addRunFailedNotification(props);

    // --- Dashboard ----------------------------------------------------------------------------------------------
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      ...(props.dashboardName ? { dashboardName: props.dashboardName } : {}),
      defaultInterval: Duration.days(7),
    });
    const perPipeline = (make: (p: MonitoredPipeline) => cloudwatch.IMetric[]): cloudwatch.IMetric[] =>
      props.pipelines.flatMap(make);
    this.dashboard.addWidgets(
      new cloudwatch.TextWidget({
        markdown:
          '# batch-infer\nRuns per pipeline, their throughput and quality, and the Batch queues. ' +
          'Runbook: docs/operations.md.',
        width: 24,
        height: 2,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Executions (started, succeeded, failed, timed out)',
        width: 12,
        left: perPipeline((p) => [
          p.stateMachine.metricStarted({ period: PERIOD, statistic: 'Sum', label: `${p.name} started` }),
          p.stateMachine.metricSucceeded({ period: PERIOD, statistic: 'Sum', label: `${p.name} succeeded` }),
          p.stateMachine.metricFailed({ period: PERIOD, statistic: 'Sum', label: `${p.name} failed` }),
          p.stateMachine.metricTimedOut({ period: PERIOD, statistic: 'Sum', label: `${p.name} timed out` }),
        ]),
      }),
      new cloudwatch.GraphWidget({
        title: 'Run duration (p50, p90)',
        width: 12,
        left: perPipeline((p) => [
          p.stateMachine.metricTime({ period: PERIOD, statistic: 'p50', label: `${p.name} p50` }),
          p.stateMachine.metricTime({ period: PERIOD, statistic: 'p90', label: `${p.name} p90` }),
        ]),
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Records per second (per run)',
        width: 8,
        left: perPipeline((p) => [runMetric(RUN_METRICS.recordsPerSecond, p.name)]),
      }),
      new cloudwatch.GraphWidget({
        title: 'Error rate (per run)',
        width: 8,
        left: perPipeline((p) => [runMetric(RUN_METRICS.errorRate, p.name)]),
        leftAnnotations: props.pipelines.map((p) => ({
          value: p.maxErrorRate,
          label: `${p.name} maxErrorRate`,
        })),
      }),
      new cloudwatch.GraphWidget({
        title: 'Failed shards (per run)',
        width: 8,
        left: perPipeline((p) => [runMetric(RUN_METRICS.failedShards, p.name)]),
      }),
    );
    const queueWidgets: cloudwatch.IWidget[] = queues.map(
      (queue) =>
        new cloudwatch.GraphWidget({
          title: `Queue depth: ${queue.label} (${queue.jobQueueName})`,
          width: 8,
          left: [
            queueMetric(QUEUE_METRICS.runnable, queue, 'Maximum'),
            queueMetric(QUEUE_METRICS.starting, queue, 'Maximum'),
            queueMetric(QUEUE_METRICS.running, queue, 'Maximum'),
          ],
        }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Drift (per run)',
        width: 8,
        left: perPipeline((p) => [runMetric(RUN_METRICS.drift, p.name)]),
        leftAnnotations: [{ value: driftThreshold, label: 'alarm threshold' }],
      }),
      ...queueWidgets,
    );
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms, width: 24, height: 4 }),
    );
    this.addPipelineRows(props, driftThreshold);
    this.addBatchEventWidgets(props, queues, removalPolicy);
    this.addFunctionWidgets(monitoredFunctions);
  }

  /**
   * "Run differs from history": Finalize emits RUN_METRICS.historyDiffers (1 or 0) once a pipeline has enough
   * succeeded runs to compare with; a 1 alarms. While the history is too short nothing is emitted and it stays OK.
   */
  /**
   * The failed-run notification that says why (issue 10): the RunFailed alarm's own message can only say that some
   * run failed, so each failed or timed-out execution is also sent to the alarm topic as a line of text built from
   * its status-change event by an input transformer: the run, its status, the Fail state's error and cause (for a
   * run that reached Finalize, the run's message, whose first line is its first error; for Plan, the Plan error) and
   * the commands that show more.
   */
  private addRunFailedNotification(props: MonitoringProps): events.Rule {
    const rule = new events.Rule(this, 'RunFailedNotificationRule', {
      description: 'A batch-infer run failed or timed out: its reason, to the alarm topic',
      eventPattern: {
        source: ['aws.states'],
        detailType: ['Step Functions Execution Status Change'],
        detail: {
          stateMachineArn: props.pipelines.map((p) => p.stateMachine.stateMachineArn),
          status: [...RUN_ALARM_STATUSES],
        },
      },
    });
    const topic = this.alarmTopic;
    const field = (path: string): string => events.EventField.fromPath(path);
    const input = events.RuleTargetInput.fromText(
      `batch-infer run ${field('$.detail.name')} ${field('$.detail.status')}: ${field('$.detail.error')}: ` +
        `${field('$.detail.cause')} | execution ${field('$.detail.executionArn')} | more: batch-infer status ` +
        `${field('$.detail.name')}; batch-infer logs ${field('$.detail.name')}`,
    );
    // Not targets.SnsTopic, for the reason given at the run-finished rule.
    rule.addTarget({ bind: () => ({ arn: topic.topicArn, input }) });
    topic.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('events.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [topic.topicArn],
        conditions: { ArnEquals: { 'aws:SourceArn': rule.ruleArn } },
      }),
    );
    return rule;
  }

  private addHistoryAlarm(
    pipeline: MonitoredPipeline,
    pid: string,
    alarm: (id: string, props: cloudwatch.AlarmProps) => cloudwatch.Alarm,
    runMetric: (name: string, pipeline: string) => cloudwatch.Metric,
  ): void {
    alarm(`${pid}HistoryAlarm`, {
      alarmDescription:
        `A run of pipeline ${pipeline.name} differs from history: its duration, records/s, error rate or record ` +
        'count is far from the median of the last succeeded runs (robust z-score above 3.5 and a change above ' +
        "20%). The run's manifest.json has history.checks (value, median, MAD per metric) and report.html shows " +
        'them. Runs with too little history emit nothing, and the alarm stays OK.',
      metric: runMetric(RUN_METRICS.historyDiffers, pipeline.name),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    });
  }

  /**
   * One dashboard row per pipeline, for a person reading it: the last runs as a table (Logs Insights over the EMF
   * line Finalize writes per run: the run events with the run's numbers in them; a run that failed before Finalize
   * is counted by the Executions graph instead), the last runs' records/s, error rate, drift and history verdict,
   * and the prediction distribution (quantiles of each numeric column) of the last run.
   */
  private addPipelineRows(props: MonitoringProps, driftThreshold: number): void {
    const runMetric = (name: string, pipeline: string, label: string): cloudwatch.Metric =>
      new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName: name,
        dimensionsMap: { [RUN_METRICS.dimension]: pipeline },
        statistic: 'Maximum',
        period: RUN_PERIOD,
        label,
      });
    for (const pipeline of props.pipelines) {
      const name = pipeline.name;
      const row: cloudwatch.IWidget[] = [
        new cloudwatch.TextWidget({
          markdown: `## ${name}\nLast runs, their quality against history, and the last run's predictions.`,
          width: 24,
          height: 1,
        }),
      ];
      if (props.finalizeLogGroup) {
        row.push(
          new cloudwatch.LogQueryWidget({
            title: `${name}: last runs`,
            logGroupNames: [props.finalizeLogGroup.logGroupName],
            view: cloudwatch.LogQueryVisualizationType.TABLE,
            width: 24,
            height: 6,
            queryLines: lastRunsQuery(name),
          }),
        );
      }
      row.push(
        new cloudwatch.GraphWidget({
          title: `${name}: records and errors per run`,
          width: 6,
          left: [
            runMetric(RUN_METRICS.records, name, 'records'),
            runMetric(RUN_METRICS.errors, name, 'errors'),
          ],
          leftYAxis: { label: 'Count', min: 0, showUnits: false },
        }),
        new cloudwatch.GraphWidget({
          title: `${name}: duration and records/s per run`,
          width: 6,
          left: [runMetric(RUN_METRICS.wallSeconds, name, 'duration (s)')],
          right: [runMetric(RUN_METRICS.recordsPerSecond, name, 'records/s')],
          leftYAxis: { label: 'Seconds', min: 0, showUnits: false },
          rightYAxis: { label: 'Count/Second', min: 0, showUnits: false },
        }),
        new cloudwatch.GraphWidget({
          title: `${name}: drift and history per run`,
          width: 6,
          left: [runMetric(RUN_METRICS.drift, name, 'drift (max PSI)')],
          right: [runMetric(RUN_METRICS.historyDiffers, name, 'differs from history (1 = yes)')],
          leftYAxis: { label: 'PSI', min: 0, showUnits: false },
          rightYAxis: { label: 'differs (0/1)', min: 0, max: 1, showUnits: false },
          leftAnnotations: [{ value: driftThreshold, label: 'drift alarm' }],
        }),
        new cloudwatch.SingleValueWidget({
          title: `${name}: prediction distribution of the last run`,
          width: 6,
          height: 6,
          // The columns are the run's, not known at synth time: a search over the pipeline's column metrics.
          metrics: PREDICTION_QUANTILES.map(
            (metricName) =>
              new cloudwatch.MathExpression({
                expression:
                  `SEARCH('{${METRICS_NAMESPACE},${RUN_METRICS.dimension},${PREDICTION_METRICS.dimension}} ` +
                  `MetricName="${metricName}" ${RUN_METRICS.dimension}="${name}"', 'Maximum', ${RUN_PERIOD.toSeconds()})`,
                label: metricName,
                period: RUN_PERIOD,
              }),
          ),
          setPeriodToTimeRange: false,
        }),
      );
      row.push(runCostWidget(name, runMetric));
      this.dashboard.addWidgets(...row);
    }
  }

  /**
   * Batch job failures and Spot interruptions, which CloudWatch has no metric for: EventBridge rules (Batch job
   * state changes to FAILED on the monitored queues; EC2 Spot interruption warnings of the account and region)
   * write the events to a log group, counted per hour (the rules' MatchedEvents) and listed by a Logs Insights
   * table with the job, its status reason and the instance.
   */
  private addBatchEventWidgets(
    props: MonitoringProps,
    queues: readonly MonitoredQueue[],
    removalPolicy: RemovalPolicy,
  ): void {
    // The configured queues, measured or not: failures are events, not the queue-depth measurement.
    const monitored = props.jobQueues ?? [];
    if (monitored.length === 0) return;
    const logGroup = new logs.LogGroup(this, 'BatchEventLogs', {
      // EventBridge writes only to log groups named /aws/events/...
      logGroupName: `/aws/events/${Names.uniqueResourceName(this, { maxLength: 200 })}-batch`,
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy,
    });
    // Not targets.CloudWatchLogGroup: it installs a custom-resource function to write the log group's resource
    // policy. A native resource policy lets EventBridge write here, the rules target the group by ARN.
    logGroup.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [
          new iam.ServicePrincipal('events.amazonaws.com'),
          new iam.ServicePrincipal('delivery.logs.amazonaws.com'),
        ],
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [`${logGroup.logGroupArn}`],
      }),
    );
    const target: events.IRuleTarget = { bind: () => ({ arn: logGroup.logGroupArn }) };
    const failedJobs = new events.Rule(this, 'BatchJobFailedRule', {
      description: 'A Batch job of a batch-infer queue failed',
      eventPattern: {
        source: ['aws.batch'],
        detailType: ['Batch Job State Change'],
        detail: {
          status: ['FAILED'],
          jobQueue: monitored.flatMap((q) => events.Match.suffix(`:job-queue/${q.jobQueueName}`)),
        },
      },
      targets: [target],
    });
    const spot = new events.Rule(this, 'SpotInterruptionRule', {
      description: 'EC2 reclaims a Spot instance in two minutes (any instance of the account and region)',
      eventPattern: { source: ['aws.ec2'], detailType: ['EC2 Spot Instance Interruption Warning'] },
      targets: [target],
    });
    const matched = (rule: events.Rule, label: string): cloudwatch.Metric =>
      new cloudwatch.Metric({
        namespace: 'AWS/Events',
        metricName: 'MatchedEvents',
        dimensionsMap: { RuleName: rule.ruleName },
        statistic: 'Sum',
        period: Duration.hours(1),
        label,
      });
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Batch job failures and Spot interruptions (per hour)',
        width: 8,
        left: [matched(failedJobs, 'Batch jobs failed'), matched(spot, 'Spot interruption warnings')],
        leftYAxis: { label: 'Count', min: 0, showUnits: false },
      }),
      new cloudwatch.LogQueryWidget({
        title: 'Last Batch job failures and Spot interruptions',
        logGroupNames: [logGroup.logGroupName],
        view: cloudwatch.LogQueryVisualizationType.TABLE,
        width: 16,
        height: 6,
        queryLines: [
          'fields @timestamp, `detail-type` as event, detail.jobName as job, detail.statusReason as reason, ' +
            'detail.container.reason as containerReason, detail.container.exitCode as exitCode, ' +
            '`detail.instance-id` as instance',
          'sort @timestamp desc',
          'limit 20',
        ],
      }),
    );
  }

  /** Lambda errors and duration of every monitored function, side by side. */
  private addFunctionWidgets(functions: readonly MonitoredFunction[]): void {
    if (functions.length === 0) return;
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Lambda errors',
        width: 12,
        left: functions.map((f) =>
          f.function.metricErrors({ period: PERIOD, statistic: 'Sum', label: f.label }),
        ),
        leftYAxis: { label: 'Count', min: 0, showUnits: false },
      }),
      new cloudwatch.GraphWidget({
        title: 'Lambda duration (p90)',
        width: 12,
        left: functions.map((f) =>
          f.function.metricDuration({ period: PERIOD, statistic: 'p90', label: `${f.label} p90` }),
        ),
        leftYAxis: { label: 'Milliseconds', min: 0, showUnits: false },
      }),
    );
  }
}

/**
 * The Logs Insights query of a pipeline's last runs: Finalize's EMF line per run (lambdas/finalize/handler.ts)
 * carries the pipeline, the run id, the status and the run metrics as fields.
 */
export function lastRunsQuery(pipeline: string): string[] {
  const m = RUN_METRICS;
  return [
    `fields @timestamp, runId, status, ${m.records} as records, ${m.errors} as errors, ` +
      `${m.wallSeconds} as durationSeconds, ${m.cost} as cost, ${m.drift} as drift, ${m.historyDiffers} as differsFromHistory`,
    `filter ${m.dimension} = '${pipeline}' and ispresent(${m.records})`,
    'sort @timestamp desc',
    'limit 20',
  ];
}

function validate(props: MonitoringProps): void {
  if (
    props.alarmEmail !== undefined &&
    !Token.isUnresolved(props.alarmEmail) &&
    !EMAIL.test(props.alarmEmail)
  ) {
    throw new Error(`Monitoring alarmEmail "${props.alarmEmail}" is not an email address.`);
  }
  if (props.driftThreshold !== undefined && !(props.driftThreshold > 0)) {
    throw new Error(`Monitoring driftThreshold must be above 0, got ${props.driftThreshold}.`);
  }
  const names = new Set<string>();
  for (const p of props.pipelines) {
    if (names.has(p.name))
      throw new Error(`Monitoring pipeline names must be unique: "${p.name}" appears twice.`);
    names.add(p.name);
    if (!(p.maxErrorRate >= 0 && p.maxErrorRate <= 1)) {
      throw new Error(
        `Monitoring maxErrorRate of pipeline ${p.name} must be from 0 to 1, got ${p.maxErrorRate}.`,
      );
    }
  }
  const stuck = props.stuckRunnableAfter;
  if (stuck !== undefined && !Token.isUnresolved(stuck.toSeconds())) {
    const minutes = stuck.toSeconds() / 60;
    if (!Number.isInteger(minutes / 5) || minutes < 5 || minutes > 24 * 60) {
      throw new Error(
        `Monitoring stuckRunnableAfter must be a multiple of 5 minutes from 5 minutes to 24 hours, got ${minutes} minutes.`,
      );
    }
  }
}
