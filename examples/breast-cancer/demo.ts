/**
 * The demo input generator: turns the 569 shipped patients (data/breast_cancer.csv) into a large CSV input, by
 * default 1,000,000 records in 8 files under generated/input/ (git-ignored), which demo.yaml scores.
 *
 * Each record resamples a shipped row with a seeded PRNG, multiplies every feature by its own noise factor in
 * [0.98, 1.02], gets a fresh id (D0000001, D0000002, ...) and keeps the source row's diagnosis. One record in
 * `badRecordEvery` (default 100,000) is deliberately broken: one feature is `n/a` or empty, alternately, so a run
 * shows error isolation (those records become error rows, the rest is scored).
 *
 * Output depends only on (seed, records, badRecordEvery): the files split the same record stream, and the same
 * seed writes byte-identical files. Rows are formatted straight into large byte buffers: a million records (243 MB)
 * take about 2 s of CPU.
 *
 * Run directly: `npx tsx examples/breast-cancer/demo.ts [--records N] [--files N] [--seed N] [--dir PATH]`.
 */
import { mkdir, open, readdir, readFile, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export const EXAMPLE_DIR = path.dirname(fileURLToPath(import.meta.url));
/** The shipped rows the demo resamples. */
export const SOURCE_CSV = path.join(EXAMPLE_DIR, 'data', 'breast_cancer.csv');
/** Where demo.yaml reads its input (`generated/input/` relative to the example). */
export const DEFAULT_DEMO_DIR = path.join(EXAMPLE_DIR, 'generated', 'input');
export const DEFAULT_DEMO_RECORDS = 1_000_000;
export const DEFAULT_DEMO_FILES = 8;
export const DEFAULT_BAD_RECORD_EVERY = 100_000;

export interface DemoInputOptions {
  /** Directory for the files; created if missing. Earlier `part-*.csv` files in it are removed first. */
  dir: string;
  /** Records in all files together. */
  records: number;
  /** Number of files; records are spread evenly (the first files get one more when it does not divide). */
  files: number;
  /** PRNG seed. @default 1 */
  seed?: number;
  /** Break one record in this many (0: none). @default 100000 */
  badRecordEvery?: number;
}

export interface DemoInput {
  /** Absolute paths of the files written, in record order. */
  files: string[];
  records: number;
  bytes: number;
  /** How many records were deliberately broken. */
  badRecords: number;
  /** Their ids, in order. */
  badRecordIds: string[];
}

const ID_COLUMN = 'patient_id';
const LABEL_COLUMN = 'diagnosis';
const NOISE = 0.02;
/** Significant digits kept for a column's largest value; smaller values keep the same decimals. */
const SIGNIFICANT_DIGITS = 5;
const MAX_DECIMALS = 8;
const CHUNK_BYTES = 4 * 1024 * 1024;
/** Longest formatted number: 10 integer digits, a dot, MAX_DECIMALS decimals. */
const MAX_NUMBER_BYTES = 11 + MAX_DECIMALS;
/** Largest id (ids and scaled values are formatted with 32-bit integer arithmetic). */
const MAX_RECORDS = 2 ** 31 - 1;
const FILE_PATTERN = /^part-\d+\.csv$/;

const COMMA = 0x2c;
const DOT = 0x2e;
const ZERO = 0x30;

interface Source {
  header: string;
  /** Feature values, row-major: rows x columns. */
  features: Float64Array;
  columns: number;
  /** Decimals written per feature column, and 10 to that power. */
  decimals: Int32Array;
  pows: Float64Array;
  /** `,<diagnosis>\n` per source row, ready to copy. */
  tails: Buffer[];
}

/** mulberry32: a tiny 32-bit PRNG, plenty for resampling and noise. Returns floats in [0, 1). */
function createPrng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function loadSource(file: string): Promise<Source> {
  const lines = (await readFile(file, 'utf8')).split('\n').filter((line) => line.length > 0);
  const header = lines[0];
  if (header === undefined) throw new Error(`${file} is empty`);
  const names = header.split(',');
  const columns = names.length - 2;
  if (names[0] !== ID_COLUMN || names[names.length - 1] !== LABEL_COLUMN || columns < 1) {
    throw new Error(`${file}: expected the header ${ID_COLUMN},<features...>,${LABEL_COLUMN}`);
  }
  const rows = lines.slice(1);
  if (rows.length === 0) throw new Error(`${file} has no rows`);
  const features = new Float64Array(rows.length * columns);
  const tails: Buffer[] = [];
  rows.forEach((line, r) => {
    const cells = line.split(',');
    if (cells.length !== names.length)
      throw new Error(`${file}:${r + 2}: ${cells.length} cells, expected ${names.length}`);
    for (let c = 0; c < columns; c++) {
      const value = Number(cells[c + 1]);
      if (!Number.isFinite(value) || value < 0)
        throw new Error(`${file}:${r + 2}: ${names[c + 1]} is not a number >= 0`);
      features[r * columns + c] = value;
    }
    tails.push(Buffer.from(`,${cells[cells.length - 1] ?? ''}\n`, 'latin1'));
  });
  const decimals = new Int32Array(columns);
  for (let c = 0; c < columns; c++) {
    let max = 0;
    for (let r = 0; r < rows.length; r++) max = Math.max(max, features[r * columns + c] ?? 0);
    const digits = max > 0 ? Math.ceil(Math.log10(max)) : 1;
    decimals[c] = Math.min(MAX_DECIMALS, Math.max(0, SIGNIFICANT_DIGITS - digits));
    // Scaled values are written with 32-bit integer arithmetic.
    if (max * (1 + NOISE) * 10 ** (decimals[c] ?? 0) >= 2 ** 31)
      throw new Error(`${names[c + 1]} is too large`);
  }
  const pows = Float64Array.from(decimals, (d) => 10 ** d);
  return { header: `${header}\n`, features, columns, decimals, pows, tails };
}

/** Writes a non-negative integer < 2^31 in decimal; `minDigits` pads with leading zeros. Returns the new end. */
function writeDigits(buf: Buffer, pos: number, value: number, minDigits: number): number {
  let digits =
    value < 1e4
      ? value < 100
        ? value < 10
          ? 1
          : 2
        : value < 1000
          ? 3
          : 4
      : value < 1e6
        ? value < 1e5
          ? 5
          : 6
        : value < 1e8
          ? value < 1e7
            ? 7
            : 8
          : value < 1e9
            ? 9
            : 10;
  if (digits < minDigits) digits = minDigits;
  const end = pos + digits;
  let p = end;
  let rest = value;
  while (p > pos) {
    const next = (rest / 10) | 0;
    buf[--p] = ZERO + rest - next * 10;
    rest = next;
  }
  return end;
}

/** Writes `scaled / 10^decimals` with exactly `decimals` decimals (scaled >= 0). Returns the new end. */
function writeFixed(buf: Buffer, pos: number, scaled: number, decimals: number, pow: number): number {
  if (decimals === 0) return writeDigits(buf, pos, scaled, 1);
  const whole = (scaled / pow) | 0;
  let p = writeDigits(buf, pos, whole, 1);
  buf[p++] = DOT;
  return writeDigits(buf, p, scaled - whole * pow, decimals);
}

/**
 * Formats one record at `pos` and returns the new end: a random source row, every feature times its own noise
 * factor. The feature at `badColumn` (-1: none) is written as `badValue`, or left empty without one.
 */
function writeRecord(
  source: Source,
  random: () => number,
  buf: Buffer,
  start: number,
  id: number,
  badColumn: number,
  badValue: Buffer | undefined,
): number {
  const { columns, features, decimals, pows, tails } = source;
  const row = Math.floor(random() * tails.length);
  const base = row * columns;
  let pos = start;
  buf[pos++] = 0x44; // 'D'
  pos = writeDigits(buf, pos, id, 7);
  for (let c = 0; c < columns; c++) {
    const factor = 1 + (2 * random() - 1) * NOISE;
    buf[pos++] = COMMA;
    if (c === badColumn) {
      if (badValue !== undefined) pos += badValue.copy(buf, pos);
      continue;
    }
    const pow = pows[c] ?? 1;
    pos = writeFixed(buf, pos, Math.round((features[base + c] ?? 0) * factor * pow), decimals[c] ?? 0, pow);
  }
  const tail = tails[row];
  if (tail === undefined) throw new Error(`source row ${row} out of range`);
  for (let i = 0; i < tail.length; i++) buf[pos++] = tail[i] ?? 0;
  return pos;
}

/** Writes the first `length` bytes of `buf`, looping over short writes. */
async function writeAll(handle: FileHandle, buf: Buffer, length: number): Promise<void> {
  let done = 0;
  while (done < length) done += (await handle.write(buf, done, length - done)).bytesWritten;
}

/** Writes the large demo CSV input. See the module comment for what the records look like. */
export async function makeDemoInput(options: DemoInputOptions): Promise<DemoInput> {
  const { dir, records, files } = options;
  const seed = options.seed ?? 1;
  const badEvery = options.badRecordEvery ?? DEFAULT_BAD_RECORD_EVERY;
  if (!Number.isInteger(records) || records < 0 || records > MAX_RECORDS) {
    throw new Error(`records must be an integer from 0 to ${MAX_RECORDS}, got ${records}`);
  }
  if (!Number.isInteger(files) || files < 1) throw new Error(`files must be an integer >= 1, got ${files}`);
  if (!Number.isInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
  if (!Number.isInteger(badEvery) || badEvery < 0) {
    throw new Error(`badRecordEvery must be an integer >= 0, got ${badEvery}`);
  }

  const source = await loadSource(SOURCE_CSV);
  const { columns } = source;
  const header = Buffer.from(source.header, 'latin1');
  const badValue = Buffer.from('n/a', 'latin1');

  await mkdir(dir, { recursive: true });
  for (const name of await readdir(dir)) {
    if (FILE_PATTERN.test(name)) await rm(path.join(dir, name));
  }

  const random = createPrng(seed);
  // A row never overflows the chunk: the buffer is flushed while more than a row's worst case is left.
  const maxRowBytes = 11 + columns * (1 + MAX_NUMBER_BYTES) + Math.max(...source.tails.map((t) => t.length));
  const chunk = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, header.length + 2 * maxRowBytes));
  const written: string[] = [];
  const badRecordIds: string[] = [];
  const nameDigits = Math.max(5, String(files - 1).length);
  let bytes = 0;
  let index = 0; // global record index, 0-based

  for (let f = 0; f < files; f++) {
    const file = path.resolve(dir, `part-${String(f).padStart(nameDigits, '0')}.csv`);
    const count = Math.floor(records / files) + (f < records % files ? 1 : 0);
    const handle = await open(file, 'w');
    try {
      let pos = header.copy(chunk, 0);
      for (let i = 0; i < count; i++, index++) {
        if (pos > chunk.length - maxRowBytes) {
          await writeAll(handle, chunk, pos);
          bytes += pos;
          pos = 0;
        }
        const bad = badEvery > 0 && index % badEvery === Math.floor(badEvery / 2);
        const badOrdinal = badRecordIds.length;
        pos = writeRecord(
          source,
          random,
          chunk,
          pos,
          index + 1,
          bad ? (badOrdinal * 7 + 3) % columns : -1,
          badOrdinal % 2 === 0 ? badValue : undefined,
        );
        if (bad) badRecordIds.push(`D${String(index + 1).padStart(7, '0')}`);
      }
      await writeAll(handle, chunk, pos);
      bytes += pos;
    } finally {
      await handle.close();
    }
    written.push(file);
  }
  return { files: written, records: index, bytes, badRecords: badRecordIds.length, badRecordIds };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      records: { type: 'string', default: String(DEFAULT_DEMO_RECORDS) },
      files: { type: 'string', default: String(DEFAULT_DEMO_FILES) },
      seed: { type: 'string', default: '1' },
      dir: { type: 'string', default: DEFAULT_DEMO_DIR },
    },
  });
  const started = performance.now();
  const result = await makeDemoInput({
    dir: values.dir,
    records: Number(values.records),
    files: Number(values.files),
    seed: Number(values.seed),
  });
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `wrote ${result.records} records (${result.badRecords} bad: ${result.badRecordIds.join(', ')}) in ` +
      `${result.files.length} files, ${(result.bytes / 1e6).toFixed(1)} MB, ${seconds.toFixed(2)} s, under ${values.dir}`,
  );
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main();
}
