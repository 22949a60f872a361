/**
 * The Plan payload contract between the state machine and the plan handler, and the handlers' shared helpers.
 */
import { describe, expect, it, jest } from '@jest/globals';
import { ZodError } from 'zod';
import { planRequestFromEvent } from '../../lib/workflow-contract.js';
import {
  ConfigurationError,
  createFunctionLogger,
  engineLogger,
  InvalidEventError,
  parseEvent,
  readEnv,
} from '../../lambdas/shared/lambda.js';
import { createLogger } from '../../src/runtime/log.js';
import { z } from 'zod';

describe('planRequestFromEvent', () => {
  it('takes the execution input fields and the execution name as run id', () => {
    expect(
      planRequestFromEvent({
        runId: 'exec-1',
        request: { specUri: 's3://b/spec.yaml', inputUri: 's3://b/in/' },
      }),
    ).toEqual({ runId: 'exec-1', specUri: 's3://b/spec.yaml', inputUri: 's3://b/in/' });
  });

  it('lets the execution name win over a runId in the input', () => {
    expect(planRequestFromEvent({ runId: 'exec-1', request: { runId: 'other', spec: {} } })).toEqual({
      runId: 'exec-1',
      spec: {},
    });
  });

  it("keeps a schedule's scheduledTime (ISO 8601) and refuses one that is not a time", () => {
    expect(
      planRequestFromEvent({
        runId: 'sched-1',
        request: { spec: {}, scheduledTime: '2025-03-01T02:30:00.000Z' },
      }),
    ).toEqual({ runId: 'sched-1', spec: {}, scheduledTime: '2025-03-01T02:30:00.000Z' });
    expect(() => planRequestFromEvent({ runId: 'sched-1', request: { scheduledTime: 'yesterday' } })).toThrow(
      ZodError,
    );
  });

  it('rejects unknown execution input fields and malformed payloads', () => {
    expect(() => planRequestFromEvent({ runId: 'exec-1', request: { specUrl: 'typo' } })).toThrow(ZodError);
    expect(() => planRequestFromEvent({ spec: {} })).toThrow(ZodError);
  });
});

describe('handler helpers', () => {
  it('parseEvent turns a schema mismatch into an InvalidEvent error naming the field', () => {
    const error = (() => {
      try {
        parseEvent('Plan', () => z.object({ runId: z.string() }).parse({}));
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(InvalidEventError);
    expect((error as Error).name).toBe('InvalidEvent');
    expect((error as Error).message).toMatch(/Invalid Plan event[\s\S]*runId/);
  });

  it('readEnv names a missing variable', () => {
    expect(() => readEnv(z.object({ BATCH_INFER_SURELY_UNSET: z.string() }))).toThrow(ConfigurationError);
    expect(() => readEnv(z.object({ BATCH_INFER_SURELY_UNSET: z.string() }))).toThrow(
      /BATCH_INFER_SURELY_UNSET/,
    );
  });

  it('the logger writes one JSON object per line with level, service, message, fields and errors', () => {
    const lines: string[] = [];
    const log = createLogger({ service: 'test' }, { level: 'info', write: (line) => lines.push(line) }).child(
      {
        runId: 'r1',
      },
    );
    log.debug('hidden');
    log.error('failed', { error: new RangeError('boom') });
    expect(lines).toHaveLength(1);
    const entry = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(entry).toMatchObject({ level: 'error', service: 'test', message: 'failed', runId: 'r1' });
    expect(entry.error).toMatchObject({ name: 'RangeError', message: 'boom' });
    expect((entry.error as { stack: string }).stack).toMatch(/^RangeError: boom\n\s+at /);
  });

  it('the function logger (Powertools) takes its level from POWERTOOLS_LOG_LEVEL and its service from POWERTOOLS_SERVICE_NAME', () => {
    const saved = { ...process.env };
    const written: string[] = [];
    const capture = (chunk: string | Uint8Array) => written.push(String(chunk)) > 0;
    const out = jest.spyOn(process.stdout, 'write').mockImplementation(capture);
    const err = jest.spyOn(process.stderr, 'write').mockImplementation(capture);
    try {
      delete process.env.LOG_LEVEL;
      process.env.POWERTOOLS_LOG_LEVEL = 'WARN';
      process.env.POWERTOOLS_SERVICE_NAME = 'batch-infer-plan';
      const log = createFunctionLogger();
      log.info('hidden');
      log.warn('shown');
    } finally {
      out.mockRestore();
      err.mockRestore();
      process.env = saved;
    }
    expect(written.map((line) => JSON.parse(line) as Record<string, unknown>)).toEqual([
      expect.objectContaining({ level: 'WARN', service: 'batch-infer-plan', message: 'shown' }),
    ]);
  });

  it("the engine's Logger over Powertools: fields and child fields on the line, errors formatted, reserved keys kept", () => {
    const written: string[] = [];
    const capture = (chunk: string | Uint8Array) => written.push(String(chunk)) > 0;
    const out = jest.spyOn(process.stdout, 'write').mockImplementation(capture);
    const err = jest.spyOn(process.stderr, 'write').mockImplementation(capture);
    try {
      const log = engineLogger(createFunctionLogger(), { pipeline: 'scores' }).child({ runId: 'r1' });
      log.debug('hidden');
      log.info('started run', { name: 'sched-1', message: 'a field named like a Powertools key' });
      log.error('failed', { error: new RangeError('boom') });
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
    const [info, error] = written.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(written).toHaveLength(2);
    expect(info).toMatchObject({
      level: 'INFO',
      message: 'started run',
      pipeline: 'scores',
      runId: 'r1',
      name: 'sched-1',
      _message: 'a field named like a Powertools key',
    });
    expect(error).toMatchObject({ level: 'ERROR', message: 'failed', runId: 'r1' });
    expect(error!.error).toMatchObject({ name: 'RangeError', message: 'boom' });
    expect((error!.error as { stack: string }).stack).toMatch(/^RangeError: boom\n\s+at /);
  });
});
