/**
 * Where a command writes: results on stdout, progress and diagnostics on stderr. Colour only on a terminal, and
 * never when NO_COLOR is set (https://no-color.org) or TERM is `dumb`.
 */

export interface OutputStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

export interface CliIo {
  readonly stdout: OutputStream;
  readonly stderr: OutputStream;
  readonly env: NodeJS.ProcessEnv;
  /** Working directory that relative paths resolve against. */
  readonly cwd: string;
}

export function processIo(): CliIo {
  return { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() };
}

export function colorEnabled(stream: OutputStream, env: NodeJS.ProcessEnv): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.TERM === 'dumb') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0') return true;
  return Boolean(stream.isTTY);
}

const CODES = { red: 31, green: 32, yellow: 33, dim: 2, bold: 1 } as const;
export type Style = keyof typeof CODES;

/** A painter for one stream: identity when colour is off. */
export function painter(
  stream: OutputStream,
  env: NodeJS.ProcessEnv,
): (style: Style, text: string) => string {
  if (!colorEnabled(stream, env)) return (_style, text) => text;
  return (style, text) => `\x1b[${CODES[style]}m${text}\x1b[0m`;
}

/** The colour of a run status. */
export function statusStyle(status: string): Style {
  if (status === 'SUCCEEDED') return 'green';
  if (status === 'RUNNING' || status === 'PLANNING' || status === 'FINALIZING') return 'yellow';
  if (status === 'CANCELLED' || status === 'ABORTED') return 'dim';
  return 'red';
}

/** Writes exactly one JSON object and a newline: what `--json` promises. */
export function writeJson(stream: OutputStream, value: unknown): void {
  stream.write(`${JSON.stringify(value)}\n`);
}
