/**
 * The worker image's contents without Docker: the esbuild bundle the Dockerfile builds, and the runtime packages it
 * installs (containers/worker/package.json: exactly the modules the bundle keeps external, native add-ons esbuild
 * cannot bundle).
 *
 *   npx tsx scripts/worker-image.ts stage <dir>   bundle to <dir>/dist, `npm ci --omit=dev` of the runtime
 *                                                  package into <dir>/node_modules, and print the sizes
 *
 * The bundle options mirror the Dockerfile's esbuild command (test/lib/worker-image.test.ts keeps them equal), so the
 * staged directory is what the image's /app holds, less onnxruntime-node's CUDA provider libraries (downloaded by
 * its install script at image build time, from outside the npm registry; skipped here).
 */
import { execFileSync } from 'node:child_process';
import {
  cpSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { DUCKDB_PACKAGES } from '../src/formats/duckdb-library.js';
import { WORKER_BUNDLE_ENTRIES } from '../src/worker/spawn-thread.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The worker's runtime package: what the image installs. */
export const WORKER_RUNTIME_DIR = path.join(REPO, 'containers/worker');

/** The bundle's entry points (output name -> source, relative to the repository root): the worker and its threads. */
export const WORKER_ENTRIES: Readonly<Record<string, string>> = WORKER_BUNDLE_ENTRIES;

/** The banner the Dockerfile passes: bundled CommonJS code gets a `require` inside the ES module. */
export const WORKER_BANNER =
  "import { createRequire as __batchInferCreateRequire } from 'node:module'; const require = __batchInferCreateRequire(import.meta.url);";

/**
 * What the Dockerfile deletes after installing: onnxruntime-node's binaries for other platforms than linux/x64 (the
 * image is linux/amd64). Relative to node_modules.
 */
export const WORKER_PRUNED_PATHS: readonly string[] = [
  'onnxruntime-node/bin/napi-v6/darwin',
  'onnxruntime-node/bin/napi-v6/win32',
  'onnxruntime-node/bin/napi-v6/linux/arm64',
];

const runtimePackageSchema = z.object({ dependencies: z.record(z.string(), z.string()) });
const lockSchema = z.object({
  packages: z.record(
    z.string(),
    z.object({
      version: z.string().optional(),
      optional: z.boolean().optional(),
      dev: z.boolean().optional(),
    }),
  ),
});
export type Lockfile = z.infer<typeof lockSchema>;

/** The runtime package's dependencies (name -> exact version): the bundle's externals. */
export function workerRuntimeDependencies(): Record<string, string> {
  const file = path.join(WORKER_RUNTIME_DIR, 'package.json');
  return runtimePackageSchema.parse(JSON.parse(readFileSync(file, 'utf8'))).dependencies;
}

export function readLockfile(file: string): Lockfile {
  return lockSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
}

/** The esbuild options of the worker bundle, as the Dockerfile's command line sets them. */
export function workerBundleOptions(outdir: string): {
  entryPoints: Record<string, string>;
  bundle: true;
  platform: 'node';
  target: string;
  format: 'esm';
  external: string[];
  sourcemap: true;
  sourcesContent: false;
  banner: { js: string };
  outdir: string;
  outExtension: { '.js': '.mjs' };
  metafile: true;
  absWorkingDir: string;
  logLevel: 'warning';
} {
  return {
    entryPoints: { ...WORKER_ENTRIES },
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'esm',
    external: Object.keys(workerRuntimeDependencies()).sort(),
    sourcemap: true,
    sourcesContent: false,
    banner: { js: WORKER_BANNER },
    outdir,
    outExtension: { '.js': '.mjs' },
    metafile: true,
    absWorkingDir: REPO,
    logLevel: 'warning',
  };
}

/**
 * Bundles the worker into `<dir>/dist/worker.mjs`, its threads' entries beside it. Returns the bare module specifiers
 * the bundle still imports (node built-ins left out): what must be installed beside it.
 */
export async function bundleWorker(dir: string): Promise<{ file: string; imports: string[] }> {
  const { build } = await import('esbuild');
  const file = path.join(dir, 'dist/worker.mjs');
  const result = await build(workerBundleOptions(path.dirname(file)));
  const imports = new Set<string>();
  for (const input of Object.values(result.metafile.inputs)) {
    for (const imported of input.imports) {
      if (!imported.external || imported.path.startsWith('node:') || isBuiltin(imported.path)) continue;
      imports.add(imported.path);
    }
  }
  // Required at run time rather than imported (src/formats/duckdb-library.ts), so absent from the metafile: counted
  // when the bundle holds the library's code, which names them.
  const code = readFileSync(file, 'utf8');
  for (const name of Object.values(DUCKDB_PACKAGES))
    if (code.includes(JSON.stringify(name))) imports.add(name);
  return { file, imports: [...imports].sort() };
}

function isBuiltin(specifier: string): boolean {
  return ['buffer', 'child_process', 'events', 'fs', 'process', 'stream', '<runtime>'].includes(specifier);
}

/** `@scope/name/sub/path` -> `@scope/name`; `name/sub` -> `name`. */
export function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier);
}

/**
 * The packages `npm ci --omit=dev` of the runtime lockfile installs on this platform: every entry of the lockfile,
 * less the optional ones for another platform (absent from the repository's node_modules, which npm installed from
 * the same registry metadata for this platform).
 */
export function runtimeClosure(lock: Lockfile, installed: (name: string) => boolean): string[] {
  const names: string[] = [];
  for (const [key, entry] of Object.entries(lock.packages)) {
    if (key === '' || entry.dev) continue;
    const name = key.replace(/^.*node_modules\//, '');
    if (entry.optional && !installed(name)) continue;
    names.push(name);
  }
  return names.sort();
}

/**
 * A node_modules holding only the runtime closure, as symbolic links into the repository's node_modules (no copy of
 * 400 MB): with `node --preserve-symlinks`, modules resolve their own imports from the staged folder, so a package
 * missing from the closure fails as it would in the image.
 */
export function linkRuntimeModules(dir: string): string[] {
  const modules = path.join(REPO, 'node_modules');
  const exists = (name: string): boolean => {
    try {
      return lstatSync(path.join(modules, name)).isDirectory();
    } catch {
      return false;
    }
  };
  const closure = runtimeClosure(readLockfile(path.join(WORKER_RUNTIME_DIR, 'package-lock.json')), exists);
  for (const name of closure) {
    const link = path.join(dir, 'node_modules', name);
    mkdirSync(path.dirname(link), { recursive: true });
    symlinkSync(path.join(modules, name), link, 'dir');
  }
  return closure;
}

/** Bytes under a folder (files only, symbolic links not followed): what a COPY of it puts in an image layer. */
export function diskBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) total += diskBytes(full);
    else if (entry.isFile()) total += lstatSync(full).size;
  }
  return total;
}

const MiB = 1024 * 1024;

/** Stages the image's /app in `dir` (bundle, runtime packages from the registry) and prints what it weighs. */
async function stage(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const { imports } = await bundleWorker(dir);
  for (const name of ['package.json', 'package-lock.json']) {
    cpSync(path.join(WORKER_RUNTIME_DIR, name), path.join(dir, name));
  }
  // As the Dockerfile's deps stage, less the CUDA provider download (its install script; not reachable here).
  execFileSync('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], {
    cwd: dir,
    stdio: 'inherit',
    env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' },
  });
  const modules = path.join(dir, 'node_modules');
  for (const pruned of WORKER_PRUNED_PATHS)
    rmSync(path.join(modules, pruned), { recursive: true, force: true });
  const packages = readdirSync(modules).flatMap((name) =>
    name.startsWith('@')
      ? readdirSync(path.join(modules, name)).map((sub) => `${name}/${sub}`)
      : name.startsWith('.')
        ? []
        : [name],
  );
  const sizes = packages
    .map((name) => ({ name, bytes: diskBytes(path.join(modules, name)) }))
    .sort((a, b) => b.bytes - a.bytes);
  const report = {
    bundleImports: imports,
    distMiB: +(diskBytes(path.join(dir, 'dist')) / MiB).toFixed(1),
    nodeModulesMiB: +(diskBytes(modules) / MiB).toFixed(1),
    packages: sizes.map((s) => `${s.name} ${(s.bytes / MiB).toFixed(1)} MiB`),
  };
  writeFileSync(path.join(dir, 'sizes.json'), `${JSON.stringify(report, null, 2)}\n`);
  console.log(JSON.stringify(report, null, 2));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [command, dir] = process.argv.slice(2);
  if (command !== 'stage' || !dir) {
    console.error('usage: tsx scripts/worker-image.ts stage <dir>');
    process.exit(2);
  }
  await stage(path.resolve(dir));
}
