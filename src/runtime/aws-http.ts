/**
 * HTTP timeouts for every AWS SDK client the product makes. The SDK's own HTTP handler sets none: a connection that
 * is never answered, or that stalls mid-answer with the socket left open, holds its request until the process ends
 * (a CLI command that never returns, a Lambda step until its timeout). With these, such a request fails with
 * TimeoutError, which the SDK retries as a transient error (ADR 0014, addendum of 2026-12-07).
 */

/** How long a connection may take to open. */
export const AWS_CONNECTION_TIMEOUT_MS = 10_000;
/**
 * How long a request may go without a byte sent or received (the AWS CLI's read timeout is 60 s too). An
 * inactivity limit, not a limit on the whole request: a long transfer is never cut while bytes flow.
 */
export const AWS_SOCKET_TIMEOUT_MS = 60_000;

export interface AwsHttpTimeouts {
  /** @default AWS_CONNECTION_TIMEOUT_MS */
  readonly connectionTimeoutMs?: number;
  /** @default AWS_SOCKET_TIMEOUT_MS */
  readonly socketTimeoutMs?: number;
}

/** The client configuration that sets the timeouts: spread it into any SDK client's configuration. */
export function awsHttpOptions(timeouts: AwsHttpTimeouts = {}): {
  readonly requestHandler: { readonly connectionTimeout: number; readonly socketTimeout: number };
} {
  return {
    requestHandler: {
      connectionTimeout: timeouts.connectionTimeoutMs ?? AWS_CONNECTION_TIMEOUT_MS,
      socketTimeout: timeouts.socketTimeoutMs ?? AWS_SOCKET_TIMEOUT_MS,
    },
  };
}
