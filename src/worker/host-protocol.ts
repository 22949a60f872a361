/**
 * How the local worker pool reuses a worker process for several tasks of a run (docs/adr/0019, "worker hosts").
 * In AWS Batch every task is a container of its own and none of this applies: the worker runs the task its
 * environment names and exits.
 *
 * Forked with WORKER_HOST_ENV=1, the worker waits for `run` messages over its IPC channel, one task at a time. For
 * each it takes the message's environment as its own (exactly: variables not in it are removed), runs the task, and
 * answers with `ended` and the exit status the task would have had as a process. Before that answer it writes
 * TASK_END_LINE to stdout, so the pool knows every log line of the task has reached it (stdout and the IPC channel
 * are separate pipes, read in no guaranteed order) and can close the task's log file.
 *
 * A task that does not end with status 0 ends the process as well (with that status): what a failure may leave
 * behind (threads, handles, memory) never reaches the next task. SIGTERM, and the IPC channel closing while a task
 * runs, stop the process as they stop a single-task worker (checkpoint, exit 143); the channel closing while the
 * process waits for a task ends it with 0.
 */

/** Set to "1" by the local pool: the process serves tasks sent over IPC instead of the one in its environment. */
export const WORKER_HOST_ENV = 'BATCH_INFER_WORKER_HOST';

/** The pool asks the host to run a task with this environment. */
export interface RunTaskMessage {
  readonly type: 'run';
  /** Sequence number of the task in this host, echoed in TASK_END_LINE and in the `ended` answer. */
  readonly seq: number;
  readonly env: Readonly<Record<string, string>>;
}

/** The host's answer once the task is over and its log is written. */
export interface TaskEndedMessage {
  readonly type: 'ended';
  readonly seq: number;
  /** The exit status the task would have had as a process of its own. */
  readonly code: number;
}

/** The line the host writes to stdout after a task's last log line (and before `ended`). */
export function taskEndLine(seq: number): string {
  return `{"batchInferHost":"task-end","seq":${seq}}`;
}

export function isRunTaskMessage(value: unknown): value is RunTaskMessage {
  if (typeof value !== 'object' || value === null) return false;
  const m = value as Record<string, unknown>;
  if (m.type !== 'run' || typeof m.seq !== 'number' || typeof m.env !== 'object' || m.env === null)
    return false;
  return Object.values(m.env).every((v) => typeof v === 'string');
}

export function isTaskEndedMessage(value: unknown): value is TaskEndedMessage {
  if (typeof value !== 'object' || value === null) return false;
  const m = value as Record<string, unknown>;
  return m.type === 'ended' && typeof m.seq === 'number' && typeof m.code === 'number';
}
