/**
 * A module imported on first use instead of at start-up: the CLI's commands each need only some of the heavy
 * packages (docs/adr/0022-cached-bundles.md). `preload` starts the import early, when the caller has time to spare;
 * a failed import is forgotten, so that the next `load` tries again and reports the error where it can be handled.
 */
export interface LazyModule<T> {
  /** The module, imported on the first call. */
  load(): Promise<T>;
  /** Starts the import now, without waiting for it. */
  preload(): void;
}

export function lazyModule<T>(importModule: () => Promise<T>): LazyModule<T> {
  let loading: Promise<T> | undefined;
  const load = (): Promise<T> => {
    loading ??= importModule();
    return loading;
  };
  return {
    load,
    preload() {
      load().catch(() => {
        loading = undefined;
      });
    },
  };
}
