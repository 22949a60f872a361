/**
 * Every AWS SDK client the product makes gets connection and socket timeouts (src/runtime/aws-http.ts): the SDK sets
 * none, so a stalled connection held a CLI command or a Lambda step until the process ended. A client with them,
 * against a loopback server that accepts requests and never answers, fails with TimeoutError; the source makes no
 * client without them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GetDatabaseCommand, GlueClient } from '@aws-sdk/client-glue';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { awsHttpOptions } from '../../src/runtime/aws-http.js';

const repo = path.resolve(fileURLToPath(import.meta.url), '../../..');

let server: http.Server;
let endpoint: string;
beforeAll(async () => {
  // Reads each request and never answers it.
  server = http.createServer((req) => req.resume());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** Source files under `dir` (recursively). */
function sources(dir: string): string[] {
  return readdirSync(path.join(repo, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.join(e.parentPath, e.name));
}

describe('AWS SDK client timeouts', () => {
  it('a request never answered fails with TimeoutError instead of waiting for good', async () => {
    const glue = new GlueClient({
      endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      maxAttempts: 1,
      ...awsHttpOptions({ socketTimeoutMs: 200 }),
    });
    try {
      await expect(glue.send(new GetDatabaseCommand({ Name: 'db' }))).rejects.toMatchObject({
        name: 'TimeoutError',
      });
    } finally {
      glue.destroy();
    }
  });

  it('every client the product makes is given them', () => {
    const made: string[] = [];
    for (const file of [...sources('src'), ...sources('lambdas')]) {
      const text = readFileSync(file, 'utf8');
      for (const match of text.matchAll(/new (\w+Client)\(/g)) {
        // The construction's arguments: up to the parenthesis that closes it.
        let depth = 0;
        let end = match.index + match[0].length - 1;
        for (; end < text.length; end++) {
          if (text[end] === '(') depth++;
          else if (text[end] === ')' && --depth === 0) break;
        }
        const args = text.slice(match.index, end + 1);
        made.push(`${path.relative(repo, file)}: ${match[1]}`);
        expect({
          at: `${path.relative(repo, file)}: ${args}`,
          timeouts: args.includes('awsHttpOptions('),
        }).toEqual({
          at: `${path.relative(repo, file)}: ${args}`,
          timeouts: true,
        });
      }
    }
    // The scan found the clients (S3, Glue, SageMaker, Batch, Step Functions, CloudFormation, CloudWatch Logs).
    expect(made.length).toBeGreaterThanOrEqual(12);
  });
});
