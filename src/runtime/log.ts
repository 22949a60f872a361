/**
 * One structured logger for the worker, the Lambdas, the triggers and the local orchestrator: one JSON object per
 * line with time, level, message and fields, which CloudWatch Logs Insights parses without configuration. Errors,
 * wherever they sit in the fields, keep their name, message and stack (JSON.stringify would drop them).
 *
 * The level comes from the options, else `LOG_LEVEL`, else `POWERTOOLS_LOG_LEVEL` (the variable Powertools for AWS
 * Lambda reads, so a function configured for it needs no change), else info. Lines go to stderr by default, so a
 * CLI's stdout stays free for results; Lambda and Batch send both streams to CloudWatch.
 */
import { boundText, MAX_LOG_STRING_CHARS } from './bounded-text.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export type LogFields = Readonly<Record<string, unknown>>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line (e.g. the run id of the current invocation). */
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  /** @default LOG_LEVEL, else POWERTOOLS_LOG_LEVEL, else 'info' */
  readonly level?: LogLevel;
  /** Where lines go (tests capture them). @default a line on stderr */
  readonly write?: (line: string) => void;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function createLogger(base: LogFields = {}, options: LoggerOptions = {}): Logger {
  const level =
    options.level ??
    parseLevel(process.env.LOG_LEVEL) ??
    parseLevel(process.env.POWERTOOLS_LOG_LEVEL) ??
    'info';
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const min = ORDER[level];
  const emit = (at: LogLevel, message: string, fields?: LogFields): void => {
    if (ORDER[at] < min) return;
    write(
      JSON.stringify({ time: new Date().toISOString(), level: at, message, ...base, ...fields }, replacer),
    );
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger({ ...base, ...fields }, { level, write }),
  };
}

/** A log level named in any case (`INFO`, `info`); undefined for anything else. */
export function parseLevel(value: string | undefined): LogLevel | undefined {
  const v = value?.toLowerCase();
  return v === 'debug' || v === 'info' || v === 'warn' || v === 'error' ? v : undefined;
}

function replacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) {
    return { name: value.name, message: value.message, stack: value.stack && boundText(value.stack) };
  }
  // Messages can carry input data (a header, a line): a log line stays bounded whatever the input holds.
  if (typeof value === 'string') return boundText(value, MAX_LOG_STRING_CHARS);
  return value;
}
