/**
 * Execution names of triggered runs: stable for the same trigger (dedupe), distinct otherwise, valid Step Functions
 * names (run ids) whatever the object key.
 */
import fc from 'fast-check';
import { describe, expect, it } from '@jest/globals';
import {
  EXECUTION_NAME,
  normalizeEtag,
  objectVersionHash,
  s3ExecutionName,
  scheduleExecutionName,
  scheduleId,
  volumeExecutionName,
} from '../../src/triggers/execution-name.js';

const REF = {
  bucket: 'data-bucket',
  key: 'incoming/2025/patients.csv',
  etag: 'b1946ac92492d2347c6235b4d2611184',
};

describe('s3ExecutionName', () => {
  it('is the same for the same object version, with or without ETag quotes', () => {
    expect(s3ExecutionName(REF)).toBe(s3ExecutionName({ ...REF }));
    expect(s3ExecutionName({ ...REF, etag: `"${REF.etag}"` })).toBe(s3ExecutionName(REF));
  });

  it('reads s3-<file name>-<hash>', () => {
    expect(s3ExecutionName(REF)).toMatch(/^s3-patients_csv-[0-9a-f]{32}$/);
  });

  it('differs when bucket, key, ETag or version id differ', () => {
    const names = [
      REF,
      { ...REF, bucket: 'other-bucket' },
      { ...REF, key: 'incoming/2025/patients2.csv' },
      { ...REF, etag: '00000000000000000000000000000000' },
      { ...REF, versionId: 'v2' },
    ].map(s3ExecutionName);
    expect(new Set(names).size).toBe(names.length);
  });

  it('does not confuse parts that concatenate alike', () => {
    expect(objectVersionHash({ bucket: 'ab', key: 'c', etag: 'e' })).not.toBe(
      objectVersionHash({ bucket: 'a', key: 'bc', etag: 'e' }),
    );
  });

  it('is a valid execution name (1-80 of [A-Za-z0-9_-]) for any key', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 1024, unit: 'grapheme' }),
        fc.string({ minLength: 1, maxLength: 40 }),
        (key, etag) => {
          const name = s3ExecutionName({ bucket: 'b-1', key: key || 'k', etag });
          expect(name).toMatch(EXECUTION_NAME);
          expect(name.length).toBeLessThanOrEqual(80);
        },
      ),
    );
  });

  it('normalizes quoted and weak ETags', () => {
    expect(normalizeEtag('"abc"')).toBe('abc');
    expect(normalizeEtag('W/"abc"')).toBe('abc');
    expect(normalizeEtag('abc-3')).toBe('abc-3');
  });
});

describe('schedule and volume names', () => {
  it('names a scheduled run after the schedule and the scheduled time (UTC), whatever the delivery', () => {
    const at = new Date('2025-03-01T02:30:00Z');
    expect(scheduleExecutionName('04b75375875f', at)).toBe('sched-04b75375875f-20250301T023000Z');
    expect(scheduleExecutionName('04b75375875f', new Date(at))).toBe(
      scheduleExecutionName('04b75375875f', at),
    );
    expect(scheduleExecutionName('04b75375875f', at)).toMatch(EXECUTION_NAME);
  });

  it('gives a schedule a stable id from its definition', () => {
    const a = scheduleId(['cron(0 2 * * ? *)', 'UTC', '', '']);
    expect(a).toMatch(/^[0-9a-f]{12}$/);
    expect(scheduleId(['cron(0 2 * * ? *)', 'UTC', '', ''])).toBe(a);
    expect(scheduleId(['cron(0 3 * * ? *)', 'UTC', '', ''])).not.toBe(a);
  });

  it('names a volume run after its counter epoch and generation', () => {
    expect(volumeExecutionName('lx2k9q8', 4)).toBe('vol-lx2k9q8-g4');
    expect(volumeExecutionName('lx2k9q8', 4)).toMatch(EXECUTION_NAME);
  });
});
