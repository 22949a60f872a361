/**
 * The volume trigger: the counting, the threshold, the reset, exactly-once runs under duplicates, crashes and
 * concurrent invocations (an in-memory compare-and-swap store), and the S3 store's conditional requests (the real
 * S3Client over recorded responses).
 */
import { S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from '@jest/globals';
import { createLogger } from '../../src/runtime/log.js';
import { volumeTriggerEventSchema, type VolumeTriggerEvent } from '../../src/triggers/events.js';
import {
  initialVolumeState,
  recordVolume,
  S3VolumeStateStore,
  volumeStateKey,
  type VersionedState,
  type VolumeState,
  type VolumeStateStore,
} from '../../src/triggers/volume.js';
import { RecordedHttpHandler, TEST_CREDENTIALS } from './recorded-http.js';
import { recordedSfn, sfnResponse, startExecutionBody } from './sfn.js';
import { MemoryStateStore } from './memory-state-store.js';
import { expectIn } from '../support/expect-in.js';

const STATE_MACHINE = 'arn:aws:states:us-east-1:123456789012:stateMachine:DailyStateMachine';
const SPEC = { name: 'breast_cancer_daily' };
const NOW = new Date('2025-03-01T00:00:00Z');
const EPOCH = NOW.getTime().toString(36);

/** A compare-and-swap store in memory; `interfere` runs between a writer's read and its write. */
class MemoryStore implements VolumeStateStore {
  value: VersionedState | undefined;
  writes = 0;
  private version = 0;
  interfere: (() => void) | undefined;

  async read(): Promise<VersionedState | undefined> {
    return this.value && structuredClone(this.value);
  }

  async write(state: VolumeState, expected: string | undefined): Promise<boolean> {
    const hook = this.interfere;
    this.interfere = undefined;
    hook?.();
    // Let other invocations interleave, as S3 requests would.
    await Promise.resolve();
    if (expected !== this.value?.etag) return false;
    this.writes++;
    this.value = { state: structuredClone(state), etag: `"v${++this.version}"` };
    return true;
  }

  /** Someone else's successful write. */
  bump(change: (s: VolumeState) => VolumeState): void {
    const current = this.value?.state ?? initialVolumeState(NOW);
    this.value = { state: change(current), etag: `"v${++this.version}"` };
  }
}

function event(key: string, size: number, extra: Record<string, unknown> = {}): VolumeTriggerEvent {
  return volumeTriggerEventSchema.parse({
    trigger: 'volume',
    pipeline: 'breast_cancer_daily',
    stateMachineArn: STATE_MACHINE,
    spec: SPEC,
    prefixUri: 's3://data-bucket/landing/',
    minBytes: 1000,
    detail: { bucket: { name: 'data-bucket' }, object: { key, size, etag: `etag-${key}`, ...extra } },
  });
}

const log = createLogger({}, { write: () => undefined });
const noSleep = async (): Promise<void> => undefined;

function deps(store: VolumeStateStore, sfn = recordedSfn([]).client) {
  return { store, sfn, log, now: () => NOW, sleep: noSleep };
}

describe('recordVolume', () => {
  it('counts bytes under the threshold without starting anything', async () => {
    const store = new MemoryStore();
    const { client, http } = recordedSfn([]);
    const outcome = await recordVolume(event('landing/a.csv', 400), deps(store, client));
    expect(outcome).toMatchObject({ counted: true, duplicate: false, bytes: 400, generation: 0, runs: [] });
    expect(store.value?.state).toMatchObject({ bytes: 400, objects: 1, generation: 0, pending: [] });
    expect(http.served).toBe(0);
  });

  it('starts one run over the prefix when the threshold is reached, and resets the count in the same write', async () => {
    const store = new MemoryStore();
    const { client, http } = recordedSfn([sfnResponse('started', `vol-${EPOCH}-g0`)]);
    await recordVolume(event('landing/a.csv', 600), deps(store, client));
    const outcome = await recordVolume(event('landing/b.csv', 500), deps(store, client));
    expect(outcome).toMatchObject({
      bytes: 0,
      generation: 1,
      runs: [{ status: 'started', name: `vol-${EPOCH}-g0` }],
    });
    const body = startExecutionBody(http.requests[0]!.text);
    expect(body.name).toBe(`vol-${EPOCH}-g0`);
    expect(JSON.parse(body.input)).toEqual({ spec: SPEC, inputUri: 's3://data-bucket/landing/' });
    expect(store.value?.state).toMatchObject({ bytes: 0, objects: 0, generation: 1, pending: [] });
    expect(store.value?.state.lastTriggeredAt).toBe(NOW.toISOString());
  });

  it('counts a duplicated S3 event once', async () => {
    const store = new MemoryStore();
    await recordVolume(event('landing/a.csv', 600), deps(store));
    const again = await recordVolume(event('landing/a.csv', 600), deps(store));
    expect(again).toMatchObject({ counted: false, duplicate: true, bytes: 600 });
    expect(store.value?.state.objects).toBe(1);
    expect(store.writes).toBe(1);
  });

  it('counts a new version of the same key', async () => {
    const store = new MemoryStore();
    await recordVolume(event('landing/a.csv', 300, { 'version-id': 'v1' }), deps(store));
    const next = await recordVolume(event('landing/a.csv', 300, { 'version-id': 'v2' }), deps(store));
    expect(next).toMatchObject({ counted: true, bytes: 600 });
  });

  it('ignores folder markers and empty objects', async () => {
    const store = new MemoryStore();
    expect(await recordVolume(event('landing/dt=2025-03-01/', 0), deps(store))).toMatchObject({
      counted: false,
      ignored: 'folder marker',
    });
    expect(store.writes).toBe(0);
  });

  it('starts a run decided before a crash on the next invocation, under the same name, exactly once', async () => {
    const store = new MemoryStore();
    // The first StartExecution fails for good (after the SDK's retries): the invocation fails after the reset.
    const failing = recordedSfn([sfnResponse('noStateMachine')]);
    await recordVolume(event('landing/a.csv', 600), deps(store));
    await expect(
      recordVolume(event('landing/b.csv', 500), deps(store, failing.client)),
    ).rejects.toMatchObject({
      name: 'StateMachineDoesNotExist',
    });
    expect(store.value?.state).toMatchObject({
      bytes: 0,
      generation: 1,
      pending: [{ generation: 0, bytes: 1100 }],
    });

    // The retried event is a duplicate for the counter, but it starts the pending run.
    const retry = recordedSfn([sfnResponse('started')]);
    const outcome = await recordVolume(event('landing/b.csv', 500), deps(store, retry.client));
    expect(outcome).toMatchObject({
      duplicate: true,
      runs: [{ status: 'started', name: `vol-${EPOCH}-g0` }],
    });
    expect(store.value?.state.pending).toEqual([]);

    // Had the first start succeeded after all, the second one is refused by name: still one run.
    store.bump((s) => ({
      ...s,
      pending: [{ generation: 0, bytes: 1100, objects: 2, triggeredAt: NOW.toISOString() }],
    }));
    const late = recordedSfn([sfnResponse('alreadyExists')]);
    const again = await recordVolume(event('landing/c.csv', 1), deps(store, late.client));
    expect(again.runs).toMatchObject([{ status: 'duplicate', name: `vol-${EPOCH}-g0` }]);
  });

  it('loses no byte when another invocation writes between its read and its write', async () => {
    const store = new MemoryStore();
    await recordVolume(event('landing/a.csv', 100), deps(store));
    store.interfere = () =>
      store.bump((s) => ({
        ...s,
        bytes: s.bytes + 200,
        objects: s.objects + 1,
        recent: [...s.recent, 'other'],
      }));
    const outcome = await recordVolume(event('landing/b.csv', 300), deps(store));
    expect(outcome.bytes).toBe(600);
    expect(store.value?.state.objects).toBe(3);
  });

  it('starts exactly one run when concurrent invocations cross the threshold together', async () => {
    const store = new MemoryStore();
    await recordVolume(event('landing/a.csv', 900), deps(store));
    // Invocations that see the pending run before it is cleared start it too: by name, so Step Functions keeps one.
    const { client } = recordedSfn([
      sfnResponse('started'),
      sfnResponse('alreadyExists'),
      sfnResponse('alreadyExists'),
    ]);
    const outcomes = await Promise.all(
      ['landing/b.csv', 'landing/c.csv', 'landing/d.csv'].map((key) =>
        recordVolume(event(key, 200), deps(store, client)),
      ),
    );
    const runs = outcomes.flatMap((o) => o.runs);
    expect(new Set(runs.map((r) => r.name))).toEqual(new Set([`vol-${EPOCH}-g0`]));
    expect(runs.filter((r) => r.status === 'started')).toHaveLength(1);
    // The objects after the crossing are counted in the next window: nothing is lost or counted twice.
    const state = store.value!.state;
    expect(state.generation).toBe(1);
    expect(state.bytes + 1100).toBe(900 + 3 * 200);
  });

  it('gives up after maxAttempts lost writes, so the event is retried later', async () => {
    const store: VolumeStateStore = { read: async () => undefined, write: async () => false };
    await expect(recordVolume(event('landing/a.csv', 1), { ...deps(store), maxAttempts: 3 })).rejects.toThrow(
      /contended: 3 conditional writes/,
    );
  });

  it('keeps only the most recent object ids', async () => {
    const store = new MemoryStore();
    for (const key of ['a', 'b', 'c', 'd']) {
      await recordVolume(event(`landing/${key}`, 1), { ...deps(store), recentLimit: 2 });
    }
    expect(store.value?.state.recent).toHaveLength(2);
  });
});

describe('S3VolumeStateStore', () => {
  const KEY = volumeStateKey('state/volume/', 'breast_cancer_daily');
  const xmlError = (code: string, message: string): string =>
    `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>4442587FB7D0A2F9</RequestId><HostId>host</HostId></Error>`;

  function store(responses: ConstructorParameters<typeof RecordedHttpHandler>[0]) {
    const http = new RecordedHttpHandler(responses);
    const client = new S3Client({
      region: 'us-east-1',
      credentials: TEST_CREDENTIALS,
      requestHandler: http,
      maxAttempts: 1,
    });
    return { http, store: new S3VolumeStateStore(client, 'data-bucket', KEY) };
  }

  it('keys counters by pipeline under the prefix', () => {
    expect(KEY).toBe('state/volume/breast_cancer_daily.json');
    expect(volumeStateKey('state/volume', 'p')).toBe('state/volume/p.json');
  });

  it('reads a missing counter (404 NoSuchKey) as none', async () => {
    const { http, store: s } = store([
      {
        status: 404,
        headers: { 'content-type': 'application/xml' },
        body: xmlError('NoSuchKey', 'The specified key does not exist.'),
      },
    ]);
    expect(await s.read()).toBeUndefined();
    expect(http.requests[0]).toMatchObject({
      method: 'GET',
      hostname: 'data-bucket.s3.us-east-1.amazonaws.com',
      path: `/${KEY}`,
    });
  });

  it('reads a counter with its ETag', async () => {
    const state = initialVolumeState(NOW);
    const { store: s } = store([
      {
        status: 200,
        headers: { 'content-type': 'application/json', etag: '"9b2cf535f27731c974343645a3985328"' },
        body: state,
      },
    ]);
    expect(await s.read()).toEqual({ state, etag: '"9b2cf535f27731c974343645a3985328"' });
  });

  it('creates a counter with If-None-Match: * and updates one with If-Match: <etag>', async () => {
    const { http, store: s } = store([
      { status: 200, headers: { etag: '"1"' } },
      { status: 200, headers: { etag: '"2"' } },
    ]);
    const state = initialVolumeState(NOW);
    expect(await s.write(state, undefined)).toBe(true);
    expect(await s.write(state, '"1"')).toBe(true);
    expect(http.requests[0]).toMatchObject({
      method: 'PUT',
      path: `/${KEY}`,
      headers: expect.objectContaining({ 'if-none-match': '*' }) as unknown,
    });
    expect(http.requests[1]!.headers['if-match']).toBe('"1"');
    expect(http.requests[1]!.headers).not.toHaveProperty('if-none-match');
    expect(JSON.parse(http.requests[1]!.text)).toEqual(state);
  });

  it('reports a lost race (412 PreconditionFailed, 409 ConditionalRequestConflict) as false', async () => {
    const { store: s } = store([
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
    ]);
    expect(await s.write(initialVolumeState(NOW), '"1"')).toBe(false);
    expect(await s.write(initialVolumeState(NOW), undefined)).toBe(false);
  });

  it('throws other errors', async () => {
    const { store: s } = store([
      {
        status: 403,
        headers: { 'content-type': 'application/xml' },
        body: xmlError('AccessDenied', 'Access Denied'),
      },
    ]);
    await expect(s.write(initialVolumeState(NOW), undefined)).rejects.toMatchObject({ name: 'AccessDenied' });
  });
});

describe('recordVolume with newObjects: a run scores exactly the objects since the last run', () => {
  const objectsDeps = (records: MemoryStateStore) => ({
    store: records,
    statePrefix: 'state/volume/',
    manifestPrefix: 'state/manifests/',
  });
  const manifestOf = (records: MemoryStateStore, inputUri: string): string[] =>
    (records.objects.get(inputUri.replace('s3://data-bucket/', '')) ?? '')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((line) => (JSON.parse(line) as { uri: string }).uri);
  const runInput = (text: string) =>
    JSON.parse(startExecutionBody(text).input) as { spec: Record<string, unknown>; inputUri: string };

  it('starts each run over a list manifest of the objects counted in its generation, not the prefix', async () => {
    const store = new MemoryStore();
    const records = new MemoryStateStore();
    const { client, http } = recordedSfn([
      sfnResponse('started', `vol-${EPOCH}-g0`),
      sfnResponse('started', `vol-${EPOCH}-g1`),
    ]);
    const d = { ...deps(store, client), newObjects: objectsDeps(records) };
    await recordVolume(event('landing/b.csv', 600), d);
    await recordVolume(event('landing/a.csv', 500), d); // 1100 >= 1000: generation 0 closes
    await recordVolume(event('landing/c.csv', 700), d);
    await recordVolume(event('landing/d.csv', 300), d); // 1000: generation 1 closes

    const first = runInput(http.requests[0]!.text);
    const second = runInput(http.requests[1]!.text);
    expect(first.inputUri).toBe(`s3://data-bucket/state/manifests/breast_cancer_daily/vol-${EPOCH}-g0.jsonl`);
    expect(first.spec).toEqual({ ...SPEC, input: { manifest: 'list' } });
    expect(manifestOf(records, first.inputUri)).toEqual([
      's3://data-bucket/landing/a.csv',
      's3://data-bucket/landing/b.csv',
    ]);
    expect(manifestOf(records, second.inputUri)).toEqual([
      's3://data-bucket/landing/c.csv',
      's3://data-bucket/landing/d.csv',
    ]);
    // The records of objects now in a run are gone: nothing is left for the next generation.
    expect([...records.objects.keys()].filter((k) => k.includes('/open/'))).toEqual([]);
  });

  it('a duplicated or retried event of an object already in a run records and counts nothing', async () => {
    const store = new MemoryStore();
    const records = new MemoryStateStore();
    const { client, http } = recordedSfn([
      sfnResponse('started', `vol-${EPOCH}-g0`),
      sfnResponse('started', `vol-${EPOCH}-g1`),
    ]);
    const d = { ...deps(store, client), newObjects: objectsDeps(records) };
    await recordVolume(event('landing/a.csv', 1000), d); // generation 0: a.csv
    const again = await recordVolume(event('landing/a.csv', 1000), d);
    expect(again).toMatchObject({ counted: false, duplicate: true, runs: [] });
    expect([...records.objects.keys()].filter((k) => k.includes('/open/'))).toEqual([]);
    await recordVolume(event('landing/b.csv', 1000), d); // generation 1: b.csv only
    expect(manifestOf(records, runInput(http.requests[1]!.text).inputUri)).toEqual([
      's3://data-bucket/landing/b.csv',
    ]);
  });

  it('a run whose start failed is started on retry with the same manifest, and its objects are in no other run', async () => {
    const store = new MemoryStore();
    const records = new MemoryStateStore();
    const failing = recordedSfn([sfnResponse('noStateMachine')]);
    await recordVolume(event('landing/a.csv', 600), { ...deps(store), newObjects: objectsDeps(records) });
    await expect(
      recordVolume(event('landing/b.csv', 500), {
        ...deps(store, failing.client),
        newObjects: objectsDeps(records),
      }),
    ).rejects.toMatchObject({ name: 'StateMachineDoesNotExist' });
    const manifestKey = `state/manifests/breast_cancer_daily/vol-${EPOCH}-g0.jsonl`;
    const written = records.objects.get(manifestKey);
    expectIn(written, 'the manifest made before the failed start').toBeDefined();

    // An object arrives before the retry: it belongs to the next generation, not to the manifest already made.
    const { client, http } = recordedSfn([sfnResponse('started', `vol-${EPOCH}-g0`)]);
    await recordVolume(event('landing/c.csv', 10), {
      ...deps(store, client),
      newObjects: objectsDeps(records),
    });
    const started = runInput(http.requests[0]!.text);
    expect(startExecutionBody(http.requests[0]!.text).name).toBe(`vol-${EPOCH}-g0`);
    expect(records.objects.get(manifestKey)).toBe(written);
    expect(manifestOf(records, started.inputUri)).toEqual([
      's3://data-bucket/landing/a.csv',
      's3://data-bucket/landing/b.csv',
    ]);
    expect([...records.objects.keys()].filter((k) => k.includes('/open/'))).toEqual([
      expect.stringContaining('state/volume/breast_cancer_daily/open/'),
    ]);
  });
});
