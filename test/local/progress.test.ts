import { describe, expect, it } from '@jest/globals';
import { terminalProgress, type ProgressStream } from '../../src/local/progress.js';

/** A log stream (not a TTY) that keeps the lines, and a clock the test moves. */
function harness(): { lines: string[]; stream: ProgressStream; clock: { ms: number } } {
  const lines: string[] = [];
  const stream: ProgressStream = {
    isTTY: false,
    write: (chunk: string) => {
      lines.push(chunk.trimEnd());
      return true;
    },
  };
  return { lines, stream, clock: { ms: 1_000_000 } };
}

describe('terminal progress', () => {
  it('measures the rate from the first record, so planning and model loading do not make hour-long ETAs', () => {
    const { lines, stream, clock } = harness();
    const progress = terminalProgress(stream, () => clock.ms);
    progress.planned({ shards: 2, records: 10_000, recordsExact: true });
    clock.ms += 60_000; // a minute of planning and model loading
    progress.shardProgress(0, 1);
    progress.stage('inference'); // a forced render
    expect(lines.at(-1)).not.toMatch(/ETA/);

    clock.ms += 10_000; // then 1,000 records/s
    progress.shardProgress(0, 5_001);
    progress.shardProgress(1, 4_000);
    progress.stage('inference');
    // 9,000 records since the first one, in 10 s (not 9,001 in 70 s): 900/s, and 999 records left.
    expect(lines.at(-1)).toMatch(/records 9,001\/10,000 · 900 rec\/s ETA 1\.1s$/);
  });

  it('shows an ETA once the rate has been measured long enough, from the rate since the first record', () => {
    const { lines, stream, clock } = harness();
    const progress = terminalProgress(stream, () => clock.ms);
    progress.planned({ shards: 1, records: 100_000, recordsExact: false });
    clock.ms += 30_000;
    progress.shardProgress(0, 100);
    clock.ms += 2_000; // too short a measurement: no ETA yet
    progress.shardProgress(0, 2_100);
    progress.stage('inference');
    expect(lines.at(-1)).not.toMatch(/ETA/);

    clock.ms += 8_000; // 10 s since the first record, 10,000 more records: 1,000/s; 90,000 left -> 1m30s
    progress.shardProgress(0, 10_100);
    progress.stage('inference');
    expect(lines.at(-1)).toMatch(/records 10,100\/~100,000 · 1,000 rec\/s ETA 1m30s$/);
  });
});
