/**
 * How the column types a worker reports in its marker (`ShardMarker.columns`: the Parquet type as written) relate
 * to the types a job spec declares (`output.schema`) and the catalogue columns.
 *
 * Markers name types the way the Parquet writer does, and writers differ in spelling, so every spelling is first
 * reduced to one canonical name, the spec's vocabulary:
 *
 *   spec type      Parquet / writer spellings accepted (case-insensitive)
 *   ------------   ---------------------------------------------------------------
 *   string         STRING, UTF8, VARCHAR, TEXT, ENUM
 *   float          FLOAT, FLOAT32, REAL
 *   double         DOUBLE, FLOAT64
 *   int            INT32, INT_32, INT, INTEGER
 *   bigint         INT64, INT_64, BIGINT, LONG
 *   boolean        BOOLEAN, BOOL
 *   array<T>       LIST<T>, ARRAY<T>, LIST(T), T[]   (T any of the above, e.g. array<float>)
 *
 * A declared type matches when the canonical form of the marker's type is exactly the declared type. Widening is
 * deliberately not allowed (a declared `double` does not accept `FLOAT`, nor `bigint` accept `INT32`): the
 * declaration is a contract with the table's readers, and a silent width change is the kind of drift it exists
 * to catch. Types outside the table (timestamps, decimals, raw BYTE_ARRAY) have no canonical spec name and never
 * match a declaration; the catalogue receives them lower-cased.
 */

const SCALARS: Readonly<Record<string, string>> = {
  STRING: 'string',
  UTF8: 'string',
  VARCHAR: 'string',
  TEXT: 'string',
  ENUM: 'string',
  FLOAT: 'float',
  FLOAT32: 'float',
  REAL: 'float',
  DOUBLE: 'double',
  FLOAT64: 'double',
  INT32: 'int',
  INT_32: 'int',
  INT: 'int',
  INTEGER: 'int',
  INT64: 'bigint',
  INT_64: 'bigint',
  BIGINT: 'bigint',
  LONG: 'bigint',
  BOOLEAN: 'boolean',
  BOOL: 'boolean',
};

/** The spec-vocabulary name of a writer's type, or undefined when the type has none. */
export function canonicalColumnType(type: string): string | undefined {
  const t = type.replace(/\s+/g, '').toUpperCase();
  const scalar = SCALARS[t];
  if (scalar) return scalar;
  const element =
    /^(?:LIST|ARRAY)<(.+)>$/.exec(t)?.[1] ?? /^LIST\((.+)\)$/.exec(t)?.[1] ?? /^(.+)\[\]$/.exec(t)?.[1];
  if (element === undefined) return undefined;
  const inner = canonicalColumnType(element);
  return inner === undefined ? undefined : `array<${inner}>`;
}

/** Whether a column written as `actual` satisfies a declaration of `declared` (spec vocabulary). */
export function columnTypeMatches(declared: string, actual: string): boolean {
  return canonicalColumnType(actual) === declared;
}

/** The type to give a catalogue: the canonical name, or the writer's name lower-cased when there is none. */
export function catalogColumnType(actual: string): string {
  return canonicalColumnType(actual) ?? actual.trim().toLowerCase();
}
