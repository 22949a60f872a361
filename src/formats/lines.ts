/**
 * Splits a byte range of a text object into lines, streaming. The range rule (see InputRange): a range [start, end)
 * owns every line whose first byte lies in [start, end). So a reader that starts at `start > 0` begins one byte
 * early and drops everything through the first '\n' (if byte start-1 is '\n', the line at `start` is kept), and it
 * reads past `end` to finish its last line. Adjacent ranges therefore see every line exactly once.
 *
 * Work happens on raw bytes: '\n' (0x0A) never occurs inside a multi-byte UTF-8 sequence, so splitting bytes first
 * and decoding each complete line once is both correct for characters split across chunks and fast. Readers that
 * parse bytes themselves (CSV) take the lines as byte spans (`visitLines`) and never build a string per line.
 */
import { isAscii } from 'node:buffer';
import type { ObjectStore } from '../storage/object-store.js';

export interface Line {
  /** Byte offset of the line's first byte in the object. */
  readonly offset: number;
  /** The line without its '\n' or '\r\n'; empty when `tooLong` is set. */
  readonly text: string;
  /**
   * Set when the line was longer than `maxLineBytes`: its length in bytes. Its bytes were dropped rather than
   * buffered, so one corrupt file without line breaks cannot exhaust a worker's memory.
   */
  readonly tooLong?: number;
}

/** What the splitter needs from an InputRange. */
export interface LineRange {
  readonly uri: string;
  readonly start: number;
  readonly end: number;
  /** Object size: bounds the reads that finish the last line (S3 rejects a range starting at or past the end). */
  readonly size: number;
}

export interface LineOptions {
  /** Longest line decoded; longer ones come back with `tooLong`. @default 64 MiB */
  readonly maxLineBytes?: number;
  /**
   * CSV quoting (RFC 4180): a '\n' inside a double-quoted field does not end the line, so a record with a quoted
   * line break comes out as one line (its inner line breaks kept). See QuotedLines for the rule and its limit at
   * range boundaries. @default false
   */
  readonly quotes?: boolean;
}

/**
 * Quote-aware splitting (LineOptions.quotes). A quote opens a quoted field only where a field starts (first byte of
 * the line, or after a comma) or right after a closing quote (`""`, an escaped quote); anywhere else it is a stray
 * character that changes nothing (the CSV parser reports it), so one stray inch mark cannot swallow the file.
 *
 * Range boundaries cannot be placed by quotes without reading the object from its start, so a range still starts
 * after the first '\n' at or after `start - 1`. That is only wrong when that '\n' lies inside a quoted field, which
 * belongs to a record the previous range owns and reads to its end: that range sees it and throws
 * QuotedBreakAtBoundaryError (deterministic), so the run fails rather than misreading the next range. The planner
 * keeps an object whose sample shows a quoted line break in one range (planRun), which makes this rare.
 */
export interface QuotedLines {
  /** URI of the object, for the error message. */
  readonly uri: string;
  /** True when another range of the same object starts at this range's end (end < object size). */
  readonly boundaryFollows: boolean;
}

/**
 * A quoted line break of a record that crosses a range boundary: the next range would start inside the record.
 * Deterministic (src/runs/failures.ts): the same plan fails the same way, so the shard is not retried.
 */
export class QuotedBreakAtBoundaryError extends Error {
  override readonly name = 'QuotedBreakAtBoundaryError';
}

export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;

/**
 * Receives one owned, non-empty line as bytes: `bytes[start, end)`, without its '\n' or '\r\n' (or a leading
 * UTF-8 byte order mark). `offset` is the absolute offset of the line's first byte. `tooLong` is the line's length
 * when it went over the limit (its bytes were dropped: start === end), else 0. `ascii` is true when the bytes are
 * known to be ASCII (then latin1 decoding equals UTF-8 decoding and is faster), false when unknown.
 *
 * The bytes are only valid during the call: the buffer is reused or released afterwards.
 */
export type LineVisitor = (
  bytes: Buffer,
  start: number,
  end: number,
  offset: number,
  tooLong: number,
  ascii: boolean,
) => void;

const NEWLINE = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const COMMA = 0x2c;
const EMPTY = Buffer.alloc(0);
/** First read past the range end; doubled each time up to the cap, since most lines are short. */
const TAIL_WINDOW = 64 * 1024;
const TAIL_WINDOW_MAX = 8 * 1024 * 1024;

/**
 * Incremental splitter: feed it consecutive chunks of the object, starting at `readStart`. Exported for tests and
 * for callers that already hold the bytes.
 */
export class LineSplitter {
  /** Absolute offset of the next byte pushed. */
  private pos: number;
  /** Still dropping the partial line the range landed in. */
  private discarding: boolean;
  /** Absolute offset where the pending (incomplete) line starts. */
  private lineStart: number;
  private parts: Buffer[] = [];
  private partBytes = 0;
  /** Bytes of the pending line when it went over the limit (then `parts` is empty). */
  private overflow = 0;
  private finished = false;
  /** Quote-aware mode: inside a quoted field at `pos`. */
  private inQuotes = false;
  /** Quote-aware mode: the byte before `pos` (a line start counts as after '\n'). */
  private lastByte = NEWLINE;
  /** Quote-aware mode: absolute offset of the last closing quote (a quote right after it reopens: `""`). */
  private closedAt = -2;

  constructor(
    private readonly start: number,
    private readonly end: number,
    private readonly maxLineBytes: number = DEFAULT_MAX_LINE_BYTES,
    private readonly quoted?: QuotedLines,
  ) {
    this.pos = start > 0 ? start - 1 : 0;
    this.discarding = start > 0;
    this.lineStart = start;
  }

  /** Offset of the first byte to feed. */
  get readStart(): number {
    return this.start > 0 ? this.start - 1 : 0;
  }

  /** Absolute offset of the next byte expected. */
  get position(): number {
    return this.pos;
  }

  /**
   * Offset of the first byte of the line in progress: with bytes that ran out before `done`, the start of the
   * incomplete last line (the columnar decoder's blocks, csv-columnar.ts).
   */
  get pendingStart(): number {
    return this.lineStart;
  }

  /** True once every owned line has been emitted: the caller can stop reading. */
  get done(): boolean {
    return this.finished || (!this.discarding && this.lineStart >= this.end);
  }

  /** Splits one chunk; returns the complete owned lines it finished, in order. */
  push(chunk: Buffer): Line[] {
    const out: Line[] = [];
    this.pushSpans(chunk, (bytes, start, end, offset, tooLong) =>
      out.push(toLine(bytes, start, end, offset, tooLong)),
    );
    return out;
  }

  /** Call at the end of the object: returns the last line when it had no final newline. */
  finish(): Line | undefined {
    let last: Line | undefined;
    this.finishSpans((bytes, start, end, offset, tooLong) => {
      last = toLine(bytes, start, end, offset, tooLong);
    });
    return last;
  }

  /** Splits one chunk, handing each complete owned line to `visit` as a byte span, in order. */
  pushSpans(chunk: Buffer, visit: LineVisitor): void {
    if (this.quoted) return this.pushQuotedSpans(chunk, visit);
    if (this.done) return;
    const base = this.pos;
    this.pos += chunk.length;
    let i = 0;
    if (this.discarding) {
      const nl = chunk.indexOf(NEWLINE);
      if (nl < 0) return;
      this.discarding = false;
      i = nl + 1;
      this.lineStart = base + i;
    }
    // One native check per chunk lets every line of an ASCII chunk skip UTF-8 decoding.
    const ascii = chunk.length > 0 && isAscii(chunk);
    while (this.lineStart < this.end) {
      const nl = chunk.indexOf(NEWLINE, i);
      if (nl < 0) {
        if (i < chunk.length) this.hold(chunk.subarray(i));
        return;
      }
      this.emit(chunk, i, nl, visit, ascii);
      i = nl + 1;
      this.lineStart = base + i;
    }
  }

  /** pushSpans in quote-aware mode (see QuotedLines): a line ends at a '\n' outside quoted fields. */
  private pushQuotedSpans(chunk: Buffer, visit: LineVisitor): void {
    if (this.done) return;
    const base = this.pos;
    this.pos += chunk.length;
    const n = chunk.length;
    let i = 0;
    if (this.discarding) {
      const nl = chunk.indexOf(NEWLINE);
      if (nl < 0) return;
      this.discarding = false;
      i = nl + 1;
      this.lineStart = base + i;
      this.lastByte = NEWLINE;
      this.inQuotes = false;
    }
    const ascii = n > 0 && isAscii(chunk);
    // Next quote at or after the scan position: found once and reused until passed (-1: none left in the chunk), so
    // quote-free data costs one search per chunk, not one per line.
    let quote = n > i ? chunk.indexOf(QUOTE, i) : -1;
    let p = i;
    while (this.lineStart < this.end) {
      let nl = -1;
      while (p < n) {
        if (quote >= 0 && quote < p) quote = chunk.indexOf(QUOTE, p);
        if (this.inQuotes) {
          if (quote < 0) {
            p = n;
            break;
          }
          this.inQuotes = false;
          this.closedAt = base + quote;
          p = quote + 1;
          continue;
        }
        const newline = chunk.indexOf(NEWLINE, p);
        if (quote < 0 || (newline >= 0 && newline < quote)) {
          if (newline < 0) p = n;
          else nl = newline;
          break;
        }
        const before = quote > 0 ? chunk[quote - 1]! : this.lastByte;
        if (before === COMMA || before === NEWLINE || base + quote === this.closedAt + 1)
          this.inQuotes = true;
        p = quote + 1;
      }
      if (nl < 0) {
        if (i < n) this.hold(chunk.subarray(i));
        if (n > 0) this.lastByte = chunk[n - 1]!;
        return;
      }
      this.emit(chunk, i, nl, visit, ascii);
      i = nl + 1;
      p = i;
      this.lineStart = base + i;
      this.lastByte = NEWLINE;
    }
  }

  /** `finish` for span readers. */
  finishSpans(visit: LineVisitor): void {
    if (this.done) return;
    this.finished = true;
    if (this.discarding || (this.partBytes === 0 && this.overflow === 0)) return;
    this.emit(Buffer.alloc(0), 0, 0, visit, false);
  }

  private hold(bytes: Buffer): void {
    if (this.overflow > 0) {
      this.overflow += bytes.length;
      return;
    }
    if (this.partBytes + bytes.length > this.maxLineBytes) {
      this.overflow = this.partBytes + bytes.length;
      this.parts = [];
      this.partBytes = 0;
      return;
    }
    // Copy: a view would pin the whole chunk (up to 1 MiB) in memory for a few held bytes.
    this.parts.push(Buffer.from(bytes));
    this.partBytes += bytes.length;
  }

  /** Emits the pending parts plus chunk[from, to) as one line. */
  private emit(chunk: Buffer, from: number, to: number, visit: LineVisitor, chunkAscii: boolean): void {
    const offset = this.lineStart;
    if (this.overflow > 0 || this.partBytes + (to - from) > this.maxLineBytes) {
      // Byte count including a trailing '\r' if any: it only feeds an error message.
      const length = (this.overflow > 0 ? this.overflow : this.partBytes) + (to - from);
      this.reset();
      visit(EMPTY, 0, 0, offset, length, true);
      return;
    }
    let bytes: Buffer;
    let lo: number;
    let hi: number;
    let ascii = chunkAscii;
    if (this.partBytes === 0) {
      bytes = chunk;
      lo = from;
      hi = to;
    } else {
      this.parts.push(chunk.subarray(from, to));
      bytes = Buffer.concat(this.parts, this.partBytes + (to - from));
      lo = 0;
      hi = bytes.length;
      ascii = isAscii(bytes);
      this.reset();
    }
    if (this.quoted?.boundaryFollows) this.checkBoundary(bytes, lo, hi, offset);
    if (hi > lo && bytes[hi - 1] === CR) hi -= 1;
    // A UTF-8 byte order mark is not part of the first record.
    if (
      offset === 0 &&
      hi - lo >= 3 &&
      bytes[lo] === 0xef &&
      bytes[lo + 1] === 0xbb &&
      bytes[lo + 2] === 0xbf
    ) {
      lo += 3;
    }
    if (hi > lo) visit(bytes, lo, hi, offset, 0, ascii);
  }

  /**
   * Quote-aware mode: the line bytes[lo, hi) starts at `offset`; every '\n' in it is quoted. The next range starts
   * after the first '\n' at or after `end - 1`: when that one is in this line, the next range would start inside
   * this record (see QuotedLines).
   */
  private checkBoundary(bytes: Buffer, lo: number, hi: number, offset: number): void {
    if (offset >= this.end || offset + (hi - lo) < this.end) return;
    const from = lo + Math.max(0, this.end - 1 - offset);
    const inner = bytes.indexOf(NEWLINE, from);
    if (inner < 0 || inner >= hi) return;
    const uri = this.quoted?.uri ?? 'the input object';
    throw new QuotedBreakAtBoundaryError(
      `CSV object ${uri}: the record at byte ${offset} has a line break inside a quoted field at byte ` +
        `${offset + (inner - lo)}, across the shard boundary at byte ${this.end}, so the next shard would start ` +
        'inside it. Byte-range shards start after a line break and cannot see quotes before them. Fix: make ' +
        'run.shards.targetBytes larger than this object so one shard reads it, split the file into smaller files, ' +
        'or write it without line breaks inside quoted fields',
    );
  }

  private reset(): void {
    this.parts = [];
    this.partBytes = 0;
    this.overflow = 0;
  }
}

/**
 * The owned lines of a range, in batches (one per chunk read), skipping empty lines. Batches rather than single
 * lines because an await per line costs more than splitting it.
 */
export async function* readLineBatches(
  store: ObjectStore,
  range: LineRange,
  options: LineOptions = {},
): AsyncIterable<Line[]> {
  let batch: Line[] = [];
  const visit: LineVisitor = (bytes, start, end, offset, tooLong) =>
    batch.push(toLine(bytes, start, end, offset, tooLong));
  for await (const _ of visitLines(store, range, visit, options)) {
    if (batch.length > 0) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

/**
 * Records built by a line visitor, in batches of exactly `batchSize` (the last one shorter): the visitor pushes onto
 * `built.items` (a holder rather than a callback, on the hottest path), and after each chunk of lines the full
 * batches are handed out. For readers whose records are one per line (CSV, JSON Lines).
 */
export async function* batchesOfVisited<T>(
  store: ObjectStore,
  range: LineRange,
  built: { items: T[] },
  visit: LineVisitor,
  batchSize: number,
  options: LineOptions = {},
): AsyncGenerator<T[]> {
  for await (const _ of visitLines(store, range, visit, options)) {
    while (built.items.length >= batchSize) {
      if (built.items.length === batchSize) {
        yield built.items;
        built.items = [];
      } else {
        yield built.items.splice(0, batchSize);
      }
    }
  }
  if (built.items.length > 0) yield built.items;
}

/**
 * The owned lines of a range as byte spans: `visit` is called for each line, and the generator yields once after
 * each chunk read, so a caller can hand over what it built from the lines so far. Memory is one chunk plus the
 * line in progress, whatever the range size.
 */
export async function* visitLines(
  store: ObjectStore,
  range: LineRange,
  visit: LineVisitor,
  options: LineOptions = {},
): AsyncGenerator<void, void, undefined> {
  if (range.end <= range.start || range.start >= range.size) return;
  const splitter = new LineSplitter(
    range.start,
    range.end,
    options.maxLineBytes,
    options.quotes ? { uri: range.uri, boundaryFollows: range.end < range.size } : undefined,
  );
  const mainEnd = Math.min(range.end, range.size);
  const stream = await store.getStream(range.uri, { start: splitter.readStart, end: mainEnd });
  try {
    for await (const chunk of stream as AsyncIterable<unknown>) {
      splitter.pushSpans(toBuffer(chunk), visit);
      yield;
      if (splitter.done) break;
    }
  } finally {
    stream.destroy();
  }
  // The last owned line usually runs past `end`: finish it with bounded reads rather than one open-ended stream, so
  // nothing has to be aborted mid-transfer.
  let window = TAIL_WINDOW;
  while (!splitter.done) {
    const from = splitter.position;
    if (from >= range.size) {
      splitter.finishSpans(visit);
      yield;
      return;
    }
    const bytes = await store.get(range.uri, { start: from, end: Math.min(from + window, range.size) });
    if (bytes.length === 0) {
      // The object is shorter than the plan said; end the line where the data ends.
      splitter.finishSpans(visit);
      yield;
      return;
    }
    splitter.pushSpans(toBuffer(bytes), visit);
    yield;
    window = Math.min(window * 2, TAIL_WINDOW_MAX);
  }
}

/** The owned lines of a range, one at a time. */
export async function* readLines(
  store: ObjectStore,
  range: LineRange,
  options: LineOptions = {},
): AsyncIterable<Line> {
  for await (const batch of readLineBatches(store, range, options)) yield* batch;
}

/** The first non-empty line of an object (a CSV header), read with small ranged requests. */
export async function readFirstLine(
  store: ObjectStore,
  uri: string,
  size: number,
  options: LineOptions = {},
): Promise<Line | undefined> {
  const splitter = new LineSplitter(
    0,
    size,
    options.maxLineBytes,
    options.quotes ? { uri, boundaryFollows: false } : undefined,
  );
  let window = TAIL_WINDOW;
  while (!splitter.done) {
    const from = splitter.position;
    const bytes =
      from < size ? await store.get(uri, { start: from, end: Math.min(from + window, size) }) : undefined;
    if (!bytes || bytes.length === 0) return splitter.finish();
    const lines = splitter.push(toBuffer(bytes));
    if (lines[0]) return lines[0];
    window = Math.min(window * 2, TAIL_WINDOW_MAX);
  }
  return undefined;
}

function toLine(bytes: Buffer, start: number, end: number, offset: number, tooLong: number): Line {
  return tooLong > 0 ? { offset, text: '', tooLong } : { offset, text: bytes.toString('utf8', start, end) };
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new TypeError(`expected a byte stream, got ${typeof chunk} chunks`);
}

/**
 * Offset of the first line break inside a quoted CSV field in `bytes` (the start of an object), by the rule of
 * QuotedLines; -1 when there is none. The planner uses it to keep such an object in one range.
 */
export function firstQuotedLineBreak(bytes: Uint8Array): number {
  let inQuotes = false;
  let closedAt = -2;
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let quote = buf.indexOf(QUOTE);
  if (quote < 0) return -1;
  let p = 0;
  while (quote >= 0) {
    if (inQuotes) {
      const newline = buf.indexOf(NEWLINE, p);
      if (newline >= 0 && newline < quote) return newline;
      inQuotes = false;
      closedAt = quote;
    } else {
      const before = quote > 0 ? buf[quote - 1]! : NEWLINE;
      if (before === COMMA || before === NEWLINE || quote === closedAt + 1) inQuotes = true;
    }
    p = quote + 1;
    quote = buf.indexOf(QUOTE, p);
  }
  if (!inQuotes) return -1;
  // Still open at the end of the bytes: a break after the last quote is inside the field.
  return buf.indexOf(NEWLINE, p);
}

/** The start of a line, quoted, for error messages: enough to find the line, short enough for an errors file. */
export function lineSnippet(text: string, max = 60): string {
  return JSON.stringify(text.length <= max ? text : `${text.slice(0, max)}…`);
}
