/**
 * The package as another CDK app gets it: `npm pack` (its prepack builds dist/ with tsc), the tarball unpacked into
 * a scratch app's node_modules (offline: the scratch app's other packages are links to this repository's
 * node_modules), and a stack with a BatchInferencePipeline synthesized by plain Node from the built JavaScript,
 * its Lambda handlers bundled by esbuild from the installed package.
 */
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { REPO_ROOT } from '../../lib/paths.js';

const PACK_TIMEOUT_MS = 600_000;
let scratch: string;
let files: string[];
let template: { Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }> };
let cdkOut: string;

beforeAll(() => {
  scratch = mkdtempSync(path.join(tmpdir(), 'batch-infer-pack-'));
  const packed = JSON.parse(
    execFileSync('npm', ['pack', '--json', '--pack-destination', scratch], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    }),
  ) as { filename: string; files: { path: string }[] }[];
  files = packed[0]!.files.map((f) => f.path);
  const app = path.join(scratch, 'app');
  const modules = path.join(app, 'node_modules');
  mkdirSync(path.join(modules, 'batch-infer'), { recursive: true });
  execFileSync('tar', [
    '-xzf',
    path.join(scratch, packed[0]!.filename),
    '-C',
    path.join(modules, 'batch-infer'),
    '--strip-components=1',
  ]);
  // The app's other packages: links to this repository's (the install the lock file describes), so no registry.
  for (const name of readdirSync(path.join(REPO_ROOT, 'node_modules'))) {
    // .bin included: NodejsFunction runs `npx --no-install esbuild`, found through node_modules/.bin.
    if (name === 'batch-infer') continue;
    symlinkSync(path.join(REPO_ROOT, 'node_modules', name), path.join(modules, name));
  }
  writeFileSync(
    path.join(app, 'package.json'),
    JSON.stringify({ name: 'scratch-app', type: 'module', private: true }),
  );
  writeFileSync(
    path.join(app, 'app.mjs'),
    `import { App, Stack } from 'aws-cdk-lib';
import { BatchInferencePipeline } from 'batch-infer';
// The feature flag \`cdk init\` sets for new apps (and cdk.json sets here): access logs granted by bucket policy.
const app = new App({ outdir: 'cdk.out', context: { '@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy': true } });
const stack = new Stack(app, 'Scoring');
new BatchInferencePipeline(stack, 'Scores', {
  spec: {
    name: 'scores',
    input: { uri: 's3://\${dataBucket}/incoming/scores/', format: 'csv' },
    model: { registry: { group: 'scores-model' }, inputs: [{ tensor: 'x', from: { columns: ['a', 'b'] } }], outputs: [{ tensor: 'y' }] },
    output: { uri: 's3://\${dataBucket}/predictions/scores/' },
  },
  triggers: [{ schedule: { cron: '0 2 * * ? *' } }],
  compute: { maxvCpus: 16 },
  config: { stage: 'scratch', removalPolicy: 'destroy' },
});
app.synth();
`,
  );
  execFileSync(process.execPath, ['app.mjs'], { cwd: app, encoding: 'utf8' });
  cdkOut = path.join(app, 'cdk.out');
  template = JSON.parse(readFileSync(path.join(cdkOut, 'Scoring.template.json'), 'utf8')) as typeof template;
}, PACK_TIMEOUT_MS);

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('ships the built JavaScript, its types, the CLI, the schemas and the sources the assets build from; no tests, bench or fixtures', () => {
    expect(files).toEqual(
      expect.arrayContaining([
        'package.json',
        'dist/lib/index.js',
        'dist/lib/index.d.ts',
        'dist/bin/batch-infer.js',
        'bin/batch-infer.js',
        'lambdas/plan/handler.ts',
        'src/worker/main.ts',
        'containers/worker/Dockerfile',
        'schemas/job-spec.schema.json',
        'schemas/pipeline.schema.json',
      ]),
    );
    const unwanted = files.filter(
      (f) => /^(test|bench|examples|scripts|pipelines|docs)\//.test(f) || /\.test\.[jt]s$/.test(f),
    );
    expect(unwanted).toEqual([]);
  });

  it('synthesizes a stack with BatchInferencePipeline in another app, its handlers bundled from the installed package', () => {
    const types = Object.values(template.Resources).map((r) => r.Type);
    expect(types.filter((t) => t === 'AWS::StepFunctions::StateMachine')).toHaveLength(1);
    expect(types).toEqual(
      expect.arrayContaining(['AWS::Batch::JobQueue', 'AWS::Glue::Database', 'AWS::Scheduler::Schedule']),
    );
    const functions = Object.values(template.Resources).filter(
      (r) =>
        r.Type === 'AWS::Lambda::Function' &&
        (r.Properties?.Runtime as string | undefined)?.startsWith('nodejs'),
    );
    expect(functions.length).toBeGreaterThanOrEqual(3);
    // Every bundled handler is an asset folder holding esbuild's index.mjs.
    const bundles = readdirSync(cdkOut).filter(
      (d) => d.startsWith('asset.') && existsSync(path.join(cdkOut, d, 'index.mjs')),
    );
    expect(bundles.length).toBeGreaterThanOrEqual(3);
  });

  it('runs the CLI from the built JavaScript', () => {
    const bin = path.join(scratch, 'app', 'node_modules', 'batch-infer', 'bin', 'batch-infer.js');
    expect(existsSync(path.join(path.dirname(bin), 'batch-infer.ts'))).toBe(false);
    expect(execFileSync(process.execPath, [bin, '--help'], { encoding: 'utf8' })).toContain('batch-infer');
  });
});
