/**
 * Rendering the definition for the local orchestrator: the CloudFormation string resolver, ARN normalization, and
 * the cost of a render (it runs at the start of every local run).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import {
  PLACEHOLDERS,
  definitionFromTemplate,
  normalizeDefinitionArns,
  renderWorkflowDefinition,
  resolveCfnString,
} from '../../lib/workflow-definition.js';

describe('resolveCfnString', () => {
  it('joins literals and pseudo parameters', () => {
    const value = {
      'Fn::Join': [
        '',
        [
          'arn:',
          { Ref: 'AWS::Partition' },
          ':states:',
          { Ref: 'AWS::Region' },
          ':',
          { Ref: 'AWS::AccountId' },
        ],
      ],
    };
    expect(resolveCfnString(value)).toBe(`arn:aws:states:${PLACEHOLDERS.region}:${PLACEHOLDERS.account}`);
  });

  it('resolves nested joins with their own separators', () => {
    expect(resolveCfnString({ 'Fn::Join': ['-', ['a', { 'Fn::Join': ['+', ['b', 'c']] }]] })).toBe('a-b+c');
  });

  it('resolves Ref and Fn::GetAtt of resources only through the given resolvers', () => {
    const options = {
      ref: (id: string) => `ref(${id})`,
      getAtt: (id: string, attr: string) => `${id}.${attr}`,
    };
    expect(resolveCfnString({ Ref: 'Queue' }, options)).toBe('ref(Queue)');
    expect(resolveCfnString({ 'Fn::GetAtt': ['Fn', 'Arn'] }, options)).toBe('Fn.Arn');
    expect(resolveCfnString({ 'Fn::GetAtt': 'Fn.Arn' }, options)).toBe('Fn.Arn');
    expect(() => resolveCfnString({ Ref: 'Queue' })).toThrow(/Ref: Queue.*unknown/);
    expect(() => resolveCfnString({ 'Fn::GetAtt': ['Fn', 'Arn'] })).toThrow(/GetAtt.*unknown resource/);
  });

  it('throws on intrinsics it does not know, naming them', () => {
    expect(() => resolveCfnString({ 'Fn::Sub': 'x-${AWS::Region}' })).toThrow(
      /unsupported intrinsic function Fn::Sub/,
    );
    expect(() => resolveCfnString({ 'Fn::Join': ['', 'not-a-list'] })).toThrow(/Fn::Join takes/);
    expect(() => resolveCfnString(42)).toThrow(/expected a string/);
    expect(() => resolveCfnString({ Ref: 'AWS::StackName' })).toThrow(/AWS::StackName/);
  });
});

describe('definitionFromTemplate', () => {
  it('requires exactly one state machine', () => {
    expect(() => definitionFromTemplate({ Resources: {} })).toThrow(/found 0/);
  });
});

describe('normalizeDefinitionArns', () => {
  const definition = {
    States: {
      A: {
        Resource: 'arn:aws:states:::lambda:invoke',
        Parameters: {
          FunctionName: 'arn:aws:lambda:us-east-1:123456789012:function:x',
          Payload: { 'a.$': '$' },
        },
      },
      B: {
        Resource: 'arn:aws:states:::batch:submitJob.sync',
        Parameters: {
          JobQueue: '${Ref:Queue}',
          JobDefinition: 'arn:aws:batch:eu-west-1:210987654321:job-definition/d:3',
        },
      },
      C: { Resource: 'arn:aws-cn:lambda:cn-north-1:111111111111:function:y:live' },
    },
  };

  it('replaces function, queue and job definition parameters whatever their form', () => {
    const normalized = normalizeDefinitionArns(definition);
    expect(normalized.States.A.Parameters).toEqual({
      FunctionName: '<FunctionName>',
      Payload: { 'a.$': '$' },
    });
    expect(normalized.States.B.Parameters).toEqual({
      JobQueue: '<JobQueue>',
      JobDefinition: '<JobDefinition>',
    });
  });

  it('keeps the service and integration of ARNs, replacing partition, region, account and resource name', () => {
    const normalized = normalizeDefinitionArns(definition);
    expect(normalized.States.A.Resource).toBe('arn:<partition>:states:::lambda:invoke');
    expect(normalized.States.B.Resource).toBe('arn:<partition>:states:::batch:submitJob.sync');
    expect(normalized.States.C.Resource).toBe('arn:<partition>:lambda:<region>:<account>:function:<name>');
  });

  it('does not change the input', () => {
    const copy = structuredClone(definition);
    normalizeDefinitionArns(definition);
    expect(definition).toEqual(copy);
  });
});

describe('renderWorkflowDefinition', () => {
  it('renders the same definition every time, with the placeholder resources', () => {
    const first = renderWorkflowDefinition();
    expect(renderWorkflowDefinition()).toEqual(first);
    expect(JSON.stringify(first)).toContain(PLACEHOLDERS.planFunctionArn);
    expect(JSON.stringify(first)).not.toMatch(/\$\{Token|Fn::|"Ref"/);
  });

  it('renders without what synthesis spends time on for deployments (it runs at the start of every local run)', () => {
    // Which files synthesis writes, not how long it takes: the built-in CloudFormation validation (seconds, a WASM
    // engine) writes validation-report.json and tree metadata writes tree.json. Counted by watching fs.writeFileSync,
    // which aws-cdk-lib (CommonJS) shares with this test.
    const written: string[] = [];
    const writeFileSync = fs.writeFileSync;
    fs.writeFileSync = (file: fs.PathOrFileDescriptor, ...rest: unknown[]) => {
      written.push(String(file));
      return (writeFileSync as (...args: unknown[]) => void)(file, ...rest);
    };
    try {
      renderWorkflowDefinition();
    } finally {
      fs.writeFileSync = writeFileSync;
    }
    const names = written.map((file) => path.basename(file));
    expectIn(names, JSON.stringify(names)).toContain('BatchInferWorkflowDefinition.template.json');
    expectIn(names, JSON.stringify(names)).not.toContain('validation-report.json');
    expectIn(names, JSON.stringify(names)).not.toContain('tree.json');
  });
});
