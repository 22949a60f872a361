/** The deployed commands' rendering and option handling, with no AWS call (the backend's calls: test/operate). */
import { describe, expect, it } from '@jest/globals';
import { pipelineListSchema, pipelinesCommand } from '../../src/cli/commands/pipelines.js';
import type { CommandContext } from '../../src/cli/context.js';
import { stackNameOf } from '../../src/cli/deployed.js';
import { main } from '../../src/cli/main.js';

function context() {
  const out: string[] = [];
  const err: string[] = [];
  const io = {
    stdout: { write: (t: string) => out.push(t), isTTY: false },
    stderr: { write: (t: string) => err.push(t), isTTY: false },
    env: { NO_COLOR: '1' },
    cwd: '/',
  };
  const ctx: CommandContext = { io, exit: () => undefined, interrupted: new AbortController().signal };
  return { ctx, io, out, err };
}

const PIPELINES = [
  {
    name: 'breast_cancer',
    stateMachineArn: 'arn:aws:states:eu-west-1:1:stateMachine:P',
    triggers: ['s3 s3://b/incoming/ *.csv', 'schedule cron(0 6 ? * MON *) Europe/Paris'],
    inputPrefixes: ['s3://b/incoming/'],
    lastRun: { runId: 'r-7', status: 'FAILED' as const, startedAt: '2026-12-01T08:00:00.000Z' },
  },
  {
    name: 'daily',
    stateMachineArn: 'arn:aws:states:eu-west-1:1:stateMachine:D',
    triggers: [],
    inputPrefixes: ['s3://b/landing/'],
  },
];

describe('pipelines', () => {
  it('prints each pipeline with its last run, input prefixes and triggers', async () => {
    const { ctx, out } = context();
    expect(await pipelinesCommand('batch-infer-dev', PIPELINES, {}, ctx)).toBe(0);
    expect(out.join('')).toBe(
      [
        'breast_cancer · last run r-7 FAILED at 2026-12-01T08:00:00.000Z',
        '  input      s3://b/incoming/',
        '  triggers   s3 s3://b/incoming/ *.csv; schedule cron(0 6 ? * MON *) Europe/Paris',
        'daily · no runs yet',
        '  input      s3://b/landing/',
        '  triggers   (none: start it with batch-infer start)',
        '',
      ].join('\n'),
    );
  });

  it('--json prints one object of the documented shape', async () => {
    const { ctx, out } = context();
    await pipelinesCommand('batch-infer-dev', PIPELINES, { json: true }, ctx);
    expect(pipelineListSchema.parse(JSON.parse(out.join('')))).toEqual({
      stack: 'batch-infer-dev',
      pipelines: PIPELINES,
    });
  });
});

describe('--stack / --stage', () => {
  it('names the stack: --stack as given, --stage as batch-infer-<stage>, neither: local', () => {
    expect(stackNameOf({ stack: 'mine' })).toBe('mine');
    expect(stackNameOf({ stage: 'prod' })).toBe('batch-infer-prod');
    expect(stackNameOf({})).toBeUndefined();
  });

  it('refuses both at once, and pipelines without either, with the usage (exit 2)', async () => {
    const a = context();
    expect(await main(['runs', '--stack', 'a', '--stage', 'b'], a.io)).toBe(2);
    expect(a.err.join('')).toMatch(/option '--stage <stage>' cannot be used with option '--stack <name>'/);
    const b = context();
    expect(await main(['pipelines'], b.io)).toBe(2);
    expect(b.err.join('')).toMatch(
      /^pipelines acts on a deployed stack: pass --stack <name> or --stage <stage>\n\nUsage: batch-infer pipelines/,
    );
  });

  it('checks a deployed start run id before any AWS call (exit 2)', async () => {
    const c = context();
    expect(await main(['start', 'breast_cancer', '--stack', 's', '--run-id', 'bad.id'], c.io)).toBe(2);
    expect(c.err.join('')).toMatch(/--run-id "bad.id" must be 1-80 letters, digits/);
    const d = context();
    expect(
      await main(['start', 'p', '--stack', 's', '--input', 's3://a/', '--manifest', 's3://b/m.jsonl'], d.io),
    ).toBe(2);
    expect(d.err.join('')).toMatch(/pass --input or --manifest, not both/);
  });
});
