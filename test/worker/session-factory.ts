/**
 * A session factory module for the worker's inference thread (WorkerDeps.sessionFactory): sessions are real ONNX
 * Runtime sessions, but the providers named `unavailable` in this module's URL fail as a missing CUDA does, and
 * with `count=<file>` every creation attempt appends its provider to that file (the thread shares no memory with
 * the test). For example `session-factory.ts?unavailable=cuda&count=/tmp/sessions.txt`.
 */
import { appendFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import type { SessionFactory } from '../../src/inference/session.js';

const params = new URL(import.meta.url).searchParams;
const unavailable = new Set(params.getAll('unavailable'));
const countFile = params.get('count');

/** The URL of this module with its parameters. */
export function sessionFactoryUrl(options: { unavailable?: string[]; count?: string } = {}): string {
  const url = new URL(import.meta.url);
  url.search = '';
  for (const provider of options.unavailable ?? []) url.searchParams.append('unavailable', provider);
  if (options.count) url.searchParams.set('count', options.count);
  return url.href;
}

export const createSession: SessionFactory = async (model, options) => {
  const first = options.executionProviders?.[0];
  const provider = typeof first === 'string' ? first : (first?.name ?? 'cpu');
  if (countFile) appendFileSync(countFile, `${provider}\n`);
  if (unavailable.has(provider)) {
    throw new Error(`${provider} is not available on this machine (test session factory)`);
  }
  return ort.InferenceSession.create(model, options);
};
