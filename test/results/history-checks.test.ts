/** History checks with known histories: no change, a slow run, an error-rate jump, and too little history. */
import { describe, expect, it } from '@jest/globals';
import { compareWithHistory, MIN_HISTORY, type RunMetrics } from '../../src/results/history-checks.js';

const usual = (i: number): RunMetrics => ({
  durationMs: 600_000 + 10_000 * (i % 3),
  recordsPerSecond: 1000 + 20 * (i % 4),
  errorRate: 0.001 * (i % 2),
  records: 1_000_000 + 1000 * i,
});
const HISTORY = Array.from({ length: 8 }, (_, i) => ({ runId: `run-${i}`, metrics: usual(i) }));

function differing(current: RunMetrics): string[] {
  const result = compareWithHistory(current, HISTORY);
  return result!.checks.filter((c) => c.differs).map((c) => c.metric);
}

describe('compareWithHistory', () => {
  it('finds nothing unusual in a run like the others', () => {
    const result = compareWithHistory(usual(2), HISTORY);
    expect(result?.differs).toBe(false);
    expect(result?.checks.map((c) => c.metric)).toEqual([
      'durationMs',
      'recordsPerSecond',
      'errorRate',
      'records',
    ]);
    expect(result?.runIds).toHaveLength(8);
  });

  it('flags a run three times as slow, and its throughput', () => {
    expect(differing({ ...usual(1), durationMs: 1_800_000, recordsPerSecond: 340 })).toEqual([
      'durationMs',
      'recordsPerSecond',
    ]);
  });

  it('flags an error rate far above its usual level, and a record count that halved', () => {
    expect(differing({ ...usual(1), errorRate: 0.05 })).toEqual(['errorRate']);
    expect(differing({ ...usual(1), records: 500_000 })).toEqual(['records']);
  });

  it('does not flag a small change of a metric that never varied (MAD 0) but flags a large one', () => {
    const flat = Array.from({ length: 5 }, (_, i) => ({
      runId: `r${i}`,
      metrics: { durationMs: 1000, recordsPerSecond: 10, errorRate: 0, records: 100 },
    }));
    const near = compareWithHistory(
      { durationMs: 1100, recordsPerSecond: 10, errorRate: 0, records: 100 },
      flat,
    );
    expect(near?.differs).toBe(false);
    const far = compareWithHistory(
      { durationMs: 5000, recordsPerSecond: 10, errorRate: 0.01, records: 100 },
      flat,
    );
    expect(far?.checks.filter((c) => c.differs).map((c) => c.metric)).toEqual(['durationMs', 'errorRate']);
  });

  it(`judges nothing with fewer than ${MIN_HISTORY} runs of history`, () => {
    expect(compareWithHistory(usual(0), HISTORY.slice(0, MIN_HISTORY - 1))).toBeUndefined();
    expect(compareWithHistory(usual(0), HISTORY.slice(0, MIN_HISTORY))).toBeDefined();
  });
});
