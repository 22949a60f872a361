/**
 * Throttling: the AWS backend relies on the SDK clients' own retry strategy. A real SFNClient over a request handler
 * that answers ThrottlingException first and then the documented ListExecutions response: the command succeeds,
 * after exactly two HTTP requests. (aws-sdk-client-mock stubs `send` above the retry middleware, so it cannot show
 * this.)
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from '@jest/globals';
import type { HttpRequest, HttpResponse } from '@smithy/types';
import { BatchClient } from '@aws-sdk/client-batch';
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import { SFNClient } from '@aws-sdk/client-sfn';
import { AwsBackend, type DeployedStack } from '../../src/operate/aws-backend.js';
import type { ObjectStore } from '../../src/storage/object-store.js';

const SM = 'arn:aws:states:eu-west-1:111122223333:stateMachine:PipelineBreastCancer';

function response(statusCode: number, body: unknown): { response: HttpResponse } {
  return {
    response: {
      statusCode,
      headers: { 'content-type': 'application/x-amz-json-1.0' },
      body: Readable.from([Buffer.from(JSON.stringify(body))]),
    },
  };
}

describe('throttling', () => {
  it('retries a ThrottlingException and then lists the runs', async () => {
    const requests: { target: string | undefined; body: unknown }[] = [];
    const answers = [
      response(400, { __type: 'com.amazonaws.swf.base.model#ThrottlingException', message: 'Rate exceeded' }),
      response(200, {
        executions: [
          {
            executionArn: `${SM.replace(':stateMachine:', ':execution:')}:r-1`,
            stateMachineArn: SM,
            name: 'r-1',
            status: 'SUCCEEDED',
            startDate: 1764576000,
            stopDate: 1764576060,
          },
        ],
      }),
    ];
    const sfn = new SFNClient({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' },
      requestHandler: {
        handle: async (request: HttpRequest) => {
          requests.push({
            target: request.headers['x-amz-target'],
            body: JSON.parse(
              typeof request.body === 'string'
                ? request.body
                : Buffer.from(request.body as Uint8Array).toString('utf8'),
            ) as unknown,
          });
          const next = answers.shift();
          if (!next) throw new Error('no more answers');
          return next;
        },
      },
    });
    const stack: DeployedStack = {
      stackName: 'batch-infer-dev',
      pipelines: new Map([
        [
          'breast_cancer',
          {
            name: 'breast_cancer',
            stateMachineArn: SM,
            spec: {},
            outputUri: 's3://b/out/',
            inputPrefixes: [],
            manifestObjects: [],
            triggers: [],
          },
        ],
      ]),
      jobQueues: ['q'],
      workerLogGroup: 'w',
      functionLogGroups: {},
    };
    const backend = new AwsBackend(
      {
        cloudFormation: new CloudFormationClient({ region: 'eu-west-1' }),
        sfn,
        batch: new BatchClient({ region: 'eu-west-1' }),
        logs: new CloudWatchLogsClient({ region: 'eu-west-1' }),
        store: {} as ObjectStore,
      },
      stack,
    );
    const list = await backend.runs({ limit: 20 });
    expect(requests).toEqual([
      { target: 'AWSStepFunctions.ListExecutions', body: { stateMachineArn: SM, maxResults: 20 } },
      { target: 'AWSStepFunctions.ListExecutions', body: { stateMachineArn: SM, maxResults: 20 } },
    ]);
    expect(list.runs).toEqual([
      {
        runId: 'r-1',
        pipeline: 'breast_cancer',
        status: 'SUCCEEDED',
        startedAt: '2025-12-01T08:00:00.000Z',
        finishedAt: '2025-12-01T08:01:00.000Z',
        durationMs: 60_000,
      },
    ]);
  });
});
