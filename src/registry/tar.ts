/**
 * A streaming reader for tar archives (POSIX ustar, with the pax and GNU long-name extensions that `tar` and
 * Python's `tarfile` write), for model archives (`model.tar.gz`). Entries are handed out one at a time with their
 * content as a stream, so an archive of any size is read with one chunk in memory.
 *
 * Format (POSIX.1-2001 "ustar"): the archive is a sequence of 512-byte blocks. Each entry is a header block followed
 * by its content, padded to a whole block; the archive ends with two all-zero blocks. Header fields used here:
 *
 *   offset size  field
 *   0      100   name (NUL-terminated unless full)
 *   124    12    size, octal ASCII (or, when its first byte has the high bit set, big-endian base-256)
 *   148    8     checksum: octal sum of the header's bytes with this field counted as eight spaces
 *   156    1     type: '0' or NUL file, '5' directory, '1'/'2' links, 'x' pax header, 'g' pax global header,
 *                'L' GNU long name
 *   257    6     magic: "ustar\0" (POSIX; then `prefix` is a path prefix) or "ustar " (GNU)
 *   345    155   prefix (POSIX): the name is `prefix/name`
 *
 * A pax header ('x') holds records `<length> <key>=<value>\n` whose `path` and `size` replace the next entry's;
 * a GNU 'L' entry's content is the next entry's name.
 */

const BLOCK = 512;

export class TarError extends Error {
  override readonly name = 'TarError';
}

export interface TarEntry {
  /** The entry's path as stored (`./` prefixes removed). */
  readonly path: string;
  readonly type: 'file' | 'directory' | 'link' | 'other';
  readonly size: number;
  /**
   * The content, for files. It must be read to the end (or `skip`ped by not reading it: the reader then skips it)
   * before the next entry is requested.
   */
  readonly body: AsyncIterable<Uint8Array>;
}

/** Pulls exact byte counts out of a stream of chunks. */
class ByteReader {
  private chunk: Buffer = Buffer.alloc(0);
  private offset = 0;
  /** Bytes consumed so far, for error messages. */
  position = 0;

  constructor(private readonly source: AsyncIterator<Uint8Array>) {}

  /** Exactly `n` bytes; undefined at a clean end of stream; a TarError when the stream ends inside them. */
  async read(n: number): Promise<Buffer | undefined> {
    const parts: Buffer[] = [];
    let got = 0;
    while (got < n) {
      const piece = await this.next(n - got);
      if (!piece) {
        if (got === 0) return undefined;
        throw new TarError(
          `the archive ends in the middle of a block at byte ${this.position}: it is truncated`,
        );
      }
      parts.push(piece);
      got += piece.length;
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  /** Up to `max` bytes of the current chunk (fetching the next when it is used up); undefined at end of stream. */
  async next(max: number): Promise<Buffer | undefined> {
    while (this.offset >= this.chunk.length) {
      const result: IteratorResult<Uint8Array> = await this.source.next();
      if (result.done) return undefined;
      const value = result.value;
      this.chunk = Buffer.isBuffer(value) ? value : Buffer.from(value);
      this.offset = 0;
    }
    const piece = this.chunk.subarray(this.offset, this.offset + max);
    this.offset += piece.length;
    this.position += piece.length;
    return piece;
  }

  /** `n` bytes as a stream of pieces; a TarError if the stream ends first. */
  async *take(n: number): AsyncIterable<Uint8Array> {
    let left = n;
    while (left > 0) {
      const piece = await this.next(left);
      if (!piece) {
        throw new TarError(`the archive ends inside an entry at byte ${this.position}: it is truncated`);
      }
      left -= piece.length;
      yield piece;
    }
  }
}

/** Reads the entries of an (uncompressed) tar stream in order. */
export async function* readTar(source: AsyncIterable<Uint8Array>): AsyncGenerator<TarEntry> {
  const reader = new ByteReader(source[Symbol.asyncIterator]());
  let override: { path?: string; size?: number } = {};
  let sawEnd = false;
  for (;;) {
    const header = await reader.read(BLOCK);
    if (!header) break;
    if (isZeroBlock(header)) {
      sawEnd = true;
      break;
    }
    checkChecksum(header, reader.position - BLOCK);
    const type = String.fromCharCode(header[156] ?? 0);
    const size = override.size ?? parseSize(header, reader.position - BLOCK);
    const padded = Math.ceil(size / BLOCK) * BLOCK;

    if (type === 'x' || type === 'g' || type === 'L') {
      const content = size === 0 ? Buffer.alloc(0) : await reader.read(size);
      if (!content) throw new TarError(`the archive ends inside an extended header: it is truncated`);
      await drain(reader.take(padded - size));
      if (type === 'x') override = { ...override, ...parsePax(content) };
      if (type === 'L') override = { ...override, path: cString(content, 0, content.length) };
      // Global pax headers ('g') set defaults this reader does not need.
      continue;
    }

    const path = normalize(override.path ?? headerPath(header));
    override = {};
    const kind: TarEntry['type'] =
      type === '0' || type === '\0' || type === '7'
        ? 'file'
        : type === '5'
          ? 'directory'
          : type === '1' || type === '2'
            ? 'link'
            : 'other';
    // Counted as it is read, so content the caller left unread (or stopped reading) is skipped exactly.
    let unread = size;
    const body = (async function* () {
      for await (const piece of reader.take(unread)) {
        unread -= piece.length;
        yield piece;
      }
    })();
    yield { path, type: kind, size: kind === 'file' ? size : 0, body: kind === 'file' ? body : emptyBody() };
    await drain(reader.take(unread + padded - size));
  }
  if (!sawEnd) {
    throw new TarError('the archive has no end-of-archive marker (two zero blocks): it is truncated');
  }
}

async function* emptyBody(): AsyncIterable<Uint8Array> {
  // A directory or link has no content.
}

async function drain(stream: AsyncIterable<Uint8Array>): Promise<void> {
  for await (const piece of stream) void piece;
}

function isZeroBlock(block: Buffer): boolean {
  for (const byte of block) if (byte !== 0) return false;
  return true;
}

function cString(bytes: Buffer, start: number, length: number): string {
  const field = bytes.subarray(start, start + length);
  const nul = field.indexOf(0);
  return field.subarray(0, nul < 0 ? field.length : nul).toString('utf8');
}

function octal(bytes: Buffer, start: number, length: number): number {
  const text = cString(bytes, start, length).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) return Number.NaN;
  return parseInt(text, 8);
}

function parseSize(header: Buffer, at: number): number {
  const first = header[124] ?? 0;
  let size: number;
  if (first & 0x80) {
    // Base-256 (GNU, for entries of 8 GiB and more): big-endian over the rest of the field.
    size = first & 0x7f;
    for (let i = 125; i < 136; i++) size = size * 256 + (header[i] ?? 0);
  } else {
    size = octal(header, 124, 12);
  }
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new TarError(
      `the header at byte ${at} has an invalid size field: it is not a tar archive or is corrupt`,
    );
  }
  return size;
}

function checkChecksum(header: Buffer, at: number): void {
  const stored = octal(header, 148, 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (header[i] ?? 0);
  if (stored !== sum) {
    throw new TarError(
      `the header at byte ${at} has checksum ${Number.isNaN(stored) ? 'garbage' : stored}, its bytes sum to ${sum}: ` +
        'it is not a tar archive or is corrupt',
    );
  }
}

function headerPath(header: Buffer): string {
  const name = cString(header, 0, 100);
  // Only POSIX ustar ("ustar\0") has a prefix field; GNU tar ("ustar ") keeps other data there.
  const posix = header.subarray(257, 263).toString('latin1') === 'ustar\0';
  const prefix = posix ? cString(header, 345, 155) : '';
  return prefix ? `${prefix}/${name}` : name;
}

function parsePax(content: Buffer): { path?: string; size?: number } {
  const out: { path?: string; size?: number } = {};
  let pos = 0;
  while (pos < content.length) {
    const space = content.indexOf(0x20, pos);
    if (space < 0) break;
    const length = Number(content.subarray(pos, space).toString('latin1'));
    if (!Number.isSafeInteger(length) || length <= 0) throw new TarError('a pax extended header is corrupt');
    const record = content.subarray(space + 1, pos + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) {
      const key = record.slice(0, eq);
      const value = record.slice(eq + 1);
      if (key === 'path') out.path = value;
      if (key === 'size') out.size = Number(value);
    }
    pos += length;
  }
  return out;
}

/** `./a/b` -> `a/b`; refuses paths that would leave the extraction folder. */
function normalize(path: string): string {
  const parts: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..')
      throw new TarError(`the archive has an entry "${path}" that points outside the archive`);
    parts.push(part);
  }
  if (path.startsWith('/')) throw new TarError(`the archive has an entry with an absolute path "${path}"`);
  return parts.join('/');
}
