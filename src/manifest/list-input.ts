/**
 * Input discovery: turns `spec.input` into the exact objects a run reads, with the size and ETag each had at plan
 * time. The result is the run's input snapshot, so it is sorted by URI: the same input always gives the same
 * snapshot (and the same plan), whatever order a store or a manifest produced it in.
 *
 * Four ways to name input (`input.manifest`):
 * - `prefix`: every data object under `asPrefix(input.uri)`. The URI is always read as a folder (a trailing `/` is
 *   implied), never as a partial key name, so `s3://b/data` cannot pick up `s3://b/data-out/...`; that is also how
 *   the input/output overlap check reads it. Where the store can list one level at a time (S3's delimiter), the
 *   folders below the prefix are listed in parallel (see `listPrefix`). A listing carries no versionId
 *   (ListObjectsV2 does not return one, and a HEAD per object to get it would cost more than the listing), so the
 *   snapshot of a prefix pins each object by its ETag alone: a worker's reads send If-Match, never a VersionId.
 * - `list`: `input.uri` is a list manifest naming the objects (see `forEachManifestEntry` for the accepted shapes).
 * - `s3-inventory`: `input.uri` is the manifest.json of an S3 Inventory report (see s3-inventory.ts).
 * - `auto`: see AUTO_MANIFEST_RULE.
 *
 * Whatever names them, input objects may not lie under the run's output prefix (`ListOptions.outputUri`): a run
 * would read its own predictions.
 *
 * Empty input (a prefix holding only `_SUCCESS`, an empty manifest) is not an error here: Plan makes no shards and
 * the run finalizes with 0 records. A prefix with nothing at all under it, or a manifest that does not exist, is
 * an error: it is almost always a typo or a schedule that ran before its data landed.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import type { InputObject } from '../runs/types.js';
import { InputError } from '../spec/errors.js';
import type { JobSpec } from '../spec/schema.js';
import { NotFoundError, type ObjectInfo, type ObjectStore } from '../storage/object-store.js';
import { asPrefix, dirnameUri, joinUri, parseUri, type ParsedUri } from '../storage/uri.js';
import { mapConcurrent } from './concurrency.js';
import { parseCsvLine } from '../formats/csv.js';
import { forEachLine } from './lines.js';
import { forEachInventoryEntry, looksLikeInventoryManifest } from './s3-inventory.js';

export type InputSpec = Pick<JobSpec['input'], 'uri' | 'format' | 'manifest'>;

export interface ListOptions {
  /** The run's output prefix: an input object under it is an InputError (the run would read its own output). */
  readonly outputUri?: string;
  /** Objects a prefix must have beyond which it is listed in parallel. @default SMALL_LISTING (one S3 page) */
  readonly parallelAbove?: number;
}

/**
 * Names a listing keeps, per format (compared case-insensitively). Compressed inputs come later. A format with no
 * entry keeps every name: `files`, where each object is one record whatever its type.
 */
export const FORMAT_EXTENSIONS: Readonly<Partial<Record<string, readonly string[]>>> = {
  parquet: ['.parquet'],
  jsonl: ['.jsonl', '.json', '.ndjson'],
  csv: ['.csv'],
};

/** Whether a listing keeps an object named `name` as data of `format`. */
export function isDataName(format: string, name: string): boolean {
  const extensions = FORMAT_EXTENSIONS[format];
  if (extensions === undefined) return true;
  const lower = name.toLowerCase();
  return extensions.some((ext) => lower.endsWith(ext));
}

/** Spark/Hive convention: `_SUCCESS`, `_temporary/`, `.staging/` and the like are bookkeeping, not data. */
export function isHiddenPath(relativeKey: string): boolean {
  return relativeKey.split('/').some((segment) => segment.startsWith('_') || segment.startsWith('.'));
}

/** Extensions that always mean "list manifest" to `auto`. */
export const MANIFEST_EXTENSIONS: readonly string[] = ['.manifest', '.txt'];

/** Extensions that mean "list manifest" to `auto` when the data format is a different one. */
const LIST_FILE_EXTENSIONS: readonly string[] = ['.jsonl', '.ndjson', '.json', '.csv'];

/** The `auto` rule, word for word as error messages show it. */
export const AUTO_MANIFEST_RULE =
  'manifest: auto reads input.uri as a prefix when it ends in "/"; otherwise, if it names an existing object, as an ' +
  'S3 Inventory report when it is a manifest.json with the inventory shape ({"sourceBucket", "fileFormat", ' +
  '"files": [...]}), as a list manifest when the name ends in .manifest or .txt (or in .jsonl/.ndjson/.json/.csv ' +
  'while input.format is another format), else as a single input object; if it names no object, as a prefix. Set ' +
  'input.manifest to "prefix", "list" or "s3-inventory" to choose explicitly';

/** HEAD requests in flight while checking a list manifest's objects. */
const HEAD_CONCURRENCY = 64;
/** Missing objects reported before giving up on the rest of a list manifest. */
const MAX_REPORTED_MISSING = 20;
/** A `manifest.json` larger than this is not read to see whether it is an S3 Inventory manifest. */
const MAX_SNIFF_BYTES = 64 * 1024 * 1024;

/** A prefix with fewer objects than this (one S3 listing page) is listed plainly. */
export const SMALL_LISTING = 1_000;
/** Full listings of folders in flight at once. */
export const LIST_CONCURRENCY = 16;
/** Folders wanted before the full listings start: enough to keep LIST_CONCURRENCY listings busy. */
const LIST_FANOUT = 2 * LIST_CONCURRENCY;
/** Levels expanded at most while looking for that many folders. */
const LIST_MAX_DEPTH = 3;

export type ResolvedManifestMode =
  | { readonly mode: 'prefix'; readonly prefixUri: string }
  | { readonly mode: 'list'; readonly manifestUri: string }
  | { readonly mode: 's3-inventory'; readonly manifestUri: string }
  | { readonly mode: 'object'; readonly object: ObjectInfo };

/** Lists the run's input objects, sorted by URI (code-unit order, the same on every platform). */
export async function listInput(
  store: ObjectStore,
  input: InputSpec,
  options: ListOptions = {},
): Promise<InputObject[]> {
  const resolved = await resolveManifestMode(store, input);
  let objects: InputObject[];
  switch (resolved.mode) {
    case 'object':
      objects = keepsEmpty(input.format) || resolved.object.size > 0 ? [toInputObject(resolved.object)] : [];
      break;
    case 'prefix':
      objects = await listPrefix(store, input, resolved.prefixUri, options);
      break;
    case 'list':
      objects = await listManifest(
        store,
        resolved.manifestUri,
        listEntries(store, resolved.manifestUri),
        keepsEmpty(input.format),
      );
      break;
    case 's3-inventory':
      objects = await listManifest(
        store,
        resolved.manifestUri,
        inventoryEntries(store, resolved.manifestUri, input.format),
        keepsEmpty(input.format),
      );
      break;
  }
  if (options.outputUri !== undefined) rejectOutputOverlap(objects, options.outputUri, input.uri);
  return objects;
}

/**
 * Whether 0-byte objects are input. In a line or Parquet input they hold no record and are left out; in a `files`
 * input every object is a record, so an empty one is kept (in the snapshot too) and becomes an error row, never a
 * silent drop (issue 17).
 */
function keepsEmpty(format: InputSpec['format']): boolean {
  return format === 'files';
}

/** Decides how `input.uri` is read, applying AUTO_MANIFEST_RULE for `auto`. Costs at most one HEAD (and one GET). */
export async function resolveManifestMode(
  store: ObjectStore,
  input: InputSpec,
): Promise<ResolvedManifestMode> {
  if (input.manifest === 'prefix') return { mode: 'prefix', prefixUri: asPrefix(input.uri) };
  if (input.manifest === 'list') return { mode: 'list', manifestUri: input.uri };
  if (input.manifest === 's3-inventory') return { mode: 's3-inventory', manifestUri: input.uri };
  if (input.uri.endsWith('/') || parseUri(input.uri).key === '') {
    return { mode: 'prefix', prefixUri: asPrefix(input.uri) };
  }
  const info = await store.tryHead(input.uri);
  if (!info) return { mode: 'prefix', prefixUri: asPrefix(input.uri) };
  const name = lastSegment(input.uri).toLowerCase();
  if (
    name === 'manifest.json' &&
    info.size <= MAX_SNIFF_BYTES &&
    (await isInventoryManifest(store, input.uri))
  ) {
    return { mode: 's3-inventory', manifestUri: input.uri };
  }
  const isManifest =
    MANIFEST_EXTENSIONS.some((ext) => name.endsWith(ext)) ||
    LIST_FILE_EXTENSIONS.some((ext) => name.endsWith(ext) && !isDataName(input.format, name));
  return isManifest ? { mode: 'list', manifestUri: input.uri } : { mode: 'object', object: info };
}

async function isInventoryManifest(store: ObjectStore, uri: string): Promise<boolean> {
  try {
    return looksLikeInventoryManifest(JSON.parse(new TextDecoder().decode(await store.get(uri))));
  } catch {
    // Not JSON (or gone): whatever it is, it is not an inventory manifest; the other rules decide.
    return false;
  }
}

function rejectOutputOverlap(objects: readonly InputObject[], outputUri: string, inputUri: string): void {
  const out = asPrefix(outputUri);
  const inside = objects.filter((o) => o.uri.startsWith(out));
  if (inside.length === 0) return;
  const shown = inside.slice(0, 5).map((o) => `  - ${o.uri}`);
  const more = inside.length > 5 ? [`  ... and ${inside.length - 5} more`] : [];
  throw new InputError(
    `input.uri ${inputUri} names ${inside.length} object(s) under output.uri ${out}; a run would read its own ` +
      `output:\n${[...shown, ...more].join('\n')}\nRemove them from the input, or write predictions to a prefix ` +
      'that holds no input',
  );
}

/**
 * Every data object under a prefix. A prefix that fits in one listing page (SMALL_LISTING objects) is listed
 * plainly: one request. A larger one, where the store has `listPrefixes`, is listed in parallel: the prefix is
 * expanded one level at a time (each level's folders listed concurrently, each level's own objects kept) until
 * there are at least LIST_FANOUT folders or LIST_MAX_DEPTH levels were expanded, then each folder is listed in
 * full, LIST_CONCURRENCY at a time. Bookkeeping folders (`_temporary/`, `.staging/`) are not descended into. The
 * result is sorted, so the order the listings finish in never shows.
 */
async function listPrefix(
  store: ObjectStore,
  input: InputSpec,
  prefixUri: string,
  options: ListOptions,
): Promise<InputObject[]> {
  const base = parseUri(prefixUri).key;
  const objects: InputObject[] = [];
  let seen = 0;
  const consider = (info: ObjectInfo): void => {
    seen++;
    if (info.size === 0 && !keepsEmpty(input.format)) return;
    const key = parseUri(info.uri).key;
    const relative = key.startsWith(base) ? key.slice(base.length) : lastSegment(key);
    if (isHiddenPath(relative) || !isDataName(input.format, relative)) return;
    objects.push(toInputObject(info));
  };
  if (!store.listPrefixes) {
    for await (const info of store.list(prefixUri)) consider(info);
  } else {
    const listLevel = store.listPrefixes.bind(store);
    // Most prefixes are small, and a plain listing of them is one request; a large one is listed in parallel,
    // starting from its first level. Both are asked for at once, so finding out costs no extra round trip.
    const limit = options.parallelAbove ?? SMALL_LISTING;
    const [probe, root] = await settleBoth(firstObjects(store, prefixUri, limit), listLevel(prefixUri));
    if (probe.complete) {
      for (const info of probe.objects) consider(info);
    } else {
      let levels = [root];
      let frontier: string[] = [];
      for (let depth = 0; ; depth++) {
        frontier = [];
        for (const level of levels) {
          for (const info of level.objects) consider(info);
          seen += level.prefixes.length;
          for (const folder of level.prefixes) {
            if (!isHiddenPath(parseUri(folder).key.slice(base.length).replace(/\/$/, '')))
              frontier.push(folder);
          }
        }
        // A folder listed as a level is listed completely when it has no folders itself, so expanding a level
        // is never wasted work; it stops once there are enough folders to keep every listing slot busy.
        if (frontier.length === 0 || frontier.length >= LIST_FANOUT || depth + 1 >= LIST_MAX_DEPTH) break;
        levels = await mapConcurrent(frontier, LIST_CONCURRENCY, (uri) => listLevel(uri));
      }
      const listings = await mapConcurrent(frontier, LIST_CONCURRENCY, async (folder) => {
        const found: ObjectInfo[] = [];
        for await (const info of store.list(folder)) found.push(info);
        return found;
      });
      for (const listing of listings) for (const info of listing) consider(info);
    }
  }
  if (seen === 0 && !(await isLocalDirectory(prefixUri))) {
    throw new InputError(await missingPrefixMessage(store, input, prefixUri));
  }
  return sortByUri(objects);
}

/** The first objects of a plain listing, up to `limit`: `complete` when that is all there is. */
async function firstObjects(
  store: ObjectStore,
  prefixUri: string,
  limit: number,
): Promise<{ objects: ObjectInfo[]; complete: boolean }> {
  const objects: ObjectInfo[] = [];
  if (limit <= 0) return { objects, complete: false };
  for await (const info of store.list(prefixUri)) {
    objects.push(info);
    // Leaving the loop at the limit ends the listing before it asks for another page. A prefix of exactly `limit`
    // objects counts as large: telling would take that other page.
    if (objects.length >= limit) return { objects, complete: false };
  }
  return { objects, complete: true };
}

/** Both results, or the first failure once both have settled (so neither rejection goes unhandled). */
async function settleBoth<A, B>(a: Promise<A>, b: Promise<B>): Promise<[A, B]> {
  const [ra, rb] = await Promise.allSettled([a, b]);
  if (ra.status === 'rejected') throw ra.reason;
  if (rb.status === 'rejected') throw rb.reason;
  return [ra.value, rb.value];
}

async function missingPrefixMessage(
  store: ObjectStore,
  input: InputSpec,
  prefixUri: string,
): Promise<string> {
  let message = `input.uri ${input.uri}: there is nothing under the prefix ${prefixUri}; check the bucket and path`;
  if (input.manifest === 'prefix') {
    const asObject = input.uri.endsWith('/') ? undefined : await store.tryHead(input.uri);
    if (asObject) {
      message += `. ${input.uri} is an object, not a prefix: set input.manifest to "auto" or "list"`;
    }
  } else {
    message += ` (it names no object either). ${AUTO_MANIFEST_RULE}`;
  }
  return message;
}

/**
 * An empty local directory has no objects but does exist (the S3 equivalent, a console "folder", is a zero-byte
 * `prefix/` object and is counted by the listing). Only a directory that is really absent should fail the run.
 */
async function isLocalDirectory(prefixUri: string): Promise<boolean> {
  const parsed = parseUri(prefixUri);
  if (parsed.scheme !== 'file') return false;
  try {
    return (await stat(parsed.key)).isDirectory();
  } catch {
    return false;
  }
}

/** One object named by a list manifest, before its size and ETag are known. */
export interface ManifestEntry {
  /** 1-based line number, or for a JSON array manifest the element index (see `whereIs`). */
  readonly position: number;
  readonly uri: string;
  readonly size?: number;
  readonly etag?: string;
  readonly versionId?: string;
  /** Where the entry is, when a line number does not say it (an S3 Inventory file and row). */
  readonly where?: string;
}

/** `lines`: JSONL, CSV or text, one entry per line. `array`: a SageMaker ManifestFile (a JSON array). */
export type ManifestShape = 'lines' | 'array';

/** How an error names an entry: `line 12`, or `entry 3` of a JSON array. */
export function whereIs(shape: ManifestShape, position: number): string {
  return shape === 'array' ? `entry ${position}` : `line ${position}`;
}

/** Reads a manifest, calling `onEntry` per entry; returns the shape (for naming entries in errors). */
type EntrySource = (onEntry: (entry: ManifestEntry) => void) => Promise<ManifestShape>;

function listEntries(store: ObjectStore, manifestUri: string): EntrySource {
  return (onEntry) => forEachManifestEntry(store, manifestUri, onEntry);
}

/** An S3 Inventory's objects as manifest entries, filtered like a prefix listing of the bucket. */
function inventoryEntries(store: ObjectStore, manifestUri: string, format: string): EntrySource {
  return async (onEntry) => {
    let position = 0;
    await forEachInventoryEntry(
      store,
      manifestUri,
      (key) => !isHiddenPath(key) && isDataName(format, key),
      (entry) => onEntry({ ...entry, position: ++position }),
    );
    return 'lines';
  };
}

async function listManifest(
  store: ObjectStore,
  manifestUri: string,
  entries: EntrySource,
  keepEmpty: boolean,
): Promise<InputObject[]> {
  // Entries are turned into InputObjects as they stream in and then dropped, so a million-line manifest costs the
  // snapshot's memory once, not twice. Only entries that need a HEAD are kept until it is done.
  const objects: InputObject[] = [];
  const toHead: ManifestEntry[] = [];
  const shape = await entries((entry) => {
    // A manifest that carries both (S3 Inventory does) spares a HEAD per object: a million HEADs take minutes.
    if (entry.size !== undefined && entry.etag !== undefined) {
      // Zero-byte objects hold no records (and are not valid Parquet files): left out, as a prefix listing does.
      if (entry.size > 0 || keepEmpty) {
        objects.push({
          uri: entry.uri,
          size: entry.size,
          etag: entry.etag,
          ...(entry.versionId !== undefined ? { versionId: entry.versionId } : {}),
        });
      }
    } else {
      toHead.push(entry);
    }
  });
  const missing: ManifestEntry[] = [];
  const headed = await mapConcurrent(
    toHead,
    HEAD_CONCURRENCY,
    async (entry) => {
      const info = await store.tryHead(entry.uri);
      if (!info) missing.push(entry);
      return info;
    },
    { stop: () => missing.length >= MAX_REPORTED_MISSING },
  );
  if (missing.length > 0) {
    missing.sort((a, b) => a.position - b.position);
    const more = missing.length >= MAX_REPORTED_MISSING ? ' (stopped checking after these)' : '';
    throw new InputError(
      `list manifest ${manifestUri} names ${missing.length} object(s) that do not exist${more}:\n` +
        missing
          .map((entry) => `  - ${entry.where ?? whereIs(shape, entry.position)}: ${entry.uri}`)
          .join('\n') +
        '\nFix or remove those lines, or check that the data finished landing before the run started',
    );
  }
  for (const info of headed) if (info && (info.size > 0 || keepEmpty)) objects.push(toInputObject(info));
  sortByUri(objects);
  for (let i = 1; i < objects.length; i++) {
    if (objects[i]!.uri === objects[i - 1]!.uri) {
      // Rare and fatal: read the manifest again to name the lines, rather than keep every line number meanwhile.
      const uri = objects[i]!.uri;
      const places: string[] = [];
      await entries((entry) => {
        if (entry.uri === uri) places.push(entry.where ?? whereIs(shape, entry.position));
      });
      throw new InputError(
        `list manifest ${manifestUri} names ${uri} more than once (${places.join(', ')}); every object would be ` +
          'processed once per mention. Remove the duplicates',
      );
    }
  }
  return objects;
}

/**
 * Reads a list manifest, calling `onEntry` for each entry as it streams in. Accepted shapes, decided by content
 * rather than by name:
 * - Lines (JSONL, CSV or plain text), one object per line; blank lines are skipped. A line is either
 *   a JSON object `{"uri": "...", "size"?: n, "etag"?: "...", "versionId"?: "..."}`, a JSON string, a CSV-quoted
 *   value, or a bare URI. A first line reading `uri` is a CSV header. Plain lines carry no other columns: S3 keys
 *   may contain commas, so a comma is part of the URI.
 * - CSV with a header of several columns (see `csvHeaderOf`): `uri,size,etag`, or S3 Batch Operations'
 *   `bucket,key` (keys URL-encoded, as Batch Operations requires, and decoded here), each optionally with `size`,
 *   `etag` and `versionId` columns. A row with both a size and an ETag needs no HEAD, like a JSON line with both.
 *   Every row is then CSV (quote a field holding a comma) with exactly the header's number of fields.
 * - A SageMaker ManifestFile: a JSON array `[{"prefix": "s3://bucket/p/"}, "key1", ...]`; each key is appended to
 *   the prefix, as SageMaker does.
 * Relative entries are resolved against the manifest's folder (file paths for a file:// manifest, keys for s3://).
 */
export async function forEachManifestEntry(
  store: ObjectStore,
  manifestUri: string,
  onEntry: (entry: ManifestEntry) => void,
): Promise<ManifestShape> {
  let stream: Readable;
  try {
    stream = await store.getStream(manifestUri);
  } catch (err) {
    if (err instanceof NotFoundError) {
      throw new InputError(
        `list manifest ${manifestUri} does not exist; check input.uri (a list manifest is a JSONL, CSV or text ` +
          'file of object URIs)',
      );
    }
    throw err;
  }
  const base = parseUri(manifestUri);
  let first = true;
  let arrayText: string[] | undefined;
  let csv: CsvHeader | undefined;
  await forEachLine(stream, (raw, lineNo) => {
    if (arrayText) {
      arrayText.push(raw);
      return;
    }
    const line = (lineNo === 1 && raw.startsWith('\uFEFF') ? raw.slice(1) : raw).trim();
    if (line === '') return;
    if (first) {
      first = false;
      if (line.startsWith('[')) {
        arrayText = [line];
        return;
      }
      const header = csvHeaderOf(line, manifestUri);
      if (header) {
        // A lone `uri` column keeps the plain-line reading (an unquoted comma is part of the URI).
        if (header.names.length > 1) csv = header;
        return;
      }
    }
    onEntry(
      csv
        ? parseCsvRow(line, lineNo, manifestUri, base, csv)
        : parseManifestLine(line, lineNo, manifestUri, base),
    );
  });
  if (!arrayText) return 'lines';
  for (const entry of parseManifestArray(arrayText.join('\n'), manifestUri, base)) onEntry(entry);
  return 'array';
}

/** All entries of a list manifest, for callers that want them at once (small manifests, tests). */
export async function readListManifest(
  store: ObjectStore,
  manifestUri: string,
): Promise<{ shape: ManifestShape; entries: ManifestEntry[] }> {
  const entries: ManifestEntry[] = [];
  const shape = await forEachManifestEntry(store, manifestUri, (entry) => entries.push(entry));
  return { shape, entries };
}

/** The columns of a CSV list manifest, by what they mean; names are matched ignoring case, `_`, `-` and spaces. */
const CSV_COLUMNS: Readonly<Record<string, CsvColumn>> = {
  uri: 'uri',
  url: 'uri',
  bucket: 'bucket',
  key: 'key',
  size: 'size',
  etag: 'etag',
  versionid: 'versionId',
};
type CsvColumn = 'uri' | 'bucket' | 'key' | 'size' | 'etag' | 'versionId';

/** A CSV manifest's header: each column's meaning, by field position. */
interface CsvHeader {
  /** As written, for messages. */
  readonly names: readonly string[];
  readonly columns: readonly CsvColumn[];
  /** Field position of each column present. */
  readonly at: Readonly<Partial<Record<CsvColumn, number>>>;
}

const CSV_SHAPE_HINT =
  "a CSV list manifest's header names a uri column, or bucket and key columns (S3 Batch Operations), and " +
  'optionally size, etag and versionId columns: e.g. "uri,size,etag" or "bucket,key,versionId"';

/** Names a header can be made of: words, no path or URI syntax (a data line has `/`, `.` or `:` somewhere). */
const HEADER_NAME = /^[A-Za-z_][A-Za-z0-9_ -]*$/;

/**
 * The header, when the first line of a manifest is one: every field a bare name (no `/`, `.` or `:`), and either
 * several fields or the one known name `uri`. A line like that in any other shape is an InputError naming what is
 * wrong, rather than a URI that would then be reported missing. Undefined: the line is data.
 */
function csvHeaderOf(line: string, manifestUri: string): CsvHeader | undefined {
  const parsed = parseCsvLine(line);
  if (parsed.error !== undefined) return undefined;
  const names = parsed.fields.map((f) => (f ?? '').trim());
  if (!names.every((n) => HEADER_NAME.test(n))) return undefined;
  const meanings = names.map((n) => CSV_COLUMNS[n.toLowerCase().replace(/[\s_-]/g, '')]);
  if (names.length === 1 && meanings[0] !== 'uri') return undefined;
  const shown = JSON.stringify(line);
  const fail = (why: string): never => {
    throw new InputError(
      `list manifest ${manifestUri} line 1: the header ${shown} ${why}; ${CSV_SHAPE_HINT}`,
    );
  };
  const unknown = names.filter((_, i) => meanings[i] === undefined);
  if (unknown.length > 0) {
    fail(`has unknown column(s) ${unknown.map((n) => JSON.stringify(n)).join(', ')}`);
  }
  const at: Partial<Record<CsvColumn, number>> = {};
  meanings.forEach((meaning, i) => {
    if (at[meaning!] !== undefined) fail(`names the ${meaning} column twice`);
    at[meaning!] = i;
  });
  const hasBucketKey = at.bucket !== undefined || at.key !== undefined;
  if (at.uri !== undefined && hasBucketKey) fail('has both a uri column and bucket/key columns; keep one');
  if (at.uri === undefined && (at.bucket === undefined || at.key === undefined)) {
    fail(
      hasBucketKey
        ? `has a ${at.bucket === undefined ? 'key' : 'bucket'} column but no ${at.bucket === undefined ? 'bucket' : 'key'} column`
        : 'has no column naming the objects',
    );
  }
  return { names, columns: meanings as CsvColumn[], at };
}

/** One data row of a CSV manifest with a header. */
function parseCsvRow(
  line: string,
  lineNo: number,
  manifestUri: string,
  base: ParsedUri,
  header: CsvHeader,
): ManifestEntry {
  const parsed = parseCsvLine(line);
  if (parsed.error !== undefined)
    return badCsvRow(manifestUri, lineNo, header, `is not CSV (${parsed.error})`);
  const fields = parsed.fields;
  if (fields.length !== header.names.length) {
    return badCsvRow(
      manifestUri,
      lineNo,
      header,
      `has ${fields.length} field(s), the header has ${header.names.length} (quote a value that holds a comma)`,
    );
  }
  const field = (column: CsvColumn): string | undefined => {
    const i = header.at[column];
    const value = i === undefined ? null : fields[i];
    return value === null || value === undefined ? undefined : value;
  };
  let ref: string;
  const uri = field('uri');
  if (header.at.uri !== undefined) {
    if (uri === undefined || uri.trim() === '') return badCsvRow(manifestUri, lineNo, header, 'has no uri');
    ref = uri.trim();
  } else {
    const bucket = field('bucket')?.trim();
    const key = field('key');
    if (!bucket || key === undefined)
      return badCsvRow(manifestUri, lineNo, header, 'needs both a bucket and a key');
    let decoded: string;
    try {
      decoded = decodeURIComponent(key);
    } catch {
      return badCsvRow(
        manifestUri,
        lineNo,
        header,
        `has key ${JSON.stringify(key)}, which is not URL-encoded (S3 Batch Operations manifests URL-encode keys; ` +
          'write "%25" for "%", or use a uri column for raw URIs)',
      );
    }
    ref = `s3://${bucket}/${decoded}`;
  }
  const sizeText = field('size')?.trim();
  let size: number | undefined;
  if (sizeText !== undefined && sizeText !== '') {
    size = /^\d+$/.test(sizeText) ? Number(sizeText) : Number.NaN;
    if (!Number.isSafeInteger(size)) {
      return badCsvRow(
        manifestUri,
        lineNo,
        header,
        `has size ${JSON.stringify(sizeText)}; it must be a non-negative integer`,
      );
    }
  }
  const etag = field('etag')?.trim();
  const versionId = field('versionId')?.trim();
  return {
    position: lineNo,
    uri: resolveRef(manifestUri, base, ref, lineNo),
    ...(size !== undefined ? { size } : {}),
    ...(etag ? { etag: unquoteEtag(etag) } : {}),
    ...(versionId ? { versionId } : {}),
  };
}

function badCsvRow(manifestUri: string, lineNo: number, header: CsvHeader, why: string): never {
  throw new InputError(
    `list manifest ${manifestUri} line ${lineNo}: ${why}. The header (line 1) is ${JSON.stringify(header.names.join(','))}`,
  );
}

function parseManifestLine(
  line: string,
  lineNo: number,
  manifestUri: string,
  base: ParsedUri,
): ManifestEntry {
  // No closures here: this runs once per line, and a closure per line is measurable over a million lines.
  if (line.startsWith('{')) {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      return badLine(manifestUri, lineNo, `is not valid JSON (${(err as Error).message})`);
    }
    const record = value as Record<string, unknown>;
    if (typeof record.uri !== 'string' || record.uri.trim() === '') {
      return badLine(manifestUri, lineNo, 'has no "uri" string');
    }
    const { size, etag, versionId } = record;
    if (size !== undefined && (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)) {
      return badLine(
        manifestUri,
        lineNo,
        `has "size" ${JSON.stringify(size)}; it must be a non-negative integer`,
      );
    }
    if (etag !== undefined && (typeof etag !== 'string' || etag === '')) {
      return badLine(manifestUri, lineNo, 'has an "etag" that is not a string');
    }
    if (versionId !== undefined && typeof versionId !== 'string') {
      return badLine(manifestUri, lineNo, 'has a "versionId" that is not a string');
    }
    return {
      position: lineNo,
      uri: resolveRef(manifestUri, base, record.uri.trim(), lineNo),
      ...(size !== undefined ? { size } : {}),
      ...(etag !== undefined ? { etag: unquoteEtag(etag) } : {}),
      ...(versionId !== undefined ? { versionId } : {}),
    };
  }
  let ref = line;
  if (line.startsWith('"')) {
    try {
      ref = JSON.parse(line) as string;
      if (typeof ref !== 'string') return badLine(manifestUri, lineNo, 'is not a string');
    } catch {
      // Not JSON: a CSV-quoted field, where a quote is escaped by doubling it.
      const csv = /^"((?:[^"]|"")*)"$/.exec(line);
      if (!csv) return badLine(manifestUri, lineNo, 'has unbalanced quotes');
      ref = csv[1]!.replace(/""/g, '"');
    }
    ref = ref.trim();
    if (ref === '') return badLine(manifestUri, lineNo, 'is an empty string');
  }
  return { position: lineNo, uri: resolveRef(manifestUri, base, ref, lineNo) };
}

function badLine(manifestUri: string, lineNo: number, why: string): never {
  throw new InputError(
    `list manifest ${manifestUri} line ${lineNo}: ${why}. Each line must be a URI, a JSON string, or ` +
      '{"uri": "...", "size": <bytes>, "etag": "..."} (size and etag optional)',
  );
}

function parseManifestArray(text: string, manifestUri: string, base: ParsedUri): ManifestEntry[] {
  const shapeHint = 'a SageMaker ManifestFile looks like [{"prefix": "s3://bucket/prefix/"}, "key1", "key2"]';
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new InputError(
      `list manifest ${manifestUri} starts with "[" but is not a valid JSON array (${(err as Error).message}); ` +
        shapeHint,
    );
  }
  const items = Array.isArray(value) ? (value as unknown[]) : [];
  const head = items[0] as { prefix?: unknown } | undefined;
  if (typeof head !== 'object' || head === null || typeof head.prefix !== 'string') {
    throw new InputError(
      `list manifest ${manifestUri} is a JSON array whose first element is not {"prefix": "..."}; ${shapeHint}`,
    );
  }
  const prefix = resolveRef(manifestUri, base, head.prefix, 'entry 0');
  return items.slice(1).map((item, i) => {
    if (typeof item !== 'string' || item === '') {
      throw new InputError(
        `list manifest ${manifestUri} ${whereIs('array', i + 1)}: ${JSON.stringify(item)} is not a key; after ` +
          'the prefix every element must be a string',
      );
    }
    return { position: i + 1, uri: prefix + item };
  });
}

/** The URI a manifest entry names. Exported for tests (s3:// manifests need no store to check). */
export function resolveManifestEntry(manifestUri: string, ref: string, where: string): string {
  return resolveRef(manifestUri, parseUri(manifestUri), ref, where);
}

/** `at`: a line number, or an already worded place; only turned into text for an error. */
function resolveRef(manifestUri: string, base: ParsedUri, ref: string, at: number | string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(ref)) {
    // Unsupported schemes and bad buckets fail here, naming the line, rather than later in a worker. A plain
    // local file URI needs no parsing (that costs microseconds a line: seconds for a million).
    if (!ref.startsWith('file:///')) {
      try {
        parseUri(ref);
      } catch (err) {
        throw new InputError(
          `list manifest ${manifestUri} ${typeof at === 'number' ? whereIs('lines', at) : at}: ${(err as Error).message}`,
        );
      }
    }
    return ref;
  }
  if (base.scheme === 'file') {
    // Plain file paths, not URL-encoded: `a b#1.csv` is a file name, so go through the path API, which also
    // folds `..` and encodes what a URL needs encoded.
    return pathToFileURL(path.resolve(path.dirname(base.key), ref)).href;
  }
  if (ref.startsWith('/')) {
    throw new InputError(
      `list manifest ${manifestUri} ${typeof at === 'number' ? whereIs('lines', at) : at}: ${ref} is an absolute path in an s3:// manifest; write ` +
        's3://bucket/key or a key relative to the manifest',
    );
  }
  return joinUri(dirnameUri(manifestUri), ref);
}

function toInputObject(info: ObjectInfo): InputObject {
  return {
    uri: info.uri,
    size: info.size,
    etag: info.etag,
    ...(info.versionId !== undefined ? { versionId: info.versionId } : {}),
  };
}

function unquoteEtag(etag: string): string {
  return etag.includes('"') ? etag.replace(/^(W\/)?"(.*)"$/, '$2') : etag;
}

function lastSegment(uri: string): string {
  return uri.slice(uri.lastIndexOf('/') + 1);
}

/** Sorts in place by URI and returns the array. Code-unit order: deterministic and cheap for a million URIs. */
export function sortByUri<T extends { readonly uri: string }>(objects: T[]): T[] {
  // Listings and inventories usually arrive sorted already: one pass to check is much cheaper than a sort.
  let sorted = true;
  for (let i = 1; i < objects.length && sorted; i++) sorted = objects[i - 1]!.uri <= objects[i]!.uri;
  return sorted ? objects : objects.sort((a, b) => (a.uri < b.uri ? -1 : a.uri > b.uri ? 1 : 0));
}
