/**
 * DuckDB's packages load when the worker first uses them (src/formats/duckdb-library.ts), not as its modules load:
 * checked in a child Node process, whose module cache is Node's own (jest keeps a registry of its own).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { REPO_ROOT } from '../../lib/paths.js';

describe('DuckDB for the worker', () => {
  it('is not loaded by importing the Parquet writer and reader, and is by their first use', () => {
    const source = (file: string) => JSON.stringify(path.join(REPO_ROOT, 'src', file));
    const script = `
      import { createRequire } from 'node:module';
      import { mkdtempSync } from 'node:fs';
      import { tmpdir } from 'node:os';
      import path from 'node:path';
      import { ParquetChunkWriter } from ${source('formats/parquet-chunk-writer.ts')};
      import { duckdbParquetReader } from ${source('formats/parquet-native.ts')};
      const cache = createRequire(import.meta.url).cache;
      const duckdbFiles = () => Object.keys(cache).filter((f) => f.includes('/@duckdb/')).length;
      const before = duckdbFiles();
      const writer = await ParquetChunkWriter.create([{ name: 'x', type: 'double' }]);
      writer.append([[1, 2, 3]], 3);
      await writer.finish(path.join(mkdtempSync(path.join(tmpdir(), 'duckdb-library-')), 'x.parquet'));
      console.log(JSON.stringify({ before, after: duckdbFiles(), reader: typeof duckdbParquetReader }));
    `;
    const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    });
    expect(result.stderr).toBe('');
    const { before, after } = JSON.parse(result.stdout) as { before: number; after: number };
    expect(before).toBe(0);
    expect(after).toBeGreaterThan(10);
  });
});
