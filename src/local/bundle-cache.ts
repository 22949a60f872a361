/**
 * esbuild bundles kept between runs while their inputs are unchanged (docs/adr/0022-cached-bundles.md).
 *
 * Building the worker bundle took 0.8 s of every local run's wall time on the 2-core build machine, before any
 * shard could start, for output that only changes when a source does. A bundle is built once and reused while every
 * file esbuild read for it (its metafile's inputs: our sources and the packages it bundles) has the size and
 * modification time it had then.
 *
 * Layout under `cacheRoot`:
 * - `<name>-<hash>/`: a bundle, named by a hash of its files' contents. Never changed once there, so a run that is
 *   using it is never disturbed by another run rebuilding: the rebuild lands in a folder of its own.
 * - `<name>.json`: which folder is current, and the inputs it was built from (written whole, by rename).
 * A folder that no pointer names and no run has used for `keepDays` is removed when a new bundle is made.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type * as Esbuild from 'esbuild';

export interface CachedBundleOptions {
  /** Names the bundle's folders and pointer file. */
  readonly name: string;
  /** Where the folders go; must lie where the packages left external resolve (under the project). */
  readonly cacheRoot: string;
  /** esbuild's working directory: input paths are recorded relative to it. */
  readonly projectRoot: string;
  /** Output name (without extension) -> source file, relative to `projectRoot`. */
  readonly entryPoints: Readonly<Record<string, string>>;
  /** Files besides esbuild's inputs whose change must rebuild the bundle (relative to `projectRoot`). */
  readonly extraInputs?: readonly string[];
  /** The rest of the build (bundle, platform, format, externals, banner...); outdir and metafile are set here. */
  readonly build: Omit<
    Esbuild.BuildOptions,
    'entryPoints' | 'outdir' | 'metafile' | 'absWorkingDir' | 'write'
  >;
  /** Folders of this bundle that no run has used for this many days are removed. @default 7 */
  readonly keepDays?: number;
}

export interface CachedBundle {
  /** The folder holding one `<entry>.mjs` per entry point. */
  readonly dir: string;
  /** Whether this call reused the folder (false: it built it). */
  readonly reused: boolean;
}

/** What `<name>.json` holds. */
interface Pointer {
  readonly dir: string;
  /** The build's identity besides its inputs: esbuild's version, Node's major version, the options. */
  readonly key: string;
  /** Node's major version, for readers that check freshness without esbuild (bin/batch-infer.js). */
  readonly node: string;
  /** Each input as [path relative to the project, size, mtimeMs]. */
  readonly inputs: readonly (readonly [string, number, number])[];
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * The bundle for `options`, reused when its inputs are unchanged, else built; undefined when esbuild is not
 * installed.
 */
export async function cachedBundle(options: CachedBundleOptions): Promise<CachedBundle | undefined> {
  let esbuild: typeof Esbuild;
  try {
    esbuild = await import('esbuild');
  } catch {
    return undefined;
  }
  const key = buildKey(esbuild.version, options);
  const pointerFile = path.join(options.cacheRoot, `${options.name}.json`);
  const current = await readPointer(pointerFile);
  if (current && current.key === key && (await isFresh(current, options))) {
    const dir = path.join(options.cacheRoot, current.dir);
    // Marks the folder as in use, for the clean-up of unused ones.
    const now = new Date();
    await utimes(dir, now, now).catch(() => undefined);
    return { dir, reused: true };
  }
  return { dir: await build(esbuild, key, pointerFile, options), reused: false };
}

async function build(
  esbuild: typeof Esbuild,
  key: string,
  pointerFile: string,
  options: CachedBundleOptions,
): Promise<string> {
  const { cacheRoot, name, projectRoot } = options;
  await mkdir(cacheRoot, { recursive: true });
  // Built aside, then renamed to the name of its contents: a reader never sees a half-written folder.
  const scratch = path.join(cacheRoot, `${name}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    const result = await esbuild.build({
      ...options.build,
      entryPoints: Object.fromEntries(
        Object.entries(options.entryPoints).map(([out, file]) => [out, path.join(projectRoot, file)]),
      ),
      absWorkingDir: projectRoot,
      outdir: scratch,
      metafile: true,
    });
    const folder = `${name}-${await contentHash(scratch)}`;
    const dir = path.join(cacheRoot, folder);
    await settle(scratch, dir);
    const now = new Date();
    await utimes(dir, now, now).catch(() => undefined);
    const inputs = await Promise.all(
      [...Object.keys(result.metafile.inputs), ...(options.extraInputs ?? [])].map(async (input) => {
        const info = await stat(path.resolve(projectRoot, input));
        return [input, info.size, info.mtimeMs] as const;
      }),
    );
    const pointer: Pointer = { dir: folder, key, node: nodeMajor(), inputs };
    const pending = `${pointerFile}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    await writeFile(pending, JSON.stringify(pointer));
    await rename(pending, pointerFile);
    await removeUnused(options, folder);
    return dir;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/**
 * Moves the finished build `scratch` to `dir`. Where `dir` already holds the same files (another run built them,
 * or the sources came back to an earlier state) the build is dropped; a `dir` whose files differ (damaged) is
 * replaced.
 */
async function settle(scratch: string, dir: string): Promise<void> {
  try {
    await rename(scratch, dir);
    return;
  } catch {
    // `dir` exists and is not empty.
  }
  if ((await contentHash(dir).catch(() => undefined)) === (await contentHash(scratch))) return;
  const damaged = `${scratch}-damaged`;
  await rename(dir, damaged).catch(() => undefined);
  await rename(scratch, dir).catch(() => undefined);
  await rm(damaged, { recursive: true, force: true });
}

/** Whether every input still has the size and modification time it had when the bundle was built. */
async function isFresh(pointer: Pointer, options: CachedBundleOptions): Promise<boolean> {
  const dir = path.join(options.cacheRoot, pointer.dir);
  const outputs = Object.keys(options.entryPoints).map((entry) => path.join(dir, `${entry}.mjs`));
  try {
    const checks = await Promise.all([
      ...outputs.map((file) => stat(file).then(() => true)),
      ...pointer.inputs.map(async ([input, size, mtimeMs]) => {
        const info = await stat(path.resolve(options.projectRoot, input));
        return info.size === size && info.mtimeMs === mtimeMs;
      }),
    ]);
    return checks.every(Boolean);
  } catch {
    return false;
  }
}

async function readPointer(file: string): Promise<Pointer | undefined> {
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as Partial<Pointer>;
    const valid =
      typeof parsed.dir === 'string' &&
      typeof parsed.key === 'string' &&
      typeof parsed.node === 'string' &&
      Array.isArray(parsed.inputs) &&
      parsed.inputs.every(
        (i) =>
          Array.isArray(i) &&
          typeof i[0] === 'string' &&
          typeof i[1] === 'number' &&
          typeof i[2] === 'number',
      );
    // A pointer written by another version, or damaged: rebuilt, as if there were none.
    return valid ? (parsed as Pointer) : undefined;
  } catch {
    return undefined;
  }
}

function buildKey(esbuildVersion: string, options: CachedBundleOptions): string {
  return createHash('sha256')
    .update(
      JSON.stringify([
        esbuildVersion,
        nodeMajor(),
        options.entryPoints,
        options.extraInputs ?? [],
        options.build,
      ]),
    )
    .digest('hex')
    .slice(0, 16);
}

function nodeMajor(): string {
  return process.versions.node.split('.')[0]!;
}

/** sha256 over the folder's file names and contents, in name order. */
async function contentHash(dir: string): Promise<string> {
  const hash = createHash('sha256');
  for (const file of (await readdir(dir)).sort()) {
    hash
      .update(file)
      .update('\0')
      .update(await readFile(path.join(dir, file)))
      .update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

/**
 * Removes this bundle's folders other than `keep` that no run has used for `keepDays` (a run marks its folder as it
 * starts), and scratch folders of builds that died an hour ago or more.
 */
async function removeUnused(options: CachedBundleOptions, keep: string): Promise<void> {
  const { cacheRoot, name } = options;
  const now = Date.now();
  const keepMs = (options.keepDays ?? 7) * DAY_MS;
  for (const entry of await readdir(cacheRoot)) {
    if (entry === keep) continue;
    const finished = entry.startsWith(`${name}-`) && /^[0-9a-f]{16}$/.test(entry.slice(name.length + 1));
    const scratch = entry.startsWith(`${name}.tmp-`) || entry.startsWith(`${name}.json.tmp-`);
    if (!finished && !scratch) continue;
    const file = path.join(cacheRoot, entry);
    const info = await stat(file).catch(() => undefined);
    if (!info) continue;
    const age = now - info.mtimeMs;
    if ((finished && age > keepMs) || (scratch && age > DAY_MS / 24)) {
      await rm(file, { recursive: true, force: true });
    }
  }
}
