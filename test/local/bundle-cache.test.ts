/**
 * The bundle cache (src/local/bundle-cache.ts) on a project of its own: reused while every input is unchanged,
 * rebuilt into a new folder when one changes (a folder in use is never rewritten), named by content, safe under
 * concurrent runs, and tidied of folders nobody uses.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { cachedBundle, type CachedBundleOptions } from '../../src/local/bundle-cache.js';
import { tempDir } from '../worker/helpers.js';

let tmp: { dir: string; cleanup: () => void };
let options: CachedBundleOptions;

beforeEach(() => {
  tmp = tempDir('bundle-cache-');
  const src = path.join(tmp.dir, 'src');
  mkdirSync(src);
  writeFileSync(
    path.join(src, 'main.ts'),
    "import { word } from './word.js';\nconsole.log(`hello ${word}`);\n",
  );
  writeFileSync(path.join(src, 'word.ts'), "export const word: string = 'world';\n");
  writeFileSync(path.join(src, 'unrelated.ts'), 'export const n = 1;\n');
  options = {
    name: 'app',
    cacheRoot: path.join(tmp.dir, 'cache'),
    projectRoot: tmp.dir,
    entryPoints: { main: 'src/main.ts' },
    build: {
      bundle: true,
      platform: 'node',
      format: 'esm',
      outExtension: { '.js': '.mjs' },
      logLevel: 'silent',
    },
  };
});
afterEach(() => tmp.cleanup());

/** Runs the bundle's entry; its output. */
function run(dir: string): string {
  return execFileSync(process.execPath, [path.join(dir, 'main.mjs')], { encoding: 'utf8' }).trim();
}

/** Rewrites a source file with `text` (a new modification time, whatever the content). */
function edit(file: string, text: string): void {
  writeFileSync(path.join(tmp.dir, 'src', file), text);
  const later = new Date(Date.now() + 5_000);
  utimesSync(path.join(tmp.dir, 'src', file), later, later);
}

const folders = (): string[] => readdirSync(options.cacheRoot).filter((f) => /^app-[0-9a-f]{16}$/.test(f));

describe('cachedBundle', () => {
  it('builds once, then reuses the folder while the inputs are unchanged', async () => {
    const first = await cachedBundle(options);
    expect(first?.reused).toBe(false);
    expect(run(first!.dir)).toBe('hello world');
    const second = await cachedBundle(options);
    expect(second).toEqual({ dir: first!.dir, reused: true });
  });

  it('rebuilds into a new folder when an input changes, leaving the folder a run may be using as it was', async () => {
    const first = (await cachedBundle(options))!;
    const before = readFileSync(path.join(first.dir, 'main.mjs'), 'utf8');
    edit('word.ts', "export const word: string = 'there';\n");
    const second = (await cachedBundle(options))!;
    expect(second.reused).toBe(false);
    expect(second.dir).not.toBe(first.dir);
    expect(run(second.dir)).toBe('hello there');
    expect(readFileSync(path.join(first.dir, 'main.mjs'), 'utf8')).toBe(before);
    expect((await cachedBundle(options))?.reused).toBe(true);
  });

  it('is not rebuilt for a file the bundle does not read, unless it is one of extraInputs', async () => {
    await cachedBundle(options);
    edit('unrelated.ts', 'export const n = 2;\n');
    expect((await cachedBundle(options))?.reused).toBe(true);
    const watching = { ...options, extraInputs: ['src/unrelated.ts'] };
    expect((await cachedBundle(watching))?.reused).toBe(false);
    expect((await cachedBundle(watching))?.reused).toBe(true);
    edit('unrelated.ts', 'export const n = 3;\n');
    expect((await cachedBundle(watching))?.reused).toBe(false);
  });

  it('names folders by content: sources back to an earlier state give the earlier folder', async () => {
    const first = (await cachedBundle(options))!;
    edit('word.ts', "export const word: string = 'there';\n");
    await cachedBundle(options);
    edit('word.ts', "export const word: string = 'world';\n");
    const third = (await cachedBundle(options))!;
    expect(third).toEqual({ dir: first.dir, reused: false });
    expect(folders()).toHaveLength(2);
  });

  it('rebuilds when other build options are asked for', async () => {
    const first = (await cachedBundle(options))!;
    const minified = (await cachedBundle({ ...options, build: { ...options.build, minify: true } }))!;
    expect(minified.reused).toBe(false);
    expect(minified.dir).not.toBe(first.dir);
    expect(run(minified.dir)).toBe('hello world');
  });

  it('replaces a folder whose files were changed when it rebuilds into it', async () => {
    const first = (await cachedBundle(options))!;
    writeFileSync(path.join(first.dir, 'main.mjs'), "console.log('tampered');\n");
    edit('word.ts', "export const word: string = 'there';\n");
    await cachedBundle(options);
    edit('word.ts', "export const word: string = 'world';\n");
    const again = (await cachedBundle(options))!;
    expect(again).toEqual({ dir: first.dir, reused: false });
    expect(run(again.dir)).toBe('hello world');
    expect(readdirSync(options.cacheRoot).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('rebuilds when an output file is missing or the pointer is damaged', async () => {
    const first = (await cachedBundle(options))!;
    rmSync(path.join(first.dir, 'main.mjs'));
    const second = (await cachedBundle(options))!;
    expect(second).toEqual({ dir: first.dir, reused: false });
    expect(run(second.dir)).toBe('hello world');
    writeFileSync(path.join(options.cacheRoot, 'app.json'), '{"dir": 3');
    expect((await cachedBundle(options))?.reused).toBe(false);
    expect((await cachedBundle(options))?.reused).toBe(true);
  });

  it('gives concurrent runs on a stale cache a complete bundle each, and one pointer', async () => {
    const results = await Promise.all([cachedBundle(options), cachedBundle(options), cachedBundle(options)]);
    for (const result of results) expect(run(result!.dir)).toBe('hello world');
    expect(new Set(results.map((r) => r!.dir)).size).toBe(1);
    expect(readdirSync(options.cacheRoot).sort()).toEqual([path.basename(results[0]!.dir), 'app.json']);
    expect((await cachedBundle(options))?.reused).toBe(true);
  });

  it('removes folders unused for keepDays and dead scratch folders when it builds, and keeps the rest', async () => {
    const first = (await cachedBundle(options))!;
    edit('word.ts', "export const word: string = 'there';\n");
    const second = (await cachedBundle(options))!;
    const scratch = path.join(options.cacheRoot, 'app.tmp-1-deadbeef');
    const freshScratch = path.join(options.cacheRoot, 'app.tmp-2-cafef00d');
    const other = path.join(options.cacheRoot, 'other-0123456789abcdef');
    for (const dir of [scratch, freshScratch, other]) mkdirSync(dir);
    const eightDaysAgo = new Date(Date.now() - 8 * 24 * 3600 * 1000);
    const twoHoursAgo = new Date(Date.now() - 2 * 3600 * 1000);
    utimesSync(first.dir, eightDaysAgo, eightDaysAgo);
    utimesSync(other, eightDaysAgo, eightDaysAgo);
    utimesSync(scratch, twoHoursAgo, twoHoursAgo);
    // Reusing does not tidy; the next build does.
    expect((await cachedBundle(options))?.reused).toBe(true);
    expect(existsSync(first.dir)).toBe(true);
    edit('word.ts', "export const word: string = 'again';\n");
    const third = (await cachedBundle(options))!;
    expect(existsSync(first.dir)).toBe(false);
    expect(existsSync(scratch)).toBe(false);
    // A recent folder (a run may be using it), a build in progress, another bundle's folder: kept.
    for (const dir of [second.dir, third.dir, freshScratch, other]) expect(existsSync(dir)).toBe(true);
  });
});
