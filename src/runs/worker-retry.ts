/**
 * Exit status of a worker whose shard failed deterministically (78 is EX_CONFIG in sysexits.h: a configuration
 * error). It wrote `failures/<shard>.json` first.
 */
export const DETERMINISTIC_EXIT_CODE = 78;

/**
 * The worker job's retry strategy, shared by the Batch job definition (lib/constructs/gpu-compute.ts) and the
 * local worker pool, so a local run retries exactly what AWS Batch would.
 *
 * Infrastructure failures are retried by Batch inside a round (a Spot instance reclaimed, an image that failed to
 * pull); anything else exits and is left to the workflow's retry rounds, which re-run only the missing shards.
 */
export const WORKER_RETRY = {
  /** Attempts per array child, first one included (Batch allows 1..10). */
  attempts: 3,
  /**
   * Batch `evaluateOnExit` EXIT rules checked before the RETRY rules: a worker that failed for a reason no retry can
   * fix (src/runs/failures.ts) exits with this status, and Batch must not try it again even on a reclaimed host.
   */
  exitOn: [{ onExitCode: String(DETERMINISTIC_EXIT_CODE) }],
  /** Batch `evaluateOnExit` rules, first match wins; unmatched failures exit. */
  retryOn: [
    /** Spot reclaim and host terminations: Batch reports `Host EC2 (instance i-...) terminated.` */
    { onStatusReason: 'Host EC2*' },
    /** Transient registry or network trouble while pulling the image. */
    { onReason: 'CannotPullContainerError*' },
  ],
} as const;

/** Batch's glob matching for evaluateOnExit patterns: `*` only at the end. */
export function matchesRetryPattern(pattern: string, text: string): boolean {
  return pattern.endsWith('*') ? text.startsWith(pattern.slice(0, -1)) : text === pattern;
}
