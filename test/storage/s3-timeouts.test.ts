/**
 * Requests to S3 that stall: never answered, or answered with a body that stops mid-stream, the connection held
 * open. The SDK sets no timeout of its own, so before AWS_SOCKET_TIMEOUT_MS such a request hung its worker (or
 * Reconcile, or Finalize) for good; now it fails after the socket's silence and is sent again. s3rver behind
 * test/support/s3-fault-proxy.ts; a test that hangs fails on jest's timeout.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AWS_CONNECTION_TIMEOUT_MS, AWS_SOCKET_TIMEOUT_MS } from '../../src/runtime/aws-http.js';
import { S3ObjectStore, createS3Client } from '../../src/storage/s3.js';
import { startS3FaultProxy, type S3FaultKind, type S3FaultProxy } from '../support/s3-fault-proxy.js';
import { startS3Server, useS3TestEnv, type S3TestServer } from '../support/s3-server.js';

let server: S3TestServer;
let restoreEnv: () => void;
beforeAll(async () => {
  server = await startS3Server();
  restoreEnv = useS3TestEnv(server.endpoint);
  await server.createBucket('stall');
  await new S3ObjectStore(createS3Client({ endpoint: server.endpoint })).put('s3://stall/a.txt', body);
}, 60_000);
afterAll(async () => {
  await server?.stop();
  restoreEnv?.();
});

const body = 'a'.repeat(100_000) + '\n' + 'b'.repeat(400_000);

/** A store whose client waits `socketTimeoutMs` for a silent socket, through a proxy that stalls the first GET. */
async function storeStallingFirstGet(
  kind: S3FaultKind,
  socketTimeoutMs: number,
): Promise<{ store: S3ObjectStore; proxy: S3FaultProxy; client: S3Client }> {
  let gets = 0;
  const proxy = await startS3FaultProxy(server.endpoint, {
    rate: 1,
    seed: 1,
    kinds: [kind],
    match: (r) => r.method === 'GET' && gets++ === 0,
  });
  const client = createS3Client({ endpoint: proxy.endpoint, socketTimeoutMs });
  return { store: new S3ObjectStore(client), proxy, client };
}

describe('S3 requests that stall', () => {
  it('a request never answered times out and is sent again', async () => {
    const { store, proxy, client } = await storeStallingFirstGet('stall', 300);
    try {
      expect(Buffer.from(await store.get('s3://stall/a.txt')).toString('utf8')).toBe(body);
      expect(proxy.stats.byKind.stall).toBe(1);
      expect(proxy.stats.requests).toBe(2);
    } finally {
      client.destroy();
      await proxy.stop();
    }
  });

  it('a body that stops mid-stream times out and the object is read again', async () => {
    const { store, proxy, client } = await storeStallingFirstGet('stalled-body', 300);
    try {
      expect(
        Buffer.from(await store.get('s3://stall/a.txt', { start: 99_990, end: 100_010 })).toString(),
      ).toBe('a'.repeat(10) + '\n' + 'b'.repeat(9));
      expect(Buffer.from(await store.get('s3://stall/a.txt')).toString('utf8')).toBe(body);
      expect(proxy.stats.byKind['stalled-body']).toBe(1);
    } finally {
      client.destroy();
      await proxy.stop();
    }
  });

  it('clients get the connection and socket timeouts by default', async () => {
    const client = createS3Client({ endpoint: server.endpoint });
    try {
      const handler = client.config.requestHandler as unknown as {
        httpHandlerConfigs(): { connectionTimeout?: number; socketTimeout?: number };
        handle(...args: unknown[]): Promise<unknown>;
      };
      // The handler reads its options when it first sends: send one request.
      await new S3ObjectStore(client).head('s3://stall/a.txt');
      expect(handler.httpHandlerConfigs()).toMatchObject({
        connectionTimeout: AWS_CONNECTION_TIMEOUT_MS,
        socketTimeout: AWS_SOCKET_TIMEOUT_MS,
      });
    } finally {
      client.destroy();
    }
  });
});
