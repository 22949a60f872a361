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
    // The lock file names this process, which holds it: a second run of the id in this process is refused too
    // (two runs of one id in one process used to share the lock and race, issue 17).
    const second = lockRun(dir, 'run-a', () => true);
    await expect(second).rejects.toThrow(/run run-a is already running in this process/);
    await first.release();
    writeFileSync(path.join(dir, 'locks', 'run-a.lock'), '4242\n');
    await expect(lockRun(dir, 'run-a', (pid) => pid === 4242)).rejects.toThrow(RunLockedError);
    await expect(lockRun(dir, 'run-a', (pid) => pid === 4242)).rejects.toThrow(
      /run run-a is already running \(process 4242/,
    );
    // Another id is independent.
    await (await lockRun(dir, 'run-b', () => true)).release();
  });

  it("takes over a lock naming this process's pid that this process does not hold (an earlier process's)", async () => {
    await (await lockRun(dir, 'x', () => true)).release(); // creates the locks folder
    // A container's CLI is pid 1 every time: the lock of a killed earlier run names the same pid.
    writeFileSync(path.join(dir, 'locks', 'run-d.lock'), `${process.pid}\n`);
    const lock = await lockRun(dir, 'run-d', () => true);
    await expect(lockRun(dir, 'run-d', () => true)).rejects.toThrow(RunLockedError);
    await lock.release();
    await lock.release(); // twice is harmless
    expect(readdirSync(path.join(dir, 'locks'))).not.toContain('run-d.lock');
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
