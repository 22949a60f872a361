/** `npm run chaos` refuses an unknown loop name with exit 2 and the names it knows, before running anything. */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { REPO_ROOT } from '../../lib/paths.js';

describe('npm run chaos arguments', () => {
  it('refuses an unknown loop, naming the loops there are, with exit 2 and no stack trace', () => {
    const run = spawnSync(
      process.execPath,
      ['--import', 'tsx', path.join(REPO_ROOT, 'chaos/run.ts'), 'worker-kils'],
      { cwd: REPO_ROOT, encoding: 'utf8', env: { ...process.env, CHAOS_LOOPS: '' } },
    );
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('unknown loop(s) worker-kils. Choose among specs, worker-kills, cli-kills');
    expect(run.stderr).not.toMatch(/\n\s+at /);
    expect(run.stdout).toBe('');
  }, 60_000);
});
