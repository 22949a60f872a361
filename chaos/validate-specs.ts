/**
 * Runs every malformed spec through `batch-infer validate` (the CLI's own main, in process) and reports, per spec,
 * the exit code and whether the message names the field.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { main } from '../src/cli/main.js';
import { EXAMPLE_DIR, MALFORMED_SPECS, type MalformedSpec } from './malformed-specs.js';

export interface SpecOutcome {
  readonly spec: MalformedSpec;
  readonly exitCode: number;
  readonly message: string;
  readonly namesField: boolean;
}

export async function validateMalformedSpecs(): Promise<SpecOutcome[]> {
  // Next to the example, so relative paths (data/, registry) resolve as in the shipped spec.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'chaos-specs-'));
  const outcomes: SpecOutcome[] = [];
  const write = {
    out: process.stdout.write.bind(process.stdout),
    err: process.stderr.write.bind(process.stderr),
  };
  try {
    for (const spec of MALFORMED_SPECS) {
      const file = path.join(EXAMPLE_DIR, `.chaos-${path.basename(dir)}.yaml`);
      writeFileSync(file, YAML.stringify(spec.spec));
      let captured = '';
      const capture = (chunk: string | Uint8Array): boolean => {
        captured += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
        return true;
      };
      process.stdout.write = capture;
      process.stderr.write = capture;
      let exitCode: number;
      try {
        exitCode = await main(['validate', file]);
      } catch (err) {
        captured += `threw: ${(err as Error).message}`;
        exitCode = -1;
      } finally {
        process.stdout.write = write.out;
        process.stderr.write = write.err;
        rmSync(file, { force: true });
      }
      const leaf = spec.field.split('.').pop()!;
      outcomes.push({
        spec,
        exitCode,
        message: captured,
        namesField: exitCode === 2 && (captured.includes(spec.field) || captured.includes(leaf)),
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return outcomes;
}
