/**
 * The S3 and schedule triggers end to end below the Lambda handler: an event as EventBridge (or Scheduler) delivers
 * it, through the event schema, to a StartExecution request on the wire (real SFNClient, recorded responses).
 */
import { describe, expect, it } from '@jest/globals';
import { triggerEventSchema, type S3TriggerEvent } from '../../src/triggers/events.js';
import { s3ExecutionName } from '../../src/triggers/execution-name.js';
import { handleTrigger } from '../../src/triggers/trigger.js';
import { planRequestSchema } from '../../src/runs/tasks.js';
import { createLogger } from '../../src/runtime/log.js';
import { recordedSfn, sfnResponse, startExecutionBody } from './sfn.js';

const STATE_MACHINE = 'arn:aws:states:us-east-1:123456789012:stateMachine:BreastCancerStateMachine';
const SPEC = { name: 'breast_cancer', input: { uri: 's3://data-bucket/incoming/', format: 'csv' } };

/** The `detail` of an S3 "Object Created" event, as in the S3 user guide's EventBridge example. */
const DETAIL = {
  version: '0',
  bucket: { name: 'data-bucket' },
  object: {
    key: 'incoming/2025-01-01/patients.csv',
    size: 5120,
    etag: 'b1946ac92492d2347c6235b4d2611184',
    'version-id': 'IYV3p45BT0ac8hjHg1houSdS1a.Mro8e',
    sequencer: '00617F08299329D189',
  },
  'request-id': 'N4N7GDK58NMKJ12R',
  requester: '123456789012',
  'source-ip-address': '1.2.3.4',
  reason: 'PutObject',
};

/** What the rule's input transformer produces (lib/constructs/pipeline-triggers.ts). */
function s3Event(detail: unknown = DETAIL): unknown {
  return { trigger: 's3', pipeline: 'breast_cancer', stateMachineArn: STATE_MACHINE, spec: SPEC, detail };
}

function logLines(): { log: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({}, { write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { log, lines };
}

describe('S3 trigger', () => {
  it('starts one run over the created object, named after bucket/key/ETag/version', async () => {
    const event = triggerEventSchema.parse(s3Event()) as S3TriggerEvent;
    const name = s3ExecutionName({
      bucket: 'data-bucket',
      key: DETAIL.object.key,
      etag: DETAIL.object.etag,
      versionId: DETAIL.object['version-id'],
    });
    const { client, http } = recordedSfn([sfnResponse('started', name)]);
    const outcome = await handleTrigger(event, { sfn: client, log: logLines().log });
    expect(outcome).toMatchObject({
      status: 'started',
      name,
      inputUri: 's3://data-bucket/incoming/2025-01-01/patients.csv',
    });
    const body = startExecutionBody(http.requests[0]!.text);
    expect(body.stateMachineArn).toBe(STATE_MACHINE);
    expect(body.name).toBe(name);
    // No scheduledTime: only schedules pass one.
    expect(JSON.parse(body.input)).toEqual({
      spec: SPEC,
      inputUri: 's3://data-bucket/incoming/2025-01-01/patients.csv',
    });
  });

  it('maps a duplicated S3 event to the same execution name, and the duplicate starts nothing', async () => {
    const { log, lines } = logLines();
    const first = triggerEventSchema.parse(s3Event());
    const duplicate = triggerEventSchema.parse(s3Event(structuredClone(DETAIL)));
    const { client, http } = recordedSfn([sfnResponse('started', 'x'), sfnResponse('alreadyExists', 'x')]);
    const a = await handleTrigger(first, { sfn: client, log });
    const b = await handleTrigger(duplicate, { sfn: client, log });
    expect(a.status).toBe('started');
    expect(b.status).toBe('duplicate');
    // The same request twice: same name, same input. Step Functions refuses the second execution.
    expect(http.requests[1]!.text).toBe(http.requests[0]!.text);
    expect(lines.at(-1)).toMatchObject({
      message: 'duplicate trigger: run already started',
      pipeline: 'breast_cancer',
    });
  });

  it('gives a new version of the same key (new ETag or version id) a new run', async () => {
    const names = [
      DETAIL,
      { ...DETAIL, object: { ...DETAIL.object, etag: 'ffffffffffffffffffffffffffffffff' } },
      { ...DETAIL, object: { ...DETAIL.object, 'version-id': 'other' } },
    ].map((detail) => {
      const e = triggerEventSchema.parse(s3Event(detail)) as S3TriggerEvent;
      return s3ExecutionName({
        bucket: e.detail.bucket.name,
        key: e.detail.object.key,
        etag: e.detail.object.etag,
        versionId: e.detail.object['version-id'] ?? undefined,
      });
    });
    expect(new Set(names).size).toBe(3);
  });

  it('accepts an unversioned bucket (no version-id) and a size given as text', async () => {
    const { 'version-id': _none, ...object } = DETAIL.object;
    const event = triggerEventSchema.parse(s3Event({ ...DETAIL, object: { ...object, size: '5120' } }));
    const { client } = recordedSfn([sfnResponse('started')]);
    expect((await handleTrigger(event, { sfn: client, log: logLines().log })).status).toBe('started');
  });

  it('ignores folder markers and empty objects without calling Step Functions', async () => {
    const { client, http } = recordedSfn([]);
    for (const object of [
      { ...DETAIL.object, key: 'incoming/new-folder/', size: 0 },
      { ...DETAIL.object, size: 0 },
    ]) {
      const event = triggerEventSchema.parse(s3Event({ ...DETAIL, object }));
      expect(await handleTrigger(event, { sfn: client, log: logLines().log })).toMatchObject({
        status: 'ignored',
      });
    }
    expect(http.served).toBe(0);
  });

  it('rejects an event that is not a trigger event', () => {
    expect(
      triggerEventSchema.safeParse({ ...(s3Event() as object), stateMachineArn: 'not-an-arn' }).success,
    ).toBe(false);
    expect(triggerEventSchema.safeParse({ trigger: 'ftp' }).success).toBe(false);
  });
});

describe('schedule trigger', () => {
  const base = {
    trigger: 'schedule',
    pipeline: 'breast_cancer_daily',
    stateMachineArn: STATE_MACHINE,
    spec: SPEC,
    scheduleId: '04b75375875f',
    // What <aws.scheduler.scheduled-time> becomes.
    scheduledTime: '2025-03-01T02:30:00Z',
  };

  it('fills the input template from the scheduled time (offset, time zone) and names the run after it', async () => {
    const event = triggerEventSchema.parse({
      ...base,
      input: 's3://data-bucket/landing/dt={date}/hour={hour}/',
      offset: '-1d',
      timezone: 'Europe/Paris',
    });
    const { client, http } = recordedSfn([sfnResponse('started')]);
    const outcome = await handleTrigger(event, { sfn: client, log: logLines().log });
    // 2025-03-01T02:30Z minus a day is 2025-02-28T02:30Z, 03:30 in Paris.
    expect(outcome).toMatchObject({
      status: 'started',
      name: 'sched-04b75375875f-20250301T023000Z',
      inputUri: 's3://data-bucket/landing/dt=2025-02-28/hour=03/',
    });
    expect(JSON.parse(startExecutionBody(http.requests[0]!.text).input)).toEqual({
      spec: SPEC,
      inputUri: 's3://data-bucket/landing/dt=2025-02-28/hour=03/',
      // The time the schedule was due, not shifted by the offset: what the run's manifest records.
      scheduledTime: '2025-03-01T02:30:00.000Z',
    });
  });

  it('without a template, runs the spec as it is (input.uri), and still passes the scheduled time to the run', async () => {
    const { client, http } = recordedSfn([sfnResponse('started')]);
    await handleTrigger(triggerEventSchema.parse(base), { sfn: client, log: logLines().log });
    const input = JSON.parse(startExecutionBody(http.requests[0]!.text).input) as Record<string, unknown>;
    expect(input).toEqual({ spec: SPEC, scheduledTime: '2025-03-01T02:30:00.000Z' });
    // The execution input is what Plan receives: it accepts the field (PlanRequest.scheduledTime).
    expect(planRequestSchema.parse({ ...input, runId: 'sched-x' }).scheduledTime).toBe(
      '2025-03-01T02:30:00.000Z',
    );
  });

  it('passes the scheduled time in UTC whatever offset Scheduler wrote it with', async () => {
    const { client, http } = recordedSfn([sfnResponse('started')]);
    const event = triggerEventSchema.parse({ ...base, scheduledTime: '2025-03-01T03:30:00+01:00' });
    await handleTrigger(event, { sfn: client, log: logLines().log });
    expect(JSON.parse(startExecutionBody(http.requests[0]!.text).input)).toMatchObject({
      scheduledTime: '2025-03-01T02:30:00.000Z',
    });
  });

  it('a schedule delivered twice for the same time starts one run', async () => {
    const { client } = recordedSfn([sfnResponse('started'), sfnResponse('alreadyExists')]);
    const event = triggerEventSchema.parse(base);
    const first = await handleTrigger(event, { sfn: client, log: logLines().log });
    const second = await handleTrigger(event, { sfn: client, log: logLines().log });
    expect([first.status, second.status]).toEqual(['started', 'duplicate']);
    expect((second as { name: string }).name).toBe((first as { name: string }).name);
  });
});
