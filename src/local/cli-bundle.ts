/**
 * The CLI as one JavaScript file, for `npx batch-infer` in the repository (docs/adr/0022-cached-bundles.md).
 *
 * From the repository, bin/batch-infer.js used to run the TypeScript sources through tsx's loader: every start
 * resolved and transformed about 170 modules on the loader's thread, 0.6-0.7 s of the 2.4 s a demo run took to reach
 * planning on the 2-core build machine. esbuild bundles our sources once (the packages stay external, loaded from
 * node_modules as the installed package loads them) and the bundle is reused while they are unchanged
 * (bundle-cache.ts); bin/batch-infer.js checks that on its own, in plain JavaScript, before anything else loads.
 *
 * Each module keeps its own `import.meta.url`: the sources find files next to them (package.json, the worker entry,
 * schemas) from it, and in one bundled file they would all get the bundle's. Every module is given its source
 * file's URL instead, so paths resolve exactly as from source, and the worker it forks is still bundled from source
 * by the run (worker-bundle.ts).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as Esbuild from 'esbuild';
import { cachedBundle } from './bundle-cache.js';

/** Where the CLI's bundle and its pointer (`cli.json`) live, under the repository's node_modules. */
export function cliCacheRoot(repo: string): string {
  return path.join(repo, 'node_modules', '.cache', 'batch-infer');
}

/**
 * Files besides the bundle's own inputs whose change must rebuild it: how it is built, and the builder.
 * bin/batch-infer.js reuses the bundle without loading esbuild, so an upgrade of esbuild is seen through its
 * package.json.
 */
export const CLI_BUNDLE_BUILDERS = [
  'src/local/cli-bundle.ts',
  'src/local/bundle-cache.ts',
  'node_modules/esbuild/package.json',
] as const;

/** The identifier each module's `import.meta.url` becomes (a constant of that module, holding its source URL). */
const MODULE_URL = '__batchInferModuleUrl';

/** Gives each of our modules the URL of its source file as `import.meta.url` (see the file comment). */
const sourceModuleUrls: Esbuild.Plugin = {
  name: 'source-module-urls',
  setup(build) {
    build.onLoad({ filter: /\.[cm]?[jt]s$/ }, async (args) => {
      if (args.path.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
      const source = await readFile(args.path, 'utf8');
      const declaration = `const ${MODULE_URL} = ${JSON.stringify(pathToFileURL(args.path).href)};\n`;
      return { contents: declaration + source, loader: /\.[cm]?ts$/.test(args.path) ? 'ts' : 'js' };
    });
  },
};

/**
 * The CLI bundled from the sources of the repository at `repo`: reused when unchanged, else built. Undefined when
 * esbuild is not installed (the caller then runs the sources through tsx).
 */
export async function bundleCli(
  repo: string,
  options: { readonly cacheRoot?: string } = {},
): Promise<{ readonly file: string; readonly reused: boolean } | undefined> {
  const bundle = await cachedBundle({
    name: 'cli',
    cacheRoot: options.cacheRoot ?? cliCacheRoot(repo),
    projectRoot: repo,
    entryPoints: { cli: 'bin/batch-infer.ts' },
    extraInputs: CLI_BUNDLE_BUILDERS,
    build: {
      bundle: true,
      platform: 'node',
      target: `node${process.versions.node.split('.')[0]}`,
      format: 'esm',
      // Loaded from node_modules, as the installed package loads them: native code, files found beside their
      // modules (aws-cdk-lib's), and nothing to transform.
      packages: 'external',
      // Modules a command imports when it needs them (the AWS SDK's clients, the state machine interpreter and
      // aws-cdk-lib, DuckDB, Vega) become chunks of their own, loaded only then.
      splitting: true,
      define: { 'import.meta.url': MODULE_URL },
      plugins: [sourceModuleUrls],
      outExtension: { '.js': '.mjs' },
      logLevel: 'silent',
    },
  });
  return bundle && { file: path.join(bundle.dir, 'cli.mjs'), reused: bundle.reused };
}
