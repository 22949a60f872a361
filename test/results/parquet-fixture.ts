/** Writes small real Parquet files with DuckDB, so catalogue views have data to read. */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { quoteString } from '../../src/catalog/local.js';

export interface ScoreRow {
  readonly label: string;
  readonly score: number;
}

/** One Parquet file with columns label VARCHAR, score FLOAT (Parquet STRING, FLOAT). */
export async function writeScores(fileUri: string, rows: readonly ScoreRow[]): Promise<void> {
  const file = fileURLToPath(fileUri);
  await mkdir(path.dirname(file), { recursive: true });
  const values = rows.map((r) => `(${quoteString(r.label)}, ${r.score}::FLOAT)`).join(', ');
  const db = await DuckDBInstance.create(':memory:');
  try {
    const conn = await db.connect();
    try {
      await conn.run(
        `COPY (SELECT * FROM (VALUES ${values}) AS t(label, score)) TO ${quoteString(file)} (FORMAT parquet)`,
      );
    } finally {
      conn.closeSync();
    }
  } finally {
    db.closeSync();
  }
}
