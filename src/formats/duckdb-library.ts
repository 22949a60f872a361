/**
 * DuckDB's Node packages (node-api and its native bindings) for the worker's Parquet writer and reader, loaded when
 * first used instead of as a worker starts: a job that neither reads nor writes Parquet never loads them, and a
 * shard that does starts loading them once its decode threads are reading (warmParquetWriter).
 *
 * They are required, not imported: node-api is CommonJS spread over about 100 files, and an ES import of CommonJS
 * first scans each file for its exports (cjs-module-lexer). On the 2-core benchmark machine: 0.22 s to import,
 * 0.10 s to require.
 */
import { createRequire } from 'node:module';
import type * as NodeApi from '@duckdb/node-api';
import type NodeBindings from '@duckdb/node-bindings';

export interface DuckDbLibrary {
  readonly api: typeof NodeApi;
  readonly bindings: typeof NodeBindings;
}

/**
 * The packages this module requires. esbuild's metafile lists a bundle's imports, not a `createRequire` function's
 * requires: scripts/worker-image.ts adds these to what the worker image must install.
 */
export const DUCKDB_PACKAGES = { api: '@duckdb/node-api', bindings: '@duckdb/node-bindings' } as const;

let loaded: DuckDbLibrary | undefined;

/** DuckDB's packages, loaded on the first call. */
export function duckDb(): DuckDbLibrary {
  if (loaded === undefined) {
    const requireHere = createRequire(import.meta.url);
    loaded = {
      api: requireHere(DUCKDB_PACKAGES.api) as typeof NodeApi,
      bindings: requireHere(DUCKDB_PACKAGES.bindings) as typeof NodeBindings,
    };
  }
  return loaded;
}
