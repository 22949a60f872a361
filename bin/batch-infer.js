#!/usr/bin/env node
// Package bin. Installed as a package (no TypeScript sources of the CLI next to this file), the CLI runs from the
// JavaScript that `npm pack` built into dist/. In the repository it runs the current sources, never a stale dist/
// (ADR 0011): from a bundle of them when one is up to date (src/local/cli-bundle.ts, ADR 0022), else it bundles
// them now through tsx's loader (the next start reuses that bundle), else, without esbuild, it runs them through tsx.
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const source = new URL('./batch-infer.ts', import.meta.url);
if (existsSync(source)) {
  const repo = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
  // Elsewhere than the repository's cache only for tests, which must not replace the bundle other runs use.
  const cacheRoot =
    process.env.BATCH_INFER_CLI_CACHE ?? path.join(repo, 'node_modules', '.cache', 'batch-infer');
  const bundled = freshCliBundle(repo, cacheRoot);
  if (bundled) {
    await runBundle(bundled);
  } else {
    const { register } = await import('tsx/esm/api');
    register();
    const { bundleCli } = await import('../src/local/cli-bundle.ts');
    const built = await bundleCli(repo, { cacheRoot }).catch(() => undefined);
    await (built ? runBundle(built.file) : import(source.href));
  }
} else {
  await import(new URL('../dist/bin/batch-infer.js', import.meta.url).href);
}

/** Runs the CLI's bundle, telling it its folder (where a local run keeps its rendered state machine). */
function runBundle(file) {
  globalThis.__batchInferCliBundleDir = path.dirname(file);
  return import(pathToFileURL(file).href);
}

/**
 * The CLI bundle's file when it is up to date: the pointer src/local/bundle-cache.ts writes names a bundle built
 * by this Node major version, and every file it was built from still has its recorded size and modification time
 * (the same test as bundle-cache.ts's, here without loading anything: this runs before each command).
 */
function freshCliBundle(repo, cacheRoot) {
  try {
    const pointer = JSON.parse(readFileSync(path.join(cacheRoot, 'cli.json'), 'utf8'));
    if (pointer.node !== process.versions.node.split('.')[0]) return undefined;
    const file = path.join(cacheRoot, pointer.dir, 'cli.mjs');
    if (!existsSync(file)) return undefined;
    for (const [input, size, mtimeMs] of pointer.inputs) {
      const info = statSync(path.resolve(repo, input));
      if (info.size !== size || info.mtimeMs !== mtimeMs) return undefined;
    }
    return file;
  } catch {
    return undefined;
  }
}
