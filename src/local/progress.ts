/**
 * Progress of a local run on the terminal: shards done/total, records, records/s and ETA. On a TTY one line is
 * redrawn in place; otherwise (CI logs, pipes) a line is printed every few seconds.
 */

export interface ProgressSink {
  planned(info: { shards: number; records: number; recordsExact: boolean }): void;
  roundStarted(round: number, shards: number): void;
  shardProgress(shardId: number, records: number): void;
  shardDone(shardId: number, records: number): void;
  stage(name: string): void;
  close(): void;
}

export const silentProgress: ProgressSink = {
  planned: () => undefined,
  roundStarted: () => undefined,
  shardProgress: () => undefined,
  shardDone: () => undefined,
  stage: () => undefined,
  close: () => undefined,
};

/** Below this, a rate says more about model loading than about throughput: no ETA is shown. */
const ETA_MIN_SECONDS = 3;
const ETA_MIN_SHARE = 0.01;

/** What progress is written to: a terminal (redrawn line) or a log (a line every few seconds). */
export type ProgressStream = Pick<NodeJS.WriteStream, 'write' | 'isTTY'>;

/**
 * @param now the clock (milliseconds), injected by tests.
 */
export function terminalProgress(
  stream: ProgressStream = process.stderr,
  now: () => number = Date.now,
): ProgressSink {
  const tty = Boolean(stream.isTTY);
  const started = now();
  // The rate is measured from the first record read, not from the start: planning and model loading would make the
  // first ETAs hours long ("1 record in 10 s").
  let first: { at: number; records: number } | undefined;
  const perShard = new Map<number, number>();
  const done = new Set<number>();
  let shards = 0;
  let expected = 0;
  let exact = false;
  let stage = 'planning';
  let lastPrint = 0;
  let timer: NodeJS.Timeout | undefined;

  const records = (): number => {
    let sum = 0;
    for (const n of perShard.values()) sum += n;
    return sum;
  };
  const render = (final = false): void => {
    const at = now();
    if (!tty && !final && at - lastPrint < 5000) return;
    lastPrint = at;
    const n = records();
    if (!first && n > 0) first = { at, records: n };
    const measured = first ? (at - first.at) / 1000 : 0;
    const rate =
      measured > 0 && first ? (n - first.records) / measured : n / Math.max((at - started) / 1000, 1e-3);
    const share = expected > 0 ? Math.min(1, n / expected) : 0;
    const settled = measured >= ETA_MIN_SECONDS && share >= ETA_MIN_SHARE;
    const eta = settled && rate > 0 && expected > n ? `ETA ${formatDuration((expected - n) / rate)}` : '';
    const width = 24;
    const bar = `${'#'.repeat(Math.round(share * width))}${'.'.repeat(width - Math.round(share * width))}`;
    const line =
      `[${bar}] ${stage} · shards ${done.size}/${shards} · records ${fmt(n)}/${exact ? '' : '~'}${fmt(expected)}` +
      ` · ${fmt(Math.round(rate))} rec/s ${eta}`.trimEnd();
    stream.write(tty ? `\r\x1b[2K${line}` : `${line}\n`);
  };

  return {
    planned(info) {
      shards = info.shards;
      expected = info.records;
      exact = info.recordsExact;
      stage = 'inference';
      if (tty) timer = setInterval(() => render(), 200);
      render(true);
    },
    roundStarted(round, count) {
      if (round > 0) {
        stage = `retry round ${round} (${count} shards)`;
        render(true);
      }
    },
    shardProgress(shardId, n) {
      perShard.set(shardId, n);
      render();
    },
    shardDone(shardId, n) {
      perShard.set(shardId, n);
      done.add(shardId);
      render();
    },
    stage(name) {
      stage = name;
      render(true);
    },
    close() {
      if (timer) clearInterval(timer);
      render(true);
      if (tty) stream.write('\n');
    },
  };
}

export function fmt(n: number): string {
  return n.toLocaleString('en-US');
}

export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)}s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  if (m < 60) return `${m}m${String(s).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
