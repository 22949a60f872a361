import { describe, expect, it } from '@jest/globals';
import { boundText, MAX_LOG_STRING_CHARS } from '../../src/runtime/bounded-text.js';
import { createLogger } from '../../src/runtime/log.js';

describe('boundText', () => {
  it('keeps short text and cuts long text to the limit, keeping head, tail and what was left out', () => {
    expect(boundText('short', 10)).toBe('short');
    const long = `HEAD${'x'.repeat(10_000)}TAIL`;
    const bounded = boundText(long, 200);
    expect(bounded.length).toBeLessThanOrEqual(200);
    expect(bounded.startsWith('HEAD')).toBe(true);
    expect(bounded.endsWith('TAIL')).toBe(true);
    expect(bounded).toMatch(/characters omitted/);
  });
});

describe('the logger with input data in its fields', () => {
  it('never writes a line much longer than its bounded fields, whatever a message repeats', () => {
    const lines: string[] = [];
    const log = createLogger({}, { level: 'info', write: (l) => lines.push(l) });
    const header = 'h'.repeat(10 << 20);
    log.error('shard failed', { reason: `CSV header: ${header}`, err: new Error(header) });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.length).toBeLessThan(4 * MAX_LOG_STRING_CHARS);
  });
});
