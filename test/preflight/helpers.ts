/** Edits a parsed job spec document in place: sets (or, with undefined, deletes) the value at `keys`. */
export function edit(raw: unknown, keys: readonly (string | number)[], value: unknown): void {
  let node = raw as Record<string | number, unknown>;
  for (const k of keys.slice(0, -1)) node = node[k] as Record<string | number, unknown>;
  const last = keys[keys.length - 1]!;
  if (value === undefined) delete node[last];
  else node[last] = value;
}

/** The value at `keys` of a parsed document. */
export function at(raw: unknown, keys: readonly (string | number)[]): unknown {
  let node = raw;
  for (const k of keys) node = (node as Record<string | number, unknown>)[k];
  return node;
}
