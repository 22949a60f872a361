/**
 * What `validate` and `run` share to explain a failure before anything runs, and after a run fails:
 * - preflight: the spec against its model and a sample of its input (src/preflight), one line per problem, exit 2;
 * - a dry run (`validate --sample n`, `run --dry-run n`): n records through the worker on CPU, rows printed;
 * - the first failure's reason of a finished run, for the summary and `--json`.
 */
import path from 'node:path';
import type { LocalRunOutcome } from '../../local/run-local.js';
import { formatProblem, preflight, PreflightError } from '../../preflight/index.js';
import { LocalModelRegistry } from '../../registry/local.js';
import type { RunError } from '../../runs/failures.js';
import { InputError, ModelError } from '../../spec/errors.js';
import { specFolderUri } from '../../spec/load.js';
import type { JobSpec } from '../../spec/schema.js';
import { createObjectStore } from '../../storage/index.js';
import { normalizeUri } from '../../storage/uri.js';
import type { CommandContext } from '../context.js';
import { EXIT, UsageError } from '../errors.js';
import { writeJson } from '../io.js';

/** Where a command finds the model registry and S3. */
export interface ModelSourceOptions {
  readonly registry?: string;
  readonly s3Endpoint?: string;
  readonly input?: string;
}

function sourcesOf(specFile: string, options: ModelSourceOptions, ctx: CommandContext) {
  const store = createObjectStore({ s3Endpoint: options.s3Endpoint ?? ctx.io.env.BATCH_INFER_S3_ENDPOINT });
  const registryUri = normalizeUri(
    options.registry ??
      ctx.io.env.BATCH_INFER_REGISTRY ??
      path.join(path.dirname(path.resolve(ctx.io.cwd, specFile)), 'registry/'),
    ctx.io.cwd,
  );
  return { store, registry: new LocalModelRegistry(store, registryUri) };
}

/**
 * Preflight for `validate`: prints one line per problem on stderr and returns 2 when there are any (a model or
 * input that cannot be found too), 0 when the spec fits its model and input.
 */
export async function preflightCommand(
  specFile: string,
  spec: JobSpec,
  options: ModelSourceOptions,
  ctx: CommandContext,
): Promise<number> {
  const { store, registry } = sourcesOf(specFile, options, ctx);
  let problems;
  try {
    problems = await preflight(spec, {
      store,
      registry,
      specFolder: specFolderUri(specFile),
      ...(options.input ? { inputUri: options.input } : {}),
    });
  } catch (err) {
    if (err instanceof ModelError || err instanceof InputError) {
      ctx.io.stderr.write(`${specFile}: ${err.message}\n`);
      return EXIT.usage;
    }
    throw err;
  }
  if (problems.length === 0) return EXIT.ok;
  const count = `${problems.length} problem${problems.length === 1 ? '' : 's'}`;
  ctx.io.stderr.write(`${specFile} does not fit its model or input (${count}):\n`);
  for (const problem of problems) ctx.io.stderr.write(`  - ${formatProblem(problem)}\n`);
  return EXIT.usage;
}

/** `validate --sample n` and `run --dry-run n`: n records through the worker on CPU (src/preflight/dry-run.ts). */
export async function dryRunCommand(
  specFile: string,
  spec: JobSpec,
  count: string,
  options: ModelSourceOptions & { readonly json?: boolean },
  ctx: CommandContext,
): Promise<number> {
  const records = Number(count);
  if (!Number.isInteger(records) || records < 1) {
    throw new UsageError(`the number of records to sample must be a positive integer (got "${count}")`);
  }
  const { store, registry } = sourcesOf(specFile, options, ctx);
  // Loaded here: the worker (ONNX Runtime, sharp, tokenizers) costs every other command's start.
  const { dryRun, DryRunUnsupportedError } = await import('../../preflight/dry-run.js');
  let result;
  try {
    result = await dryRun(spec, records, { store, registry, specFolderUri: specFolderUri(specFile) });
  } catch (err) {
    if (err instanceof PreflightError || err instanceof DryRunUnsupportedError) {
      ctx.io.stderr.write(`${err.message}\n`);
      return EXIT.usage;
    }
    throw err;
  }
  const out = ctx.io.stdout;
  if (options.json) {
    writeJson(out, result);
    return EXIT.ok;
  }
  out.write(
    `\nDry run of ${records} record(s): ${result.rows.length} row(s), ${result.errors.length} error row(s)\n`,
  );
  for (const row of result.rows) out.write(`  ${JSON.stringify(row)}\n`);
  if (result.errors.length > 0) out.write('Error rows:\n');
  for (const row of result.errors) out.write(`  ${JSON.stringify(row)}\n`);
  return EXIT.ok;
}

/**
 * The first failure's reason: the failed shard's record when Finalize found one, else the Fail state's error and
 * cause (a PlanFailed's cause is the Plan error's JSON, `{ errorType, errorMessage }`, or its message).
 */
export function runErrorOf(outcome: LocalRunOutcome): RunError {
  if (outcome.result?.error) return outcome.result.error;
  let code = outcome.error ?? 'Error';
  let message = outcome.cause ?? outcome.result?.message ?? 'unknown';
  try {
    const parsed = JSON.parse(message) as unknown;
    if (parsed !== null && typeof parsed === 'object') {
      const p = parsed as Record<string, unknown>;
      if (typeof p.errorType === 'string') code = p.errorType;
      if (typeof p.errorMessage === 'string') message = p.errorMessage;
    }
  } catch {
    // Not JSON: the cause is the message itself.
  }
  return { code, message };
}
