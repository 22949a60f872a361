/**
 * The S3 and schedule triggers: one event -> at most one run, named after what triggered it (execution-name.ts),
 * so duplicated deliveries start nothing new. A batching S3 trigger records the object in its upload window instead
 * (window.ts): the window's objects become one run when it closes.
 */
import type { SFNClient } from '@aws-sdk/client-sfn';
import type { Logger } from '../runtime/log.js';
import { renderScheduleInput, schedulePlaceholders } from '../spec/triggers.js';
import type { S3TriggerEvent, ScheduleTriggerEvent, TriggerEvent } from './events.js';
import { s3ExecutionName, scheduleExecutionName } from './execution-name.js';
import { startRun, type RunInput, type StartRunOutcome } from './start-run.js';
import type { TriggerStateStore } from './state-store.js';
import { recordWindowObject, type WindowRecordOutcome } from './window.js';

export interface TriggerDeps {
  readonly sfn: SFNClient;
  readonly log: Logger;
  /** Where batching S3 triggers record their windows; required when an event has `batch`. */
  readonly windows?: { readonly store: TriggerStateStore; readonly statePrefix: string };
  readonly now?: () => Date;
}

export type TriggerOutcome =
  | (StartRunOutcome & { readonly name: string; readonly inputUri?: string })
  | { readonly status: 'ignored'; readonly reason: string }
  | WindowRecordOutcome;

/** `s3://bucket/key`: keys are used as they are (EventBridge does not URL-encode them). */
function objectUri(bucket: string, key: string): string {
  return `s3://${bucket}/${key}`;
}

/**
 * An object was created: start a run over that one object. Folder markers (`prefix/`, zero bytes) are ignored:
 * as an input URI they would mean "the whole folder".
 */
export async function handleS3Trigger(event: S3TriggerEvent, deps: TriggerDeps): Promise<TriggerOutcome> {
  if (event.batch) {
    // A batching trigger: the object joins the current upload window; the window's timer starts the run.
    if (!deps.windows) {
      throw new Error(
        `Pipeline ${event.pipeline} has a batching S3 trigger, but the trigger function has no window state location (deploy the stack again)`,
      );
    }
    return recordWindowObject(event, {
      ...deps.windows,
      sfn: deps.sfn,
      log: deps.log,
      ...(deps.now ? { now: deps.now } : {}),
    });
  }
  const { bucket, object } = event.detail;
  const uri = objectUri(bucket.name, object.key);
  if (object.key.endsWith('/') || object.size === 0) {
    const reason = object.key.endsWith('/') ? 'folder marker' : 'empty object';
    deps.log.info('ignored object', { pipeline: event.pipeline, uri, reason });
    return { status: 'ignored', reason };
  }
  const versionId = object['version-id'] ?? undefined;
  const name = s3ExecutionName({
    bucket: bucket.name,
    key: object.key,
    etag: object.etag,
    ...(versionId ? { versionId } : {}),
  });
  return start(event, name, { spec: event.spec, inputUri: uri }, deps);
}

/**
 * A schedule fired: start a run over the input template filled with the scheduled time (or over the spec's
 * input.uri without a template). The run receives the scheduled time itself too (`scheduledTime`, ISO 8601 UTC):
 * Finalize records it in the run's manifest.
 */
export async function handleScheduleTrigger(
  event: ScheduleTriggerEvent,
  deps: TriggerDeps,
): Promise<TriggerOutcome> {
  const scheduledTime = new Date(event.scheduledTime);
  const name = scheduleExecutionName(event.scheduleId, scheduledTime);
  const input: RunInput = {
    spec: event.spec,
    ...(event.input !== undefined && {
      inputUri: renderScheduleInput(
        event.input,
        schedulePlaceholders(scheduledTime, {
          timezone: event.timezone,
          ...(event.offset !== undefined ? { offset: event.offset } : {}),
        }),
      ),
    }),
    scheduledTime: scheduledTime.toISOString(),
  };
  return start(event, name, input, deps);
}

export async function handleTrigger(event: TriggerEvent, deps: TriggerDeps): Promise<TriggerOutcome> {
  return event.trigger === 's3' ? handleS3Trigger(event, deps) : handleScheduleTrigger(event, deps);
}

async function start(
  event: TriggerEvent,
  name: string,
  input: RunInput,
  deps: TriggerDeps,
): Promise<TriggerOutcome> {
  const fields = { pipeline: event.pipeline, trigger: event.trigger, name, inputUri: input.inputUri };
  const outcome = await startRun(deps.sfn, { stateMachineArn: event.stateMachineArn, name, input });
  if (outcome.status === 'duplicate') {
    // At-least-once delivery at work: the run exists, nothing to do. Logged so a duplicate storm is visible.
    deps.log.info('duplicate trigger: run already started', {
      ...fields,
      executionArn: outcome.executionArn,
    });
  } else {
    deps.log.info('started run', { ...fields, executionArn: outcome.executionArn });
  }
  return { ...outcome, name, ...(input.inputUri !== undefined ? { inputUri: input.inputUri } : {}) };
}
