/**
 * Deploys and runs coexist: an execution started before a `cdk deploy` keeps the state machine definition it started
 * with, so its next round submits the job definition revision of the old deployment. These tests synthesize the app
 * twice, with different worker settings (a new job definition revision), and check that the second version still
 * lets the first version's executions submit, and that CloudFormation keeps the old revision registered.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { resolveCfnString, definitionsFromTemplate } from '../../lib/workflow-definition.js';
import { actionsOf, logicalIdsOfType, roleStatements, synthApp } from './helpers.js';
import type { SynthesizedApp } from './helpers.js';

type Resources = Record<
  string,
  {
    Type: string;
    Properties: Record<string, unknown>;
    DeletionPolicy?: string;
    UpdateReplacePolicy?: string;
  }
>;

const REGION = 'eu-west-1';
const ACCOUNT = '111122223333';
/** The ARN CloudFormation returns for a job definition (its Ref): a name and the revision registered by a deploy. */
const revisionArn = (name: string, revision: number) =>
  `arn:aws:batch:${REGION}:${ACCOUNT}:job-definition/${name}:${revision}`;

/** An IAM resource pattern (`*` and `?` wildcards) matched against an ARN, as IAM evaluates it. */
function iamMatches(pattern: string, arn: string): boolean {
  const regex = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${regex}$`).test(arn);
}

interface Version {
  readonly app: SynthesizedApp;
  readonly resources: Resources;
  /** Logical id -> job definition name, for the worker job definitions. */
  readonly jobDefinitions: Record<string, string>;
}

function version(workerMemoryMiB: number): Version {
  const app = synthApp({ bundling: false, config: { workerMemoryMiB } });
  const resources = app.template.Resources as Resources;
  const jobDefinitions: Record<string, string> = {};
  for (const id of logicalIdsOfType(app.template, 'AWS::Batch::JobDefinition')) {
    jobDefinitions[id] = resources[id]!.Properties.JobDefinitionName as string;
  }
  return { app, resources, jobDefinitions };
}

/** The job definition ARNs a state machine's executions submit, with the revision each deployment registered. */
function submittedJobDefinitions(v: Version, revision: number): Map<string, string[]> {
  const byMachine = new Map<string, string[]>();
  const definitions = definitionsFromTemplate(v.app.template, {
    ref: (id) => (v.jobDefinitions[id] ? revisionArn(v.jobDefinitions[id], revision) : `<${id}>`),
    getAtt: (id, attribute) => `<${id}.${attribute}>`,
  });
  for (const [machine, definition] of Object.entries(definitions)) {
    // The pipelines' workflows; the upload windows' timer (TriggersWindowTimer) submits no job.
    if (!machine.startsWith('Pipeline')) continue;
    const arns = Object.values(
      definition.States as Record<string, { Parameters?: { JobDefinition?: string } }>,
    )
      .map((state) => state.Parameters?.JobDefinition)
      .filter((arn): arn is string => typeof arn === 'string');
    byMachine.set(machine, arns);
  }
  return byMachine;
}

/** The job definition resources a state machine's role may submit, with pseudo parameters filled in. */
function submitPatterns(v: Version, machine: string): string[] {
  const roleId = (v.resources[machine]!.Properties.RoleArn as { 'Fn::GetAtt': [string, string] })[
    'Fn::GetAtt'
  ][0];
  return roleStatements(v.app.template, roleId)
    .filter((s) => s.Effect === 'Allow' && actionsOf(s).includes('batch:SubmitJob'))
    .flatMap((s) => [s.Resource].flat())
    .map((resource) =>
      resolveCfnString(resource, {
        ref: (id) => `<${id}>`,
        getAtt: (id, attribute) => `<${id}.${attribute}>`,
      }).replace(/^arn:[^:]+:batch:[^:]+:[^:]+:/, `arn:aws:batch:${REGION}:${ACCOUNT}:`),
    );
}

let v1: Version;
let v2: Version;

beforeAll(() => {
  v1 = version(14336);
  v2 = version(12288);
}, 240_000);

afterAll(() => {
  v1?.app.cleanup();
  v2?.app.cleanup();
});

describe('a deploy while runs are in flight', () => {
  it('changes the job definition in place: same logical ids and names, new settings (a new revision)', () => {
    expect(Object.keys(v1.jobDefinitions).length).toBeGreaterThan(0);
    expect(v2.jobDefinitions).toEqual(v1.jobDefinitions);
    const changed = Object.keys(v1.jobDefinitions).filter(
      (id) => JSON.stringify(v1.resources[id]!.Properties) !== JSON.stringify(v2.resources[id]!.Properties),
    );
    // The GPU worker's memory changed: the deploy registers a new revision of that definition.
    expect(changed).toHaveLength(1);
  });

  it('keeps every revision registered: no deregistration on update, retained on replacement and deletion', () => {
    for (const v of [v1, v2]) {
      for (const id of Object.keys(v.jobDefinitions)) {
        const resource = v.resources[id]!;
        expectIn(resource.Properties.ResourceRetentionPolicy, id).toEqual({ SkipDeregisterOnUpdate: true });
        expectIn(resource.DeletionPolicy, id).toBe('Retain');
        expectIn(resource.UpdateReplacePolicy, id).toBe('Retain');
      }
    }
  });

  it("lets the first version's executions submit their revision after the second version is deployed", () => {
    const before = submittedJobDefinitions(v1, 1);
    expect(before.size).toBeGreaterThan(0);
    for (const [machine, arns] of before) {
      expectIn(arns.length, machine).toBeGreaterThan(0);
      // After the deploy, the same state machine (same logical id) has the second version's role policy.
      const patterns = submitPatterns(v2, machine);
      for (const arn of arns) {
        expectIn(
          patterns.some((pattern) => iamMatches(pattern, arn)),
          `${machine} submits ${arn}; v2 grants ${patterns.join(', ')}`,
        ).toBe(true);
      }
      // And the new revision, which new executions submit.
      for (const arn of submittedJobDefinitions(v2, 2).get(machine) ?? []) {
        expectIn(
          patterns.some((pattern) => iamMatches(pattern, arn)),
          `${machine} submits ${arn}`,
        ).toBe(true);
      }
    }
  });

  it('grants each job definition by name, all revisions, and no other job definition', () => {
    for (const [machine] of submittedJobDefinitions(v2, 2)) {
      const patterns = submitPatterns(v2, machine).filter((p) => p.includes(':job-definition/'));
      expectIn(patterns.length, machine).toBeGreaterThan(0);
      for (const pattern of patterns) {
        expectIn(pattern, machine).toMatch(/:job-definition\/batch-infer-dev-(cpu-)?worker:\*$/);
        // A name that merely starts with the worker's name is another job definition.
        expect(iamMatches(pattern, revisionArn('batch-infer-dev-worker-other', 1))).toBe(false);
      }
    }
  });
});
