/** Shared pieces of the inference tests: fixture models, records, and spec entries parsed by the real schema. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { DecodedRecord } from '../../src/formats/records.js';
import { loadModel, type ModelSession } from '../../src/inference/session.js';
import {
  inputTensorSpec,
  outputTensorSpec,
  type InputTensorSpec,
  type OutputTensorSpec,
} from '../../src/spec/model-io.js';

/** Absolute path of a file under test/fixtures/models/. */
export const fixture = (name: string): string =>
  fileURLToPath(new URL(`../fixtures/models/${name}`, import.meta.url));

export const fixtureJson = <T>(name: string): T => JSON.parse(readFileSync(fixture(name), 'utf8')) as T;

export const session = (name: string): Promise<ModelSession> => loadModel(readFileSync(fixture(name)));

export const rec = (values: Record<string, unknown>, offset = 0): DecodedRecord => ({
  source: 'file:///data/in.jsonl',
  offset,
  values,
});

/** A `model.inputs` entry as the job spec resolves it (defaults applied), from what a user would write. */
export const input = (raw: unknown): InputTensorSpec => inputTensorSpec.parse(raw);
export const output = (raw: unknown): OutputTensorSpec => outputTensorSpec.parse(raw);

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}
