/**
 * The identity an error row carries: the record's id under the name the job spec declares (`input.id`), the same
 * column name its prediction rows use, so one query joins both (issue 17: rows used to say `id` whatever the
 * declared name). An id column named like an error row's own field (`reason`, `message`, `_shard`...) is written
 * as `input.<name>` instead, so it never overwrites that field.
 */
import type { ErrorRow } from './types.js';

const ERROR_ROW_FIELDS: ReadonlySet<string> = new Set<keyof ErrorRow>([
  '_shard',
  '_source',
  '_offset',
  'reason',
  'message',
]);

/** The key of the id in an error row for the declared id column. */
export function errorRowIdKey(idColumn: string): string {
  return ERROR_ROW_FIELDS.has(idColumn) ? `input.${idColumn}` : idColumn;
}

/** The error row as written (one JSON line): the id first, under its declared name, when an id column is declared. */
export function errorRowWithId(
  row: ErrorRow,
  idColumn: string | undefined,
  id: string | number | null,
): Record<string, unknown> {
  return idColumn === undefined ? { ...row } : { [errorRowIdKey(idColumn)]: id, ...row };
}
