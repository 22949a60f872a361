/**
 * Parquet chunks are staged as `<tmp>/batch-infer-<pid>-<shard>-<chunk>-<random>.parquet` and removed once uploaded.
 * A worker killed (SIGKILL, out of memory) between the two leaves its file behind; on a laptop, where every run's
 * workers share one /tmp, those add up (3 of 66 SIGKILLed workers in issue 17). A worker starting up removes the
 * staging files of processes that no longer exist. Files of live processes are never touched.
 */
import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';

export const STAGING_FILE = /^batch-infer-(\d+)-\d+-\d+-[0-9a-f]+\.parquet$/;

/** A new staging file's path in `dir` for this process: part `part` of shard `shardId` (STAGING_FILE). */
export function stagingPath(dir: string, shardId: number, part: number): string {
  return path.join(
    dir,
    `batch-infer-${process.pid}-${shardId}-${part}-${randomBytes(4).toString('hex')}.parquet`,
  );
}

/** Whether a process with this id exists (signal 0 checks without signalling; EPERM means it exists). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes the staging files in `dir` left by dead processes; returns their names. Never throws. */
export async function removeStaleStagingFiles(
  dir: string,
  isAlive: (pid: number) => boolean = processExists,
): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const pid = STAGING_FILE.exec(name)?.[1];
    if (pid === undefined || Number(pid) === process.pid || isAlive(Number(pid))) continue;
    try {
      await rm(path.join(dir, name), { force: true });
      removed.push(name);
    } catch {
      // Another worker removed it first, or it is not ours to remove: either way nothing to do.
    }
  }
  return removed;
}
