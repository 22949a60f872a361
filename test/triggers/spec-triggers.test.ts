/**
 * The `triggers` schema of a pipeline (src/spec/triggers.ts): one test per rule, and the schedule placeholders.
 */
import { describe, expect, it } from '@jest/globals';
import {
  offsetMillis,
  parseTriggers,
  renderScheduleInput,
  scheduleExpression,
  schedulePlaceholders,
  windowSeconds,
} from '../../src/spec/triggers.js';

function issuesOf(raw: unknown): string[] {
  return parseTriggers(raw).issues.map((i) => `${i.path}: ${i.message} (got ${i.value})`);
}

describe('parseTriggers', () => {
  it('parses the three kinds, with defaults', () => {
    const { triggers, issues } = parseTriggers([
      { s3: { prefix: 'incoming/', suffix: '.csv' } },
      { schedule: { cron: '0 2 * * ? *', input: 's3://b/dt={date}/' } },
      { volume: { minBytes: '10GiB' } },
    ]);
    expect(issues).toEqual([]);
    expect(triggers).toEqual([
      { kind: 's3', s3: { prefix: 'incoming/', suffix: '.csv' } },
      { kind: 'schedule', schedule: { cron: '0 2 * * ? *', input: 's3://b/dt={date}/', timezone: 'UTC' } },
      { kind: 'volume', volume: { minBytes: 10 * 2 ** 30 } },
    ]);
  });

  it('parses a batching S3 trigger: window, maxObjects, maxBytes', () => {
    const { triggers, issues } = parseTriggers([
      { s3: { prefix: 'incoming/', window: '5m', maxObjects: 200, maxBytes: '1GiB' } },
    ]);
    expect(issues).toEqual([]);
    expect(triggers).toEqual([
      { kind: 's3', s3: { prefix: 'incoming/', window: '5m', maxObjects: 200, maxBytes: 2 ** 30 } },
    ]);
    expect([windowSeconds('30s'), windowSeconds('5m'), windowSeconds('2h'), windowSeconds('5 min')]).toEqual([
      30,
      300,
      7200,
      undefined,
    ]);
  });

  it('rule: a window is a duration from 10s to 24h', () => {
    for (const window of ['5s', '25h', '5 minutes', '']) {
      expect(issuesOf([{ s3: { window } }])).toEqual([
        expect.stringMatching(/^triggers\[0\]\.s3\.window: must be a duration from 10s to 24h/),
      ]);
    }
  });

  it('rule: maxObjects and maxBytes need a window; maxObjects is 1 to 100000', () => {
    expect(issuesOf([{ s3: { maxObjects: 10 } }])).toEqual([
      expect.stringMatching(
        /^triggers\[0\]\.s3\.maxObjects: applies to a batching trigger only: set window too/,
      ),
    ]);
    expect(issuesOf([{ s3: { maxBytes: '1GiB' } }])).toEqual([
      expect.stringMatching(/^triggers\[0\]\.s3\.maxBytes: applies to a batching trigger only/),
    ]);
    expect(issuesOf([{ s3: { window: '1m', maxObjects: 100_001 } }])).toEqual([
      expect.stringMatching(/^triggers\[0\]\.s3\.maxObjects: must be at most 100000 objects per run/),
    ]);
  });

  it('accepts no triggers', () => {
    expect(parseTriggers(undefined)).toEqual({ triggers: [], issues: [] });
  });

  it('rule: triggers is a list', () => {
    expect(issuesOf({ s3: {} })).toEqual([expect.stringMatching(/^triggers: must be a list/)]);
  });

  it('rule: each entry has exactly one key, the kind', () => {
    expect(issuesOf([{ s3: {}, schedule: {} }])).toEqual([
      expect.stringMatching(/^triggers\[0\]: must have exactly one key.*s3, schedule, volume/),
    ]);
    expect(issuesOf([{ webhook: {} }])).toHaveLength(1);
  });

  it('rule: unknown fields are named with the known ones', () => {
    expect(issuesOf([{ s3: { prefx: 'a/' } }])).toEqual([
      expect.stringMatching(
        /^triggers\[0\]\.s3: has unknown field\(s\) "prefx"; the fields are prefix, suffix/,
      ),
    ]);
  });

  it('rule: a prefix is an object key prefix, not a URI or an absolute path', () => {
    expect(issuesOf([{ s3: { prefix: 's3://b/incoming/' } }])).toEqual([
      expect.stringMatching(/^triggers\[0\]\.s3\.prefix: must be an object key prefix/),
    ]);
    expect(issuesOf([{ volume: { prefix: '/landing/', minBytes: 1 } }])).toHaveLength(1);
  });

  it('rule: a schedule sets exactly one of cron and rate', () => {
    expect(issuesOf([{ schedule: {} }])).toEqual([expect.stringMatching(/exactly one of cron and rate/)]);
    expect(issuesOf([{ schedule: { cron: '0 2 * * ? *', rate: '1 day' } }])).toHaveLength(1);
  });

  it('rule: cron has six fields with "?" in one day field', () => {
    expect(issuesOf([{ schedule: { cron: '0 2 * * *' } }])).toEqual([
      expect.stringMatching(/^triggers\[0\]\.schedule\.cron: has 5 field\(s\)/),
    ]);
    expect(issuesOf([{ schedule: { cron: '0 2 * * * *' } }])).toEqual([
      expect.stringMatching(/"\?" in exactly one/),
    ]);
    expect(issuesOf([{ schedule: { cron: 'cron(0 2 * * ? *)' } }])).toEqual([]);
  });

  it('rule: rate is a whole number of minutes, hours or days', () => {
    expect(issuesOf([{ schedule: { rate: '30 seconds' } }])).toEqual([
      expect.stringMatching(/schedule\.rate: must be/),
    ]);
    expect(issuesOf([{ schedule: { rate: 'rate(1 day)' } }])).toEqual([]);
  });

  it('rule: the time zone is an IANA zone', () => {
    expect(issuesOf([{ schedule: { rate: '1 day', timezone: 'Mars/Olympus' } }])).toEqual([
      expect.stringMatching(/schedule\.timezone: must be an IANA time zone/),
    ]);
  });

  it('rule: the input template is an s3:// URI with known placeholders only', () => {
    expect(issuesOf([{ schedule: { rate: '1 day', input: 'data/{date}/' } }])).toEqual([
      expect.stringMatching(/schedule\.input: must be an s3:\/\/ URI template/),
    ]);
    expect(issuesOf([{ schedule: { rate: '1 day', input: 's3://b/{yesterday}/' } }])).toEqual([
      expect.stringMatching(/unknown placeholder \{yesterday\}.*\{date\}, \{time\}/),
    ]);
  });

  it('rule: the offset is a signed number of days, hours or minutes', () => {
    expect(issuesOf([{ schedule: { rate: '1 day', offset: 'yesterday' } }])).toEqual([
      expect.stringMatching(/schedule\.offset: must be a signed whole number/),
    ]);
  });

  it('rule: minBytes is a positive size', () => {
    expect(issuesOf([{ volume: { minBytes: 'lots' } }])).toEqual([
      expect.stringMatching(/volume\.minBytes: must be a positive size/),
    ]);
    expect(issuesOf([{ volume: {} }])).toHaveLength(1);
  });

  it('reports every problem of every entry at once', () => {
    expect(issuesOf([{ s3: { prefix: '/x' } }, { schedule: {} }, { volume: { minBytes: 0 } }])).toHaveLength(
      3,
    );
  });
});

describe('schedule placeholders', () => {
  const at = new Date('2025-03-01T00:30:00Z');

  it('fills every placeholder from the scheduled time in UTC', () => {
    const values = schedulePlaceholders(at);
    expect(values).toEqual({
      date: '2025-03-01',
      time: '003000',
      year: '2025',
      month: '03',
      day: '01',
      hour: '00',
      minute: '30',
      timestamp: '20250301T003000',
    });
    expect(renderScheduleInput('s3://b/year={year}/month={month}/day={day}/', values)).toBe(
      's3://b/year=2025/month=03/day=01/',
    );
  });

  it('applies the offset, then the time zone (the calendar day there)', () => {
    expect(schedulePlaceholders(at, { offset: '-1d' }).date).toBe('2025-02-28');
    expect(schedulePlaceholders(at, { timezone: 'America/New_York' }).date).toBe('2025-02-28');
    expect(schedulePlaceholders(at, { timezone: 'Asia/Tokyo', offset: '+1h' }).hour).toBe('10');
  });

  it('converts offsets and expressions', () => {
    expect(offsetMillis('-1d')).toBe(-86_400_000);
    expect(offsetMillis('+30m')).toBe(1_800_000);
    expect(offsetMillis(undefined)).toBe(0);
    expect(scheduleExpression({ cron: '0 2 * * ? *', timezone: 'UTC' })).toBe('cron(0 2 * * ? *)');
    expect(scheduleExpression({ rate: 'rate(1 day)', timezone: 'UTC' })).toBe('rate(1 day)');
  });
});
