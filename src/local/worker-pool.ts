/**
 * Local stand-in for AWS Batch: runs a job (single, or an array of N children) in child processes of the worker
 * entry, at most `concurrency` at a time, with the environment Batch would give each child and Batch's retry
 * strategy (WORKER_RETRY). A process that ran a child successfully runs the next one it is given (a worker host,
 * worker-host.ts), so a run pays the process start, module loading and batch-size probe once per process, not once
 * per shard; any other outcome ends the process, and the next attempt gets a fresh one. Like Batch, a job fails when any child fails after its attempts. A child that dies by a
 * signal or exits with INTERRUPTED_EXIT_CODE (stopped by SIGTERM, checkpoint written) counts as interrupted, as a
 * Spot reclaim does in Batch, and is retried.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WORKER_ENV } from '../runs/tasks.js';
import { matchesRetryPattern, WORKER_RETRY } from '../runs/worker-retry.js';
import { INTERRUPTED_EXIT_CODE, WORKER_LOG_ENV } from '../worker/env.js';
import { WorkerHost } from './worker-host.js';

export interface JobRequest {
  readonly jobName: string;
  /** Array size; undefined for a single job (no AWS_BATCH_JOB_ARRAY_INDEX, like Batch). */
  readonly arraySize?: number;
  /** Container override environment. */
  readonly environment: Readonly<Record<string, string>>;
}

export interface ChildFailure {
  readonly index: number;
  readonly attempts: number;
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** What Batch would report as the status reason. */
  readonly statusReason: string;
  readonly logFile: string;
  /** The end of the child's log, to show with the failure. */
  readonly logTail: string;
}

export interface JobResult {
  readonly jobName: string;
  readonly children: number;
  readonly failed: readonly ChildFailure[];
}

/** Messages a worker sends over IPC (see src/worker/main.ts). */
export interface WorkerMessage {
  readonly type: 'progress' | 'done';
  readonly shardId: number;
  readonly records: number;
  readonly expected?: number;
}

export interface WorkerPoolOptions {
  /** Children running at once. */
  readonly concurrency: number;
  /** Directory for one log file per child attempt. */
  readonly logDir: string;
  /** Extra environment for every child (e.g. thread count, S3 endpoint). */
  readonly environment?: Readonly<Record<string, string>>;
  /** What to fork (a bundled worker: worker-bundle.ts). @default workerEntry() */
  readonly entry?: WorkerEntry;
  readonly onMessage?: (message: WorkerMessage, index: number) => void;
  /** Called when a child attempt has started, with its process id. */
  readonly onAttemptStart?: (info: { index: number; attempt: number; pid: number }) => void;
  /**
   * Called when one of a job's worker slots finds no child left to start: a core is free until the job ends (the
   * local run loads what finalizing needs then).
   */
  readonly onSlotFree?: () => void;
  /** Called as the job's last child starts its first attempt: no other child starts after it (retries aside). */
  readonly onLastChildStarted?: () => void;
  /** Called when a child attempt ends, for logging. */
  readonly onAttemptEnd?: (info: {
    index: number;
    attempt: number;
    code: number | null;
    signal: string | null;
  }) => void;
}

const LOG_TAIL_BYTES = 4096;

export class LocalWorkerPool {
  /** Every worker process started and not known to have ended. */
  private readonly hosts = new Set<WorkerHost>();
  /** Processes whose last task succeeded, waiting for the next (the most recent last). */
  private readonly idle: WorkerHost[] = [];
  /** Set by killAll: no further attempt is started, and killed children are not retried. */
  private stopping = false;

  constructor(private readonly options: WorkerPoolOptions) {
    mkdirSync(options.logDir, { recursive: true });
  }

  async runJob(request: JobRequest): Promise<JobResult> {
    const size = request.arraySize ?? 1;
    const failed: ChildFailure[] = [];
    let next = 0;
    const lane = async (): Promise<void> => {
      for (;;) {
        const index = next++;
        if (index >= size) {
          this.options.onSlotFree?.();
          return;
        }
        if (index === size - 1 && !this.stopping) this.options.onLastChildStarted?.();
        const failure = this.stopping ? this.cancelled(request, index) : await this.runChild(request, index);
        if (failure) failed.push(failure);
      }
    };
    await Promise.all(Array.from({ length: Math.min(size, Math.max(1, this.options.concurrency)) }, lane));
    failed.sort((a, b) => a.index - b.index);
    return { jobName: request.jobName, children: size, failed };
  }

  /**
   * Starts `count` worker processes now, idle, so the first children of a job find them booted: a local run calls it
   * before planning, which leaves a core idle most of its time, and each process's start (Node, the worker bundle,
   * ONNX Runtime's and DuckDB's native bindings: about 0.6 s on the 2-core benchmark machine) overlaps the plan
   * instead of following it. A process started here and never used is ended by `close`; it does not keep this
   * process alive meanwhile.
   */
  prestart(count: number): void {
    if (this.stopping) return;
    for (let i = this.idle.length; i < count; i++) this.idle.push(this.startHost().standBy());
  }

  /**
   * Kills every running child (used when a local run is interrupted). The pool stops for good: a killed child is not
   * retried (its death by signal would otherwise look like a Spot reclaim) and no further child starts.
   */
  killAll(signal: NodeJS.Signals = 'SIGTERM'): void {
    this.stopping = true;
    for (const host of this.hosts) host.kill(signal);
  }

  /**
   * Ends the worker processes waiting for a task (a run calls it when it ends) and resolves once they have exited.
   * Not required for the caller to exit (an idle process does not keep it alive, and ends when its parent does),
   * but it frees them at once, and their exit is waited for as a process per task was.
   */
  async close(): Promise<void> {
    const idle = this.idle.splice(0);
    for (const host of idle) this.hosts.delete(host);
    await Promise.all(idle.map((host) => host.close()));
  }

  private cancelled(request: JobRequest, index: number): ChildFailure {
    return {
      index,
      attempts: 0,
      exitCode: null,
      signal: null,
      statusReason: 'Job cancelled: the local run is stopping',
      logFile: path.join(this.options.logDir, `${request.jobName}-${index}-attempt1.log`),
      logTail: '',
    };
  }

  private async runChild(request: JobRequest, index: number): Promise<ChildFailure | undefined> {
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.spawnAttempt(request, index, attempt);
      this.options.onAttemptEnd?.({ index, attempt, code: outcome.code, signal: outcome.signal });
      if (outcome.code === 0) return undefined;
      // A worker stopped by SIGTERM exits with INTERRUPTED_EXIT_CODE after its checkpoint (src/worker/main.ts): like
      // a death by a signal, that is an attempt cut short from outside, which Batch reports as a host termination
      // (a Spot reclaim) and retries, and the retry resumes the shard.
      const interruptedBy =
        outcome.signal ??
        (outcome.code === INTERRUPTED_EXIT_CODE ? `SIGTERM (exit code ${outcome.code})` : null);
      const statusReason =
        interruptedBy !== null
          ? // What Batch reports when the instance under a job goes away (Spot reclaim): retried.
            `Host EC2 (local worker pid ${outcome.pid}) terminated by ${interruptedBy}.`
          : 'Essential container in task exited';
      // EXIT rules first, as Batch evaluates them in order: a deterministic failure is not retried.
      const exit = WORKER_RETRY.exitOn.some((rule) => rule.onExitCode === String(outcome.code));
      const retry =
        !exit &&
        WORKER_RETRY.retryOn.some(
          (rule) => 'onStatusReason' in rule && matchesRetryPattern(rule.onStatusReason, statusReason),
        );
      if (!retry || attempt >= WORKER_RETRY.attempts || this.stopping) {
        return {
          index,
          attempts: attempt,
          exitCode: outcome.code,
          signal: outcome.signal,
          statusReason,
          logFile: outcome.logFile,
          logTail: outcome.logTail,
        };
      }
    }
  }

  private async spawnAttempt(
    request: JobRequest,
    index: number,
    attempt: number,
  ): Promise<{ code: number | null; signal: string | null; pid: number; logFile: string; logTail: string }> {
    const logFile = path.join(this.options.logDir, `${request.jobName}-${index}-attempt${attempt}.log`);
    const env: Record<string, string | undefined> = {
      ...process.env,
      ...this.options.environment,
      ...request.environment,
      [WORKER_ENV.attempt]: String(attempt),
      // Where this attempt's output goes, for the failure record a worker writes (src/runs/failures.ts).
      [WORKER_LOG_ENV]: logFile,
    };
    if (request.arraySize !== undefined) env[WORKER_ENV.arrayIndex] = String(index);
    else delete env[WORKER_ENV.arrayIndex];
    const taskEnv = Object.fromEntries(
      Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined),
    );

    const host = this.idleHost() ?? this.startHost();
    this.options.onAttemptStart?.({ index, attempt, pid: host.pid });
    const outcome = await host.run(taskEnv, logFile, (message) => {
      if (isWorkerMessage(message)) this.options.onMessage?.(message, index);
    });
    if (!host.idle) this.hosts.delete(host);
    else if (this.stopping) void host.close();
    else this.idle.push(host);
    return outcome;
  }

  /** A host that finished its last task and still runs, taken out of the idle list. */
  private idleHost(): WorkerHost | undefined {
    for (;;) {
      const host = this.idle.pop();
      if (!host || host.idle) return host;
    }
  }

  /** A new worker process, with the pool's environment: each task brings its own (the process's is no task's). */
  private startHost(): WorkerHost {
    const env = { ...process.env, ...this.options.environment };
    const host = new WorkerHost(this.options.entry ?? workerEntry(), env, LOG_TAIL_BYTES);
    this.hosts.add(host);
    return host;
  }
}

function isWorkerMessage(value: unknown): value is WorkerMessage {
  if (typeof value !== 'object' || value === null) return false;
  const m = value as Record<string, unknown>;
  return (
    (m.type === 'progress' || m.type === 'done') &&
    typeof m.shardId === 'number' &&
    typeof m.records === 'number'
  );
}

/**
 * The worker entry to fork. From source (tests, `npm run demo`) it is the .ts file run through tsx's loader;
 * resolved from this module's location so the CLI works from any working directory.
 */
export interface WorkerEntry {
  readonly file: string;
  readonly execArgv: string[];
}

export function workerEntry(): WorkerEntry {
  const self = fileURLToPath(import.meta.url);
  const ext = path.extname(self);
  const file = path.join(path.dirname(self), '..', 'worker', `main${ext}`);
  // A larger young generation: the worker allocates a record object per input line, and with V8's default
  // semi-space most of its garbage-collection time went to scavenges (measured: about 10% faster per shard).
  const execArgv = [
    '--max-semi-space-size=64',
    ...(ext === '.ts' ? ['--import', import.meta.resolve('tsx')] : []),
  ];
  return { file, execArgv };
}
