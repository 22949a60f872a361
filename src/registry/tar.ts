/**
 * Reading tar archives (model archives, `model.tar.gz`, once gunzipped) through tar-stream, which parses POSIX
 * ustar with the pax and GNU long-name extensions that `tar` and Python's `tarfile` write. Entries are handed out one
 * at a time with their content as a stream, so an archive of any size is read with one chunk in memory.
 *
 * This module adapts tar-stream to what extraction needs: entry paths normalized and refused when they would leave
 * the extraction folder, content a caller leaves unread skipped, tar-stream's errors turned into TarErrors that say
 * what is wrong, and an archive without its end-of-archive marker (two zero blocks) refused as truncated (tar-stream
 * accepts an archive cut off between two entries).
 */
import tarStream from 'tar-stream';

/** An entry as tar-stream hands it out: a readable stream of its content, with its header. */
type TarStreamEntry = tarStream.Extract extends AsyncIterable<infer Entry> ? Entry : never;

const BLOCK = 512;
/** The end-of-archive marker: two zero blocks (`tar` pads further, to its record size, with zeros). */
const END_MARKER = 2 * BLOCK;

export class TarError extends Error {
  override readonly name = 'TarError';
}

export interface TarEntry {
  /** The entry's path as stored (`./` prefixes removed). */
  readonly path: string;
  readonly type: 'file' | 'directory' | 'link' | 'other';
  readonly size: number;
  /**
   * The content, for files. Read it to the end, stop halfway, or leave it unread: what is left is skipped when the
   * next entry is requested.
   */
  readonly body: AsyncIterable<Uint8Array>;
}

/** Reads the entries of an (uncompressed) tar stream in order. Errors of `source` itself propagate unchanged. */
export async function* readTar(source: AsyncIterable<Uint8Array>): AsyncGenerator<TarEntry> {
  const extract = tarStream.extract();
  /** The source's own failure, kept as it is (not wrapped: callers recognize e.g. zlib's errors by their code). */
  let sourceError: { readonly error: unknown } | undefined;
  let tail: Buffer = Buffer.alloc(0);
  const feeding = (async () => {
    try {
      for await (const chunk of source) {
        // The reader stopped early (it returned or threw): stop reading the source too.
        if (extract.destroyed) return;
        const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
        tail = Buffer.concat([tail, bytes]).subarray(-END_MARKER);
        if (!extract.write(bytes)) {
          await new Promise<void>((resolve) => {
            extract.once('drain', () => resolve());
            extract.once('close', () => resolve());
          });
        }
      }
      extract.end(undefined);
    } catch (err) {
      sourceError = { error: err };
      extract.destroy(new Error(`the source of the archive failed: ${messageOf(err)}`));
    }
  })();

  /** An error of the source as it is; tar-stream's as a TarError. */
  const failure = (err: unknown): Error => (sourceError ? (sourceError.error as Error) : tarError(err));

  const entries = extract[Symbol.asyncIterator]();
  try {
    for (;;) {
      let next: IteratorResult<TarStreamEntry>;
      try {
        next = await entries.next();
      } catch (err) {
        throw failure(err);
      }
      if (next.done) break;
      const entry = next.value;
      const { header } = entry;
      const type = typeOf(header.type);
      // The entry's own iterator, driven by hand: a caller that stops reading must not destroy the entry (that
      // destroys the whole extraction); the rest is read and dropped below instead.
      const content = entry[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
      const body = (async function* () {
        for (;;) {
          let piece: IteratorResult<Uint8Array>;
          try {
            piece = await content.next();
          } catch (err) {
            throw failure(err);
          }
          if (piece.done) return;
          yield piece.value;
        }
      })();
      yield {
        path: normalize(header.name),
        type,
        size: type === 'file' ? header.size : 0,
        body: type === 'file' ? body : emptyBody(),
      };
      try {
        while (!(await content.next()).done);
      } catch (err) {
        throw failure(err);
      }
    }
    await feeding;
    if (sourceError) throw sourceError.error as Error;
    if (tail.length < END_MARKER || tail.some((byte) => byte !== 0)) {
      throw new TarError('the archive has no end-of-archive marker (two zero blocks): it is truncated');
    }
  } finally {
    // Ends the feeding loop when the caller stopped early; not awaited, so a stalled source cannot hold the caller.
    if (!extract.destroyed) extract.destroy();
  }
}

function typeOf(type: tarStream.Header['type']): TarEntry['type'] {
  switch (type) {
    case 'file':
    case 'contiguous-file':
      return 'file';
    case 'directory':
      return 'directory';
    case 'link':
    case 'symlink':
      return 'link';
    default:
      return 'other';
  }
}

/** tar-stream's error, as a TarError that says what it means for the archive. */
function tarError(err: unknown): TarError {
  const message = messageOf(err);
  if (/Unexpected end of data/i.test(message)) {
    return new TarError('the archive ends inside an entry or a header: it is truncated', { cause: err });
  }
  if (/Invalid tar header|Invalid header|unknown format/i.test(message)) {
    return new TarError(
      `a header is not a valid tar header (${message.replace(/\.$/, '')}): it is not a tar archive or is corrupt`,
      { cause: err },
    );
  }
  return new TarError(`the archive cannot be read: ${message}`, { cause: err });
}

/** An error's message; not `instanceof Error`, which fails for errors made in another realm (Node's own, in jest). */
function messageOf(err: unknown): string {
  const message = (err as { message?: unknown } | null | undefined)?.message;
  return typeof message === 'string' ? message : String(err);
}

async function* emptyBody(): AsyncIterable<Uint8Array> {
  // A directory or link has no content.
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
