/**
 * PipelineTriggers: S3 rules filtered by bucket, prefix and suffix; schedules that pass the scheduled time; volume
 * rules; the trigger functions, their least-privilege grants and the dead-letter path. One test per rule.
 */
import { Duration, type Stack } from 'aws-cdk-lib';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { beforeAll, describe, expect, it } from '@jest/globals';
import {
  PipelineTriggers,
  type PipelineTriggersProps,
  type TriggeredPipeline,
} from '../../lib/constructs/pipeline-triggers.js';
import { actionsOf, iamStatements, synthConstruct } from './helpers.js';

const ARN = 'arn:aws:states:eu-west-1:123456789012:stateMachine:';
const SPEC = { name: 'scores', input: { uri: 's3://data/incoming/' } };

function pipeline(stack: Stack, name: string, triggers: TriggeredPipeline['triggers']): TriggeredPipeline {
  return {
    name,
    stateMachine: sfn.StateMachine.fromStateMachineArn(stack, `Sm${name}`, `${ARN}${name}`),
    spec: SPEC,
    triggers,
  };
}

function build(
  make: (stack: Stack) => Partial<PipelineTriggersProps> & Pick<PipelineTriggersProps, 'pipelines'>,
): Template {
  return synthConstruct((stack) => {
    const props = make(stack);
    new PipelineTriggers(stack, 'Triggers', props);
  });
}

type Rule = { Properties: { EventPattern: Record<string, unknown>; Targets: Record<string, unknown>[] } };

describe('PipelineTriggers', () => {
  let template: Template;
  let json: Record<string, unknown>;
  beforeAll(() => {
    template = build((stack) => ({
      pipelines: [
        pipeline(stack, 'scores', [
          { kind: 's3', bucketName: 'data', prefix: 'incoming/', suffix: '.csv' },
          {
            kind: 'schedule',
            expression: 'cron(0 2 * * ? *)',
            timezone: 'Europe/Paris',
            input: 's3://data/daily/dt={date}/',
            offset: '-1d',
          },
        ]),
        pipeline(stack, 'bulk', [{ kind: 'volume', bucketName: 'data', prefix: 'landing/', minBytes: 1024 }]),
      ],
      volumeState: { bucket: s3.Bucket.fromBucketName(stack, 'State', 'data'), keyPrefix: 'state/volume/' },
    }));
    json = template.toJSON();
  });

  it('filters S3 "Object Created" events on the bucket, the prefix and suffix (one wildcard), and non-empty objects', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.s3'],
        'detail-type': ['Object Created'],
        detail: {
          bucket: { name: ['data'] },
          object: { key: [{ wildcard: 'incoming/*.csv' }], size: [{ numeric: ['>', 0] }] },
        },
      },
      State: 'ENABLED',
    });
  });

  it("sends the trigger function the pipeline, its state machine, its spec and the event's detail", () => {
    const rule = Object.values(template.findResources('AWS::Events::Rule')).find((r) =>
      JSON.stringify(r).includes('wildcard'),
    ) as Rule;
    const [target] = rule.Properties.Targets;
    const transformer = target!.InputTransformer as {
      InputPathsMap: Record<string, string>;
      InputTemplate: string;
    };
    expect(transformer.InputPathsMap).toEqual({ detail: '$.detail' });
    expect(JSON.parse(transformer.InputTemplate.replace('<detail>', '{}'))).toEqual({
      trigger: 's3',
      pipeline: 'scores',
      stateMachineArn: `${ARN}scores`,
      spec: SPEC,
      detail: {},
    });
    expect(target).toMatchObject({
      Arn: { 'Fn::GetAtt': [expect.stringMatching(/^TriggersTriggerFunction/), 'Arn'] },
      RetryPolicy: { MaximumRetryAttempts: 8, MaximumEventAgeInSeconds: 21600 },
      DeadLetterConfig: { Arn: { 'Fn::GetAtt': [expect.stringMatching(/^TriggersDeadLetterQueue/), 'Arn'] } },
    });
  });

  it('schedules runs with EventBridge Scheduler, passing <aws.scheduler.scheduled-time> and the input template', () => {
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'cron(0 2 * * ? *)',
      ScheduleExpressionTimezone: 'Europe/Paris',
      FlexibleTimeWindow: { Mode: 'OFF' },
      State: 'ENABLED',
      Target: Match.objectLike({
        Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^TriggersTriggerFunction'), 'Arn'] },
        RetryPolicy: { MaximumRetryAttempts: 8, MaximumEventAgeInSeconds: 21600 },
        DeadLetterConfig: {
          Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^TriggersDeadLetterQueue'), 'Arn'] },
        },
      }),
    });
    const schedule = Object.values(template.findResources('AWS::Scheduler::Schedule'))[0] as {
      Properties: { Target: { Input: string } };
    };
    expect(JSON.parse(schedule.Properties.Target.Input)).toEqual({
      trigger: 'schedule',
      pipeline: 'scores',
      stateMachineArn: `${ARN}scores`,
      spec: SPEC,
      scheduleId: expect.stringMatching(/^[0-9a-f]{12}$/) as unknown,
      scheduledTime: '<aws.scheduler.scheduled-time>',
      input: 's3://data/daily/dt={date}/',
      timezone: 'Europe/Paris',
      offset: '-1d',
    });
  });

  it('counts volume with its own function: the prefix to run over and the threshold in the input', () => {
    const rule = Object.values(template.findResources('AWS::Events::Rule')).find((r) =>
      JSON.stringify(r).includes('landing/'),
    ) as Rule;
    expect(rule.Properties.EventPattern).toMatchObject({
      detail: { object: { key: [{ prefix: 'landing/' }] } },
    });
    const [target] = rule.Properties.Targets;
    expect(target!.Arn).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^TriggersVolumeFunction/), 'Arn'] });
    const input = JSON.parse(
      (target!.InputTransformer as { InputTemplate: string }).InputTemplate.replace('<detail>', '{}'),
    ) as Record<string, unknown>;
    expect(input).toMatchObject({
      trigger: 'volume',
      pipeline: 'bulk',
      prefixUri: 's3://data/landing/',
      minBytes: 1024,
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({ VOLUME_STATE_BUCKET: 'data', VOLUME_STATE_PREFIX: 'state/volume/' }),
      },
    });
  });

  it('lets each function start only the state machines of its pipelines', () => {
    const starts = iamStatements(json).filter((s) => actionsOf(s).some((a) => a.startsWith('states:')));
    const byPolicy = Object.fromEntries(
      starts.map((s) => [s.policy.replace(/[0-9A-F]{8}$/, ''), [actionsOf(s), s.Resource]]),
    );
    expect(byPolicy).toEqual({
      TriggersTriggerFunctionRoleDefaultPolicy: [['states:StartExecution'], `${ARN}scores`],
      TriggersVolumeFunctionRoleDefaultPolicy: [['states:StartExecution'], `${ARN}bulk`],
    });
  });

  it('lets the volume function read and write its counters only', () => {
    const s3Statements = iamStatements(json).filter((s) => actionsOf(s).some((a) => a.startsWith('s3:')));
    expect(s3Statements.every((s) => s.policy.startsWith('TriggersVolumeFunction'))).toBe(true);
    expect(s3Statements.map((s) => [actionsOf(s), JSON.stringify(s.Resource)])).toEqual([
      [['s3:ListBucket'], expect.stringContaining(':s3:::data"') as unknown],
      [
        ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload', 's3:DeleteObject'],
        expect.stringContaining(':s3:::data/state/volume/*') as unknown,
      ],
    ]);
  });

  it('keeps undeliverable events: an encrypted, TLS-only dead-letter queue for rules, schedules and failed invocations', () => {
    template.hasResourceProperties('AWS::SQS::Queue', {
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 14 * 24 * 3600,
    });
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
    const configs = Object.values(template.findResources('AWS::Lambda::EventInvokeConfig'));
    expect(configs).toHaveLength(2);
    for (const config of configs) {
      expect(config).toMatchObject({
        Properties: {
          MaximumRetryAttempts: 2,
          DestinationConfig: {
            OnFailure: {
              Destination: { 'Fn::GetAtt': [expect.stringMatching(/^TriggersDeadLetterQueue/), 'Arn'] },
            },
          },
        },
      });
    }
  });

  it('matches a prefix alone, a suffix alone, any key, and escapes wildcard characters', () => {
    const patterns = build((stack) => ({
      pipelines: [
        pipeline(stack, 'a', [
          { kind: 's3', bucketName: 'b', prefix: 'in/' },
          { kind: 's3', bucketName: 'b', prefix: '', suffix: '.json' },
          { kind: 's3', bucketName: 'b', prefix: '' },
          { kind: 's3', bucketName: 'b', prefix: 'odd*name/', suffix: '.csv' },
        ]),
      ],
    }));
    const keys = Object.values(patterns.findResources('AWS::Events::Rule')).map(
      (r) => ((r as Rule).Properties.EventPattern.detail as { object: { key?: unknown } }).object.key,
    );
    expect(keys).toEqual([
      [{ prefix: 'in/' }],
      [{ suffix: '.json' }],
      undefined,
      [{ wildcard: 'odd\\*name/*.csv' }],
    ]);
  });

  it('creates nothing for pipelines without triggers', () => {
    const empty = build((stack) => ({ pipelines: [pipeline(stack, 'a', [])] }));
    expect(Object.keys((empty.toJSON() as { Resources?: object }).Resources ?? {})).toEqual([]);
  });
});

describe('PipelineTriggers rules', () => {
  it('rule: pipeline names are unique', () => {
    expect(() =>
      build((stack) => ({
        pipelines: [pipeline(stack, 'a', []), { ...pipeline(stack, 'b', []), name: 'a' }],
      })),
    ).toThrow(/pipeline names must be unique: "a" appears twice/);
  });
  it('rule: a volume trigger needs volumeState', () => {
    expect(() =>
      build((stack) => ({
        pipelines: [pipeline(stack, 'a', [{ kind: 'volume', bucketName: 'b', prefix: 'l/', minBytes: 1 }])],
      })),
    ).toThrow(/pipeline a has a volume trigger: pass volumeState/);
  });
  it('rule: minBytes is a whole number of bytes, at least 1', () => {
    expect(() =>
      build((stack) => ({
        pipelines: [pipeline(stack, 'a', [{ kind: 'volume', bucketName: 'b', prefix: 'l/', minBytes: 0.5 }])],
        volumeState: { bucket: s3.Bucket.fromBucketName(stack, 'S', 'state-bucket'), keyPrefix: 's/' },
      })),
    ).toThrow(/minBytes of pipeline a must be a whole number of bytes/);
  });
  it('rule: a schedule is cron(...) or rate(...)', () => {
    expect(() =>
      build((stack) => ({
        pipelines: [pipeline(stack, 'a', [{ kind: 'schedule', expression: '0 2 * * ? *' }])],
      })),
    ).toThrow(/schedule "0 2 \* \* \? \*" of pipeline a must be cron\(\.\.\.\) or rate\(\.\.\.\)/);
  });
  it('rule: a prefix has no leading "/"', () => {
    expect(() =>
      build((stack) => ({
        pipelines: [pipeline(stack, 'a', [{ kind: 's3', bucketName: 'b', prefix: '/in/' }])],
      })),
    ).toThrow(/prefix "\/in\/" of pipeline a must be an object key prefix/);
  });
  it('rule: dead letters are kept 1 minute to 14 days', () => {
    expect(() =>
      build((stack) => ({ pipelines: [pipeline(stack, 'a', [])], deadLetterRetention: Duration.days(15) })),
    ).toThrow(/deadLetterRetention must be from 1 minute to 14 days/);
  });
});

describe('PipelineTriggers with a batching S3 trigger', () => {
  let template: Template;
  let json: Record<string, unknown>;
  const windowState = (stack: Stack) => {
    const bucket = s3.Bucket.fromBucketName(stack, 'State', 'data');
    return {
      state: { bucket, keyPrefix: 'state/batch/' },
      manifests: { bucket, keyPrefix: 'state/manifests/' },
    };
  };
  beforeAll(() => {
    template = build((stack) => ({
      pipelines: [
        pipeline(stack, 'scores', [
          {
            kind: 's3',
            bucketName: 'data',
            prefix: 'incoming/',
            suffix: '.csv',
            batch: { windowSeconds: 300, maxObjects: 500, maxBytes: 1024 ** 3 },
          },
        ]),
      ],
      windowState: windowState(stack),
    }));
    json = template.toJSON();
  });

  it('sends the trigger function the batch settings: trigger id, window, settle time, limits, the timer', () => {
    const rule = Object.values(template.findResources('AWS::Events::Rule'))[0] as Rule;
    const transformer = rule.Properties.Targets[0]!.InputTransformer as {
      InputTemplate: { 'Fn::Join': [string, unknown[]] };
    };
    // The timer's ARN is a reference in the template (TOKEN here); the rest is the input as delivered.
    const text = transformer.InputTemplate['Fn::Join'][1]
      .map((part) => (typeof part === 'string' ? part : 'TOKEN'))
      .join('');
    const input = JSON.parse(text.replace('<detail>', '{}')) as { batch: Record<string, unknown> };
    expect(input.batch).toEqual({
      triggerId: expect.stringMatching(/^[a-f0-9]{12}$/) as unknown,
      windowSeconds: 300,
      // Longer than the trigger function's timeout (30 s): every object of a window is written before it closes.
      settleSeconds: 60,
      maxObjects: 500,
      maxBytes: 1024 ** 3,
      timerStateMachineArn: 'TOKEN',
    });
    const timeout = (
      Object.entries(template.findResources('AWS::Lambda::Function')).find(([id]) =>
        id.startsWith('TriggersTriggerFunction'),
      )![1] as { Properties: { Timeout: number } }
    ).Properties.Timeout;
    expect(input.batch.settleSeconds as number).toBeGreaterThan(timeout);
  });

  it('waits in a state machine until the window closes, then invokes the window function, retried, dead letters after', () => {
    const machines = Object.values(template.findResources('AWS::StepFunctions::StateMachine'));
    expect(machines).toHaveLength(1);
    const join = (machines[0]!.Properties as { DefinitionString: { 'Fn::Join': [string, unknown[]] } })
      .DefinitionString['Fn::Join'][1];
    // References (the function, the queue, the partition) become TOKEN: the rest is the definition as deployed.
    const definition = JSON.parse(
      join.map((part) => (typeof part === 'string' ? part : 'TOKEN')).join(''),
    ) as {
      StartAt: string;
      States: Record<string, Record<string, unknown>>;
    };
    expect(definition.StartAt).toBe('UntilWindowCloses');
    expect(definition.States.UntilWindowCloses).toEqual({
      Type: 'Wait',
      TimestampPath: '$.closeAt',
      Next: 'CollectWindow',
    });
    const collect = definition.States.CollectWindow!;
    expect(collect).toMatchObject({ Type: 'Task', Resource: 'TOKEN', End: true });
    // The window (the execution input) is passed as it is: no Parameters.
    expect(collect).not.toHaveProperty('Parameters');
    expect(collect.Retry).toEqual(
      expect.arrayContaining([expect.objectContaining({ ErrorEquals: ['States.ALL'], MaxAttempts: 5 })]),
    );
    expect(collect.Catch).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'WindowToDeadLetters' },
    ]);
    expect(definition.States.WindowToDeadLetters).toMatchObject({
      Resource: 'arn:TOKEN:states:::sqs:sendMessage',
      Parameters: {
        QueueUrl: 'TOKEN',
        MessageBody: { 'window.$': '$$.Execution.Input', 'error.$': '$.error' },
      },
      Next: 'WindowFailed',
    });
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: Match.objectLike({ Level: 'ALL', IncludeExecutionData: true }),
    });
  });

  it('lets the trigger function start only the timer, and the window function only the pipeline', () => {
    const starts = iamStatements(json).filter((s) => actionsOf(s).includes('states:StartExecution'));
    const byRole = starts.map((s) => [s.policy.replace(/[0-9A-F]{8}$/, ''), JSON.stringify(s.Resource)]);
    expect(byRole).toEqual(
      expect.arrayContaining([
        ['TriggersTriggerFunctionRoleDefaultPolicy', expect.stringContaining('TriggersWindowTimer')],
        ['TriggersWindowFunctionRoleDefaultPolicy', JSON.stringify(`${ARN}scores`)],
      ]),
    );
    expect(byRole).toHaveLength(2);
  });

  it('gives the trigger function the window state only, and the window function the state and the manifests', () => {
    const s3Grants = iamStatements(json)
      .filter((s) => actionsOf(s).includes('s3:PutObject'))
      .map((s) => [s.policy.replace(/[0-9A-F]{8}$/, ''), JSON.stringify(s.Resource)]);
    expect(s3Grants.sort()).toEqual([
      ['TriggersTriggerFunctionRoleDefaultPolicy', expect.stringContaining('/state/batch/*')],
      ['TriggersWindowFunctionRoleDefaultPolicy', expect.stringContaining('/state/batch/*')],
      ['TriggersWindowFunctionRoleDefaultPolicy', expect.stringContaining('/state/manifests/*')],
    ]);
  });

  it('rule: a batching trigger needs windowState', () => {
    expect(() =>
      build((stack) => ({
        pipelines: [
          pipeline(stack, 'a', [
            { kind: 's3', bucketName: 'b', prefix: 'in/', batch: { windowSeconds: 60 } },
          ]),
        ],
      })),
    ).toThrow(/pipeline a has a batching S3 trigger: pass windowState/);
  });

  it('rule: windowSeconds is a whole number from 10 to 86400', () => {
    for (const windowSeconds of [5, 90_000, 1.5]) {
      expect(() =>
        build((stack) => ({
          pipelines: [
            pipeline(stack, 'a', [{ kind: 's3', bucketName: 'b', prefix: 'in/', batch: { windowSeconds } }]),
          ],
          windowState: windowState(stack),
        })),
      ).toThrow(/windowSeconds of pipeline a must be a whole number from 10 to 86400/);
    }
  });

  it('rule: maxObjects is a whole number from 1 to 100000, maxBytes at least 1', () => {
    const make = (batch: { windowSeconds: number; maxObjects?: number; maxBytes?: number }) => () =>
      build((stack) => ({
        pipelines: [pipeline(stack, 'a', [{ kind: 's3', bucketName: 'b', prefix: 'in/', batch }])],
        windowState: windowState(stack),
      }));
    expect(make({ windowSeconds: 60, maxObjects: 0 })).toThrow(
      /maxObjects of pipeline a must be a whole number from 1 to 100000/,
    );
    expect(make({ windowSeconds: 60, maxObjects: 100_001 })).toThrow(/maxObjects/);
    expect(make({ windowSeconds: 60, maxBytes: 0 })).toThrow(
      /maxBytes of pipeline a must be a whole number of bytes/,
    );
  });
});

describe('PipelineTriggers with volumeManifests', () => {
  it("tells the volume function where to write its runs' list manifests, and lets it write there only", () => {
    const template = build((stack) => {
      const bucket = s3.Bucket.fromBucketName(stack, 'State', 'data');
      return {
        pipelines: [
          pipeline(stack, 'bulk', [{ kind: 'volume', bucketName: 'data', prefix: 'landing/', minBytes: 1 }]),
        ],
        volumeState: { bucket, keyPrefix: 'state/volume/' },
        volumeManifests: { bucket, keyPrefix: 'state/manifests/' },
      };
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          VOLUME_STATE_PREFIX: 'state/volume/',
          TRIGGER_MANIFEST_PREFIX: 'state/manifests/',
        }),
      },
    });
    const writes = iamStatements(template.toJSON())
      .filter((s) => actionsOf(s).includes('s3:PutObject'))
      .map((s) => JSON.stringify(s.Resource));
    expect(writes.sort()).toEqual([
      expect.stringContaining('/state/manifests/*'),
      expect.stringContaining('/state/volume/*'),
    ]);
  });
});
