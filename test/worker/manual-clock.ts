/**
 * A checkpoint clock a test moves by hand (the worker's BATCH_INFER_CHECKPOINT_CLOCK): `now()` is the number of
 * milliseconds written in the file named by this module's `file` parameter, 0 while there is none. The test writes
 * the file to say "this much time has passed"; the worker process reads it each time it asks the clock. For example
 * `manual-clock.ts?file=/tmp/clock.txt`.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';

const file = new URL(import.meta.url).searchParams.get('file');

/** The URL of this module reading `clockFile`. */
export function manualClockUrl(clockFile: string): string {
  const url = new URL(import.meta.url);
  url.search = '';
  url.searchParams.set('file', clockFile);
  return url.href;
}

/** Sets the time the clock at `clockFile` shows; atomically (a rename), so a reader never sees the file empty. */
export function setManualClock(clockFile: string, ms: number): void {
  writeFileSync(`${clockFile}.next`, String(ms));
  renameSync(`${clockFile}.next`, clockFile);
}

export function now(): number {
  if (!file) throw new Error('manual-clock.ts needs a file parameter (manualClockUrl)');
  try {
    const ms = Number(readFileSync(file, 'utf8'));
    return Number.isFinite(ms) ? ms : 0;
  } catch {
    return 0;
  }
}
