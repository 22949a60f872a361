/**
 * The shard list at scale. shards.jsonl holds every shard's input ranges, one line per shard: for a million input
 * objects it is ~126 MiB, too much for a 512 MB Lambda to decode whole and too much for each of thousands of
 * workers to download for one line. So Plan also writes shards.index.json: per shard the byte offset and length
 * of its line and its planned counts (~90 bytes a shard, under 1 MB at the 10,000-shard cap). Then
 * - a worker reads the index and fetches its own line with one ranged GET (`readShardLine`);
 * - Reconcile and Finalize read only the index (`readShardIndex`): the counts are all they check.
 *
 * Runs planned before the index existed have shards.jsonl alone: both readers fall back to streaming it line by
 * line (memory: one line at a time), so such runs stay readable, only slower.
 */
import type { Readable } from 'node:stream';
import type { RunLayout } from '../runs/layout.js';
import {
  shardIndexSchema,
  shardSchema,
  type Shard,
  type ShardIndex,
  type ShardIndexEntry,
} from '../runs/types.js';
import { RunStateError } from '../spec/errors.js';
import { writeJsonLines } from '../storage/json-lines.js';
import { NotFoundError, type ObjectStore } from '../storage/object-store.js';
import { forEachLine } from '../manifest/lines.js';
import { errorText, issuesText } from './run-files.js';

/**
 * Writes shards.jsonl and then shards.index.json for it. The index is written second, so an index always describes
 * the shard list next to it; plan.json, written after both, is what makes the run exist.
 */
export async function writeShardList(
  store: ObjectStore,
  layout: RunLayout,
  shards: readonly Shard[],
): Promise<ShardIndex> {
  const entries: ShardIndexEntry[] = [];
  let offset = 0;
  const written = await writeJsonLines(store, layout.shardsUri, shards, {
    onLine: (i, length) => {
      const shard = shards[i]!;
      entries.push({
        id: shard.id,
        offset,
        length,
        records: shard.records,
        recordsExact: shard.recordsExact,
        bytes: shard.bytes,
      });
      offset += length;
    },
  });
  const index: ShardIndex = {
    version: 1,
    runId: layout.runId,
    shardsBytes: written.bytes,
    shardsSha256: written.sha256,
    shards: entries,
  };
  // One entry per line: readable with `head`, and no indentation to double its size.
  const body =
    `{"version":1,"runId":${JSON.stringify(index.runId)},"shardsBytes":${index.shardsBytes},` +
    `"shardsSha256":"${index.shardsSha256}","shards":[` +
    (entries.length > 0 ? `\n${entries.map((e) => JSON.stringify(e)).join(',\n')}\n` : '') +
    ']}\n';
  await store.put(layout.shardIndexUri, body, { contentType: 'application/json' });
  return index;
}

/**
 * What Reconcile and Finalize need of every shard (id, planned records and whether exact), checked to list exactly
 * shards 0..shardCount-1 in order. Reads shards.index.json only; a run without one has shards.jsonl streamed.
 */
export async function readShardIndex(
  store: ObjectStore,
  layout: RunLayout,
  shardCount: number,
): Promise<readonly ShardIndexEntry[]> {
  const index = await readIndexFile(store, layout);
  const entries = index ? index.shards : await indexFromShardList(store, layout);
  const source = index ? layout.shardIndexUri : layout.shardsUri;
  if (entries.length !== shardCount) {
    throw new RunStateError(`${source} lists ${entries.length} shards, the plan has ${shardCount}`);
  }
  return entries;
}

/**
 * One shard's line of shards.jsonl: a ranged GET of exactly its bytes, found through the index. Without an index
 * (an older run) the file is streamed up to the line and the rest is not downloaded.
 */
export async function readShardLine(store: ObjectStore, layout: RunLayout, shardId: number): Promise<Shard> {
  const index = await readIndexFile(store, layout);
  if (!index) return shardFromStream(store, layout, shardId);
  const entry = index.shards[shardId];
  if (!entry) {
    throw new RunStateError(
      `shard ${shardId} does not exist: ${layout.shardIndexUri} lists ${index.shards.length} shards`,
    );
  }
  let bytes: Uint8Array;
  try {
    bytes = await store.get(layout.shardsUri, { start: entry.offset, end: entry.offset + entry.length });
  } catch (err) {
    if (err instanceof NotFoundError)
      throw new RunStateError(`The shard list ${layout.shardsUri} is missing`);
    throw err;
  }
  const where = `${layout.shardsUri} bytes ${entry.offset}-${entry.offset + entry.length - 1} (shard ${shardId}, from ${layout.shardIndexUri})`;
  if (bytes.length !== entry.length || bytes[bytes.length - 1] !== 0x0a) {
    throw new RunStateError(`${where} are not one whole line: the shard list does not match its index`);
  }
  const shard = parseShardLine(new TextDecoder().decode(bytes.subarray(0, -1)), where);
  if (
    shard.id !== shardId ||
    shard.records !== entry.records ||
    shard.recordsExact !== entry.recordsExact ||
    shard.bytes !== entry.bytes
  ) {
    throw new RunStateError(
      `${where} hold shard ${shard.id} (${shard.records} records, ${shard.bytes} bytes), but the index says ` +
        `shard ${entry.id} (${entry.records} records, ${entry.bytes} bytes): the shard list does not match its index`,
    );
  }
  return shard;
}

/** The index, checked against itself; undefined when the run has none (planned before indexes existed). */
async function readIndexFile(store: ObjectStore, layout: RunLayout): Promise<ShardIndex | undefined> {
  const uri = layout.shardIndexUri;
  let bytes: Uint8Array;
  try {
    bytes = await store.get(uri);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new RunStateError(`The shard index ${uri} is not valid JSON: ${errorText(err)}`);
  }
  const parsed = shardIndexSchema.safeParse(json);
  if (!parsed.success)
    throw new RunStateError(`The shard index ${uri} is corrupt: ${issuesText(parsed.error)}`);
  const index = parsed.data;
  if (index.runId !== layout.runId) {
    throw new RunStateError(`The shard index ${uri} belongs to run "${index.runId}", not "${layout.runId}"`);
  }
  let offset = 0;
  for (const [i, entry] of index.shards.entries()) {
    if (entry.id !== i) throw new RunStateError(`${uri} entry ${i} is shard ${entry.id}, expected ${i}`);
    if (entry.offset !== offset) {
      throw new RunStateError(`${uri}: shard ${i} starts at byte ${entry.offset}, expected ${offset}`);
    }
    offset += entry.length;
  }
  if (offset !== index.shardsBytes) {
    throw new RunStateError(
      `${uri}: the lines add up to ${offset} bytes, the shard list has ${index.shardsBytes}`,
    );
  }
  return index;
}

/** The index of an older run, from its shard list streamed line by line (never held whole in memory). */
async function indexFromShardList(store: ObjectStore, layout: RunLayout): Promise<ShardIndexEntry[]> {
  const entries: ShardIndexEntry[] = [];
  let offset = 0;
  await forEachLine(await openShardList(store, layout), (raw, lineNo) => {
    const length = Buffer.byteLength(raw, 'utf8') + 1;
    const lineOffset = offset;
    offset += length;
    if (raw.trim() === '') return;
    const shard = parseShardLine(raw, `${layout.shardsUri} line ${lineNo}`);
    if (shard.id !== entries.length) {
      throw new RunStateError(
        `${layout.shardsUri} line ${lineNo} has shard ${shard.id}, expected ${entries.length}`,
      );
    }
    entries.push({
      id: shard.id,
      offset: lineOffset,
      length,
      records: shard.records,
      recordsExact: shard.recordsExact,
      bytes: shard.bytes,
    });
  });
  return entries;
}

/** Shard `shardId` of an older run: shards.jsonl streamed until its line (line i is shard i). */
async function shardFromStream(store: ObjectStore, layout: RunLayout, shardId: number): Promise<Shard> {
  const stream = await openShardList(store, layout);
  const line = await nthLine(stream, shardId);
  if (line === undefined) throw new RunStateError(`${layout.shardsUri} has no line for shard ${shardId}`);
  const shard = parseShardLine(line, `${layout.shardsUri} line ${shardId + 1}`);
  if (shard.id !== shardId) {
    throw new RunStateError(
      `${layout.shardsUri} line ${shardId + 1} has shard ${shard.id}, expected ${shardId}`,
    );
  }
  return shard;
}

async function openShardList(store: ObjectStore, layout: RunLayout): Promise<Readable> {
  try {
    return await store.getStream(layout.shardsUri);
  } catch (err) {
    if (err instanceof NotFoundError)
      throw new RunStateError(`The shard list ${layout.shardsUri} is missing`);
    throw err;
  }
}

/** Line `n` (from 0) of a stream, without its newline; the stream is closed as soon as the line is complete. */
async function nthLine(stream: Readable, n: number): Promise<string | undefined> {
  let line = 0;
  let pieces: Buffer[] = [];
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let start = 0;
      for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
        if (line === n) return Buffer.concat([...pieces, chunk.subarray(start, nl)]).toString('utf8');
        line++;
        start = nl + 1;
      }
      if (line === n && start < chunk.length) pieces.push(chunk.subarray(start));
    }
    return line === n && pieces.length > 0 ? Buffer.concat(pieces).toString('utf8') : undefined;
  } finally {
    pieces = [];
    stream.destroy();
  }
}

function parseShardLine(text: string, where: string): Shard {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new RunStateError(`${where} is not JSON: ${errorText(err)}`);
  }
  const shard = shardSchema.safeParse(json);
  if (!shard.success) throw new RunStateError(`${where} is not a shard: ${issuesText(shard.error)}`);
  return shard.data;
}
