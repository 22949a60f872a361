/**
 * Bounded concurrency for per-object requests (HEADs, Parquet footers). Unbounded `Promise.all` over a million
 * objects would open a million sockets at once; a fixed pool of workers keeps request rates and memory flat.
 */

export interface MapOptions {
  /** Set to stop handing out new items (items already started still finish). */
  readonly stop?: () => boolean;
}

/**
 * `fn` over every item with at most `limit` calls in flight; results in item order. The first rejection stops new
 * calls and is rethrown once the calls in flight have settled, so no request outlives the function.
 */
export async function mapConcurrent<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
  options: MapOptions = {},
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && !(options.stop?.() ?? false)) {
      const index = next++;
      if (index >= items.length) return;
      try {
        results[index] = await fn(items[index]!, index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  const workers = Math.max(1, Math.min(limit, items.length));
  await Promise.all(Array.from({ length: workers }, worker));
  if (failure !== undefined) throw failure.error;
  return results;
}
