/**
 * A checkpoint clock a test moves by hand (the worker's BATCH_INFER_CHECKPOINT_CLOCK): `now()` is the number of
 * milliseconds written in the file named by this module's `file` parameter, 0 while there is none. The test writes
 * the file to say "this much time has passed"; the worker process reads it each time it asks the clock. With a
 * `reads` parameter every read appends one byte to that file, so the test can tell the worker has started asking
 * (the shard writer reads the clock once when it starts, then after each batch it appends). For example
 * `manual-clock.ts?file=/tmp/clock.txt&reads=/tmp/reads.txt`.
 *
 * With `pauseMs` and `pauseWhen` parameters, every read made once the file `pauseWhen` exists first sleeps `pauseMs`
 * (the whole worker thread waits, as on a very slow machine). A test that waits for a worker's first checkpoint and
 * then kills it names the checkpoint file: however fast the machine, the worker is then held in its next clock read
 * (after its next batch, or before it seals its last chunk) until the test kills it, instead of finishing the shard
 * and deleting the checkpoint between the test seeing it and killing the worker.
 */
import { appendFileSync, existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';

const params = new URL(import.meta.url).searchParams;
const file = params.get('file');
const readsFile = params.get('reads');
const pauseMs = Number(params.get('pauseMs') ?? 0);
const pauseWhen = params.get('pauseWhen');

/** The URL of this module reading `clock.file` (and counting reads in `clock.reads`). */
export function manualClockUrl(clock: {
  file: string;
  reads?: string;
  pause?: { whenExists: string; ms: number };
}): string {
  const url = new URL(import.meta.url);
  url.search = '';
  url.searchParams.set('file', clock.file);
  if (clock.reads) url.searchParams.set('reads', clock.reads);
  if (clock.pause) {
    url.searchParams.set('pauseWhen', clock.pause.whenExists);
    url.searchParams.set('pauseMs', String(clock.pause.ms));
  }
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
  if (pauseWhen && existsSync(pauseWhen))
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, pauseMs);
  return readClockFile(file);
}

function readClockFile(clockFile: string): number {
  try {
    const ms = Number(readFileSync(clockFile, 'utf8'));
    return Number.isFinite(ms) ? ms : 0;
  } catch {
    return 0;
  }
}
