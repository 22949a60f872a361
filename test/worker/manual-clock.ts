/**
 * A checkpoint clock a test moves by hand (the worker's BATCH_INFER_CHECKPOINT_CLOCK): `now()` is the number of
 * milliseconds written in the file named by this module's `file` parameter, 0 while there is none. The test writes
 * the file to say "this much time has passed"; the worker process reads it each time it asks the clock. With a
 * `reads` parameter every read appends one byte to that file, so the test can tell the worker has started asking
 * (the shard writer reads the clock once when it starts, then after each batch it appends). For example
 * `manual-clock.ts?file=/tmp/clock.txt&reads=/tmp/reads.txt`.
 */
import { appendFileSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';

const params = new URL(import.meta.url).searchParams;
const file = params.get('file');
const readsFile = params.get('reads');

/** The URL of this module reading `clock.file` (and counting reads in `clock.reads`). */
export function manualClockUrl(clock: { file: string; reads?: string }): string {
  const url = new URL(import.meta.url);
  url.search = '';
  url.searchParams.set('file', clock.file);
  if (clock.reads) url.searchParams.set('reads', clock.reads);
  return url.href;
}

/** Sets the time the clock at `clockFile` shows; atomically (a rename), so a reader never sees the file empty. */
export function setManualClock(clockFile: string, ms: number): void {
  writeFileSync(`${clockFile}.next`, String(ms));
  renameSync(`${clockFile}.next`, clockFile);
}

/** How many times the clock counting into `readsFile` has been read. */
export function manualClockReads(readsFile: string): number {
  try {
    return statSync(readsFile).size;
  } catch {
    return 0;
  }
}

export function now(): number {
  if (!file) throw new Error('manual-clock.ts needs a file parameter (manualClockUrl)');
  if (readsFile) appendFileSync(readsFile, '.');
  try {
    const ms = Number(readFileSync(file, 'utf8'));
    return Number.isFinite(ms) ? ms : 0;
  } catch {
    return 0;
  }
}
