/**
 * The `triggers` of a deployed pipeline: what starts a run without anyone typing a command. The job spec schema
 * accepts `triggers` as a list of records (local runs ignore them); this module defines and validates their exact
 * shape, at `cdk synth` (lib/pipelines.ts) and again where the trigger functions read them.
 *
 * ```yaml
 * triggers:
 *   - s3: { prefix: incoming/, suffix: .csv }        # one run per object created under the prefix
 *   - s3: { prefix: bulk/, window: 5m }               # one run per 5-minute window over the objects created in it
 *   - schedule:                                       # EventBridge Scheduler
 *       cron: "0 2 * * ? *"                           # or rate: "1 day"
 *       timezone: Europe/Paris                        # default UTC
 *       input: "s3://bucket/daily/dt={date}/"         # {date}, {time}, ... of the scheduled time
 *       offset: -1d                                   # shift the scheduled time first (yesterday's partition)
 *   - volume: { prefix: landing/, minBytes: 10GiB }   # one run over the prefix once 10 GiB arrived since the last
 * ```
 *
 * Prefixes are object key prefixes in the bucket of `input.uri` (they default to the key prefix of `input.uri`).
 */
import { z } from 'zod';
import type { SpecIssue } from './errors.js';
import { parseByteSize } from './schema.js';

/** The trigger kinds, each written as the single key of a `triggers` entry. */
export const TRIGGER_KINDS = ['s3', 'schedule', 'volume'] as const;
export type TriggerKind = (typeof TRIGGER_KINDS)[number];

/**
 * Placeholders a schedule's `input` template may use, filled from the scheduled time (after `offset`, in the
 * schedule's time zone): `{date}` 2024-01-31, `{time}` 020000, `{year}` 2024, `{month}` 01, `{day}` 31, `{hour}` 02,
 * `{minute}` 00, `{timestamp}` 20240131T020000 (what run ids of scheduled runs contain).
 */
export const SCHEDULE_PLACEHOLDERS = [
  'date',
  'time',
  'year',
  'month',
  'day',
  'hour',
  'minute',
  'timestamp',
] as const;
export type SchedulePlaceholder = (typeof SCHEDULE_PLACEHOLDERS)[number];

/** `-1d`, `+6h`, `-30m`: a whole number of days, hours or minutes, signed. */
const OFFSET = /^([+-]?)(\d{1,4})([dhm])$/;

/** AWS object keys are at most 1024 bytes; a prefix or suffix longer than that can never match. */
const MAX_KEY_PART = 1024;

/** EventBridge Scheduler's smallest rate is one minute; anything below would be rejected at deploy time. */
const RATE = /^(\d+) (minute|minutes|hour|hours|day|days)$/;

/**
 * A cron expression as EventBridge Scheduler takes it: six fields (minutes hours day-of-month month day-of-week
 * year), one of day-of-month and day-of-week being `?`. Only the shape is checked here; the service checks values.
 */
function cronProblem(expression: string): string | undefined {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 6) {
    return `has ${fields.length} field(s); EventBridge Scheduler takes six: minutes hours day-of-month month day-of-week year, e.g. "0 2 * * ? *"`;
  }
  const [, , dayOfMonth, , dayOfWeek] = fields;
  if ((dayOfMonth === '?') === (dayOfWeek === '?')) {
    return 'must have "?" in exactly one of day-of-month (3rd field) and day-of-week (5th field), e.g. "0 2 * * ? *"';
  }
  return undefined;
}

const keyPart = (what: string) =>
  z
    .string()
    .max(MAX_KEY_PART, `must be at most ${MAX_KEY_PART} characters (the longest S3 key)`)
    .refine((v) => !v.startsWith('/') && !v.startsWith('s3://'), {
      message: `must be an object key ${what} inside the bucket of input.uri, without a leading "/" or "s3://"`,
    });

const byteSize = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const bytes = parseByteSize(value);
  if (bytes === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: 'must be a positive size such as 1073741824, "512MiB" or "10GiB"',
    });
    return z.NEVER;
  }
  return bytes;
});

/** A window's length: `30s`, `5m`, `1h`. */
const WINDOW = /^(\d{1,5})(s|m|h)$/;
export const MIN_WINDOW_SECONDS = 10;
export const MAX_WINDOW_SECONDS = 24 * 3600;
export const MAX_WINDOW_OBJECTS = 100_000;
export const DEFAULT_WINDOW_OBJECTS = 1000;

/** `5m` -> 300; undefined when it is not a window length. */
export function windowSeconds(text: string): number | undefined {
  const match = WINDOW.exec(text);
  if (!match) return undefined;
  return Number(match[1]) * { s: 1, m: 60, h: 3600 }[match[2] as 's' | 'm' | 'h'];
}

export const s3TriggerSchema = z
  .strictObject({
    /** Object key prefix. @default the key prefix of input.uri */
    prefix: keyPart('prefix').optional(),
    /** Object key suffix, e.g. `.csv`. @default any key */
    suffix: z
      .string()
      .min(1, 'must not be empty; leave suffix out to match any key')
      .max(MAX_KEY_PART)
      .optional(),
    /**
     * Batch uploads: the objects created within one window (`30s`, `5m`, `1h`; aligned slices of the UTC clock)
     * become one run over exactly those objects. @default - one run per object
     */
    window: z
      .string()
      .refine(
        (w) => {
          const seconds = windowSeconds(w);
          return seconds !== undefined && seconds >= MIN_WINDOW_SECONDS && seconds <= MAX_WINDOW_SECONDS;
        },
        { message: `must be a duration from ${MIN_WINDOW_SECONDS}s to 24h, such as "30s", "5m" or "1h"` },
      )
      .optional(),
    /** With `window`: at most this many objects per run (a window with more becomes several runs). @default 1000 */
    maxObjects: z
      .number()
      .int()
      .min(1)
      .max(MAX_WINDOW_OBJECTS, `must be at most ${MAX_WINDOW_OBJECTS} objects per run`)
      .optional(),
    /** With `window`: at most this many bytes per run (`10GiB`). @default - no limit */
    maxBytes: byteSize.optional(),
  })
  .superRefine((trigger, ctx) => {
    for (const field of ['maxObjects', 'maxBytes'] as const) {
      if (trigger[field] !== undefined && trigger.window === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [field],
          message: 'applies to a batching trigger only: set window too (e.g. window: 5m), or remove it',
        });
      }
    }
  });
export type S3Trigger = z.output<typeof s3TriggerSchema>;

export const scheduleTriggerSchema = z
  .strictObject({
    /** EventBridge Scheduler cron fields, `0 2 * * ? *` (or the whole `cron(...)` expression). */
    cron: z.string().optional(),
    /** A rate, `1 day` (or the whole `rate(...)` expression). */
    rate: z.string().optional(),
    /** IANA time zone the cron expression and the input placeholders are read in. @default UTC */
    timezone: z
      .string()
      .refine(isTimeZone, { message: 'must be an IANA time zone such as UTC or Europe/Paris' })
      .default('UTC'),
    /** The run's input URI, a template over the scheduled time. @default input.uri of the spec */
    input: z.string().optional(),
    /** Shifts the scheduled time before the placeholders are filled: `-1d` for yesterday's partition. */
    offset: z
      .string()
      .regex(OFFSET, 'must be a signed whole number of days, hours or minutes, e.g. -1d, -6h, +30m')
      .optional(),
  })
  .superRefine((schedule, ctx) => {
    if ((schedule.cron === undefined) === (schedule.rate === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'must set exactly one of cron and rate' });
      return;
    }
    if (schedule.cron !== undefined) {
      const problem = cronProblem(unwrap(schedule.cron, 'cron'));
      if (problem) ctx.addIssue({ code: 'custom', path: ['cron'], message: problem });
    }
    if (schedule.rate !== undefined && !RATE.test(unwrap(schedule.rate, 'rate'))) {
      ctx.addIssue({
        code: 'custom',
        path: ['rate'],
        message: 'must be "<n> minute(s)|hour(s)|day(s)", e.g. "1 day" or "15 minutes"',
      });
    }
    if (schedule.input !== undefined) {
      const problem = templateProblem(schedule.input);
      if (problem) ctx.addIssue({ code: 'custom', path: ['input'], message: problem });
    }
  });
export type ScheduleTrigger = z.output<typeof scheduleTriggerSchema>;

export const volumeTriggerSchema = z.strictObject({
  /** Object key prefix whose new data is counted, and which the run reads. @default the key prefix of input.uri */
  prefix: keyPart('prefix').optional(),
  /** Start a run once this much new data arrived under the prefix since the last run. */
  minBytes: byteSize,
});
export type VolumeTrigger = z.output<typeof volumeTriggerSchema>;

export type Trigger =
  | { readonly kind: 's3'; readonly s3: S3Trigger }
  | { readonly kind: 'schedule'; readonly schedule: ScheduleTrigger }
  | { readonly kind: 'volume'; readonly volume: VolumeTrigger };

/** `cron(x)` -> `x`, `rate(x)` -> `x`; a bare expression is returned as it is. */
export function unwrap(expression: string, kind: 'cron' | 'rate'): string {
  const match = new RegExp(`^\\s*${kind}\\((.*)\\)\\s*$`).exec(expression);
  return (match?.[1] ?? expression).trim();
}

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** Why a schedule's input template is unusable, or undefined. */
function templateProblem(template: string): string | undefined {
  if (!template.startsWith('s3://')) {
    return 'must be an s3:// URI template, e.g. "s3://bucket/daily/dt={date}/"';
  }
  for (const match of template.matchAll(/\{([^}]*)\}/g)) {
    const name = match[1] ?? '';
    if (!(SCHEDULE_PLACEHOLDERS as readonly string[]).includes(name)) {
      return `uses the unknown placeholder {${name}}; the placeholders are ${SCHEDULE_PLACEHOLDERS.map((p) => `{${p}}`).join(', ')}`;
    }
  }
  return undefined;
}

const SCHEMAS = {
  s3: s3TriggerSchema,
  schedule: scheduleTriggerSchema,
  volume: volumeTriggerSchema,
} as const;

function render(value: unknown): string {
  if (value === undefined) return 'undefined';
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let current = raw;
  for (const key of path) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

/**
 * Validates the `triggers` list of a spec. Returns the parsed triggers and every problem found, each naming the
 * field (`triggers[1].schedule.cron`), the value and the fix, like the spec's own errors.
 */
export function parseTriggers(raw: unknown): { triggers: Trigger[]; issues: SpecIssue[] } {
  const triggers: Trigger[] = [];
  const issues: SpecIssue[] = [];
  if (raw === undefined) return { triggers, issues };
  if (!Array.isArray(raw)) {
    issues.push({ path: 'triggers', value: render(raw), message: 'must be a list of triggers' });
    return { triggers, issues };
  }
  raw.forEach((entry: unknown, index) => {
    const at = `triggers[${index}]`;
    const keys = typeof entry === 'object' && entry !== null ? Object.keys(entry) : [];
    const [kind] = keys;
    if (keys.length !== 1 || !(TRIGGER_KINDS as readonly string[]).includes(kind ?? '')) {
      issues.push({
        path: at,
        value: render(entry),
        message: `must have exactly one key, the trigger kind: ${TRIGGER_KINDS.join(', ')}`,
      });
      return;
    }
    const triggerKind = kind as TriggerKind;
    const body = (entry as Record<string, unknown>)[triggerKind];
    const parsed = SCHEMAS[triggerKind].safeParse(body ?? {});
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const field = [at, triggerKind, ...issue.path.map(String)]
          .join('.')
          .replace(/\.(\d+)(?=\.|$)/g, '[$1]');
        const message =
          issue.code === 'unrecognized_keys'
            ? `has unknown field(s) ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}; the fields are ${Object.keys(
                SCHEMAS[triggerKind].shape ?? {},
              ).join(', ')}`
            : issue.message;
        issues.push({ path: field, value: render(valueAt(body, issue.path)), message });
      }
      return;
    }
    triggers.push({ kind: triggerKind, [triggerKind]: parsed.data } as Trigger);
  });
  return { triggers, issues };
}

/** The schedule expression EventBridge Scheduler takes: `cron(...)` or `rate(...)`. */
export function scheduleExpression(schedule: ScheduleTrigger): string {
  return schedule.cron !== undefined
    ? `cron(${unwrap(schedule.cron, 'cron')})`
    : `rate(${unwrap(schedule.rate ?? '', 'rate')})`;
}

/** An offset in milliseconds: `-1d` -> -86400000. */
export function offsetMillis(offset: string | undefined): number {
  if (offset === undefined) return 0;
  const match = OFFSET.exec(offset);
  if (!match) throw new Error(`Invalid schedule offset "${offset}"`);
  const unit = { d: 86_400_000, h: 3_600_000, m: 60_000 }[match[3] as 'd' | 'h' | 'm'];
  return (match[1] === '-' ? -1 : 1) * Number(match[2]) * unit;
}

/** The calendar fields of an instant in a time zone. */
function fieldsIn(
  instant: Date,
  timeZone: string,
): Record<'year' | 'month' | 'day' | 'hour' | 'minute' | 'second', string> {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(instant);
  const get = (type: Intl.DateTimeFormatPartTypes): string =>
    parts.find((p) => p.type === type)?.value ?? '00';
  return {
    year: get('year'),
    month: get('month'),
    day: get('day'),
    hour: get('hour'),
    minute: get('minute'),
    second: get('second'),
  };
}

/** The placeholder values of a scheduled time, after the offset, in the time zone. */
export function schedulePlaceholders(
  scheduledTime: Date,
  options: { readonly timezone?: string; readonly offset?: string } = {},
): Record<SchedulePlaceholder, string> {
  const shifted = new Date(scheduledTime.getTime() + offsetMillis(options.offset));
  const f = fieldsIn(shifted, options.timezone ?? 'UTC');
  const time = `${f.hour}${f.minute}${f.second}`;
  const date = `${f.year}-${f.month}-${f.day}`;
  return {
    date,
    time,
    year: f.year,
    month: f.month,
    day: f.day,
    hour: f.hour,
    minute: f.minute,
    timestamp: `${f.year}${f.month}${f.day}T${time}`,
  };
}

/** Fills a schedule input template: `s3://b/dt={date}/` -> `s3://b/dt=2024-01-31/`. */
export function renderScheduleInput(
  template: string,
  values: Readonly<Record<SchedulePlaceholder, string>>,
): string {
  return template.replace(/\{([^}]*)\}/g, (whole, name: string) =>
    (SCHEDULE_PLACEHOLDERS as readonly string[]).includes(name) ? values[name as SchedulePlaceholder] : whole,
  );
}
