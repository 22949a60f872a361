/**
 * The pool's side of a worker host (src/worker/host-protocol.ts): one forked worker process that runs tasks one at
 * a time. Each task's log (the process's stdout and stderr while it runs) goes to the task's own log file, ended at
 * the host's task-end line, so a log holds exactly one attempt as it does with a process per attempt.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { appendFileSync, createWriteStream, type WriteStream } from 'node:fs';
import {
  isTaskEndedMessage,
  taskEndLine,
  WORKER_HOST_ENV,
  type RunTaskMessage,
} from '../worker/host-protocol.js';

/** How a task ended: the host's answer, or the process's end when it died first. */
export interface TaskOutcome {
  readonly code: number | null;
  readonly signal: string | null;
  readonly pid: number;
  readonly logFile: string;
  readonly logTail: string;
}

interface RunningTask {
  readonly seq: number;
  readonly log: WriteStream;
  readonly logFile: string;
  tail: string;
  /** The host's `ended` answer, once received. */
  code?: number;
  /** Whether the task-end line has come through stdout. */
  logEnded: boolean;
  readonly onMessage: (message: unknown) => void;
  readonly resolve: (outcome: TaskOutcome) => void;
}

/** A line longer than this is not the task-end line: written out as it comes instead of held back. */
const MAX_HELD_BYTES = 64 * 1024;

export class WorkerHost {
  private readonly child: ChildProcess;
  private task: RunningTask | undefined;
  private seq = 0;
  /** stdout since its last line break: held until the line is complete, as it may be the task-end line. */
  private partial = '';
  private exited = false;
  /** Where output goes that arrives between tasks: the last task's log file. */
  private lastLogFile: string | undefined;

  constructor(
    entry: { readonly file: string; readonly execArgv: readonly string[] },
    env: Readonly<Record<string, string | undefined>>,
    private readonly tailBytes: number,
  ) {
    this.child = fork(entry.file, [], {
      execArgv: [...entry.execArgv],
      env: { ...env, [WORKER_HOST_ENV]: '1' },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    this.child.stdout?.on('data', (chunk: Buffer) => this.onStdout(chunk.toString('utf8')));
    this.child.stderr?.on('data', (chunk: Buffer) => this.write(chunk.toString('utf8')));
    this.child.on('message', (message) => {
      const task = this.task;
      if (!task) return;
      if (isTaskEndedMessage(message) && message.seq === task.seq) {
        task.code = message.code;
        this.settle();
      } else task.onMessage(message);
    });
    this.child.on('error', () => undefined);
    this.child.on('close', (code, signal) => {
      this.exited = true;
      if (this.partial) this.write(this.partial);
      this.partial = '';
      const task = this.task;
      if (!task) return;
      this.task = undefined;
      // The host died before it answered, or it answered with a failure and then ended: the process's status.
      const outcome = { code: task.code ?? code, signal: task.code !== undefined ? null : signal };
      task.log.end(() =>
        task.resolve({ ...outcome, pid: this.pid, logFile: task.logFile, logTail: task.tail }),
      );
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** Whether it can take a task: alive, connected and not running one. */
  get idle(): boolean {
    const ended = this.exited || this.child.exitCode !== null || this.child.signalCode !== null;
    return !ended && this.child.connected && this.task === undefined;
  }

  /**
   * Runs a task with `env` as the worker's whole environment; resolves when the task has ended and its log file is
   * closed. A task that succeeds leaves the host idle for the next; any other outcome ends the host.
   */
  run(
    env: Readonly<Record<string, string>>,
    logFile: string,
    onMessage: (message: unknown) => void,
  ): Promise<TaskOutcome> {
    if (!this.idle) throw new Error(`worker host ${this.pid} cannot take a task now`);
    // Referenced while it works: the run waits for it. Idle, it must not keep the CLI alive (settle).
    this.reference(true);
    return new Promise((resolve) => {
      this.seq += 1;
      this.lastLogFile = logFile;
      this.task = {
        seq: this.seq,
        log: createWriteStream(logFile),
        logFile,
        tail: '',
        logEnded: false,
        onMessage,
        resolve,
      };
      const message: RunTaskMessage = { type: 'run', seq: this.seq, env };
      this.child.send(message);
    });
  }

  /**
   * Ends the host: its channel closes, and an idle host exits 0 (a running task would stop as on SIGTERM). Resolves
   * when the process has exited and been reaped, so its CPU time counts as this process's children's.
   */
  close(): Promise<void> {
    const exited =
      this.exited || this.child.exitCode !== null || this.child.signalCode !== null
        ? Promise.resolve()
        : new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    // Referenced again: whoever awaits the exit must be kept alive until it comes.
    this.reference(true);
    if (this.child.connected) this.child.disconnect();
    return exited;
  }

  /** Waits for its first task without keeping this process alive (an idle host's state); returns itself. */
  standBy(): this {
    this.reference(false);
    return this;
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** Whether the process, its IPC channel and its output pipes keep this process's event loop alive. */
  private reference(on: boolean): void {
    for (const handle of [this.child, this.child.channel, this.child.stdout, this.child.stderr]) {
      const h = handle as { ref?: () => void; unref?: () => void } | null | undefined;
      if (on) h?.ref?.();
      else h?.unref?.();
    }
  }

  private onStdout(text: string): void {
    const all = this.partial + text;
    const lastBreak = all.lastIndexOf('\n');
    this.partial = all.slice(lastBreak + 1);
    let lines = lastBreak >= 0 ? all.slice(0, lastBreak + 1) : '';
    const task = this.task;
    if (task && !task.logEnded) {
      const end = `${taskEndLine(task.seq)}\n`;
      const at = lines.indexOf(end);
      if (at >= 0) {
        this.write(lines.slice(0, at));
        lines = lines.slice(at + end.length);
        task.logEnded = true;
        this.settle();
      }
    }
    if (lines) this.write(lines);
    if (this.partial.length > MAX_HELD_BYTES) {
      this.write(this.partial);
      this.partial = '';
    }
  }

  /** Output to the running task's log, or between tasks to the last one's. */
  private write(text: string): void {
    if (!text) return;
    const task = this.task;
    if (task && !task.logEnded) {
      task.log.write(text);
      task.tail = (task.tail + text).slice(-this.tailBytes);
    } else if (this.lastLogFile) appendFileSync(this.lastLogFile, text);
  }

  /** A succeeded task is over once the answer and its log's end have both come. */
  private settle(): void {
    const task = this.task;
    if (!task || task.code !== 0 || !task.logEnded) return;
    this.task = undefined;
    // Idle: nothing the run waits for.
    this.reference(false);
    task.log.end(() =>
      task.resolve({ code: 0, signal: null, pid: this.pid, logFile: task.logFile, logTail: task.tail }),
    );
  }
}
