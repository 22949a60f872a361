/**
 * A fault-injecting proxy in front of an S3-compatible server (s3rver on loopback), for the chaos suite
 * (chaos/s3-faults.ts) and its short version in `npm test`. A share of the requests (`rate`, decided per request by
 * a seeded PRNG, so a seed replays the same sequence of decisions) fails the way S3 and networks fail:
 *
 * - `internal-error`: 500 InternalError with S3's XML error body (the request is not forwarded);
 * - `slow-down`: 503 SlowDown (not forwarded), what S3 answers a prefix over its request rate;
 * - `reset`: the connection is destroyed before any answer (not forwarded);
 * - `truncated-body`: forwarded, then the answer's body is cut mid-stream (half its declared length) and the
 *   connection destroyed; an answer without a body (HEAD, an empty object) is cut before its headers instead;
 * - `slow`: forwarded after a delay (`slowMs`), the answer intact;
 * - `stall`: never answered, the connection held open (not forwarded);
 * - `stalled-body`: forwarded, then the answer's body stops mid-stream (half its declared length), the connection
 *   held open.
 *
 * The two stalls are not in the default mix (S3_FAULT_KINDS): each costs the client its socket timeout.
 *
 * Every other request passes through untouched (the Host header stays the proxy's: it is what the client signed).
 * `match` narrows the faults to some requests (e.g. writes of Parquet files), so a run can be failed at one step.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { seededRandom } from './seeded-random.js';

export type S3FaultKind =
  'internal-error' | 'slow-down' | 'reset' | 'truncated-body' | 'slow' | 'stall' | 'stalled-body';
export const S3_FAULT_KINDS: readonly S3FaultKind[] = [
  'internal-error',
  'slow-down',
  'reset',
  'truncated-body',
  'slow',
];

export interface S3FaultRequest {
  readonly method: string;
  /** The request path without the query string, e.g. `/bucket/key`. */
  readonly path: string;
  /** The query string without `?` (e.g. `partNumber=1&uploadId=...`), '' when none. */
  readonly query: string;
}

export interface S3FaultProxyOptions {
  /** Share of (matching) requests that fail, 0 to 1. Changeable later with setRate. */
  readonly rate: number;
  /** Seed of the PRNG that picks which requests fail and how. */
  readonly seed: number;
  /** Kinds of fault to pick from, uniformly. @default S3_FAULT_KINDS (every kind but the stalls) */
  readonly kinds?: readonly S3FaultKind[];
  /** Only requests for which this returns true may fail. @default every request */
  readonly match?: (request: S3FaultRequest) => boolean;
  /** Delay of a `slow` answer, in ms. @default 300 */
  readonly slowMs?: number;
}

export interface S3FaultProxy {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  /** Requests seen, and faults injected by kind. */
  readonly stats: { requests: number; faults: number; byKind: Partial<Record<S3FaultKind, number>> };
  setRate(rate: number): void;
  stop(): Promise<void>;
}

function s3Error(res: http.ServerResponse, status: number, code: string, message: string): void {
  const body =
    `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message>` +
    '<RequestId>FAULTPROXY</RequestId></Error>';
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/**
 * Sends the first half of `answer`'s body, then either cuts the connection (`cut`) or holds it open, sending nothing
 * more. An answer without a body to halve (HEAD, an empty object) is cut before its headers, or the client would wait
 * for a body that never comes. Returns true: the answer is handled.
 */
function halfBody(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  answer: http.IncomingMessage,
  cut: boolean,
): true {
  const length = Number(answer.headers['content-length'] ?? 0);
  if (cut && (!(length > 1) || req.method === 'HEAD')) {
    answer.resume();
    res.destroy();
    return true;
  }
  res.writeHead(answer.statusCode ?? 200, answer.headers);
  let sent = 0;
  const half = Math.floor(length / 2);
  answer.on('data', (chunk: Buffer) => {
    if (sent >= half) return;
    const part = chunk.subarray(0, half - sent);
    sent += part.length;
    res.write(part);
    if (cut && sent >= half) {
      answer.destroy();
      res.destroy();
    }
  });
  // A body shorter than declared (never expected from S3): cut the connection all the same.
  if (cut) answer.on('end', () => res.destroy());
  return true;
}

export async function startS3FaultProxy(
  targetEndpoint: string,
  options: S3FaultProxyOptions,
): Promise<S3FaultProxy> {
  const target = new URL(targetEndpoint);
  const random = seededRandom(options.seed);
  const kinds = options.kinds ?? S3_FAULT_KINDS;
  if (kinds.length === 0) throw new Error('S3 fault proxy: kinds must name at least one fault');
  const slowMs = options.slowMs ?? 300;
  let rate = options.rate;
  const stats = {
    requests: 0,
    faults: 0,
    // One count per kind the proxy picks from.
    byKind: Object.fromEntries(kinds.map((k) => [k, 0])) as Partial<Record<S3FaultKind, number>>,
  };

  const forward = (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    onAnswer?: (answer: http.IncomingMessage) => boolean,
  ): void => {
    const upstream = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        if (onAnswer?.(answer)) return;
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', (err) => {
      if (res.headersSent) res.destroy();
      else s3Error(res, 502, 'BadGateway', String(err));
    });
    req.pipe(upstream);
  };

  const server = http.createServer((req, res) => {
    stats.requests++;
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const request: S3FaultRequest = {
      method: req.method ?? 'GET',
      path: decodeURIComponent(q < 0 ? url : url.slice(0, q)),
      query: q < 0 ? '' : url.slice(q + 1),
    };
    // Draw both numbers for every request, so a seed gives the same decisions whatever `match` says.
    const roll = random();
    const pick = random();
    const kind = kinds[Math.min(kinds.length - 1, Math.floor(pick * kinds.length))]!;
    if (roll >= rate || !(options.match?.(request) ?? true)) {
      forward(req, res);
      return;
    }
    stats.faults++;
    stats.byKind[kind] = (stats.byKind[kind] ?? 0) + 1;
    switch (kind) {
      case 'internal-error':
      case 'slow-down':
        // Read the request body first, as S3 does, so the client is not cut off mid-upload.
        req.resume();
        req.on('end', () =>
          kind === 'slow-down'
            ? s3Error(res, 503, 'SlowDown', 'Please reduce your request rate.')
            : s3Error(res, 500, 'InternalError', 'We encountered an internal error. Please try again.'),
        );
        return;
      case 'reset':
        req.socket.destroy();
        return;
      case 'slow':
        setTimeout(() => forward(req, res), slowMs);
        return;
      case 'stall':
        // Held until the client gives up (or the proxy stops): nothing is ever sent back.
        req.resume();
        return;
      case 'stalled-body':
      case 'truncated-body':
        forward(req, res, (answer) => halfBody(req, res, answer, kind === 'truncated-body'));
        return;
    }
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stats,
    setRate: (next) => {
      rate = next;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
