/**
 * `output.singleFile`: the run's predictions as one jsonl or csv file, assembled by Finalize from the accepted
 * shards' part files in shard order, then chunk order (the order of the input). For CSV the header is kept once:
 * every later part is copied from after its header line, which must be the same header.
 *
 * The copy goes through `composeObject`: on S3 a multipart upload of server-side part copies (UploadPartCopy, no
 * bytes through the Lambda except small parts joined to S3's 5 MiB minimum); on servers without UploadPartCopy and
 * on local files, a streamed copy.
 */
import type { RunLayout } from '../runs/layout.js';
import type { ShardMarker } from '../runs/types.js';
import { composeObject, type ComposeSource, type ObjectStore } from '../storage/object-store.js';
import { OUTPUT_FILES } from '../formats/output-files.js';
import { DEFAULT_READ_CONCURRENCY, forEachLimit } from './run-files.js';

export interface SingleFile {
  readonly uri: string;
  readonly bytes: number;
  readonly etag: string;
  readonly rows: number;
}

/** Bytes read from the start of a CSV part to find its header line. */
const HEADER_PROBE = 64 * 1024;

export async function assembleSingleFile(
  store: ObjectStore,
  layout: RunLayout,
  format: 'jsonl' | 'csv',
  accepted: readonly ShardMarker[],
  concurrency = DEFAULT_READ_CONCURRENCY,
): Promise<SingleFile> {
  const parts = [...accepted]
    .sort((a, b) => a.shardId - b.shardId)
    // Part names carry zero-padded chunk numbers: name order is chunk order.
    .flatMap((m) => [...m.outputs].sort((a, b) => (a.uri < b.uri ? -1 : a.uri > b.uri ? 1 : 0)))
    .filter((f) => f.bytes > 0);
  const rows = parts.reduce((n, f) => n + f.rows, 0);
  let sources: ComposeSource[];
  if (format === 'csv') {
    const headers = new Array<Buffer>(parts.length);
    await forEachLimit(parts, concurrency, async (part, i) => {
      headers[i] = await headerLine(store, part.uri, part.bytes);
    });
    const first = headers[0];
    sources = parts.map((part, i) => {
      const header = headers[i]!;
      if (first && !header.equals(first)) {
        throw new Error(
          `cannot assemble one CSV file: ${part.uri} has the header "${header.toString('utf8').trimEnd()}", ` +
            `the first part "${first.toString('utf8').trimEnd()}"`,
        );
      }
      return { uri: part.uri, range: { start: i === 0 ? 0 : header.length, end: part.bytes } };
    });
  } else {
    sources = parts.map((part) => ({ uri: part.uri, range: { start: 0, end: part.bytes } }));
  }
  const file = OUTPUT_FILES[format];
  const uri = layout.singleFileUri(file.extension);
  const info = await composeObject(store, uri, sources, { contentType: file.contentType });
  return { uri, bytes: info.size, etag: info.etag, rows };
}

/** The first line of a CSV part, newline included. */
async function headerLine(store: ObjectStore, uri: string, size: number): Promise<Buffer> {
  const probe = Buffer.from(await store.get(uri, { start: 0, end: Math.min(size, HEADER_PROBE) }));
  const newline = probe.indexOf(0x0a);
  if (newline < 0) {
    throw new Error(
      `cannot assemble one CSV file: ${uri} has no complete header line in its first ${probe.length} bytes`,
    );
  }
  return probe.subarray(0, newline + 1);
}
