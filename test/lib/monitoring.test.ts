/**
 * Monitoring: alarms (run failed or timed out, error rate, drift, stuck queue, function errors, dead letters) to an
 * encrypted SNS topic with an optional email, the run-finished events, the queue-depth measurement and the
 * dashboard. One test per rule.
 */
import { Duration, type Stack } from 'aws-cdk-lib';
import { Match, type Matcher, type Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import {
  Monitoring,
  RUN_ALARM_STATUSES,
  RUN_FINISHED_STATUSES,
  type MonitoringProps,
} from '../../lib/constructs/monitoring.js';
import {
  METRICS_NAMESPACE,
  PREDICTION_METRICS,
  QUEUE_METRICS,
  RUN_METRICS,
} from '../../src/runtime/metrics.js';
import { synthConstruct } from './helpers.js';

const ARN = 'arn:aws:states:eu-west-1:123456789012:stateMachine:';

function monitoring(props: (stack: Stack) => Partial<MonitoringProps> = () => ({})): Template {
  return synthConstruct((stack) => {
    new Monitoring(stack, 'Monitoring', {
      pipelines: [
        {
          name: 'scores',
          stateMachine: sfn.StateMachine.fromStateMachineArn(stack, 'Scores', `${ARN}scores`),
          maxErrorRate: 0.01,
        },
        {
          name: 'bulk',
          stateMachine: sfn.StateMachine.fromStateMachineArn(stack, 'Bulk', `${ARN}bulk`),
          maxErrorRate: 0.001,
          compute: 'cpu',
        },
      ],
      jobQueues: [
        { label: 'gpu', jobQueueName: 'batch-infer-test-gpu' },
        { label: 'cpu', jobQueueName: 'batch-infer-test-cpu' },
      ],
      functions: [
        { label: 'trigger', function: lambda.Function.fromFunctionName(stack, 'Fn', 'trigger-fn') },
      ],
      deadLetterQueues: [sqs.Queue.fromQueueArn(stack, 'Dlq', 'arn:aws:sqs:eu-west-1:123456789012:dlq')],
      alarmEmail: 'oncall@example.com',
      finalizeLogGroup: logs.LogGroup.fromLogGroupName(stack, 'FinalizeLogs', '/aws/lambda/finalize-fn'),
      ...props(stack),
    });
  });
}

type Alarm = { Properties: Record<string, unknown> };

/** The alarm metric of a run metric of one pipeline (the maximum over 5 minutes: one value per run). */
function metricStat(name: string, pipeline: string): Matcher {
  return Match.objectLike({
    MetricStat: {
      Metric: {
        Namespace: METRICS_NAMESPACE,
        MetricName: name,
        Dimensions: [{ Name: 'Pipeline', Value: pipeline }],
      },
      Period: 300,
      Stat: 'Maximum',
    },
  });
}

describe('Monitoring', () => {
  let template: Template;
  let alarms: Alarm[];
  beforeAll(() => {
    template = monitoring();
    alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm')) as Alarm[];
  });
  const alarmAbout = (text: string): Alarm[] =>
    alarms.filter((a) => String(a.Properties.AlarmDescription).includes(text));

  it('alarms when a run of a pipeline fails or times out (one alarm per pipeline)', () => {
    const failed = alarmAbout('failed or timed out');
    expect(failed).toHaveLength(2);
    expect(failed[0]!.Properties).toMatchObject({
      Threshold: 1,
      EvaluationPeriods: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
      Metrics: expect.arrayContaining([
        expect.objectContaining({ Expression: 'failed + timedOut' }),
        expect.objectContaining({
          Id: 'failed',
          MetricStat: expect.objectContaining({
            Metric: expect.objectContaining({
              MetricName: 'ExecutionsFailed',
              Namespace: 'AWS/States',
            }) as unknown,
          }) as unknown,
        }),
        expect.objectContaining({
          Id: 'timedOut',
          MetricStat: expect.objectContaining({
            Metric: expect.objectContaining({ MetricName: 'ExecutionsTimedOut' }) as unknown,
          }) as unknown,
        }),
      ]) as unknown,
    });
  });

  it("alarms when a run's error rate exceeds its pipeline's maxErrorRate", () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Metrics: [metricStat(RUN_METRICS.errorRate, 'bulk')],
      Threshold: 0.001,
      ComparisonOperator: 'GreaterThanThreshold',
    });
  });

  it('alarms when a run of a GPU pipeline had shards on the CPU execution provider, and not for a CPU pipeline', () => {
    const onCpu = (pipeline: string) =>
      Object.values(
        template.findResources('AWS::CloudWatch::Alarm', {
          Properties: { Metrics: [metricStat(RUN_METRICS.shardsOnCpu, pipeline)] },
        }),
      );
    expect(onCpu('scores')).toHaveLength(1);
    expect(onCpu('scores')[0]).toMatchObject({
      Properties: {
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'notBreaching',
      },
    });
    expect(onCpu('bulk')).toHaveLength(0);
  });

  it('alarms on drift, on the metric Finalize emits, staying OK while no run reports it', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Metrics: [metricStat(RUN_METRICS.drift, 'scores')],
      Threshold: 0.2,
      TreatMissingData: 'notBreaching',
    });
  });

  it('alarms when a run differs from history, per pipeline, on the metric Finalize emits, OK while none is', () => {
    const history = alarmAbout('differs from history');
    expect(history).toHaveLength(2);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Metrics: [metricStat(RUN_METRICS.historyDiffers, 'bulk')],
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
    });
  });

  it('alarms when jobs wait RUNNABLE with nothing running for 30 minutes, per queue', () => {
    const stuck = alarmAbout('RUNNABLE');
    expect(stuck).toHaveLength(2);
    expect(stuck[0]!.Properties).toMatchObject({
      EvaluationPeriods: 6,
      Metrics: expect.arrayContaining([
        expect.objectContaining({ Expression: 'IF(runnable > 0 AND running == 0, 1, 0)' }),
      ]) as unknown,
    });
  });

  it('alarms on function errors and on the first dead letter', () => {
    expect(alarmAbout('The trigger function reported errors')).toHaveLength(1);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Threshold: 1,
    });
  });

  it('sends every alarm (and its recovery) to the alarm topic', () => {
    for (const alarm of alarms) {
      expect(alarm.Properties.AlarmActions).toEqual([
        { Ref: expect.stringMatching(/^MonitoringAlarmTopic/) as unknown },
      ]);
      expect(alarm.Properties.OKActions).toEqual(alarm.Properties.AlarmActions);
    }
  });

  it('encrypts the topics with a rotated key CloudWatch and EventBridge may use, TLS-only publishing', () => {
    template.hasResourceProperties('AWS::KMS::Key', {
      EnableKeyRotation: true,
      KeyPolicy: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
          }),
          Match.objectLike({
            Principal: { Service: 'events.amazonaws.com' },
            Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
          }),
        ]),
      },
    });
    template.resourceCountIs('AWS::SNS::Topic', 2);
    template.allResourcesProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    for (const policy of Object.values(template.findResources('AWS::SNS::TopicPolicy'))) {
      expect(JSON.stringify(policy)).toContain('"aws:SecureTransport":"false"');
    }
  });

  it('lets CloudWatch alarms of the account publish alarms, and only the run-finished rule publish run events', () => {
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      Topics: [{ Ref: Match.stringLikeRegexp('^MonitoringAlarmTopic') }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Allow',
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: 'sns:Publish',
            Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
          }),
        ]),
      },
    });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      Topics: [{ Ref: Match.stringLikeRegexp('^MonitoringRunEventsTopic') }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Allow',
            Principal: { Service: 'events.amazonaws.com' },
            Action: 'sns:Publish',
            Condition: {
              ArnEquals: {
                'aws:SourceArn': {
                  'Fn::GetAtt': [Match.stringLikeRegexp('^MonitoringRunFinishedRule'), 'Arn'],
                },
              },
            },
          }),
        ]),
      },
    });
  });

  it('subscribes the alarm email', () => {
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'oncall@example.com',
    });
  });

  it('publishes every finished run (Step Functions status change) of the pipelines to the run events topic', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.states'],
        'detail-type': ['Step Functions Execution Status Change'],
        detail: { stateMachineArn: [`${ARN}scores`, `${ARN}bulk`], status: [...RUN_FINISHED_STATUSES] },
      },
      Targets: [Match.objectLike({ Arn: { Ref: Match.stringLikeRegexp('^MonitoringRunEventsTopic') } })],
    });
  });

  it("sends each failed or timed-out run to the alarm topic with its reason (the Fail state's error and cause)", () => {
    const rules = template.findResources('AWS::Events::Rule', {
      Properties: { EventPattern: { detail: { status: [...RUN_ALARM_STATUSES] } } },
    });
    const [rule] = Object.values(rules) as { Properties: { Targets: Record<string, unknown>[] } }[];
    expectIn(Object.keys(rules), 'failed-run notification rules').toHaveLength(1);
    const target = rule!.Properties.Targets[0] as {
      Arn: unknown;
      InputTransformer: { InputPathsMap: Record<string, string>; InputTemplate: string };
    };
    expect(target.Arn).toEqual({ Ref: expect.stringMatching(/^MonitoringAlarmTopic/) });
    const paths = target.InputTransformer.InputPathsMap;
    const key = (path: string): string => {
      const found = Object.entries(paths).find(([, p]) => p === path)?.[0];
      expectIn(found, `an input path for ${path}`).toBeDefined();
      return `<${found}>`;
    };
    const template_ = target.InputTransformer.InputTemplate;
    for (const path of ['$.detail.name', '$.detail.status', '$.detail.error', '$.detail.cause']) {
      expectIn(template_, 'the notification text').toContain(key(path));
    }
    expect(template_).toContain(`${key('$.detail.error')}: ${key('$.detail.cause')}`);
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      Topics: [{ Ref: Match.stringLikeRegexp('^MonitoringAlarmTopic') }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Principal: { Service: 'events.amazonaws.com' },
            Action: 'sns:Publish',
            Condition: {
              ArnEquals: {
                'aws:SourceArn': {
                  'Fn::GetAtt': [Match.stringLikeRegexp('^MonitoringRunFailedNotificationRule'), 'Arn'],
                },
              },
            },
          }),
        ]),
      },
    });
  });

  it('measures queue depth every minute with a function that may only list jobs', () => {
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'rate(1 minute)',
      Target: Match.objectLike({
        Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^MonitoringQueueDepthFunction'), 'Arn'] },
      }),
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({ JOB_QUEUES: '["batch-infer-test-gpu","batch-infer-test-cpu"]' }),
      },
    });
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([{ Action: 'batch:ListJobs', Effect: 'Allow', Resource: '*' }]),
      },
    });
  });

  it('has a dashboard with executions, durations, records/s, error rate, failed shards, drift, queue depth, alarms', () => {
    const dashboard = JSON.stringify(Object.values(template.findResources('AWS::CloudWatch::Dashboard'))[0]);
    for (const text of [
      'Executions (started, succeeded, failed, timed out)',
      'Run duration (p50, p90)',
      'Records per second',
      'Error rate',
      'Failed shards',
      'Drift',
      'Queue depth: gpu',
      'Queue depth: cpu',
      'Alarms',
      RUN_METRICS.recordsPerSecond,
      RUN_METRICS.failedShards,
      QUEUE_METRICS.runnable,
      'ExecutionTime',
    ]) {
      expectIn(dashboard, text).toContain(text);
    }
  });

  describe('the dashboard a person reads', () => {
    type Widget = { type: string; width: number; properties: Record<string, unknown> };
    let widgets: Widget[];
    beforeAll(() => {
      const [dashboard] = Object.values(template.findResources('AWS::CloudWatch::Dashboard')) as {
        Properties: { DashboardBody: { 'Fn::Join': [string, unknown[]] } };
      }[];
      const body = dashboard!.Properties.DashboardBody;
      // The body is a join of literal JSON and tokens (names, ARNs): tokens become placeholders.
      const json = body['Fn::Join'][1].map((p) => (typeof p === 'string' ? p : 'TOKEN')).join('');
      widgets = (JSON.parse(json) as { widgets: Widget[] }).widgets;
    });
    const titled = (title: string): Widget => {
      const found = widgets.find((w) => w.properties.title === title);
      expectIn(
        found,
        `widget "${title}" among ${widgets.map((w) => String(w.properties.title)).join(', ')}`,
      ).toBeDefined();
      return found!;
    };

    it('has one row per pipeline, headed by its name', () => {
      for (const name of ['scores', 'bulk']) {
        const header = widgets.findIndex((w) => String(w.properties.markdown).startsWith(`## ${name}\n`));
        expectIn(header, name).toBeGreaterThanOrEqual(0);
        expect(widgets[header + 1]!.properties.title).toBe(`${name}: last runs`);
      }
    });

    it("tables each pipeline's last runs from Finalize's run lines: status, records, errors, duration, drift", () => {
      const table = titled('scores: last runs');
      expect(table.type).toBe('log');
      expect(table.properties.view).toBe('table');
      const query = String(table.properties.query);
      expect(query).toContain("SOURCE '/aws/lambda/finalize-fn'");
      for (const field of [
        'runId',
        'status',
        `${RUN_METRICS.records} as records`,
        `${RUN_METRICS.errors} as errors`,
        `${RUN_METRICS.wallSeconds} as durationSeconds`,
        `${RUN_METRICS.cost} as cost`,
        `${RUN_METRICS.drift} as drift`,
        `${RUN_METRICS.historyDiffers} as differsFromHistory`,
        "filter Pipeline = 'scores'",
        'sort @timestamp desc',
      ]) {
        expectIn(query, field).toContain(field);
      }
    });

    it('graphs per pipeline records and errors, duration and records/s, drift and history, with units', () => {
      const counts = titled('bulk: records and errors per run');
      expect(counts.properties.yAxis).toEqual({ left: { label: 'Count', min: 0, showUnits: false } });
      expect(JSON.stringify(counts.properties.metrics)).toContain(RUN_METRICS.errors);
      const speed = titled('bulk: duration and records/s per run');
      expect(speed.properties.yAxis).toMatchObject({
        left: { label: 'Seconds' },
        right: { label: 'Count/Second' },
      });
      expect(JSON.stringify(speed.properties.metrics)).toContain('"period":3600');
      const quality = titled('bulk: drift and history per run');
      expect(JSON.stringify(quality.properties.metrics)).toContain(RUN_METRICS.historyDiffers);
    });

    it('graphs per pipeline what each run cost, from the RunCost metric, in the price table currency', () => {
      for (const name of ['scores', 'bulk']) {
        const cost = titled(`${name}: cost per run (USD)`);
        expect(cost.type).toBe('metric');
        expect(cost.properties.yAxis).toEqual({ left: { label: 'USD', min: 0, showUnits: false } });
        const metrics = JSON.stringify(cost.properties.metrics);
        expectIn(metrics, name).toContain(`"${RUN_METRICS.cost}","Pipeline","${name}"`);
        expectIn(metrics, name).toContain('"period":3600');
        expectIn(metrics, name).toContain('"stat":"Maximum"');
      }
    });

    it("shows the last run's prediction distribution from the quantile metrics Finalize emits", () => {
      const dist = titled('scores: prediction distribution of the last run');
      expect(dist.type).toBe('metric');
      expect(dist.properties.view).toBe('singleValue');
      const metrics = JSON.stringify(dist.properties.metrics);
      for (const name of [PREDICTION_METRICS.p10, PREDICTION_METRICS.p50, PREDICTION_METRICS.p90]) {
        expectIn(metrics, name).toContain(
          `SEARCH('{${METRICS_NAMESPACE},Pipeline,Column} MetricName=\\"${name}\\" Pipeline=\\"scores\\"', 'Maximum', 3600)`,
        );
      }
    });

    it('routes failed Batch jobs of the queues and Spot interruption warnings to a log group, counted and listed', () => {
      template.hasResourceProperties('AWS::Events::Rule', {
        EventPattern: {
          source: ['aws.batch'],
          'detail-type': ['Batch Job State Change'],
          detail: {
            status: ['FAILED'],
            jobQueue: [
              { suffix: ':job-queue/batch-infer-test-gpu' },
              { suffix: ':job-queue/batch-infer-test-cpu' },
            ],
          },
        },
        Targets: [Match.objectLike({ Arn: Match.anyValue() })],
      });
      template.hasResourceProperties('AWS::Events::Rule', {
        EventPattern: { source: ['aws.ec2'], 'detail-type': ['EC2 Spot Instance Interruption Warning'] },
      });
      template.hasResourceProperties('AWS::Logs::LogGroup', {
        LogGroupName: Match.stringLikeRegexp('^/aws/events/'),
      });
      // EventBridge may write to the group (a native resource policy, no custom-resource function).
      expect(JSON.stringify(template.findResources('AWS::Logs::ResourcePolicy'))).toContain(
        'events.amazonaws.com',
      );
      const counts = titled('Batch job failures and Spot interruptions (per hour)');
      expect(JSON.stringify(counts.properties.metrics)).toContain('MatchedEvents');
      expect(JSON.stringify(counts.properties.metrics)).toContain('"period":3600');
      const list = titled('Last Batch job failures and Spot interruptions');
      expect(String(list.properties.query)).toContain('detail.statusReason as reason');
    });

    it('graphs Lambda errors and duration of every monitored function', () => {
      const errors = titled('Lambda errors');
      expect(JSON.stringify(errors.properties.metrics)).toContain('"Errors"');
      expect(JSON.stringify(errors.properties.metrics)).toContain('"label":"trigger"');
      const duration = titled('Lambda duration (p90)');
      expect(duration.properties.stat ?? JSON.stringify(duration.properties.metrics)).toContain('p90');
      expect(duration.properties.yAxis).toEqual({
        left: { label: 'Milliseconds', min: 0, showUnits: false },
      });
    });
  });

  it('without queue-depth metrics, has no measuring function, schedule or stuck-queue alarm', () => {
    const quiet = monitoring(() => ({ queueDepthMetrics: false, alarmEmail: undefined }));
    quiet.resourceCountIs('AWS::Lambda::Function', 0);
    quiet.resourceCountIs('AWS::Scheduler::Schedule', 0);
    quiet.resourceCountIs('AWS::SNS::Subscription', 0);
    expect(JSON.stringify(quiet.toJSON())).not.toContain('RUNNABLE with nothing');
  });
});

describe('Monitoring rules', () => {
  it('rule: alarmEmail is an email address', () => {
    expect(() => monitoring(() => ({ alarmEmail: 'oncall' }))).toThrow(
      /alarmEmail "oncall" is not an email address/,
    );
  });
  it('rule: driftThreshold is above 0', () => {
    expect(() => monitoring(() => ({ driftThreshold: 0 }))).toThrow(/driftThreshold must be above 0/);
  });
  it('rule: maxErrorRate is from 0 to 1', () => {
    expect(() =>
      monitoring((stack) => ({
        pipelines: [
          {
            name: 'a',
            stateMachine: sfn.StateMachine.fromStateMachineArn(stack, 'A', `${ARN}a`),
            maxErrorRate: 2,
          },
        ],
      })),
    ).toThrow(/maxErrorRate of pipeline a must be from 0 to 1/);
  });
  it('rule: pipeline names are unique', () => {
    expect(() =>
      monitoring((stack) => {
        const sm = sfn.StateMachine.fromStateMachineArn(stack, 'A', `${ARN}a`);
        return {
          pipelines: [
            { name: 'a', stateMachine: sm, maxErrorRate: 0 },
            { name: 'a', stateMachine: sm, maxErrorRate: 0 },
          ],
        };
      }),
    ).toThrow(/pipeline names must be unique/);
  });
  it('rule: stuckRunnableAfter is a multiple of 5 minutes up to 24 hours', () => {
    expect(() => monitoring(() => ({ stuckRunnableAfter: Duration.minutes(7) }))).toThrow(
      /multiple of 5 minutes/,
    );
  });
});
