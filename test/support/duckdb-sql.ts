/** One query on a fresh DuckDB (in memory, or a database file such as the local catalogue), rows as JS objects. */
import { DuckDBInstance } from '@duckdb/node-api';

export async function sql<T extends Record<string, unknown>>(
  query: string,
  database = ':memory:',
): Promise<T[]> {
  const db = await DuckDBInstance.create(database);
  const connection = await db.connect();
  try {
    return (await connection.runAndReadAll(query)).getRowObjectsJS() as T[];
  } finally {
    connection.closeSync();
    db.closeSync();
  }
}
