import { rm } from 'node:fs/promises';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { MAX_FILE_BYTES, readFileRanges, readRange } from '../../src/formats/index.js';
import type { SourceRecord } from '../../src/formats/records.js';
import type { InputRange } from '../../src/runs/types.js';
import { byteRange, tempDir, type TempDir } from './helpers.js';

let tmp: TempDir;
beforeAll(async () => {
  tmp = await tempDir();
});
afterAll(async () => {
  await tmp.cleanup();
});

async function readAll(range: InputRange, batchSize = 10): Promise<SourceRecord[]> {
  const out: SourceRecord[] = [];
  for await (const batch of readRange(tmp.store, 'files', range, { batchSize })) out.push(...batch);
  return out;
}

describe('files reader', () => {
  it('reads each object as one record: uri, name, size and its bytes (PNG, JPEG, text)', async () => {
    const pixels = Buffer.alloc(8 * 8 * 3, 200);
    const pngBytes = await sharp(pixels, { raw: { width: 8, height: 8, channels: 3 } })
      .png()
      .toBuffer();
    const jpegBytes = await sharp(pixels, { raw: { width: 8, height: 8, channels: 3 } })
      .jpeg()
      .toBuffer();
    const text = 'Un café, s’il vous plaît.\nSecond line.\n';
    for (const [name, content] of [
      ['photo 1.png', pngBytes],
      ['photo.jpg', jpegBytes],
      ['doc.txt', text],
    ] as const) {
      const file = await tmp.write(name, content);
      const records = await readAll(byteRange(file.uri, file.size, 0, file.size));
      expect(records).toHaveLength(1);
      const [record] = records;
      expect(record!.error).toBeUndefined();
      expect(record).toMatchObject({ source: file.uri, offset: 0 });
      expect(record!.values).toMatchObject({ uri: file.uri, name, size: file.size });
      expect(Buffer.from(record!.values!.content as Uint8Array)).toEqual(Buffer.from(content));
    }
    const meta = await sharp(pngBytes).metadata();
    expect([meta.format, meta.width]).toEqual(['png', 8]);
  });

  it('gives the record to the range that starts at byte 0 only, so split objects are read once', async () => {
    const file = await tmp.write('split.txt', 'x'.repeat(1000));
    const parts = await Promise.all([
      readAll(byteRange(file.uri, file.size, 0, 400)),
      readAll(byteRange(file.uri, file.size, 400, 1000)),
    ]);
    expect(parts.map((p) => p.length)).toEqual([1, 0]);
    expect((parts[0][0]!.values!.content as Uint8Array).length).toBe(1000);
  });

  it('turns a vanished or oversized object into an error row, without reading an oversized one', async () => {
    const file = await tmp.write('gone.png', 'soon gone');
    await rm(file.path);
    const [gone] = await readAll(byteRange(file.uri, file.size, 0, file.size));
    expect(gone).toMatchObject({ source: file.uri, offset: 0, error: { reason: 'DECODE_ERROR' } });
    expect(gone!.error!.message).toMatch(/no longer exists/);

    const big = await tmp.write('big.bin', 'small really');
    tmp.store.reset();
    const [over] = await readAll(byteRange(big.uri, MAX_FILE_BYTES + 1, 0, MAX_FILE_BYTES + 1));
    expect(over!.error!.message).toMatch(/over the 256 MiB limit/);
    expect(tmp.store.gets).toEqual([]);
  });

  it('reads many ranges concurrently, in order, in batches of the requested size', async () => {
    const ranges: InputRange[] = [];
    for (let i = 0; i < 7; i++) {
      const file = await tmp.write(`many-${i}.txt`, `file ${i}`);
      ranges.push(byteRange(file.uri, file.size, 0, file.size));
      if (i === 3) ranges.push(byteRange(file.uri, file.size, 2, file.size)); // not owned: skipped
    }
    const batches: string[][] = [];
    for await (const batch of readFileRanges(tmp.store, ranges, { batchSize: 3, concurrency: 4 })) {
      batches.push(batch.map((r) => new TextDecoder().decode(r.values!.content as Uint8Array)));
    }
    expect(batches).toEqual([['file 0', 'file 1', 'file 2'], ['file 3', 'file 4', 'file 5'], ['file 6']]);
  });
});
