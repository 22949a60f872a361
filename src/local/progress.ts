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

export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): ProgressSink {
  const tty = Boolean(stream.isTTY);
  const started = Date.now();
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
    const now = Date.now();
    if (!tty && !final && now - lastPrint < 5000) return;
    lastPrint = now;
    const secs = (now - started) / 1000;
    const n = records();
    const rate = secs > 0 ? n / secs : 0;
    const share = expected > 0 ? Math.min(1, n / expected) : 0;
    const eta = rate > 0 && expected > n ? `ETA ${formatDuration((expected - n) / rate)}` : '';
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
