/**
 * startRun with the real @aws-sdk/client-sfn over recorded StartExecution responses: the serialized request, and
 * ExecutionAlreadyExists read as "this run was already started".
 */
import { describe, expect, it } from '@jest/globals';
import { executionArnOf, MAX_EXECUTION_INPUT_BYTES, startRun } from '../../src/triggers/start-run.js';
import { recordedSfn, sfnResponse, startExecutionBody } from './sfn.js';

const STATE_MACHINE = 'arn:aws:states:us-east-1:123456789012:stateMachine:BreastCancerStateMachine';
const INPUT = { spec: { name: 'breast_cancer' }, inputUri: 's3://data/incoming/a.csv' };

describe('startRun', () => {
  it('sends StartExecution with the state machine, the name and the input as a JSON string', async () => {
    const { client, http } = recordedSfn([sfnResponse('started', 'run-1')]);
    const outcome = await startRun(client, { stateMachineArn: STATE_MACHINE, name: 'run-1', input: INPUT });
    expect(outcome).toEqual({
      status: 'started',
      executionArn: 'arn:aws:states:us-east-1:123456789012:execution:BreastCancerStateMachine:run-1',
      startDate: new Date(1735700400123),
    });
    expect(http.requests).toHaveLength(1);
    const [request] = http.requests;
    expect(request).toMatchObject({
      method: 'POST',
      hostname: 'states.us-east-1.amazonaws.com',
      path: '/',
      headers: expect.objectContaining({
        'x-amz-target': 'AWSStepFunctions.StartExecution',
        'content-type': 'application/x-amz-json-1.0',
      }) as unknown,
    });
    expect(request!.headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/us-east-1\/states\//,
    );
    const body = startExecutionBody(request!.text);
    expect(body).toEqual({ stateMachineArn: STATE_MACHINE, name: 'run-1', input: JSON.stringify(INPUT) });
  });

  it('reports ExecutionAlreadyExists as a duplicate, with the existing execution ARN, without retrying', async () => {
    const { client, http } = recordedSfn([sfnResponse('alreadyExists', 'run-1')]);
    const outcome = await startRun(client, { stateMachineArn: STATE_MACHINE, name: 'run-1', input: INPUT });
    expect(outcome).toMatchObject({
      status: 'duplicate',
      executionArn: executionArnOf(STATE_MACHINE, 'run-1'),
      message: expect.stringContaining('Execution Already Exists') as unknown,
    });
    expect(http.served).toBe(1);
  });

  it('retries a throttled StartExecution (the SDK retry strategy), then starts', async () => {
    const { client, http } = recordedSfn([sfnResponse('throttled'), sfnResponse('started', 'run-1')]);
    const outcome = await startRun(client, { stateMachineArn: STATE_MACHINE, name: 'run-1', input: INPUT });
    expect(outcome.status).toBe('started');
    expect(http.requests.map((r) => r.text)).toEqual([http.requests[0]!.text, http.requests[0]!.text]);
  });

  it('throws any other error, so the event is retried and then dead-lettered', async () => {
    const { client } = recordedSfn([sfnResponse('noStateMachine')]);
    await expect(
      startRun(client, { stateMachineArn: STATE_MACHINE, name: 'run-1', input: INPUT }),
    ).rejects.toMatchObject({ name: 'StateMachineDoesNotExist' });
  });

  it('refuses an invalid execution name before calling the service', async () => {
    const { client, http } = recordedSfn([]);
    await expect(
      startRun(client, { stateMachineArn: STATE_MACHINE, name: 'bad name/with slash', input: INPUT }),
    ).rejects.toThrow(/not 1-80 letters/);
    expect(http.served).toBe(0);
  });

  it('refuses an input above the Step Functions limit, naming specUri as the way out', async () => {
    const { client, http } = recordedSfn([]);
    const big = { spec: { name: 'x', blob: 'x'.repeat(MAX_EXECUTION_INPUT_BYTES) } };
    await expect(startRun(client, { stateMachineArn: STATE_MACHINE, name: 'r', input: big })).rejects.toThrow(
      /specUri/,
    );
    expect(http.served).toBe(0);
  });

  it('derives execution ARNs from state machine ARNs', () => {
    expect(executionArnOf(STATE_MACHINE, 'n')).toBe(
      'arn:aws:states:us-east-1:123456789012:execution:BreastCancerStateMachine:n',
    );
  });
});
