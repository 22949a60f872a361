/**
 * Reading loosely shaped JSON (a Step Functions error's Cause, a Batch job description): fields that AWS spells in
 * PascalCase and local runs in camelCase, taken by the first of several names that holds a value of the right type.
 */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function str(obj: Record<string, unknown>, ...keys: string[]): string | undefined {
  for (const key of keys) {
    const v = obj[key];
    if (typeof v === 'string' && v !== '') return v;
  }
  return undefined;
}

export function num(obj: Record<string, unknown>, ...keys: string[]): number | undefined {
  for (const key of keys) {
    const v = obj[key];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
  }
  return undefined;
}

export function rec(obj: Record<string, unknown>, ...keys: string[]): Record<string, unknown> | undefined {
  for (const key of keys) {
    const v = obj[key];
    if (isRecord(v)) return v;
  }
  return undefined;
}
