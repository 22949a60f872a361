/**
 * s3rver ignores If-Match on GetObject (its getObject handles If-None-Match and If-Modified-Since only), so a
 * conditional read against it would always succeed. This loopback proxy sits in front of it and adds what S3 does:
 * a GET whose If-Match differs from the object's ETag is answered 412 Precondition Failed, with S3's XML error body.
 * Everything else (the signed request, the body, the answer) passes through untouched, so the SDK and the store
 * under test see real S3 responses.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface IfMatchProxy {
  readonly endpoint: string;
  /** Requests that carried If-Match, and how many were refused with 412. */
  readonly seen: { conditional: number; refused: number };
  stop(): Promise<void>;
}

const unquote = (etag: string): string => etag.replace(/^(W\/)?"(.*)"$/, '$2');

export async function startIfMatchProxy(targetEndpoint: string): Promise<IfMatchProxy> {
  const target = new URL(targetEndpoint);
  const seen = { conditional: 0, refused: 0 };
  const server = http.createServer((req, res) => {
    const ifMatch = req.headers['if-match'];
    if (typeof ifMatch === 'string') seen.conditional++;
    const upstream = http.request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        // The Host header stays the proxy's: it is what the client signed.
        headers: req.headers,
      },
      (answer) => {
        const etag = answer.headers.etag;
        const ok = answer.statusCode === 200 || answer.statusCode === 206;
        if (
          req.method === 'GET' &&
          typeof ifMatch === 'string' &&
          ok &&
          unquote(etag ?? '') !== unquote(ifMatch)
        ) {
          seen.refused++;
          answer.resume();
          const body =
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code>' +
            '<Message>At least one of the pre-conditions you specified did not hold</Message>' +
            '<Condition>If-Match</Condition></Error>';
          res.writeHead(412, {
            'content-type': 'application/xml',
            'content-length': Buffer.byteLength(body),
          });
          res.end(body);
          return;
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', (err) => {
      res.writeHead(502);
      res.end(String(err));
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    seen,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
