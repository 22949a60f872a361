#!/usr/bin/env node
// Package bin. Installed as a package (no TypeScript sources of the CLI next to this file), the CLI runs from the
// JavaScript that `npm pack` built into dist/. In the repository, it runs the TypeScript through tsx's loader, so
// `npx batch-infer` works right after `npm ci` and always runs the current sources, never a stale dist/ (ADR 0011).
import { existsSync } from 'node:fs';

const source = new URL('./batch-infer.ts', import.meta.url);
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source.href);
} else {
  await import(new URL('../dist/bin/batch-infer.js', import.meta.url).href);
}
