/**
 * The package bin in the repository (bin/batch-infer.js, src/local/cli-bundle.ts): the first start bundles the
 * current sources, later starts run that bundle directly, and a changed source is bundled again. In a cache of the
 * test's own (BATCH_INFER_CLI_CACHE), so the bundle other tests' CLIs use is left alone.
 */
import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from '@jest/globals';
import { makeDemoInput } from '../../examples/breast-cancer/demo.js';
import { keptDefinitionName } from '../../src/local/local-definition.js';
import { exampleDir, writeExampleJob } from '../support/local-e2e.js';

const repo = path.resolve(fileURLToPath(import.meta.url), '../../..');
const bin = path.join(repo, 'bin/batch-infer.js');
const cache = path.join(repo, 'node_modules', '.cache', 'batch-infer', `test-cli-${process.pid}`);
const pointerFile = path.join(cache, 'cli.json');
const version = (JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string })
  .version;
const MARKER = '[ran from the cached bundle]';

const work = mkdtempSync(path.join(os.tmpdir(), 'cli-bundle-'));

afterAll(() => {
  rmSync(cache, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

function cli(...args: string[]) {
  return spawnSync(process.execPath, [bin, ...args], {
    cwd: repo,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, BATCH_INFER_CLI_CACHE: cache },
  });
}

interface Pointer {
  dir: string;
  inputs: [string, number, number][];
}
const pointer = (): Pointer => JSON.parse(readFileSync(pointerFile, 'utf8')) as Pointer;

describe('bin/batch-infer.js in the repository', () => {
  it("bundles the sources on its first start, each module keeping its own file's URL", () => {
    const result = cli('--version');
    expect(result.stderr).toBe('');
    // The version comes from package.json, found relative to src/cli/main.ts: with the bundle's URL it is not found.
    expect(result.stdout.trim()).toBe(version);
    const { dir, inputs } = pointer();
    expect(existsSync(path.join(cache, dir, 'cli.mjs'))).toBe(true);
    const files = inputs.map(([file]) => file);
    expect(files).toEqual(
      expect.arrayContaining([
        'bin/batch-infer.ts',
        'src/cli/main.ts',
        'src/local/cli-bundle.ts',
        'node_modules/esbuild/package.json',
      ]),
    );
    // Packages are loaded from node_modules, not bundled.
    expect(files.filter((file) => file.startsWith('node_modules/') && !file.includes('esbuild'))).toEqual([]);
  });

  it('loads the heavy packages only in the commands that use them', () => {
    const dir = path.join(cache, pointer().dir);
    // What a start loads before any command runs: the entry and the chunks it imports statically, transitively.
    const atStart = new Set<string>();
    const seen = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      const code = readFileSync(path.join(dir, file), 'utf8');
      for (const [, specifier] of code.matchAll(
        /^(?:import|export)\s[^;]*?\sfrom\s*"([^"]+)";?$|^import\s*"([^"]+)";?$/gms,
      )) {
        if (specifier === undefined) continue;
        if (specifier.startsWith('./')) visit(specifier.slice(2));
        else atStart.add(specifier);
      }
    };
    visit('cli.mjs');
    const heavy = [
      'aws-cdk-lib',
      'aws-local-stepfunctions',
      '@aws-sdk/client-batch',
      '@aws-sdk/client-cloudformation',
      '@aws-sdk/client-cloudwatch-logs',
      '@aws-sdk/client-sagemaker',
      '@aws-sdk/client-sfn',
      '@duckdb/node-api',
      'onnxruntime-node',
      'sharp',
      'vega',
      'vega-lite',
    ];
    expect(seen.size).toBeGreaterThan(1);
    expect(
      [...atStart].filter((specifier) => heavy.some((h) => specifier === h || specifier.startsWith(`${h}/`))),
    ).toEqual([]);
    // They are in the bundle, in chunks loaded on demand.
    const everything = readdirSync(dir)
      .map((file) => readFileSync(path.join(dir, file), 'utf8'))
      .join('\n');
    for (const name of heavy) expect(everything).toContain(`"${name}`);
  });

  it("keeps a local run's state machine in the bundle's folder, where the next run reads it", async () => {
    const input = path.join(work, 'in');
    await makeDemoInput({ dir: input, records: 300, files: 1 });
    const spec = writeExampleJob(work, 'bundle_definition', { input, out: path.join(work, 'out') });
    const run = (): ReturnType<typeof cli> =>
      cli(
        'run',
        spec,
        '--registry',
        path.join(exampleDir, 'registry'),
        '--state-dir',
        path.join(work, 'state'),
      );
    const kept = path.join(cache, pointer().dir, keptDefinitionName());
    expect(existsSync(kept)).toBe(false);
    const first = run();
    expect(first.status).toBe(0);
    const definition = JSON.parse(readFileSync(kept, 'utf8')) as { StartAt: string };
    expect(definition.StartAt).toBeTruthy();
    // The next run takes the kept file as it is: a state machine that fails at once shows it was read.
    writeFileSync(
      kept,
      JSON.stringify({
        StartAt: 'Kept',
        States: { Kept: { Type: 'Fail', Error: 'ReadFromTheKeptFile', Cause: 'test' } },
      }),
    );
    const second = run();
    expect(second.status).not.toBe(0);
    expect(`${second.stdout}${second.stderr}`).toContain('ReadFromTheKeptFile');
    rmSync(kept);
  }, 120_000);

  it('runs the bundle on later starts', () => {
    appendFileSync(
      path.join(cache, pointer().dir, 'cli.mjs'),
      `\nprocess.stderr.write(${JSON.stringify(MARKER)});\n`,
    );
    const result = cli('--version');
    expect(result.stdout.trim()).toBe(version);
    expect(result.stderr).toContain(MARKER);
  });

  it('bundles again when a file it was built from has changed', () => {
    const before = pointer();
    const [file, size, mtimeMs] = before.inputs[0]!;
    // As if the file had been edited since the build: its recorded time no longer matches.
    writeFileSync(
      pointerFile,
      JSON.stringify({ ...before, inputs: [[file, size, mtimeMs - 1000], ...before.inputs.slice(1)] }),
    );
    const result = cli('--version');
    expect(result.stdout.trim()).toBe(version);
    expect(result.stderr).not.toContain(MARKER);
    expect(pointer().inputs[0]).toEqual([file, size, mtimeMs]);
    // The rebuilt bundle replaced the altered one, and is what the next start runs.
    expect(readFileSync(path.join(cache, pointer().dir, 'cli.mjs'), 'utf8')).not.toContain(MARKER);
    expect(cli('--version').stderr).toBe('');
  });
});
