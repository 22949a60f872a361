import { describe, expect, it } from '@jest/globals';
import { colorEnabled, painter } from '../../src/cli/io.js';

const tty = { write: () => true, isTTY: true };
const pipe = { write: () => true, isTTY: false };

describe('colour', () => {
  it('is on for a terminal, off for a pipe', () => {
    expect(colorEnabled(tty, {})).toBe(true);
    expect(colorEnabled(pipe, {})).toBe(false);
  });

  it('is off with NO_COLOR (any non-empty value), even on a terminal and with FORCE_COLOR', () => {
    expect(colorEnabled(tty, { NO_COLOR: '1' })).toBe(false);
    expect(colorEnabled(tty, { NO_COLOR: '1', FORCE_COLOR: '1' })).toBe(false);
    expect(colorEnabled(tty, { NO_COLOR: '' })).toBe(true);
  });

  it('is off for TERM=dumb, on for FORCE_COLOR through a pipe', () => {
    expect(colorEnabled(tty, { TERM: 'dumb' })).toBe(false);
    expect(colorEnabled(pipe, { FORCE_COLOR: '1' })).toBe(true);
    expect(colorEnabled(pipe, { FORCE_COLOR: '0' })).toBe(false);
  });

  it('paints with SGR codes only when enabled', () => {
    expect(painter(tty, {})('green', 'SUCCEEDED')).toBe('\x1b[32mSUCCEEDED\x1b[0m');
    expect(painter(pipe, {})('green', 'SUCCEEDED')).toBe('SUCCEEDED');
  });
});
