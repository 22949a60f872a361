/**
 * S3 Inventory reports as input: manifest.json + gzip CSV or Parquet inventory files, in the shapes the S3 User
 * Guide documents (manifest fields, CSV without header in fileSchema order with URL-encoded keys, Parquet snake-case
 * columns). Reports are written to a local folder laid out as S3 delivers them, and one to the loopback S3 server.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { listInput, resolveManifestMode, type InputSpec } from '../../src/manifest/list-input.js';
import { inventoryFileUri } from '../../src/manifest/s3-inventory.js';
import { InputError } from '../../src/spec/errors.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import { S3ObjectStore, createS3Client } from '../../src/storage/s3.js';
import { startS3Server, useS3TestEnv, type S3TestServer } from '../support/s3-server.js';

const store = new LocalObjectStore();
let root: string;
const url = (...parts: string[]): string => pathToFileURL(path.join(root, ...parts)).href;
const write = async (rel: string, body: string | Uint8Array): Promise<void> => {
  const file = path.join(root, rel);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, body);
};
const md5 = (bytes: Uint8Array): string => createHash('md5').update(bytes).digest('hex');

const CSV_SCHEMA =
  'Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded';
/** Where S3 delivers a report: <dest prefix>/<source bucket>/<config id>/<date>/manifest.json and .../data/. */
const REPORT = 'inv/source-bucket/daily';

function csvRow(fields: readonly string[]): string {
  return fields.map((f) => `"${f}"`).join(',');
}

function manifest(
  fileFormat: string,
  fileSchema: string,
  files: { key: string; bytes: Uint8Array }[],
): string {
  return JSON.stringify(
    {
      sourceBucket: 'source-bucket',
      destinationBucket: 'arn:aws:s3:::inventory-bucket',
      version: '2016-11-30',
      creationTimestamp: '1714953600000',
      fileFormat,
      fileSchema,
      files: files.map((f) => ({ key: f.key, size: f.bytes.length, MD5checksum: md5(f.bytes) })),
    },
    null,
    2,
  );
}

const spec = (uri: string, format: InputSpec['format'], mode: InputSpec['manifest'] = 'auto'): InputSpec => ({
  uri,
  format,
  manifest: mode,
});

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 's3-inventory-'));
  const rowsA = [
    csvRow([
      'source-bucket',
      'data/dt=1/part-0.jsonl',
      'v1',
      'true',
      'false',
      '120',
      '2024-05-05T10:00:00.000Z',
      'e0',
      'STANDARD',
      'false',
    ]),
    // A space is "+" and a plus is "%2B" in inventory CSV keys.
    csvRow([
      'source-bucket',
      'data/dt=1/my+file%2B1.jsonl',
      'v7',
      'true',
      'false',
      '80',
      '2024-05-05T10:00:00.000Z',
      'e1',
      'STANDARD',
      'false',
    ]),
    // An older version and a delete marker: not objects a GET reads.
    csvRow([
      'source-bucket',
      'data/dt=1/part-0.jsonl',
      'v0',
      'false',
      'false',
      '100',
      '2024-05-04T10:00:00.000Z',
      'old',
      'STANDARD',
      'false',
    ]),
    csvRow([
      'source-bucket',
      'data/dt=1/gone.jsonl',
      'v3',
      'true',
      'true',
      '',
      '2024-05-05T10:00:00.000Z',
      '',
      '',
      '',
    ]),
  ];
  const rowsB = [
    csvRow([
      'source-bucket',
      'data/dt=2/part-1.jsonl',
      'v2',
      'true',
      'false',
      '300',
      '2024-05-05T10:00:00.000Z',
      'e2',
      'STANDARD',
      'true',
    ]),
    // Bookkeeping, other formats and folder markers are left out, as by a prefix listing.
    csvRow([
      'source-bucket',
      'data/dt=2/_SUCCESS',
      'v4',
      'true',
      'false',
      '1',
      '2024-05-05T10:00:00.000Z',
      'e3',
      'STANDARD',
      'false',
    ]),
    csvRow([
      'source-bucket',
      'data/dt=2/readme.txt',
      'v5',
      'true',
      'false',
      '9',
      '2024-05-05T10:00:00.000Z',
      'e4',
      'STANDARD',
      'false',
    ]),
    csvRow([
      'source-bucket',
      'data/dt=3/',
      'v6',
      'true',
      'false',
      '0',
      '2024-05-05T10:00:00.000Z',
      'e5',
      'STANDARD',
      'false',
    ]),
  ];
  const a = gzipSync(`${rowsA.join('\n')}\n`);
  const b = gzipSync(`${rowsB.join('\r\n')}`);
  await write(`${REPORT}/data/a.csv.gz`, a);
  await write(`${REPORT}/data/b.csv.gz`, b);
  await write(
    `${REPORT}/2024-05-06T00-00Z/manifest.json`,
    manifest('CSV', CSV_SCHEMA, [
      { key: `${REPORT}/data/a.csv.gz`, bytes: a },
      { key: `${REPORT}/data/b.csv.gz`, bytes: b },
    ]),
  );
  // The same report with b.csv.gz's MD5 wrong, and one whose file is missing.
  await write(
    `bad-md5/source-bucket/daily/2024-05-06T00-00Z/manifest.json`,
    manifest('CSV', CSV_SCHEMA, [{ key: `bad-md5/source-bucket/daily/data/b.csv.gz`, bytes: a }]).replace(
      `"size": ${a.length}`,
      `"size": ${b.length}`,
    ),
  );
  await write('bad-md5/source-bucket/daily/data/b.csv.gz', b);
  await write(
    'missing/source-bucket/daily/2024-05-06T00-00Z/manifest.json',
    manifest('CSV', CSV_SCHEMA, [{ key: 'missing/source-bucket/daily/data/x.csv.gz', bytes: a }]),
  );
  await write(
    'orc/source-bucket/daily/2024-05-06T00-00Z/manifest.json',
    manifest('ORC', 'struct<bucket:string,key:string>', []),
  );
  await write('notgzip/source-bucket/daily/data/a.csv.gz', 'plain text, not gzip');
  await write(
    'notgzip/source-bucket/daily/2024-05-06T00-00Z/manifest.json',
    manifest('CSV', CSV_SCHEMA, [
      { key: 'notgzip/source-bucket/daily/data/a.csv.gz', bytes: Buffer.from('plain text, not gzip') },
    ]),
  );

  const pq = Buffer.from(
    parquetWriteBuffer({
      columnData: [
        { name: 'bucket', data: ['source-bucket', 'source-bucket', 'source-bucket'], type: 'STRING' },
        { name: 'key', data: ['pq/b.parquet', 'pq/a b.parquet', 'pq/c.parquet'], type: 'STRING' },
        { name: 'version_id', data: [null, 'v9', null], type: 'STRING' },
        { name: 'is_latest', data: [true, true, true], type: 'BOOLEAN' },
        { name: 'is_delete_marker', data: [false, false, true], type: 'BOOLEAN' },
        { name: 'size', data: [2048n, 4096n, null], type: 'INT64' },
        { name: 'last_modified_date', data: [1714953600000n, 1714953600000n, 1714953600000n], type: 'INT64' },
        { name: 'e_tag', data: ['pb', 'pa', null], type: 'STRING' },
      ],
    }),
  );
  await write('pqinv/source-bucket/weekly/data/0.parquet', pq);
  await write(
    'pqinv/source-bucket/weekly/2024-05-06T00-00Z/manifest.json',
    manifest(
      'Parquet',
      'message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); optional binary version_id (UTF8); optional boolean is_latest; optional boolean is_delete_marker; optional int64 size; optional int64 last_modified_date (TIMESTAMP_MILLIS); optional binary e_tag (UTF8); }',
      [{ key: 'pqinv/source-bucket/weekly/data/0.parquet', bytes: pq }],
    ),
  );
  await write('other/manifest.json', '{"not": "an inventory"}');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('S3 Inventory (CSV)', () => {
  it('lists the latest, non-deleted data objects with size, ETag and version, keys decoded, sorted', async () => {
    const objects = await listInput(
      store,
      spec(url(`${REPORT}/2024-05-06T00-00Z/manifest.json`), 'jsonl', 's3-inventory'),
    );
    expect(objects).toEqual([
      { uri: 's3://source-bucket/data/dt=1/my file+1.jsonl', size: 80, etag: 'e1', versionId: 'v7' },
      { uri: 's3://source-bucket/data/dt=1/part-0.jsonl', size: 120, etag: 'e0', versionId: 'v1' },
      { uri: 's3://source-bucket/data/dt=2/part-1.jsonl', size: 300, etag: 'e2', versionId: 'v2' },
    ]);
  });

  it('is chosen by manifest: auto for a manifest.json of that shape, and not for another manifest.json', async () => {
    const uri = url(`${REPORT}/2024-05-06T00-00Z/manifest.json`);
    expect(await resolveManifestMode(store, spec(uri, 'csv'))).toEqual({
      mode: 's3-inventory',
      manifestUri: uri,
    });
    // jsonl data includes .json files: another manifest.json is a single data object, as before.
    expect((await resolveManifestMode(store, spec(url('other/manifest.json'), 'jsonl'))).mode).toBe('object');
    expect((await listInput(store, spec(uri, 'jsonl'))).length).toBe(3);
  });

  it('checks each inventory file against the manifest: MD5, size, existence, gzip', async () => {
    const md5Err = await listInput(
      store,
      spec(url('bad-md5/source-bucket/daily/2024-05-06T00-00Z/manifest.json'), 'jsonl', 's3-inventory'),
    ).catch((e: unknown) => e);
    expect(md5Err).toBeInstanceOf(InputError);
    expect((md5Err as Error).message).toMatch(
      /inventory file 1 \(.*b\.csv\.gz\) has MD5 [0-9a-f]{32} but the manifest says/,
    );

    const missing = await listInput(
      store,
      spec(url('missing/source-bucket/daily/2024-05-06T00-00Z/manifest.json'), 'jsonl', 's3-inventory'),
    ).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(InputError);
    expect((missing as Error).message).toContain(
      `lists ${url('missing/source-bucket/daily/data/x.csv.gz')}, which does not exist`,
    );

    await expect(
      listInput(
        store,
        spec(url('notgzip/source-bucket/daily/2024-05-06T00-00Z/manifest.json'), 'jsonl', 's3-inventory'),
      ),
    ).rejects.toThrow(/could not be read as gzip-compressed CSV/);
  });

  it('rejects ORC reports and non-inventory JSON with what to do', async () => {
    await expect(
      listInput(
        store,
        spec(url('orc/source-bucket/daily/2024-05-06T00-00Z/manifest.json'), 'jsonl', 's3-inventory'),
      ),
    ).rejects.toThrow(
      /lists ORC files, which this reader does not read; configure the inventory report with the CSV or Parquet/,
    );
    await expect(listInput(store, spec(url('other/manifest.json'), 'jsonl', 's3-inventory'))).rejects.toThrow(
      /is not an S3 Inventory manifest: "sourceBucket"/,
    );
  });

  it('rejects an inventory naming objects under the output prefix', async () => {
    const err = await listInput(
      store,
      spec(url(`${REPORT}/2024-05-06T00-00Z/manifest.json`), 'jsonl', 's3-inventory'),
      { outputUri: 's3://source-bucket/data/dt=2/' },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toContain(
      'names 1 object(s) under output.uri s3://source-bucket/data/dt=2/',
    );
    expect((err as Error).message).toContain('s3://source-bucket/data/dt=2/part-1.jsonl');
  });
});

describe('S3 Inventory (Parquet)', () => {
  it('reads the snake-case columns; INT64 sizes; null version ids are absent', async () => {
    const objects = await listInput(
      store,
      spec(url('pqinv/source-bucket/weekly/2024-05-06T00-00Z/manifest.json'), 'parquet'),
    );
    expect(objects).toEqual([
      { uri: 's3://source-bucket/pq/a b.parquet', size: 4096, etag: 'pa', versionId: 'v9' },
      { uri: 's3://source-bucket/pq/b.parquet', size: 2048, etag: 'pb' },
    ]);
  });
});

describe('inventoryFileUri', () => {
  const m = {
    sourceBucket: 'src',
    destinationBucket: 'arn:aws:s3:::dest-bucket',
    fileFormat: 'CSV',
    fileSchema: 'Bucket, Key',
    files: [],
  };
  it('uses the destination bucket in S3, and the shared folders of the manifest path elsewhere', () => {
    expect(inventoryFileUri('s3://copy-bucket/x/manifest.json', m, 'p/src/c/data/1.csv.gz')).toBe(
      's3://dest-bucket/p/src/c/data/1.csv.gz',
    );
    expect(
      inventoryFileUri('file:///reports/p/src/c/2024-05-06T00-00Z/manifest.json', m, 'p/src/c/data/1.csv.gz'),
    ).toBe('file:///reports/p/src/c/data/1.csv.gz');
    expect(() => inventoryFileUri('file:///elsewhere/manifest.json', m, 'p/src/c/data/1.csv.gz')).toThrow(
      /cannot tell where its file p\/src\/c\/data\/1\.csv\.gz is/,
    );
  });
});

describe('S3 Inventory on the loopback S3 server', () => {
  let server: S3TestServer;
  let restoreEnv: () => void;
  beforeAll(async () => {
    server = await startS3Server();
    restoreEnv = useS3TestEnv(server.endpoint);
  }, 30_000);
  afterAll(async () => {
    await server?.stop();
    restoreEnv?.();
  });

  it('finds the files in the destination bucket named by its ARN', async () => {
    await server.createBucket('inventory-bucket');
    const data = gzipSync(
      `${csvRow(['source-bucket', 'in/x.csv', '', '', '', '10', '2024-05-05T10:00:00.000Z', 'ex', 'STANDARD', 'false'])}\n`,
    );
    const client = createS3Client({ endpoint: server.endpoint });
    const s3 = new S3ObjectStore(client);
    try {
      await s3.put('s3://inventory-bucket/inv/source-bucket/daily/data/x.csv.gz', data);
      await s3.put(
        's3://inventory-bucket/inv/source-bucket/daily/2024-05-06T00-00Z/manifest.json',
        manifest('CSV', CSV_SCHEMA, [{ key: 'inv/source-bucket/daily/data/x.csv.gz', bytes: data }]),
      );
      const objects = await listInput(
        s3,
        spec('s3://inventory-bucket/inv/source-bucket/daily/2024-05-06T00-00Z/manifest.json', 'csv'),
      );
      expect(objects).toEqual([{ uri: 's3://source-bucket/in/x.csv', size: 10, etag: 'ex' }]);
    } finally {
      client.destroy();
    }
  });
});
