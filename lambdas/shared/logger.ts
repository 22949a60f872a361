/**
 * A tiny structured logger: one JSON object per line on stdout, which CloudWatch Logs Insights parses without
 * configuration. It stands in for `@aws-lambda-powertools/logger` (not a dependency) and reads the same
 * `POWERTOOLS_SERVICE_NAME` and `POWERTOOLS_LOG_LEVEL` variables, so switching later changes no configuration.
 */

export type LogLevel = 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';

const LEVELS: Readonly<Record<LogLevel, number>> = { DEBUG: 10, INFO: 20, WARN: 30, ERROR: 40 };

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
  readonly service?: string;
  readonly level?: LogLevel;
  /** Where lines go; tests capture them. */
  readonly write?: (line: string) => void;
}

function isLogLevel(value: string): value is LogLevel {
  return value in LEVELS;
}

/** Errors do not survive JSON.stringify (their fields are not enumerable): keep what helps debugging. */
function serialize(value: unknown): unknown {
  if (value instanceof Error) {
    return { name: value.name, message: value.message, stack: value.stack };
  }
  return value;
}

export function createLogger(options: LoggerOptions = {}, base: LogFields = {}): Logger {
  const service = options.service ?? process.env.POWERTOOLS_SERVICE_NAME ?? 'batch-infer';
  const envLevel = (process.env.POWERTOOLS_LOG_LEVEL ?? '').toUpperCase();
  const level = options.level ?? (isLogLevel(envLevel) ? envLevel : 'INFO');
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));

  const log = (at: LogLevel, message: string, fields: LogFields = {}): void => {
    if (LEVELS[at] < LEVELS[level]) return;
    const entry: Record<string, unknown> = {
      level: at,
      timestamp: new Date().toISOString(),
      service,
      message,
    };
    for (const [key, value] of Object.entries({ ...base, ...fields })) entry[key] = serialize(value);
    write(JSON.stringify(entry));
  };

  return {
    debug: (message, fields) => log('DEBUG', message, fields),
    info: (message, fields) => log('INFO', message, fields),
    warn: (message, fields) => log('WARN', message, fields),
    error: (message, fields) => log('ERROR', message, fields),
    child: (fields) => createLogger({ service, level, write }, { ...base, ...fields }),
  };
}
