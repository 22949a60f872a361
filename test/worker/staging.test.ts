import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { processExists, removeStaleStagingFiles } from '../../src/worker/staging.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'staging-test-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('removeStaleStagingFiles', () => {
  it('removes the staging files of dead processes only, and nothing that is not a staging file', async () => {
    const names = [
      'batch-infer-111-0-3-0a1b2c3d.parquet', // dead
      'batch-infer-222-4-0-ffffffff.parquet', // alive
      `batch-infer-${process.pid}-0-0-00000000.parquet`, // this process
      'batch-infer-111-notes.txt', // not a staging file
      'other.parquet',
    ];
    for (const name of names) writeFileSync(path.join(dir, name), 'x');
    const removed = await removeStaleStagingFiles(dir, (pid) => pid === 222);
    expect(removed).toEqual(['batch-infer-111-0-3-0a1b2c3d.parquet']);
    expect(readdirSync(dir).sort()).toEqual(names.slice(1).sort());
  });

  it('tells live from dead processes and survives a missing folder', async () => {
    expect(processExists(process.pid)).toBe(true);
    // Above the kernel's pid_max (2^22): no such process can exist.
    expect(processExists(2 ** 22 + 1)).toBe(false);
    expect(await removeStaleStagingFiles(path.join(dir, 'missing'))).toEqual([]);
  });
});
