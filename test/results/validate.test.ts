import { describe, expect, it } from '@jest/globals';
import { canonicalColumnType, catalogColumnType, columnTypeMatches } from '../../src/results/column-types.js';
import { explainFailures } from '../../src/results/finalize.js';
import { buildManifest, manifestSchema, MAX_FAILED_SHARD_DETAILS } from '../../src/results/manifest.js';
import { formatRate, validateRun } from '../../src/results/validate.js';
import { runLayout } from '../../src/runs/layout.js';
import { planSchema, type Plan, type Shard, type ShardMarker } from '../../src/runs/types.js';
import type { JobSpecInput } from '../../src/spec/schema.js';
import { makeMarker, makeSpec, SHA } from './run-fixture.js';

const OUT = 'file:///data/out/';
const layout = runLayout(OUT, 'r1', '2024-05-06');

function plan(shardCount: number, spec: Partial<JobSpecInput> = {}): Plan {
  return planSchema.parse({
    version: 1,
    runId: 'r1',
    runDate: '2024-05-06',
    createdAt: '2024-05-06T10:00:00.000Z',
    spec: makeSpec(OUT, spec),
    model: {
      source: 'registry',
      group: 'churn',
      version: 7,
      artifactUri: 's3://m/model.onnx',
      etag: 'e',
      size: 1,
      sha256: SHA,
    },
    input: { objects: 1, bytes: 1, snapshotSha256: 'x', snapshotUri: 's3://b/snap.jsonl' },
    shardCount,
    maxRounds: 2,
  });
}

function shards(n: number, records = 3, recordsExact = true): Shard[] {
  return Array.from({ length: n }, (_, id) => ({
    id,
    ranges: [{ uri: `s3://in/${id}`, etag: 'e', size: 1, start: 0, end: 1 }],
    bytes: 1,
    records,
    recordsExact,
  }));
}

function markers(list: ShardMarker[]): Map<number, ShardMarker> {
  return new Map(list.map((m) => [m.shardId, m]));
}

describe('validateRun', () => {
  it('passes a complete, clean run and sums its totals', () => {
    const report = validateRun(plan(2), shards(2), markers([makeMarker(layout, 0), makeMarker(layout, 1)]));
    expect(report.passed).toBe(true);
    expect(report.reason).toBeUndefined();
    expect(report.totals).toEqual({ records: 6, predictions: 6, errors: 0, errorsByReason: {} });
    expect(report.columns).toEqual({ label: 'STRING', score: 'FLOAT' });
    expect(report.message).toBe('2 of 2 shards completed: 6 records, 6 predictions, 0 errors (0%)');
  });

  it('prefers ShardsFailed over ValidationFailed and reports every failing check', () => {
    const bad = makeMarker(layout, 0, { records: 3, errors: 3 });
    const report = validateRun(
      plan(3),
      shards(3),
      markers([bad]),
      new Map([[2, 'marker is not valid JSON']]),
    );
    expect(report.reason).toBe('ShardsFailed');
    expect(report.failedShards).toEqual([
      { shardId: 1, problem: 'no completion marker' },
      { shardId: 2, problem: 'marker is not valid JSON' },
    ]);
    expect(report.checks.filter((c) => !c.passed).map((c) => c.name)).toEqual(['failedShards', 'errorRate']);
    expect(report.message.split('\n')).toHaveLength(2);
  });

  it('compares the error rate with the limit inclusively', () => {
    const spec = { validation: { maxErrorRate: 0.25 } };
    const at = validateRun(
      plan(1, spec),
      shards(1, 4),
      markers([makeMarker(layout, 0, { records: 4, errors: 1 })]),
    );
    expect(at.checks.find((c) => c.name === 'errorRate')).toMatchObject({ actual: 0.25, passed: true });
    const over = validateRun(
      plan(1, spec),
      shards(1, 3),
      markers([makeMarker(layout, 0, { records: 3, errors: 1 })]),
    );
    expect(over.reason).toBe('ValidationFailed');
    expect(over.message).toBe(
      'error rate 33.3% (1 errors in 3 records) exceeds validation.maxErrorRate 25% (by reason: INVALID_VALUE 1)',
    );
  });

  it('flags shards that disagree on a column type, and declared columns a shard did not write', () => {
    const report = validateRun(
      plan(3),
      shards(3),
      markers([
        makeMarker(layout, 0),
        makeMarker(layout, 1, { columns: { label: 'STRING', score: 'DOUBLE' } }),
        makeMarker(layout, 2, { columns: { score: 'FLOAT' } }),
      ]),
    );
    expect(report.reason).toBe('ValidationFailed');
    const failing = Object.fromEntries(
      report.checks.filter((c) => !c.passed).map((c) => [c.name, c.message]),
    );
    expect(failing).toEqual({
      columnTypesConsistent:
        'shards disagree on column types: "score" is FLOAT in shard 0 but DOUBLE in shard 1',
      'schema.label': 'column "label" is declared as string in output.schema but shard 2 did not write it',
    });
  });

  it('accepts a run without declared schema and a run that wrote no rows', () => {
    const undeclared = validateRun(
      plan(1, { output: { uri: OUT } }),
      shards(1),
      markers([makeMarker(layout, 0)]),
    );
    expect(undeclared.passed).toBe(true);
    expect(undeclared.checks.map((c) => c.name)).toEqual([
      'failedShards',
      'errorRate',
      'columnTypesConsistent',
    ]);
    const empty = validateRun(plan(1), shards(1, 0), markers([makeMarker(layout, 0, { records: 0 })]));
    expect(empty.passed).toBe(true);
    expect(empty.checks.find((c) => c.name === 'schema.score')?.actual).toBe('n/a (no rows written)');
  });

  it('fails a marker whose errors by reason do not add up', () => {
    const m = { ...makeMarker(layout, 0, { errors: 1 }), errorsByReason: { INVALID_VALUE: 2 } };
    const report = validateRun(plan(1, { validation: { maxErrorRate: 1 } }), shards(1), markers([m]));
    expect(report.failedShards[0]?.problem).toBe(
      'corrupt marker: errorsByReason of shard 0 sums to 2 but the marker reports 1 errors',
    );
  });
});

describe('column types', () => {
  it.each([
    ['STRING', 'string'],
    ['utf8', 'string'],
    ['FLOAT', 'float'],
    ['DOUBLE', 'double'],
    ['INT32', 'int'],
    ['INT64', 'bigint'],
    ['BOOLEAN', 'boolean'],
    ['LIST<FLOAT>', 'array<float>'],
    ['FLOAT[]', 'array<float>'],
    ['list(float)', 'array<float>'],
    ['TIMESTAMP', undefined],
    ['LIST<TIMESTAMP>', undefined],
  ])('%s is %s', (written, canonical) => {
    expect(canonicalColumnType(written)).toBe(canonical);
  });

  it('matches exactly, without widening', () => {
    expect(columnTypeMatches('float', 'FLOAT')).toBe(true);
    expect(columnTypeMatches('double', 'FLOAT')).toBe(false);
    expect(columnTypeMatches('bigint', 'INT32')).toBe(false);
    expect(catalogColumnType('TIMESTAMP')).toBe('timestamp');
    expect(catalogColumnType('INT64')).toBe('bigint');
  });
});

describe('manifest', () => {
  it('names registry models by group, lists all failed ids and caps details', () => {
    const p = plan(MAX_FAILED_SHARD_DETAILS + 5);
    const s = shards(p.shardCount);
    const report = validateRun(p, s, new Map());
    const manifest = buildManifest({
      plan: p,
      layout,
      report,
      failedShards: explainFailures(report.failedShards, []),
      rounds: 3,
      finalizedAt: new Date('2024-05-06T09:00:00.000Z'),
      catalog: { table: 'churn_scores' },
      codeVersion: 'v',
    });
    expect(manifestSchema.parse(manifest)).toEqual(manifest);
    expect(manifest.model).toMatchObject({ name: 'churn', version: 7 });
    expect(manifest.counts.failedShards.ids).toHaveLength(p.shardCount);
    expect(manifest.counts.failedShards.details).toHaveLength(MAX_FAILED_SHARD_DETAILS);
    expect(manifest.counts.failedShards.detailsOmitted).toBe(5);
    // Finalizing before the plan's timestamp (clock skew) must not give a negative wall time.
    expect(manifest.timings.wallMs).toBe(0);
    expect(manifest.status).toBe('FAILED');
  });

  it('formats rates readably', () => {
    expect(formatRate(0.001)).toBe('0.1%');
    expect(formatRate(1 / 3)).toBe('33.3%');
    expect(formatRate(0.00001234)).toBe('0.00123%');
  });
});
