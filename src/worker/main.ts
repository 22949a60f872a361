/**
 * Worker process entry: the container's command in AWS Batch, and the child process of the local worker pool.
 * Reads the environment Batch provides, runs one shard, exits 0 on success and non-zero on failure so Batch's
 * retry strategy and the workflow's retry rounds can act.
 */
import os from 'node:os';
import { z } from 'zod';
import { WORKER_ENV } from '../runs/tasks.js';
import { createLogger } from '../runtime/log.js';
import { createObjectStore } from '../storage/index.js';
import { runWorkerTask, type ShardProgress } from './run-shard.js';

const envSchema = z.object({
  [WORKER_ENV.runUri]: z.string().min(1, 'must be the run URI (<output.uri>/_runs/<runId>/)'),
  [WORKER_ENV.round]: z.coerce.number().int().nonnegative().default(0),
  [WORKER_ENV.arrayIndex]: z.coerce.number().int().nonnegative().default(0),
  [WORKER_ENV.attempt]: z.coerce.number().int().positive().default(1),
  [WORKER_ENV.executionProviders]: z
    .string()
    .default('cuda,cpu')
    .transform((s) => s.split(',').map((p) => p.trim()))
    .pipe(z.array(z.enum(['cuda', 'cpu']))),
  [WORKER_ENV.threads]: z.coerce.number().int().positive().optional(),
});

async function main(): Promise<number> {
  const parsed = envSchema.safeParse(process.env);
  const log = createLogger({ component: 'worker' });
  if (!parsed.success) {
    log.error('invalid worker environment', {
      issues: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
    });
    return 2;
  }
  const env = parsed.data;
  const task = {
    runUri: env[WORKER_ENV.runUri],
    round: env[WORKER_ENV.round],
    arrayIndex: env[WORKER_ENV.arrayIndex],
    attempt: env[WORKER_ENV.attempt],
  };
  const taskLog = log.child({ round: task.round, arrayIndex: task.arrayIndex, attempt: task.attempt });
  // Progress goes to the local orchestrator over IPC when there is one (in Batch there is none).
  const send = process.send?.bind(process);
  let lastSent = 0;
  const onProgress = send
    ? (p: ShardProgress): void => {
        const now = Date.now();
        if (now - lastSent < 250) return;
        lastSent = now;
        send({ type: 'progress', ...p });
      }
    : undefined;
  try {
    const marker = await runWorkerTask(task, {
      store: createObjectStore(),
      log: taskLog,
      providers: env[WORKER_ENV.executionProviders],
      threads: env[WORKER_ENV.threads] ?? Math.max(1, os.availableParallelism()),
      onProgress,
    });
    send?.({ type: 'done', shardId: marker.shardId, records: marker.records });
    return 0;
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    taskLog.error('shard failed', { error: e.name, reason: e.message });
    return 1;
  }
}

process.exitCode = await main();
