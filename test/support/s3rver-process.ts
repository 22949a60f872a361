/**
 * Runs s3rver in its own node process (started by s3-server.ts). A separate process lets the test runner's process
 * stay free of `--openssl-legacy-provider`, which s3rver needs for the DES-encrypted continuation tokens of
 * ListObjectsV2 beyond 1,000 keys.
 *
 * Usage: node --openssl-legacy-provider --import tsx s3rver-process.ts <data directory>
 * Prints one JSON line `{"port":N}` once listening. When its stdin closes (the parent died) it removes the data
 * directory and exits, so it cannot outlive its parent.
 */
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';

interface S3rverInstance {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}
type S3rverConstructor = new (options: {
  address: string;
  port: number;
  directory: string;
  silent: boolean;
}) => S3rverInstance;

const directory = process.argv[2];
if (!directory) {
  process.stderr.write('usage: s3rver-process.ts <data directory>\n');
  process.exit(2);
}

// s3rver is CommonJS without type declarations.
const S3rver = createRequire(import.meta.url)('s3rver') as S3rverConstructor;
const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true });

// The parent removes the directory after a normal stop; this covers a parent that died without stopping us.
const orphaned = (): never => {
  rmSync(directory, { recursive: true, force: true });
  process.exit(0);
};
process.stdin.on('end', orphaned);
process.stdin.on('error', orphaned);
process.stdin.resume();

server.run().then(
  ({ port }) => {
    process.stdout.write(`${JSON.stringify({ port })}\n`);
  },
  (err: unknown) => {
    process.stderr.write(
      `s3rver failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
