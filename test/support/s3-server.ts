/**
 * A real S3-compatible server (s3rver) on the loopback interface for tests: a fresh data directory and a free port
 * per instance, in a child process that `stop()` kills and that also exits by itself if this process dies.
 */
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, statfs } from 'node:fs/promises';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The static keys s3rver accepts. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;
export const S3RVER_REGION = 'us-east-1';

export interface S3TestServer {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  createBucket(name: string): Promise<void>;
  /**
   * Seeds many objects quickly: plain unsigned PUTs over keep-alive sockets (s3rver accepts anonymous requests),
   * `concurrency` at a time. For preparing fixtures only; code under test goes through the SDK.
   */
  putObjects(
    bucket: string,
    objects: readonly (readonly [key: string, body: string])[],
    concurrency?: number,
  ): Promise<void>;
  /** Kills the server and removes its data; safe to call more than once. */
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;

export async function startS3Server(): Promise<S3TestServer> {
  const directory = await mkdtemp(path.join(await dataParent(), 'batch-infer-s3rver-'));
  const script = fileURLToPath(new URL('./s3rver-process.ts', import.meta.url));
  const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  const child = spawn(
    process.execPath,
    ['--openssl-legacy-provider', '--import', tsxLoader, script, directory],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
      // Only what node needs: the server must not pick up the test process's NODE_OPTIONS or AWS settings.
      env: { PATH: process.env.PATH ?? '' },
    },
  );
  // If this process exits without calling stop(), take the server down with it.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  let port: number;
  try {
    port = await waitForPort(child);
  } catch (err) {
    await killChild(child);
    process.removeListener('exit', killOnExit);
    await rm(directory, { recursive: true, force: true });
    throw err;
  }
  const endpoint = `http://127.0.0.1:${port}`;
  let client: S3Client | undefined;
  let stopped: Promise<void> | undefined;
  // A server that dies while tests use it shows up as ECONNREFUSED in some test: say here when and why it died.
  // (Seen once in a full suite, on the first request of a test file whose bucket had just been created.)
  let stderrTail = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderrTail = (stderrTail + chunk.toString('utf8')).slice(-4096);
  });
  // Drained, so that output never blocks the server on a full pipe.
  child.stdout?.resume();
  child.once('exit', (code, signal) => {
    if (stopped) return;
    process.stderr.write(
      `s3rver at ${endpoint} (pid ${child.pid}) exited unexpectedly: code ${code}, signal ${signal}` +
        `${stderrTail.trim() ? `; its stderr ends with:\n${stderrTail.trim()}` : '; no stderr'}\n`,
    );
  });

  return {
    endpoint,
    async createBucket(name) {
      client ??= new S3Client({
        endpoint,
        region: S3RVER_REGION,
        forcePathStyle: true,
        credentials: S3RVER_CREDENTIALS,
        maxAttempts: 1,
        // A connection per request: a kept-alive socket that idled past the server's keep-alive timeout (5 s, easily
        // reached between two tests on a loaded machine) may be closed by the server just as it is reused, and this
        // fixture client does not retry ("socket hang up").
        requestHandler: { httpAgent: new http.Agent({ keepAlive: false }) },
      });
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    async putObjects(bucket, objects, concurrency = 8) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < objects.length) {
          const [key, body] = objects[next++]!;
          await rawPut(agent, port, `/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`, body);
        }
      };
      try {
        await Promise.all(Array.from({ length: Math.min(concurrency, objects.length) }, worker));
      } finally {
        agent.destroy();
      }
    },
    stop() {
      stopped ??= (async () => {
        client?.destroy();
        await killChild(child);
        process.removeListener('exit', killOnExit);
        await rm(directory, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

/**
 * Environment for code under test that builds its own S3 client from the default credential chain: fixed fake keys
 * and region, nothing inherited from the machine. Returns a function that restores the previous values.
 */
export function useS3TestEnv(endpoint: string): () => void {
  const values: Record<string, string | undefined> = {
    AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    AWS_SESSION_TOKEN: undefined,
    AWS_PROFILE: undefined,
    AWS_REGION: S3RVER_REGION,
    AWS_DEFAULT_REGION: undefined,
    BATCH_INFER_S3_ENDPOINT: endpoint,
  };
  const saved = Object.fromEntries(Object.keys(values).map((k) => [k, process.env[k]]));
  const apply = (env: Record<string, string | undefined>): void => {
    for (const [k, v] of Object.entries(env)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  apply(values);
  return () => apply(saved);
}

/**
 * s3rver's time goes mostly into file-system calls, which are several times cheaper on tmpfs. Docker's default
 * 64 MiB /dev/shm cannot hold the multipart tests' objects, hence the free-space check.
 */
async function dataParent(): Promise<string> {
  try {
    const fs = await statfs('/dev/shm');
    if (fs.bavail * fs.bsize >= 1024 ** 3) return '/dev/shm';
  } catch {
    // No /dev/shm on this platform.
  }
  return os.tmpdir();
}

function rawPut(agent: http.Agent, port: number, urlPath: string, body: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        agent,
        host: '127.0.0.1',
        port,
        method: 'PUT',
        path: urlPath,
        headers: { 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          if (res.statusCode === 200) resolve();
          else
            reject(
              new Error(
                `PUT ${urlPath} -> HTTP ${res.statusCode}: ${Buffer.concat(chunks).toString('utf8')}`,
              ),
            );
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function waitForPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(
      () => fail(new Error(`s3rver did not start within ${START_TIMEOUT_MS} ms`)),
      START_TIMEOUT_MS,
    );
    const onStdout = (chunk: Buffer): void => {
      stdout += chunk.toString('utf8');
      const newline = stdout.indexOf('\n');
      if (newline < 0) return;
      const parsed = JSON.parse(stdout.slice(0, newline)) as { port?: unknown };
      if (typeof parsed.port !== 'number') {
        fail(new Error(`s3rver printed an unexpected line: ${stdout.slice(0, newline)}`));
        return;
      }
      cleanup();
      resolve(parsed.port);
    };
    const onStderr = (chunk: Buffer): void => {
      stderr += chunk.toString('utf8');
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      fail(new Error(`s3rver exited before listening (code ${code}, signal ${signal}): ${stderr.trim()}`));
    };
    const onError = (err: Error): void => fail(err);
    function cleanup(): void {
      clearTimeout(timer);
      child.stdout?.off('data', onStdout);
      child.off('exit', onExit);
      child.off('error', onError);
    }
    function fail(err: Error): void {
      cleanup();
      reject(err);
    }
    child.stdout?.on('data', onStdout);
    // Keep draining stderr for the server's whole life so a chatty server can never block on a full pipe.
    child.stderr?.on('data', onStderr);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.stdin?.destroy();
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}
