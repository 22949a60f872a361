/**
 * ObjectStore over the local filesystem, for `file://` URIs. Writes go to a temporary file in the same directory
 * and are renamed into place, so a reader (or a crashed writer's successor) never sees half an object.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Dirent, Stats } from 'node:fs';
import { mkdir, open, readdir, rename, rm, rmdir, stat, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import {
  NotFoundError,
  ObjectChangedError,
  type ByteRange,
  type ObjectInfo,
  type ObjectStore,
  type PrefixListing,
  type ReadOptions,
} from './object-store.js';
import { parseUri } from './uri.js';

const TMP_MARK = '.tmp-';

export class LocalObjectStore implements ObjectStore {
  async head(uri: string): Promise<ObjectInfo> {
    const info = await this.tryHead(uri);
    if (!info) throw new NotFoundError(uri);
    return info;
  }

  async tryHead(uri: string): Promise<ObjectInfo | undefined> {
    const file = toPath(uri);
    try {
      const st = await stat(file);
      if (!st.isFile()) return undefined;
      return { uri, size: st.size, etag: fileEtag(st.size, st.mtimeMs, st.ino), lastModified: st.mtime };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async get(uri: string, range?: ByteRange, options?: ReadOptions): Promise<Uint8Array> {
    const handle = await openFile(uri);
    try {
      const { size } = await checkCondition(handle, uri, options);
      if (!range) return new Uint8Array(await handle.readFile());
      const end = Math.min(range.end, size);
      const length = Math.max(0, end - range.start);
      const buf = new Uint8Array(length);
      let read = 0;
      while (read < length) {
        const { bytesRead } = await handle.read(buf, read, length - read, range.start + read);
        if (bytesRead === 0) break;
        read += bytesRead;
      }
      return read === length ? buf : buf.subarray(0, read);
    } finally {
      await handle.close();
    }
  }

  /**
   * The stream reads the file that was open when the condition was checked: a file replaced afterwards (written
   * elsewhere and renamed over it, as every write here does) does not change what this stream returns.
   */
  async getStream(uri: string, range?: ByteRange, options?: ReadOptions): Promise<Readable> {
    const handle = await openFile(uri);
    try {
      await checkCondition(handle, uri, options);
    } catch (err) {
      await handle.close();
      throw err;
    }
    if (range && range.end <= range.start) {
      await handle.close();
      return Readable.from([]);
    }
    // The stream owns the handle from here and closes it when it ends or is destroyed.
    return handle.createReadStream({
      start: range?.start,
      end: range ? range.end - 1 : undefined,
      highWaterMark: 1 << 20,
    });
  }

  async put(uri: string, body: Uint8Array | string): Promise<ObjectInfo> {
    const file = toPath(uri);
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = tmpName(file);
    try {
      await writeFile(tmp, body);
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    await removeOrphanedTemporaries(file);
    return this.head(uri);
  }

  async putStream(uri: string, body: Readable | AsyncIterable<Uint8Array>): Promise<ObjectInfo> {
    const file = toPath(uri);
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = tmpName(file);
    // Opened before the pipeline starts: a stream that opens its own file may still be opening (and create the
    // file) after a failed pipeline has returned, leaving a temporary file behind the removal below.
    const handle = await open(tmp, 'w');
    try {
      await pipeline(body instanceof Readable ? body : Readable.from(body), handle.createWriteStream());
      await rename(tmp, file);
    } catch (err) {
      await handle.close().catch(() => undefined);
      await rm(tmp, { force: true });
      throw err;
    }
    await removeOrphanedTemporaries(file);
    return this.head(uri);
  }

  async *list(prefixUri: string): AsyncIterable<ObjectInfo> {
    const prefix = toPath(prefixUri);
    // A prefix is a directory plus a partial name: list the directory and filter, like S3 does.
    const endsWithSep = prefixUri.endsWith('/');
    const root = endsWithSep ? prefix : path.dirname(prefix);
    const namePrefix = endsWithSep ? '' : path.basename(prefix);
    yield* this.walk(root, (name) => name.startsWith(namePrefix));
  }

  async delete(uri: string): Promise<void> {
    await rm(toPath(uri), { force: true });
    await removeOrphanedTemporaries(toPath(uri));
  }

  /**
   * A rename (atomic; the ETag stays, as size, mtime and inode do). The source's directory is removed when the move
   * empties it, and temporaries a killed writer left for the source's name go with it.
   */
  async move(from: string, to: string): Promise<ObjectInfo> {
    const source = toPath(from);
    const target = toPath(to);
    await mkdir(path.dirname(target), { recursive: true });
    try {
      await rename(source, target);
    } catch (err) {
      if (isNotFound(err)) throw new NotFoundError(from);
      throw err;
    }
    await removeOrphanedTemporaries(source);
    await rmdir(path.dirname(source)).catch(() => undefined);
    return this.head(to);
  }

  /** One directory level: sub-directories as prefixes, files as objects, filtered by a partial name like `list`. */
  async listPrefixes(prefixUri: string): Promise<PrefixListing> {
    const prefix = toPath(prefixUri);
    const endsWithSep = prefixUri.endsWith('/');
    const dir = endsWithSep ? prefix : path.dirname(prefix);
    const namePrefix = endsWithSep ? '' : path.basename(prefix);
    const prefixes: string[] = [];
    const objects: ObjectInfo[] = [];
    for (const entry of await this.sortedEntries(dir, (name) => name.startsWith(namePrefix))) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        prefixes.push(`${pathToFileURL(full).href}/`);
      } else if (entry.isFile()) {
        const info = await this.tryHead(pathToFileURL(full).href);
        if (info) objects.push(info);
      }
    }
    return { prefixes, objects };
  }

  /** A directory's entries in S3 key order, without temporary files; none when the directory does not exist. */
  private async sortedEntries(dir: string, keep: (name: string) => boolean): Promise<Dirent[]> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (isNotFound(err) || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
      throw err;
    }
    // S3 lists keys in byte order; a directory "a" sorts as "a/", so compare with the separator appended.
    return entries
      .filter((e) => keep(e.name) && !e.name.startsWith(TMP_MARK))
      .map((e) => ({ entry: e, sortKey: e.isDirectory() ? `${e.name}/` : e.name }))
      .sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0))
      .map(({ entry }) => entry);
  }

  private async *walk(dir: string, keep: (name: string) => boolean): AsyncIterable<ObjectInfo> {
    for (const entry of await this.sortedEntries(dir, keep)) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        yield* this.walk(full, () => true);
      } else if (entry.isFile()) {
        const info = await this.tryHead(pathToFileURL(full).href);
        if (info) yield info;
      }
    }
  }
}

async function openFile(uri: string): Promise<FileHandle> {
  try {
    return await open(toPath(uri), 'r');
  } catch (err) {
    if (isNotFound(err) || (err as NodeJS.ErrnoException).code === 'EISDIR') throw new NotFoundError(uri);
    throw err;
  }
}

/**
 * The open file's metadata, after checking that it is a file and `options.ifMatch` against its ETag, computed exactly as `tryHead`
 * computes it (so an ETag from a listing or a HEAD compares equal until the file is rewritten).
 */
async function checkCondition(
  handle: FileHandle,
  uri: string,
  options: ReadOptions | undefined,
): Promise<Stats> {
  const st = await handle.stat();
  // A directory opens for reading on some platforms; it is no object, as `tryHead` says.
  if (!st.isFile()) throw new NotFoundError(uri);
  if (options?.ifMatch !== undefined) {
    const etag = fileEtag(st.size, st.mtimeMs, st.ino);
    if (etag !== options.ifMatch) throw new ObjectChangedError(uri, options.ifMatch, etag);
  }
  return st;
}

function toPath(uri: string): string {
  const parsed = parseUri(uri);
  if (parsed.scheme !== 'file') throw new Error(`LocalObjectStore cannot handle ${uri}`);
  return parsed.key;
}

/**
 * A writer killed between its temporary file and the rename (SIGKILL, a lost host) leaves `.tmp-<name>-<random>`
 * behind. The next write or delete of the same object (a retried shard rewrites the same part key) removes them, so
 * a resumed run leaves nothing beside its outputs. Listing hides them in the meantime. Best effort: a file that
 * cannot be removed only stays hidden.
 */
async function removeOrphanedTemporaries(file: string): Promise<void> {
  const dir = path.dirname(file);
  const mark = `${TMP_MARK}${path.basename(file)}-`;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  await Promise.all(
    names
      .filter((n) => n.startsWith(mark))
      .map((n) => rm(path.join(dir, n), { force: true }).catch(() => undefined)),
  );
}

function tmpName(file: string): string {
  return path.join(path.dirname(file), `${TMP_MARK}${path.basename(file)}-${randomBytes(6).toString('hex')}`);
}

function fileEtag(size: number, mtimeMs: number, ino: number): string {
  return createHash('sha256').update(`${size}:${mtimeMs}:${ino}`).digest('hex').slice(0, 32);
}

function isNotFound(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT';
}
