/**
 * Fault injection into the worker processes of a local run, per task: a module preloaded into every worker process
 * (NODE_OPTIONS `--import`) that makes the tasks whose environment matches a condition fail as a lost host does
 * (a line on stderr, exit 1), or never start (held until the process is killed).
 *
 * A worker process of the local pool runs several tasks, each with its own environment sent over IPC
 * (src/worker/host-protocol.ts), so the process's environment at start names no task. The module looks at each
 * task's environment as its `run` message is emitted, before the worker's own listener sees it, without adding a
 * 'message' listener of its own (Node holds IPC messages until the first listener, which would then take the
 * worker's first task away from it). A worker running a single task (as in AWS Batch) is judged by its environment
 * at start.
 */
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { WORKER_HOST_ENV } from '../../src/worker/host-protocol.js';

export interface TaskFault {
  /** A JavaScript expression over `env`, a task's environment, e.g. `env.BATCH_INFER_ROUND === '0'`. */
  readonly when: string;
  /** `fail`: exit 1 with `message` on stderr; `hold`: the task never starts, the process waits to be killed. */
  readonly action: 'fail' | 'hold';
  readonly message?: string;
}

/** Writes the module to `file`; returns NODE_OPTIONS that preload it (after any NODE_OPTIONS already set). */
export function taskFaultOptions(file: string, fault: TaskFault): string {
  const act =
    fault.action === 'fail'
      ? `() => { process.stderr.write(${JSON.stringify(`${fault.message ?? 'injected failure'}\n`)}); process.exit(1); }`
      : '() => { setInterval(() => {}, 1 << 30); }';
  writeFileSync(
    file,
    `const matches = (env) => Boolean(${fault.when});\n` +
      `const act = ${act};\n` +
      `if (process.env.${WORKER_HOST_ENV} === '1') {\n` +
      `  const emit = process.emit;\n` +
      `  process.emit = function (name, message, ...rest) {\n` +
      `    if (name === 'message' && message && message.type === 'run' && matches(message.env)) {\n` +
      `      act();\n` +
      `      return true;\n` +
      `    }\n` +
      `    return emit.call(this, name, message, ...rest);\n` +
      `  };\n` +
      `} else if (matches(process.env)) {\n` +
      `  act();\n` +
      `  await new Promise(() => {});\n` +
      `}\n`,
  );
  return `${process.env.NODE_OPTIONS ?? ''} --import=${pathToFileURL(file).href}`.trim();
}
