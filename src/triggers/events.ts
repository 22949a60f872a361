/**
 * The events the trigger functions receive. The stack builds them (an EventBridge rule's input transformer, an
 * EventBridge Scheduler target's input) with the static part of a pipeline (its name, state machine and spec) and
 * the dynamic part of the event (the S3 object, the scheduled time), so the functions need no configuration of their
 * own and one function serves every pipeline.
 *
 * The field names are shared with lib/constructs/pipeline-triggers.ts through these schemas' keys.
 */
import { z } from 'zod';

/**
 * The `detail` of an S3 "Object Created" event delivered by EventBridge (not the URL-encoded key of classic S3
 * notifications). Not strict: S3 adds fields (`request-id`, `reason`, ...).
 */
export const s3ObjectDetailSchema = z.object({
  bucket: z.object({ name: z.string().min(1) }),
  object: z.object({
    key: z.string().min(1),
    size: z.coerce.number().int().nonnegative().optional(),
    etag: z.string().min(1),
    /** Only for versioned buckets. */
    'version-id': z.string().nullish(),
    sequencer: z.string().optional(),
  }),
});
export type S3ObjectDetail = z.infer<typeof s3ObjectDetailSchema>;

/** What every trigger event carries about its pipeline. */
const pipelineFields = {
  /** The pipeline (the job spec's name). */
  pipeline: z.string().min(1),
  /** The pipeline's state machine. */
  stateMachineArn: z.string().regex(/^arn:[a-z-]+:states:[a-z0-9-]+:\d{12}:stateMachine:[A-Za-z0-9_-]+$/),
  /** The normalized job spec, validated at synth: the run's execution input. */
  spec: z.record(z.string(), z.unknown()),
};

/**
 * A batching S3 trigger's settings (src/triggers/window.ts): the objects of one window become one run. Absent: one
 * run per object.
 */
export const s3BatchSettingsSchema = z.strictObject({
  /** Stable id of the trigger (pipeline, prefix, suffix, window): part of the state keys and run names. */
  triggerId: z.string().regex(/^[a-f0-9]{12}$/),
  /** The window's length: uploads in the same aligned slice of the clock are one run. */
  windowSeconds: z.number().int().positive(),
  /** Waited after the window's end before collecting it: longer than the trigger function's timeout. */
  settleSeconds: z.number().int().nonnegative(),
  /** At most this many objects per run; a window with more becomes several runs. */
  maxObjects: z.number().int().positive(),
  /** At most this many bytes per run (an object larger than that is a run of its own). */
  maxBytes: z.number().int().positive().optional(),
  /** The state machine that waits for the window's end and then calls the collector. */
  timerStateMachineArn: z
    .string()
    .regex(/^arn:[a-z-]+:states:[a-z0-9-]+:\d{12}:stateMachine:[A-Za-z0-9_-]+$/),
});
export type S3BatchSettings = z.infer<typeof s3BatchSettingsSchema>;

export const s3TriggerEventSchema = z.strictObject({
  trigger: z.literal('s3'),
  ...pipelineFields,
  detail: s3ObjectDetailSchema,
  batch: s3BatchSettingsSchema.optional(),
});
export type S3TriggerEvent = z.infer<typeof s3TriggerEventSchema>;

export const scheduleTriggerEventSchema = z.strictObject({
  trigger: z.literal('schedule'),
  ...pipelineFields,
  /** Stable id of the schedule (see scheduleId): part of the execution name. */
  scheduleId: z.string().regex(/^[A-Za-z0-9]{1,16}$/),
  /** `<aws.scheduler.scheduled-time>`: when the schedule was due, ISO 8601. */
  scheduledTime: z.iso.datetime({ offset: true }),
  /** The input URI template; absent: the spec's input.uri. */
  input: z.string().optional(),
  timezone: z.string().default('UTC'),
  offset: z.string().optional(),
});
export type ScheduleTriggerEvent = z.infer<typeof scheduleTriggerEventSchema>;

/** What the trigger function (s3 and schedule) accepts. */
export const triggerEventSchema = z.discriminatedUnion('trigger', [
  s3TriggerEventSchema,
  scheduleTriggerEventSchema,
]);
export type TriggerEvent = z.infer<typeof triggerEventSchema>;

export const volumeTriggerEventSchema = z.strictObject({
  trigger: z.literal('volume'),
  ...pipelineFields,
  /** `s3://bucket/prefix/`: what is counted, and what the run reads. */
  prefixUri: z.string().regex(/^s3:\/\/[^/]+\/.*$/),
  minBytes: z.coerce.number().int().positive(),
  detail: s3ObjectDetailSchema,
});
export type VolumeTriggerEvent = z.infer<typeof volumeTriggerEventSchema>;

/** What an upload window's timer passes to the collector when the window is over (src/triggers/window.ts). */
export const windowCloseEventSchema = z.strictObject({
  trigger: z.literal('s3-window'),
  ...pipelineFields,
  triggerId: z.string().regex(/^[a-f0-9]{12}$/),
  /** The window's start, ISO 8601 UTC. */
  windowStart: z.iso.datetime(),
  /** When the timer fires (the Wait state's timestamp). */
  closeAt: z.iso.datetime(),
  maxObjects: z.number().int().positive(),
  maxBytes: z.number().int().positive().optional(),
});
export type WindowCloseEvent = z.infer<typeof windowCloseEventSchema>;
