/**
 * Least privilege by prefix: every role's S3 statements in the synthesized template, written with the pipelines'
 * locations replaced by their names (`<input>`, `<output>`, ...), equal the table of docs/operations.md ("Who may
 * touch what in S3"). A grant added, widened or dropped in the code without the page, or the other way round, fails.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { DATA_PREFIXES } from '../../lib/config.js';
import { flattenForNag } from '../../lib/nag.js';
import { REPO_ROOT } from '../../lib/paths.js';
import { RUN_PREFIX_GRANTS } from '../../lib/run-data-access.js';
import { actionsOf, logicalIdsOfType, roleStatements, synthApp } from './helpers.js';
import type { SynthesizedApp } from './helpers.js';

let synthesized: SynthesizedApp;

beforeAll(() => {
  synthesized = synthApp({ bundling: false });
}, 120_000);

afterAll(() => synthesized?.cleanup());

/** The roles with a name in the table, by the logical id their role starts with. */
const ROLE_LABELS: readonly [string, string][] = [
  ['PlanFunctionRole', 'Plan'],
  ['ReconcileFunctionRole', 'Reconcile'],
  ['FinalizeFunctionRole', 'Finalize'],
  ['GpuComputeJobRole', 'Worker'],
  ['TriggersVolumeFunctionRole', 'Volume trigger'],
  ['TriggersTriggerFunctionRole', 'S3 trigger'],
  ['TriggersWindowFunctionRole', 'Window function'],
];

const ACCESS_BY_ACTIONS: Readonly<Record<string, string>> = {
  'Allow s3:ListBucket': 'list',
  'Allow s3:GetObject': 'read',
  'Allow s3:AbortMultipartUpload,s3:DeleteObject,s3:GetObject,s3:PutObject': 'write',
  'Deny s3:AbortMultipartUpload,s3:DeleteObject,s3:PutObject': 'deny write',
};

/** Rows of the table in docs/operations.md: `Role | Access | Objects`. */
function documentedRows(): Set<string> {
  const page = fs.readFileSync(path.join(REPO_ROOT, 'docs/operations.md'), 'utf8');
  const start = page.indexOf('## Who may touch what in S3');
  expect(start).toBeGreaterThan(-1);
  const section = page.slice(start, page.indexOf('\n## ', start + 1));
  const rows = new Set<string>();
  for (const line of section.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length !== 5 || cells[1] === 'Role' || cells[1]?.startsWith('---')) continue;
    // A row that applies to some pipelines only names them in parentheses after the objects.
    const objects = cells[3]?.replace(/\s*\(.*\)$/, '').replace(/`/g, '');
    rows.add(
      `${cells[1]} | ${cells[2]} | ${objects}${/\)$/.test(cells[3] ?? '') ? ' (some pipelines)' : ''}`,
    );
  }
  return rows;
}

/** The deployment's locations with the names the table gives them, longest key prefix first. */
function namedLocations(): { key: string; name: string }[] {
  const { stack } = synthesized;
  const named: { key: string; name: string }[] = [];
  for (const pipeline of stack.pipelineLocations) {
    named.push({ key: pipeline.output.keyPrefix, name: '<output>' });
    for (const l of pipeline.input) named.push({ key: l.keyPrefix, name: '<input>' });
    for (const l of pipeline.manifestObjects) named.push({ key: l.keyPrefix, name: '<manifest objects>' });
  }
  for (const location of stack.modelArtifactLocations) {
    named.push({ key: location.keyPrefix, name: '<model artifacts>' });
  }
  return named.sort((a, b) => b.key.length - a.key.length);
}

/** Every role's S3 statements as table rows. */
function templateRows(): Set<string> {
  const template = synthesized.template;
  const bucketIds = logicalIdsOfType(template, 'AWS::S3::Bucket');
  const dataBucket = bucketIds.find((id) => id.startsWith('DataLakeBucket'))!;
  const locations = namedLocations();
  const rows = new Set<string>();
  for (const role of logicalIdsOfType(template, 'AWS::IAM::Role')) {
    for (const statement of roleStatements(template, role)) {
      const actions = actionsOf(statement).filter((a) => a.startsWith('s3:'));
      if (actions.length === 0) continue;
      const label = ROLE_LABELS.find(([prefix]) => role.startsWith(prefix))?.[1] ?? role;
      const actionKey = `${statement.Effect} ${[...actions].sort().join(',')}`;
      const access = ACCESS_BY_ACTIONS[actionKey] ?? actionKey;
      for (const resource of [statement.Resource].flat()) {
        const flat = flattenForNag(resource);
        const bucketArn = `<${dataBucket}.Arn>`;
        expectIn(flat.startsWith(bucketArn), `${role}: ${flat} is not in the data bucket`).toBe(true);
        const key = flat.slice(bucketArn.length + 1);
        let objects: string;
        if (flat === bucketArn) objects = '<data bucket>';
        else {
          const named = locations.find((l) => key.startsWith(l.key));
          objects = named ? `${named.name}${key.slice(named.key.length)}` : `<data bucket>/${key}`;
        }
        const row = `${label} | ${access} | ${objects}`;
        // A manifest-objects row of the template matches its conditional row of the page.
        rows.add(objects.startsWith('<manifest objects>') ? `${row} (some pipelines)` : row);
      }
    }
  }
  return rows;
}

describe('S3 access by role', () => {
  it('equals the table in docs/operations.md, row for row', () => {
    const documented = documentedRows();
    const granted = templateRows();
    expect(documented.size).toBeGreaterThan(10);
    expect([...granted].filter((r) => !documented.has(r)).sort()).toEqual([]);
    expect([...documented].filter((r) => !granted.has(r) && !r.endsWith(' (some pipelines)')).sort()).toEqual(
      [],
    );
    // The default deployment has no manifest input: those rows are checked against the code's own table.
    const conditional = [...documented]
      .filter((r) => r.endsWith(' (some pipelines)'))
      .map((r) => r.replace(' (some pipelines)', ''))
      .sort();
    expect(conditional).toEqual(
      RUN_PREFIX_GRANTS.filter((g) => g.on === 'manifest objects')
        .map(
          (g) =>
            `${g.role[0]!.toUpperCase()}${g.role.slice(1)} | ${g.access === 'read' ? 'read' : 'write'} | <manifest objects>*`,
        )
        .sort(),
    );
  });

  it('lets only Finalize write the audit records, only the volume trigger its counters, only the triggers their windows and manifests', () => {
    const writers = (prefix: string) =>
      [...templateRows()]
        .filter((r) => r.includes(' | write | ') && r.endsWith(`<data bucket>/${prefix}*`))
        .map((r) => r.split(' | ')[0]);
    expect(writers(DATA_PREFIXES.auditRuns)).toEqual(['Finalize']);
    expect(writers(DATA_PREFIXES.volumeState)).toEqual(['Volume trigger']);
    // Batching S3 triggers: the windows by the trigger and window functions, the manifests by who starts the runs.
    expect(writers(DATA_PREFIXES.windowState).sort()).toEqual(['S3 trigger', 'Window function']);
    expect(writers(DATA_PREFIXES.triggerManifests).sort()).toEqual(['Volume trigger', 'Window function']);
    const readers = [...templateRows()]
      .filter((r) => r.endsWith(`<data bucket>/${DATA_PREFIXES.triggerManifests}*`))
      .map((r) => r.split(' | ').slice(0, 2).join(' | '));
    expect(readers.sort()).toEqual(['Plan | read', 'Volume trigger | write', 'Window function | write']);
    // Nobody writes the whole bucket.
    expect([...templateRows()].filter((r) => r.endsWith('| <data bucket>/*'))).toEqual([]);
  });
});

describe('the Plan function', () => {
  it('is sized from the plan benchmark: 2048 MiB, 15 minutes', () => {
    const resources = synthesized.template.Resources as Record<
      string,
      { Type: string; Properties: Record<string, unknown> }
    >;
    const plan = Object.entries(resources).filter(
      ([id, r]) => r.Type === 'AWS::Lambda::Function' && id.startsWith('PlanFunction'),
    );
    expect(plan).toHaveLength(1);
    expect(plan[0]![1].Properties).toMatchObject({ MemorySize: 2048, Timeout: 900 });
  });
});
