/**
 * Batching S3 triggers (src/triggers/window.ts): uploads within one window become one run over exactly those
 * objects (a list manifest), duplicated and redelivered events start nothing new, retries redo the same thing.
 * Step Functions is the real SFNClient over the recorded StartExecution responses, answered as the service does:
 * a second execution of a name is refused (`ExecutionAlreadyExists`). The state is an in-memory store with S3's
 * create-only semantics; S3TriggerStateStore itself is tested against s3rver and recorded responses below.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { listInput } from '../../src/manifest/list-input.js';
import { createLogger } from '../../src/runtime/log.js';
import { S3ObjectStore } from '../../src/storage/s3.js';
import {
  triggerEventSchema,
  windowCloseEventSchema,
  type S3TriggerEvent,
  type WindowCloseEvent,
} from '../../src/triggers/events.js';
import { S3TriggerStateStore } from '../../src/triggers/state-store.js';
import { MemoryStateStore } from './memory-state-store.js';
import { handleTrigger } from '../../src/triggers/trigger.js';
import {
  collectWindow,
  recordWindowObject,
  splitIntoRuns,
  timerExecutionName,
  windowRunName,
} from '../../src/triggers/window.js';
import { startS3Server, S3RVER_CREDENTIALS, S3RVER_REGION, type S3TestServer } from '../support/s3-server.js';
import { expectIn } from '../support/expect-in.js';
import { RecordedHttpHandler, TEST_CREDENTIALS, type WireRequest } from './recorded-http.js';
import { sfnResponse, startExecutionBody } from './sfn.js';

const PIPELINE_SM = 'arn:aws:states:us-east-1:123456789012:stateMachine:BreastCancerStateMachine';
const TIMER_SM = 'arn:aws:states:us-east-1:123456789012:stateMachine:TriggerWindowTimer';
const SPEC = {
  name: 'breast_cancer',
  input: { uri: 's3://data-bucket/incoming/', format: 'csv', manifest: 'auto' },
};
const TRIGGER_ID = '0123456789ab';
const STATE = 'state/batch/';
const MANIFESTS = 'state/manifests/';
const log = createLogger({}, { write: () => undefined });

/**
 * Step Functions as it answers StartExecution: the first execution of a name starts, any later one is refused.
 * Responses are the recorded ones (fixtures/sfn-start-execution.json).
 */
class StepFunctionsHandler extends RecordedHttpHandler {
  readonly names = new Set<string>();
  constructor() {
    super([]);
  }
  override async handle(request: WireRequest): Promise<{ response: unknown }> {
    const { name } = startExecutionBody(
      typeof request.body === 'string' ? request.body : new TextDecoder().decode(request.body as Uint8Array),
    );
    const recorded = this.names.has(name) ? sfnResponse('alreadyExists', name) : sfnResponse('started', name);
    this.names.add(name);
    const handler = new RecordedHttpHandler([recorded]);
    const out = await handler.handle(request);
    this.requests.push(...handler.requests);
    return out;
  }
}

function stepFunctions(): { sfn: SFNClient; http: StepFunctionsHandler } {
  const http = new StepFunctionsHandler();
  const sfn = new SFNClient({
    region: 'us-east-1',
    credentials: TEST_CREDENTIALS,
    requestHandler: http,
    maxAttempts: 1,
  });
  return { sfn, http };
}

function upload(
  key: string,
  size: number,
  etag = `etag-${key.replace(/\W/g, '')}`,
  batch: Record<string, unknown> = {},
): S3TriggerEvent {
  return triggerEventSchema.parse({
    trigger: 's3',
    pipeline: 'breast_cancer',
    stateMachineArn: PIPELINE_SM,
    spec: SPEC,
    detail: { bucket: { name: 'data-bucket' }, object: { key, size, etag } },
    batch: {
      triggerId: TRIGGER_ID,
      windowSeconds: 300,
      settleSeconds: 60,
      maxObjects: 1000,
      timerStateMachineArn: TIMER_SM,
      ...batch,
    },
  }) as S3TriggerEvent;
}

const T0 = new Date('2025-03-01T12:05:00Z');
const at = (seconds: number) => () => new Date(T0.getTime() + seconds * 1000);

/** The timer input the recorder sent for a window (what the timer hands the collector). */
function timerInputs(http: StepFunctionsHandler): WindowCloseEvent[] {
  return http.requests
    .map((r) => startExecutionBody(r.text))
    .filter((b) => b.stateMachineArn === TIMER_SM)
    .map((b) => windowCloseEventSchema.parse(JSON.parse(b.input)));
}

function runStarts(
  http: StepFunctionsHandler,
): { name: string; input: { spec: unknown; inputUri: string } }[] {
  return http.requests
    .map((r) => startExecutionBody(r.text))
    .filter((b) => b.stateMachineArn === PIPELINE_SM)
    .map((b) => ({ name: b.name, input: JSON.parse(b.input) as { spec: unknown; inputUri: string } }));
}

function manifestUris(store: MemoryStateStore, uri: string): string[] {
  const key = uri.replace('s3://data-bucket/', '');
  const text = store.objects.get(key);
  if (text === undefined) throw new Error(`no manifest at ${uri}`);
  return text
    .trim()
    .split('\n')
    .map((line) => (JSON.parse(line) as { uri: string }).uri);
}

/**
 * One batching trigger's world: the state store, Step Functions, the trigger handler at a moment of the window, and
 * the timer's collection of a window.
 */
function windowHarness() {
  const store = new MemoryStateStore();
  const { sfn, http } = stepFunctions();
  const collectDeps = { store, sfn, log, statePrefix: STATE, manifestPrefix: MANIFESTS };
  return {
    store,
    sfn,
    http,
    /** The trigger handler, invoked `seconds` after the window opened. */
    trigger: (event: S3TriggerEvent, seconds: number) =>
      handleTrigger(event, { sfn, log, windows: { store, statePrefix: STATE }, now: at(seconds) }),
    collect: (event: WindowCloseEvent) => collectWindow(event, collectDeps),
  };
}

describe('a batching S3 trigger', () => {
  it('turns the uploads of one window into one run over exactly those objects, read from a list manifest', async () => {
    const { store, http, trigger, collect } = windowHarness();
    const first = await trigger(upload('incoming/b.csv', 200), 1);
    await trigger(upload('incoming/a.csv', 100), 30);
    await trigger(upload('incoming/c.csv', 300), 299);
    expect(first).toMatchObject({
      status: 'recorded',
      window: '2025-03-01T12:05:00.000Z',
      closeAt: '2025-03-01T12:11:00.000Z',
      timerStarted: true,
    });
    // One timer for the window, started by its first object; no run yet.
    const timers = timerInputs(http);
    expect(timers).toHaveLength(1);
    expect(http.requests.map((r) => startExecutionBody(r.text).name)).toEqual([
      timerExecutionName(TRIGGER_ID, T0),
    ]);
    expect(timers[0]).toMatchObject({ windowStart: T0.toISOString(), closeAt: '2025-03-01T12:11:00.000Z' });

    const outcome = await collect(timers[0]!);
    expect(outcome).toMatchObject({ recorded: 3, duplicates: 0 });
    const runs = runStarts(http);
    expect(runs.map((r) => r.name)).toEqual([windowRunName(TRIGGER_ID, T0, 0)]);
    const run = runs[0]!;
    expect(run.input.inputUri).toBe(
      `s3://data-bucket/state/manifests/breast_cancer/${windowRunName(TRIGGER_ID, T0, 0)}.jsonl`,
    );
    // The pipeline's spec, told to read the manifest as a list (whatever input.manifest the pipeline has).
    expect(run.input.spec).toEqual({ ...SPEC, input: { ...SPEC.input, manifest: 'list' } });
    expect(manifestUris(store, run.input.inputUri)).toEqual([
      's3://data-bucket/incoming/a.csv',
      's3://data-bucket/incoming/b.csv',
      's3://data-bucket/incoming/c.csv',
    ]);
  });

  it('records a duplicated event once, and an object announced again in a later window starts nothing new', async () => {
    const { http, trigger, collect } = windowHarness();
    await trigger(upload('incoming/a.csv', 100), 10);
    await trigger(upload('incoming/a.csv', 100), 11); // the same delivery again
    await trigger(upload('incoming/b.csv', 100), 12);
    const [w1] = timerInputs(http);
    const first = await collect(w1!);
    expect(first).toMatchObject({ recorded: 2, duplicates: 0 });
    expect(first.runs.map((r) => r.objects)).toEqual([2]);

    // An hour later the same object version is announced again (a redelivery, or the same bytes uploaded again).
    await trigger(upload('incoming/a.csv', 100), 3600);
    const [, w2] = timerInputs(http);
    expectIn(w2, 'the second window timer').toBeDefined();
    const second = await collect(w2!);
    expect(second).toMatchObject({ recorded: 1, duplicates: 1, runs: [] });
    expect(runStarts(http)).toHaveLength(1);

    // New bytes under the same key are a new object version: they run.
    await trigger(upload('incoming/a.csv', 120, 'etag-new-bytes'), 7200);
    const [, , w3] = timerInputs(http);
    const third = await collect(w3!);
    expect(third.runs.map((r) => r.objects)).toEqual([1]);
  });

  it('a retried collection (the timer retries after a failure) starts no second run and keeps the same objects', async () => {
    const { store, http, trigger, collect } = windowHarness();
    for (const [i, key] of ['x.csv', 'y.csv', 'z.csv'].entries()) {
      await trigger(upload(`incoming/${key}`, 10), i);
    }
    const [timer] = timerInputs(http);
    // The first attempt dies before writing the manifest, after claiming the objects.
    store.failNextPutOf = /state\/manifests\//;
    await expect(collect(timer!)).rejects.toThrow(/simulated crash/);
    expect(runStarts(http)).toHaveLength(0);
    const retried = await collect(timer!);
    expect(retried).toMatchObject({ recorded: 3, duplicates: 0 });
    expect(retried.runs.map((r) => r.status)).toEqual(['started']);
    // And once more (the timer's next retry after a lost response): the run exists, nothing new starts.
    const again = await collect(timer!);
    expect(again.runs.map((r) => r.status)).toEqual(['duplicate']);
    expect(manifestUris(store, again.runs[0]!.manifestUri)).toHaveLength(3);
  });

  it('an invocation that dies after starting the timer is retried into the same window, without a second timer', async () => {
    const { store, http, trigger, collect } = windowHarness();
    store.failNextPutOf = /timer\.json$/;
    await expect(trigger(upload('incoming/a.csv', 10), 5)).rejects.toThrow(/simulated crash/);
    const retry = await trigger(upload('incoming/a.csv', 10), 6);
    expect(retry).toMatchObject({ status: 'recorded', timerStarted: false });
    expect(timerInputs(http)).toHaveLength(2); // the retry asked again; Step Functions refused the second
    expect(http.names.size).toBe(1);
    const outcome = await collect(timerInputs(http)[0]!);
    expect(outcome.runs.map((r) => r.objects)).toEqual([1]);
  });

  it('uploads in two windows are two runs, each over its own objects', async () => {
    const { store, http, trigger, collect } = windowHarness();
    await trigger(upload('incoming/early.csv', 10), 299);
    await trigger(upload('incoming/late.csv', 10), 300);
    const timers = timerInputs(http);
    expect(timers.map((t) => t.windowStart)).toEqual([
      '2025-03-01T12:05:00.000Z',
      '2025-03-01T12:10:00.000Z',
    ]);
    const a = await collect(timers[0]!);
    const b = await collect(timers[1]!);
    expect(manifestUris(store, a.runs[0]!.manifestUri)).toEqual(['s3://data-bucket/incoming/early.csv']);
    expect(manifestUris(store, b.runs[0]!.manifestUri)).toEqual(['s3://data-bucket/incoming/late.csv']);
  });

  it('splits a window beyond maxObjects or maxBytes into several runs, in key order', async () => {
    const { store, http, trigger, collect } = windowHarness();
    for (const key of ['e', 'd', 'c', 'b', 'a']) {
      await trigger(upload(`incoming/${key}.csv`, 10, undefined, { maxObjects: 2 }), 1);
    }
    const [timer] = timerInputs(http);
    const outcome = await collect(timer!);
    expect(outcome.runs.map((r) => r.name)).toEqual([0, 1, 2].map((p) => windowRunName(TRIGGER_ID, T0, p)));
    expect(outcome.runs.map((r) => manifestUris(store, r.manifestUri).map((u) => u.slice(-5)))).toEqual([
      ['a.csv', 'b.csv'],
      ['c.csv', 'd.csv'],
      ['e.csv'],
    ]);
    expect(splitIntoRuns([{ size: 6 }, { size: 6 }, { size: 20 }, { size: 1 }], 10, 12)).toEqual([
      [{ size: 6 }, { size: 6 }],
      [{ size: 20 }],
      [{ size: 1 }],
    ]);
  });

  it('ignores folder markers and empty objects, and refuses a batching event without window state', async () => {
    const store = new MemoryStateStore();
    const { sfn, http } = stepFunctions();
    const deps = { sfn, log, windows: { store, statePrefix: STATE }, now: at(1) };
    expect(await recordWindowObject(upload('incoming/folder/', 0), { ...deps.windows, sfn, log })).toEqual({
      status: 'ignored',
      reason: 'folder marker',
    });
    expect(http.requests).toHaveLength(0);
    expect(store.objects.size).toBe(0);
    await expect(handleTrigger(upload('incoming/a.csv', 1), { sfn, log })).rejects.toThrow(
      /batching S3 trigger, but the trigger function has no window state location/,
    );
  });
});

describe('S3TriggerStateStore', () => {
  let server: S3TestServer;
  let client: S3Client;

  beforeAll(async () => {
    server = await startS3Server();
    await server.createBucket('state-bucket');
    await server.createBucket('data-bucket');
    client = new S3Client({
      endpoint: server.endpoint,
      region: S3RVER_REGION,
      credentials: S3RVER_CREDENTIALS,
      forcePathStyle: true,
    });
  });

  afterAll(async () => {
    client?.destroy();
    await server?.stop();
  });

  it('puts, gets, lists in key order, tells what exists and deletes (s3rver)', async () => {
    const store = new S3TriggerStateStore(client, 'state-bucket');
    expect(await store.get('w/none.json')).toBeUndefined();
    expect(await store.exists('w/none.json')).toBe(false);
    await store.put('w/b.json', '{"b":1}');
    await store.put('w/a.json', '{"a":1}');
    await store.put('x/c.json', '{}');
    expect(await store.get('w/a.json')).toBe('{"a":1}');
    expect(await store.exists('w/b.json')).toBe(true);
    expect(await store.list('w/')).toEqual(['w/a.json', 'w/b.json']);
    await store.delete('w/a.json');
    expect(await store.list('w/')).toEqual(['w/b.json']);
  });

  it('a window collected on S3 writes a manifest that Plan reads as exactly those objects (s3rver)', async () => {
    await server.putObjects('data-bucket', [
      ['incoming/a.csv', 'id\n1\n'],
      ['incoming/b.csv', 'id\n2\n'],
      ['incoming/old.csv', 'id\n0\n'],
    ]);
    const objects = new S3ObjectStore(client);
    const store = new S3TriggerStateStore(client, 'data-bucket');
    const { sfn, http } = stepFunctions();
    for (const key of ['incoming/a.csv', 'incoming/b.csv']) {
      const info = await objects.head(`s3://data-bucket/${key}`);
      await recordWindowObject(upload(key, info.size, info.etag), {
        store,
        sfn,
        log,
        statePrefix: STATE,
        now: at(3),
      });
    }
    const [timer] = timerInputs(http);
    const outcome = await collectWindow(timer!, {
      store,
      sfn,
      log,
      statePrefix: STATE,
      manifestPrefix: MANIFESTS,
    });
    const manifestUri = outcome.runs[0]!.manifestUri;
    // What Plan does with the run's input: the list manifest, not the prefix (incoming/old.csv is not in it).
    const listed = await listInput(objects, { uri: manifestUri, manifest: 'list', format: 'csv' });
    expect(listed.map((o) => o.uri)).toEqual([
      's3://data-bucket/incoming/a.csv',
      's3://data-bucket/incoming/b.csv',
    ]);
  });

  it('putIfAbsent sends If-None-Match: * and reports an existing object (412) or a concurrent write (409) as false', async () => {
    const xmlError = (code: string, message: string) =>
      `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`;
    const http = new RecordedHttpHandler([
      { status: 200, headers: { etag: '"1"' } },
      {
        status: 412,
        headers: { 'content-type': 'application/xml' },
        body: xmlError('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold'),
      },
      {
        status: 409,
        headers: { 'content-type': 'application/xml' },
        body: xmlError(
          'ConditionalRequestConflict',
          'A conflicting conditional operation is currently in progress',
        ),
      },
      {
        status: 403,
        headers: { 'content-type': 'application/xml' },
        body: xmlError('AccessDenied', 'Access Denied'),
      },
    ]);
    const recorded = new S3Client({
      region: 'us-east-1',
      credentials: TEST_CREDENTIALS,
      requestHandler: http,
      maxAttempts: 1,
    });
    const store = new S3TriggerStateStore(recorded, 'data-bucket');
    expect(await store.putIfAbsent('state/batch/claims/x.json', '{}')).toBe(true);
    expect(await store.putIfAbsent('state/batch/claims/x.json', '{}')).toBe(false);
    expect(await store.putIfAbsent('state/batch/claims/x.json', '{}')).toBe(false);
    await expect(store.putIfAbsent('state/batch/claims/x.json', '{}')).rejects.toMatchObject({
      name: 'AccessDenied',
    });
    expect(http.requests[0]).toMatchObject({
      method: 'PUT',
      path: '/state/batch/claims/x.json',
      headers: expect.objectContaining({ 'if-none-match': '*' }) as unknown,
    });
  });
});
