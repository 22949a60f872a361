#!/usr/bin/env node
// Package bin: runs the TypeScript CLI through tsx's loader, so `npx batch-infer` works right after `npm ci`.
import { register } from 'tsx/esm/api';

register();
await import('./batch-infer.ts');
