/**
 * S3 Inventory reports as run input: `input.uri` names a report's `manifest.json`, and the run reads every object
 * the report lists (that passes the prefix listing's data-file rules), with the size, ETag and version the report
 * recorded, so a billion-object bucket is planned without a single LIST or HEAD.
 *
 * The manifest (S3 User Guide, "Inventory manifest"):
 *
 *   { "sourceBucket": "b", "destinationBucket": "arn:aws:s3:::dest", "version": "2016-11-30",
 *     "creationTimestamp": "1514944800000", "fileFormat": "CSV" | "ORC" | "Parquet",
 *     "fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, ...",
 *     "files": [{ "key": "prefix/b/config/data/x.csv.gz", "size": 2147483647, "MD5checksum": "f111..." }] }
 *
 * - CSV files are gzip-compressed, without a header; the columns are those of `fileSchema`, in order; every field
 *   is quoted; the object key is URL-encoded (a space as `+`) and decoded here.
 * - Parquet files have the columns bucket, key, version_id, is_latest, is_delete_marker, size, e_tag (snake case).
 * - ORC is not read (no ORC reader here): such a report is an InputError that says to configure CSV or Parquet.
 *
 * Rows that are delete markers or not the latest version (a report of all versions) are skipped, since they are not
 * objects a GET would read. Each inventory file is checked against the manifest's size and MD5 while it is read.
 *
 * Where the files are: `files[].key` is a key in the destination bucket. For an s3:// manifest that is
 * `s3://<destinationBucket>/<key>`. A manifest outside S3 (a report copied to disk) has no bucket, so the key is
 * resolved against the folder of the manifest's own path where the key's leading folders appear
 * (`<dest prefix>/<source bucket>/<config>/` are shared by the manifest and its data files).
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { z } from 'zod';
import { parquetLayout, readParquet } from '../formats/parquet-read.js';
import { parseCsvLine } from '../formats/csv.js';
import { InputError } from '../spec/errors.js';
import { NotFoundError, type ObjectStore } from '../storage/object-store.js';
import { parseUri } from '../storage/uri.js';
import { forEachLine } from './lines.js';

/** One object named by an inventory row. */
export interface InventoryEntry {
  readonly uri: string;
  readonly size?: number;
  readonly etag?: string;
  readonly versionId?: string;
  /** `inventory file 2 (…csv.gz) row 17`: where the row is, for error messages. */
  readonly where: string;
}

const inventoryFileSchema = z.object({
  key: z.string().min(1),
  size: z.number().int().nonnegative().optional(),
  MD5checksum: z.string().optional(),
});

const inventoryManifestSchema = z.object({
  sourceBucket: z.string().min(1),
  destinationBucket: z.string().min(1),
  fileFormat: z.string().min(1),
  fileSchema: z.string(),
  files: z.array(inventoryFileSchema),
});
export type InventoryManifest = z.infer<typeof inventoryManifestSchema>;

/** Whether a parsed JSON value has the shape of an inventory manifest (what `manifest: auto` checks). */
export function looksLikeInventoryManifest(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  return Array.isArray(v.files) && typeof v.fileFormat === 'string' && typeof v.sourceBucket === 'string';
}

/** Parquet column names of an inventory, per the S3 User Guide's Parquet schema. */
const PARQUET_COLUMNS = {
  bucket: 'bucket',
  key: 'key',
  versionId: 'version_id',
  isLatest: 'is_latest',
  isDeleteMarker: 'is_delete_marker',
  size: 'size',
  etag: 'e_tag',
} as const;

/** Rows handed to `onEntry` between yields to the event loop, for very large inventory files. */
const BATCH = 10_000;

/**
 * Reads an inventory manifest and every inventory file it lists, calling `onEntry` for each object row that
 * `keep(key)` accepts. Files are read one after another, in manifest order.
 */
export async function forEachInventoryEntry(
  store: ObjectStore,
  manifestUri: string,
  keep: (key: string) => boolean,
  onEntry: (entry: InventoryEntry) => void,
): Promise<void> {
  const manifest = await readInventoryManifest(store, manifestUri);
  const format = manifest.fileFormat.toLowerCase();
  if (format !== 'csv' && format !== 'parquet') {
    throw new InputError(
      `S3 Inventory manifest ${manifestUri} lists ${manifest.fileFormat} files, which this reader does not read; ` +
        'configure the inventory report with the CSV or Parquet output format',
    );
  }
  const columns = format === 'csv' ? csvColumns(manifest, manifestUri) : undefined;
  for (const [index, file] of manifest.files.entries()) {
    const uri = inventoryFileUri(manifestUri, manifest, file.key);
    const label = `inventory file ${index + 1} (${uri})`;
    let info;
    try {
      info = await store.head(uri);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      throw new InputError(
        `S3 Inventory manifest ${manifestUri} lists ${uri}, which does not exist; the report may have been ` +
          'deleted by a lifecycle rule or copied without its data files',
      );
    }
    if (file.size !== undefined && info.size !== file.size) {
      throw new InputError(
        `${label} has ${info.size} bytes but the manifest says ${file.size}: the file is incomplete or was ` +
          'replaced; use the manifest.json delivered with it',
      );
    }
    if (columns) await readCsvInventory(store, uri, label, columns, file.MD5checksum, keep, onEntry);
    else await readParquetInventory(store, uri, info.size, label, keep, onEntry);
  }
}

async function readInventoryManifest(store: ObjectStore, manifestUri: string): Promise<InventoryManifest> {
  let bytes: Uint8Array;
  try {
    bytes = await store.get(manifestUri);
  } catch (err) {
    if (err instanceof NotFoundError) {
      throw new InputError(`S3 Inventory manifest ${manifestUri} does not exist; check input.uri`);
    }
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new InputError(
      `S3 Inventory manifest ${manifestUri} is not valid JSON (${(err as Error).message})`,
    );
  }
  const parsed = inventoryManifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InputError(
      `${manifestUri} is not an S3 Inventory manifest: "${issue?.path.join('.') || '(root)'}" ` +
        `${issue?.message ?? 'is invalid'}. Expected {"sourceBucket", "destinationBucket", "fileFormat", ` +
        '"fileSchema", "files": [{"key", "size", "MD5checksum"}]} as S3 Inventory writes it',
    );
  }
  return parsed.data;
}

/** Where an inventory file lives: see the module comment. */
export function inventoryFileUri(manifestUri: string, manifest: InventoryManifest, key: string): string {
  const parsed = parseUri(manifestUri);
  if (parsed.scheme === 's3') {
    const bucket = manifest.destinationBucket.replace(/^arn:aws[a-z-]*:s3:::/, '');
    return `s3://${bucket}/${key}`;
  }
  const manifestPath = parsed.key;
  const segments = key.split('/');
  // The longest run of the key's leading folders that appears as folders on the manifest's path.
  for (let n = segments.length - 1; n >= 1; n--) {
    const folders = `/${segments.slice(0, n).join('/')}/`;
    const at = manifestPath.indexOf(folders);
    if (at >= 0)
      return (
        manifestUri.slice(0, manifestUri.length - manifestPath.length) + manifestPath.slice(0, at + 1) + key
      );
  }
  throw new InputError(
    `S3 Inventory manifest ${manifestUri}: cannot tell where its file ${key} is. Outside S3, the folders at the ` +
      'start of each file key must appear in the path of manifest.json, as they do where S3 delivers a report; ' +
      'copy the report with its folder structure',
  );
}

interface CsvColumns {
  readonly count: number;
  readonly bucket: number;
  readonly key: number;
  readonly versionId: number;
  readonly isLatest: number;
  readonly isDeleteMarker: number;
  readonly size: number;
  readonly etag: number;
}

function csvColumns(manifest: InventoryManifest, manifestUri: string): CsvColumns {
  const names = manifest.fileSchema.split(',').map((n) => n.trim().toLowerCase());
  const at = (name: string): number => names.indexOf(name.toLowerCase());
  const columns = {
    count: names.length,
    bucket: at('Bucket'),
    key: at('Key'),
    versionId: at('VersionId'),
    isLatest: at('IsLatest'),
    isDeleteMarker: at('IsDeleteMarker'),
    size: at('Size'),
    etag: at('ETag'),
  };
  if (columns.bucket < 0 || columns.key < 0) {
    throw new InputError(
      `S3 Inventory manifest ${manifestUri} has fileSchema "${manifest.fileSchema}" without Bucket and Key columns`,
    );
  }
  return columns;
}

async function readCsvInventory(
  store: ObjectStore,
  uri: string,
  label: string,
  columns: CsvColumns,
  md5: string | undefined,
  keep: (key: string) => boolean,
  onEntry: (entry: InventoryEntry) => void,
): Promise<void> {
  const hash = createHash('md5');
  const raw = await store.getStream(uri);
  // The MD5 in the manifest is of the stored (compressed) bytes: hash them on the way into gunzip.
  const hashed = Readable.from(
    (async function* () {
      for await (const chunk of raw as AsyncIterable<Uint8Array>) {
        hash.update(chunk);
        yield chunk;
      }
    })(),
  );
  const gunzip = createGunzip();
  const lines = hashed.pipe(gunzip);
  hashed.on('error', (err) => gunzip.destroy(err));
  try {
    await forEachLine(lines, (line, lineNo) => {
      const text = line.endsWith('\r') ? line.slice(0, -1) : line;
      if (text === '') return;
      const where = `${label} line ${lineNo}`;
      const parsed = parseCsvLine(text);
      if (parsed.error !== undefined || parsed.fields.length !== columns.count) {
        throw new InputError(
          `${where}: ${parsed.error ?? `has ${parsed.fields.length} fields, the manifest's fileSchema has ${columns.count}`}`,
        );
      }
      const f = parsed.fields;
      if (field(f, columns.isDeleteMarker) === 'true' || field(f, columns.isLatest) === 'false') return;
      const bucket = field(f, columns.bucket);
      const encoded = field(f, columns.key);
      if (!bucket || !encoded) throw new InputError(`${where}: has no bucket or key`);
      let key: string;
      try {
        key = decodeURIComponent(encoded.replace(/\+/g, ' '));
      } catch {
        throw new InputError(`${where}: key "${encoded}" is not URL-encoded as S3 Inventory CSV keys are`);
      }
      if (!keep(key)) return;
      const sizeText = field(f, columns.size);
      const size = sizeText === undefined ? undefined : Number(sizeText);
      if (size !== undefined && !(Number.isSafeInteger(size) && size >= 0)) {
        throw new InputError(`${where}: size "${sizeText}" is not a byte count`);
      }
      const etag = field(f, columns.etag);
      const versionId = field(f, columns.versionId);
      onEntry({
        uri: `s3://${bucket}/${key}`,
        ...(size !== undefined && { size }),
        ...(etag !== undefined && { etag }),
        ...(versionId !== undefined && { versionId }),
        where,
      });
    });
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(`${label} could not be read as gzip-compressed CSV: ${(err as Error).message}`);
  }
  const digest = hash.digest('hex');
  if (md5 !== undefined && digest !== md5.toLowerCase()) {
    throw new InputError(
      `${label} has MD5 ${digest} but the manifest says ${md5}: the file is corrupt or was replaced`,
    );
  }
}

/** A CSV field, with the empty string (an absent optional value) as undefined. */
function field(fields: readonly (string | null)[], index: number): string | undefined {
  if (index < 0) return undefined;
  const value = fields[index];
  return value === null || value === undefined || value === '' ? undefined : value;
}

async function readParquetInventory(
  store: ObjectStore,
  uri: string,
  size: number,
  label: string,
  keep: (key: string) => boolean,
  onEntry: (entry: InventoryEntry) => void,
): Promise<void> {
  const present = (await parquetLayout(store, uri, size)).columns;
  const wanted = Object.values(PARQUET_COLUMNS).filter((c) => present.includes(c));
  if (!wanted.includes(PARQUET_COLUMNS.bucket) || !wanted.includes(PARQUET_COLUMNS.key)) {
    throw new InputError(`${label} has no bucket and key columns; it is not an S3 Inventory Parquet file`);
  }
  const range = { uri, etag: '', size, start: 0, end: size };
  for await (const batch of readParquet(store, range, { batchSize: BATCH, columns: wanted })) {
    for (const record of batch) {
      if (record.values === undefined) continue;
      const v = record.values;
      if (v[PARQUET_COLUMNS.isDeleteMarker] === true || v[PARQUET_COLUMNS.isLatest] === false) continue;
      const bucket = v[PARQUET_COLUMNS.bucket];
      const key = v[PARQUET_COLUMNS.key];
      const where = `${label} row ${record.offset + 1}`;
      if (typeof bucket !== 'string' || typeof key !== 'string') {
        throw new InputError(`${where}: has no bucket or key`);
      }
      if (!keep(key)) continue;
      const rawSize = v[PARQUET_COLUMNS.size];
      const objectSize =
        typeof rawSize === 'bigint' ? Number(rawSize) : typeof rawSize === 'number' ? rawSize : undefined;
      const etag = v[PARQUET_COLUMNS.etag];
      const versionId = v[PARQUET_COLUMNS.versionId];
      onEntry({
        uri: `s3://${bucket}/${key}`,
        ...(objectSize !== undefined && { size: objectSize }),
        ...(typeof etag === 'string' && etag !== '' && { etag }),
        ...(typeof versionId === 'string' && versionId !== '' && { versionId }),
        where,
      });
    }
  }
}
