/**
 * A real SFNClient over recorded StartExecution exchanges (fixtures/sfn-start-execution.json).
 */
import { readFileSync } from 'node:fs';
import { SFNClient } from '@aws-sdk/client-sfn';
import { RecordedHttpHandler, TEST_CREDENTIALS, type RecordedResponse } from './recorded-http.js';

export type SfnExchange = 'started' | 'alreadyExists' | 'throttled' | 'noStateMachine';

const FIXTURE = JSON.parse(
  readFileSync(new URL('./fixtures/sfn-start-execution.json', import.meta.url), 'utf8'),
) as Record<SfnExchange, RecordedResponse>;

/** The recorded response, with the execution name it reports replaced. */
export function sfnResponse(exchange: SfnExchange, name = 'NAME'): RecordedResponse {
  const recorded = FIXTURE[exchange];
  return {
    ...recorded,
    body: JSON.parse(JSON.stringify(recorded.body).replaceAll(':NAME', `:${name}`)) as unknown,
  };
}

export function recordedSfn(responses: readonly RecordedResponse[]): {
  client: SFNClient;
  http: RecordedHttpHandler;
} {
  const http = new RecordedHttpHandler(responses);
  const client = new SFNClient({
    region: 'us-east-1',
    credentials: TEST_CREDENTIALS,
    requestHandler: http,
    // Retries back off for real: a throttled call costs a test well under a second with the SDK's base delay.
    maxAttempts: 3,
  });
  return { client, http };
}

/** The JSON body of a StartExecution request. */
export interface StartExecutionBody {
  readonly stateMachineArn: string;
  readonly name: string;
  readonly input: string;
}

export function startExecutionBody(text: string): StartExecutionBody {
  return JSON.parse(text) as StartExecutionBody;
}
