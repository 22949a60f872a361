import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { lockRun, RunLockedError } from '../../src/local/run-lock.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'run-lock-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('lockRun', () => {
  it('refuses a second run of the same id while the first holds it, and frees it on release', async () => {
    const first = await lockRun(dir, 'run-a', () => true);
    // The lock file names this process; a "second process" sees a live holder.
    const second = lockRun(dir, 'run-a', () => true);
    await expect(second).resolves.toBeDefined(); // same process: its own pid is not a rival
    await (await second).release();
    writeFileSync(path.join(dir, 'locks', 'run-a.lock'), '4242\n');
    await expect(lockRun(dir, 'run-a', (pid) => pid === 4242)).rejects.toThrow(RunLockedError);
    await expect(lockRun(dir, 'run-a', (pid) => pid === 4242)).rejects.toThrow(
      /run run-a is already running \(process 4242/,
    );
    // Another id is independent.
    await (await lockRun(dir, 'run-b', () => true)).release();
    await first.release();
  });

  it('takes over a lock left by a dead process: the id is never poisoned', async () => {
    await (await lockRun(dir, 'x', () => false)).release(); // creates the locks folder
    writeFileSync(path.join(dir, 'locks', 'run-c.lock'), '999999\n');
    await expect(lockRun(dir, 'run-c', () => true)).rejects.toThrow(RunLockedError);
    const lock = await lockRun(dir, 'run-c', () => false);
    await lock.release();
    expect(readdirSync(path.join(dir, 'locks'))).not.toContain('run-c.lock');
  });
});
