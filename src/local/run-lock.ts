/**
 * One local run per run id at a time. Two `batch-infer run --run-id X` at once used to race on the same markers
 * and checkpoints and fail on "corrupt marker ... ETag", after which the id failed the same way forever (issue 17).
 * The second run now fails at once with a message naming the first; a lock left by a killed process (its pid is
 * gone) is taken over, so a run id is never poisoned. Scope: one machine's state directory, which is what a local
 * run shares; deployed runs get the same guarantee from Step Functions (an execution name is unique).
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { processExists } from '../worker/staging.js';

export class RunLockedError extends Error {
  override readonly name = 'RunLockedError';
}

export interface RunLock {
  release(): Promise<void>;
}

/**
 * Lock files this process holds. A lock file naming this process's pid is a rival only when this process really
 * holds it (two runs of one id started in one process at once); otherwise it was left by an earlier process that
 * had the same pid (a container's CLI is often pid 1 every time), and is stale.
 */
const heldHere = new Set<string>();

export async function lockRun(
  stateDir: string,
  runId: string,
  isAlive: (pid: number) => boolean = processExists,
): Promise<RunLock> {
  const dir = path.join(stateDir, 'locks');
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${runId}.lock`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(file, `${process.pid}\n`, { flag: 'wx' });
      heldHere.add(file);
      return {
        release: async () => {
          if (!heldHere.delete(file)) return;
          await rm(file, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number((await readFile(file, 'utf8').catch(() => '')).trim());
    if (holder === process.pid && heldHere.has(file)) {
      throw new RunLockedError(
        `run ${runId} is already running in this process (lock ${file}); wait for it to finish, or use another ` +
          'run id',
      );
    }
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
      throw new RunLockedError(
        `run ${runId} is already running (process ${holder}, lock ${file}); wait for it to finish, or use another ` +
          'run id',
      );
    }
    // Left by a process that no longer exists (or unreadable): stale, take it over.
    await rm(file, { force: true });
  }
  throw new RunLockedError(
    `run ${runId}: another process took the lock ${file} at the same moment; try again`,
  );
}
