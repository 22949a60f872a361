/**
 * Storage URIs. Two schemes: `s3://bucket/key` and `file:///absolute/path`. Plain paths are accepted where users
 * type them and normalised to `file://` URIs relative to a base directory.
 */
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export type StorageScheme = 's3' | 'file';

export interface ParsedUri {
  readonly scheme: StorageScheme;
  /** S3 bucket; empty for file URIs. */
  readonly bucket: string;
  /** S3 key, or the absolute filesystem path for file URIs. */
  readonly key: string;
}

export class UriError extends Error {
  override readonly name = 'UriError';
}

export function parseUri(uri: string): ParsedUri {
  if (uri.startsWith('s3://')) {
    const rest = uri.slice('s3://'.length);
    const slash = rest.indexOf('/');
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
      throw new UriError(
        `"${uri}" does not name a valid S3 bucket (3-63 lowercase letters, digits, dots, hyphens)`,
      );
    }
    return { scheme: 's3', bucket, key: slash < 0 ? '' : rest.slice(slash + 1) };
  }
  if (uri.startsWith('file://')) {
    let p: string;
    try {
      p = fileURLToPath(uri);
    } catch (err) {
      // Node throws a TypeError for e.g. `file://relative/path` (a host); callers expect a UriError for bad input.
      throw new UriError(
        `"${uri}" is not a valid file URI (use file:///absolute/path): ${(err as Error).message}`,
      );
    }
    // fileURLToPath drops a trailing slash on some inputs; prefixes rely on it.
    return { scheme: 'file', bucket: '', key: uri.endsWith('/') && !p.endsWith('/') ? `${p}/` : p };
  }
  throw new UriError(`"${uri}" is not a storage URI: use s3://bucket/key or file:///absolute/path`);
}

/**
 * Turns what a user wrote (an s3:// or file:// URI, or a path relative to `baseDir`) into a URI.
 * A trailing slash is kept: it marks a prefix.
 */
export function normalizeUri(value: string, baseDir: string): string {
  if (value.startsWith('s3://') || value.startsWith('file://')) return value;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    throw new UriError(`"${value}" uses an unsupported scheme: use s3://, file:// or a filesystem path`);
  }
  const abs = path.resolve(baseDir, value);
  const href = pathToFileURL(abs).href;
  return value.endsWith('/') && !href.endsWith('/') ? `${href}/` : href;
}

/** Joins a prefix URI and a relative key with exactly one slash between them. */
export function joinUri(prefix: string, ...parts: string[]): string {
  let out = prefix;
  for (const part of parts) {
    if (part === '') continue;
    const base = out.replace(/\/+$/, '');
    const rel = part.replace(/^\/+/, '');
    // When only the scheme is left (`file:///`, the filesystem root), its slashes are not a separator to trim.
    out = /^[a-z][a-z0-9+.-]*:$/i.test(base) ? `${out}${rel}` : `${base}/${rel}`;
  }
  return out;
}

/** The URI with exactly one trailing slash: the form used for prefixes. */
export function asPrefix(uri: string): string {
  return uri.endsWith('/') ? uri : `${uri}/`;
}

/** The "directory" of a URI (everything up to and including the last slash). */
export function dirnameUri(uri: string): string {
  const i = uri.lastIndexOf('/');
  return i < 0 ? uri : uri.slice(0, i + 1);
}

/** Resolves `ref` against the directory of `baseUri` unless it is already a URI. */
export function resolveAgainst(baseUri: string, ref: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(ref)) return ref;
  if (path.isAbsolute(ref)) return pathToFileURL(ref).href;
  return joinUri(dirnameUri(baseUri), ref);
}

/** Whether one of two prefix URIs contains the other (e.g. input overlapping output). */
export function prefixesOverlap(a: string, b: string): boolean {
  const pa = asPrefix(a);
  const pb = asPrefix(b);
  return pa.startsWith(pb) || pb.startsWith(pa);
}
