/**
 * A checkpoint clock a test moves by hand (the worker's BATCH_INFER_CHECKPOINT_CLOCK): `now()` is the number of
 * milliseconds written in the file named by this module's `file` parameter, 0 while there is none. The test writes
 * the file to say "this much time has passed"; the worker process reads it each time it asks the clock. With a
 * `reads` parameter every read appends one byte to that file, so the test can tell the worker has started asking
 * (the shard writer reads the clock once when it starts, then after each batch it appends). For example
 * `manual-clock.ts?file=/tmp/clock.txt&reads=/tmp/reads.txt`.
 *
 * With a `hold` (manualClockUrl), every read made once each named checkpoint file lists at least `chunks` chunks
 * first sleeps `ms` (the whole worker thread waits, as on a very slow machine). A test that waits for a worker's
 * checkpoints and then SIGKILLs it names them: however fast the machine, the worker is held in its next clock read
 * (after its next batch, or before it seals its last chunk) until the test kills it, instead of finishing the shard
 * and deleting its checkpoints between the test seeing them and the kill.
 */
import { appendFileSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';

const params = new URL(import.meta.url).searchParams;
const file = params.get('file');
const readsFile = params.get('reads');
const holdCheckpoints = params.getAll('holdCheckpoint');
const holdChunks = Number(params.get('holdChunks') ?? 1);
const holdMs = Number(params.get('holdMs') ?? 0);

/** Held this long per clock read, a worker that is to be SIGKILLed is killed during its first hold. */
export const HOLD_UNTIL_KILLED_MS = 60_000;
/** Held this long per clock read (one per batch), a worker sent SIGTERM has a shard left, yet stops well in time. */
export const HOLD_UNTIL_STOPPED_MS = 500;

/** Holds the worker in its clock reads once its checkpoints have this many chunks (see the module comment). */
export interface ClockHold {
  /** Checkpoint files (paths); the hold starts once every one of them lists `chunks` chunks. */
  readonly checkpoints: readonly string[];
  readonly chunks: number;
  /** How long each read sleeps: far longer than the test takes to kill the worker. */
  readonly ms: number;
}

/** The URL of this module reading `clock.file` (and counting reads in `clock.reads`). */
export function manualClockUrl(clock: { file: string; reads?: string; hold?: ClockHold }): string {
  const url = new URL(import.meta.url);
  url.search = '';
  url.searchParams.set('file', clock.file);
  if (clock.reads) url.searchParams.set('reads', clock.reads);
  if (clock.hold) {
    for (const checkpoint of clock.hold.checkpoints) url.searchParams.append('holdCheckpoint', checkpoint);
    url.searchParams.set('holdChunks', String(clock.hold.chunks));
    url.searchParams.set('holdMs', String(clock.hold.ms));
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
  if (holdCheckpoints.length > 0 && holdCheckpoints.every((c) => checkpointChunks(c) >= holdChunks))
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, holdMs);
  return readClockFile(file);
}

/** How many chunks the checkpoint file lists; 0 while there is none (writes are atomic renames). */
function checkpointChunks(checkpointFile: string): number {
  try {
    const parsed = JSON.parse(readFileSync(checkpointFile, 'utf8')) as { chunks?: unknown };
    return Array.isArray(parsed.chunks) ? parsed.chunks.length : 0;
  } catch {
    return 0;
  }
}

function readClockFile(clockFile: string): number {
  try {
    const ms = Number(readFileSync(clockFile, 'utf8'));
    return Number.isFinite(ms) ? ms : 0;
  } catch {
    return 0;
  }
}
