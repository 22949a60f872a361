/**
 * The worker image, read from containers/worker/Dockerfile (no Docker needed): multi-stage, a CUDA 12 + cuDNN
 * runtime base, Node 22 or newer, onnxruntime-node's CUDA provider installed and checked at build time, and a
 * non-root final user that is the user the job definitions run the container as.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import os from 'node:os';
import * as path from 'node:path';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { expectIn } from '../support/expect-in.js';
import { GpuCompute, WORKER_DOCKERFILE } from '../../lib/constructs/gpu-compute.js';
import { REPO_ROOT } from '../../lib/paths.js';
import { synthConstruct } from './helpers.js';
import {
  bundleWorker,
  linkRuntimeModules,
  packageOf,
  readLockfile,
  WORKER_BANNER,
  WORKER_PRUNED_PATHS,
  WORKER_RUNTIME_DIR,
  workerBundleOptions,
  workerRuntimeDependencies,
} from '../../scripts/worker-image.js';
import { WORKER_ENV } from '../../src/runs/tasks.js';
import { DECODE_THREADS_ENV } from '../../src/worker/env.js';
import { breastCancerInput, breastCancerSpec, planWorkerRun, readMarker } from '../worker/helpers.js';

interface Instruction {
  /** Upper-case: FROM, RUN, ENV... */
  readonly keyword: string;
  /** The rest of the instruction, continuation lines joined. */
  readonly args: string;
}

interface Stage {
  /** The FROM image with the global ARG defaults substituted. */
  readonly from: string;
  readonly name?: string;
  readonly instructions: readonly Instruction[];
}

/** Instructions of a Dockerfile: comments dropped, `\` continuations joined. */
function instructionsOf(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue; // a comment inside a continued instruction
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = `${pending}${line}`.trim();
    pending = '';
    const match = /^(\S+)\s*(.*)$/s.exec(full);
    if (match) out.push({ keyword: match[1]!.toUpperCase(), args: match[2]! });
  }
  return out;
}

/** `${NAME}` and `$NAME` replaced by the ARG defaults declared before the first FROM. */
function substitute(text: string, args: Readonly<Record<string, string>>): string {
  return text.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, a?: string, b?: string) => args[(a ?? b)!] ?? whole);
}

function stagesOf(instructions: readonly Instruction[]): {
  stages: Stage[];
  globalArgs: Record<string, string>;
} {
  const globalArgs: Record<string, string> = {};
  const stages: { from: string; name?: string; instructions: Instruction[] }[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const [image, as, name] = substitute(instruction.args, globalArgs).split(/\s+/);
      stages.push({
        from: image!,
        ...(as?.toUpperCase() === 'AS' && name ? { name } : {}),
        instructions: [],
      });
    } else if (stages.length === 0) {
      const arg = /^(\w+)=(\S+)$/.exec(instruction.args);
      if (instruction.keyword === 'ARG' && arg) globalArgs[arg[1]!] = arg[2]!;
    } else {
      stages.at(-1)!.instructions.push(instruction);
    }
  }
  return { stages, globalArgs };
}

/** The image a stage starts from, following `FROM <earlier stage>` back to a registry image. */
function baseImageOf(stages: readonly Stage[], stage: Stage): string {
  let current = stage;
  for (;;) {
    const parent = stages.find((s) => s.name === current.from);
    if (!parent) return current.from;
    current = parent;
  }
}

let stages: Stage[];
let finalStage: Stage;

beforeAll(() => {
  const text = fs.readFileSync(path.join(REPO_ROOT, WORKER_DOCKERFILE), 'utf8');
  stages = stagesOf(instructionsOf(text)).stages;
  finalStage = stages.at(-1)!;
});

describe('the worker Dockerfile', () => {
  it('is multi-stage: at least 3 stages, and the final one copies its node_modules and bundle from earlier stages', () => {
    expect(stages.length).toBeGreaterThanOrEqual(3);
    const copiesFrom = finalStage.instructions
      .filter((i) => i.keyword === 'COPY')
      .flatMap((i) => /--from=(\S+)/.exec(i.args)?.[1] ?? []);
    expect(copiesFrom.length).toBeGreaterThanOrEqual(2);
    for (const from of copiesFrom) expect(stages.map((s) => s.name)).toContain(from);
  });

  it('runs on an nvidia/cuda 12.x cuDNN runtime image (not devel), the base of the final stage', () => {
    const base = baseImageOf(stages, finalStage);
    expect(base).toMatch(/^nvidia\/cuda:12\.\d+(\.\d+)?-cudnn-runtime-/);
  });

  it('takes Node 22 or newer from the official image, and bundles for it', () => {
    const nodeImages = stages.map((s) => s.from).filter((from) => /^node:/.test(from));
    expect(nodeImages.length).toBeGreaterThan(0);
    for (const image of nodeImages) {
      const major = Number(/^node:(\d+)/.exec(image)?.[1]);
      expectIn(major, image).toBeGreaterThanOrEqual(22);
    }
    // The runtime stage gets the node binary from the Node image: the same major runs what was bundled.
    const copiesNode = stages.some((s) =>
      s.instructions.some(
        (i) => i.keyword === 'COPY' && /--from=\S+\s+\/usr\/local\/bin\/node\b/.test(i.args),
      ),
    );
    expect(copiesNode).toBe(true);
    const esbuild = stages
      .flatMap((s) => s.instructions)
      .find((i) => i.keyword === 'RUN' && i.args.includes('esbuild'));
    expect(Number(/--target=node(\d+)/.exec(esbuild?.args ?? '')?.[1])).toBeGreaterThanOrEqual(22);
  });

  it("installs onnxruntime-node's CUDA 12 provider at build time and fails the build when it is missing", () => {
    const stage = stages.find((s) =>
      s.instructions.some((i) => i.keyword === 'ENV' && /\bONNXRUNTIME_NODE_INSTALL=cuda12\b/.test(i.args)),
    );
    expectIn(stage, 'a stage with ENV ONNXRUNTIME_NODE_INSTALL=cuda12').toBeDefined();
    const env = stage!.instructions.findIndex((i) => i.keyword === 'ENV' && i.args.includes('cuda12'));
    const install = stage!.instructions.findIndex(
      (i, index) => index > env && i.keyword === 'RUN' && /\bnpm ci\b/.test(i.args),
    );
    expectIn(install, 'npm ci after the ENV').toBeGreaterThan(env);
    // The same RUN checks the provider library, so a silent download failure fails the build.
    expect(stage!.instructions[install]!.args).toMatch(
      /&&\s*test -f node_modules\/onnxruntime-node\/\S*libonnxruntime_providers_cuda\.so/,
    );
    // The final image takes its node_modules from that stage.
    expect(
      finalStage.instructions.some(
        (i) =>
          i.keyword === 'COPY' && i.args.includes(`--from=${stage!.name}`) && i.args.includes('node_modules'),
      ),
    ).toBe(true);
  });

  it('runs as a non-root user, the one the job definitions name', () => {
    const users = finalStage.instructions.filter((i) => i.keyword === 'USER').map((i) => i.args.trim());
    expect(users.length).toBeGreaterThan(0);
    const user = users.at(-1)!;
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    const template = synthConstruct((stack) => {
      const vpc = new ec2.Vpc(stack, 'Vpc', {
        natGateways: 0,
        subnetConfiguration: [{ name: 'w', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }],
      });
      new GpuCompute(stack, 'GpuCompute', {
        vpc,
        image: ecs.ContainerImage.fromRegistry('public.ecr.aws/example/worker:1'),
        cpu: {},
      });
    });
    const definitions = Object.values(template.findResources('AWS::Batch::JobDefinition')) as {
      Properties: { ContainerProperties: { User?: string } };
    }[];
    expect(definitions).toHaveLength(2);
    for (const d of definitions) expect(d.Properties.ContainerProperties.User).toBe(user);
  });

  it('starts node directly (exec form), which is why the job definitions run an init process as PID 1', () => {
    const entrypoint = finalStage.instructions.filter((i) => i.keyword === 'ENTRYPOINT').at(-1);
    expect(JSON.parse(entrypoint!.args) as string[]).toEqual(['node', '/app/dist/worker.mjs']);
  });
});

/** The esbuild command of the Dockerfile's build stage, split into arguments (quotes removed). */
function esbuildArgs(): string[] {
  const run = stages
    .flatMap((s) => s.instructions)
    .find((i) => i.keyword === 'RUN' && i.args.includes('esbuild'));
  const args: string[] = [];
  for (const match of (run?.args ?? '').matchAll(/'([^']*)'|"((?:[^"\\]|\\.)*)"|(\S+)/g)) {
    args.push(match[1] ?? match[2]?.replace(/\\(.)/g, '$1') ?? match[3]!);
  }
  return args;
}

describe('the worker image holds only the runtime dependencies (issue 12, item 5)', () => {
  const root = (name: string): string => fs.readFileSync(path.join(REPO_ROOT, name), 'utf8');

  it('keeps external exactly the packages containers/worker/package.json installs, and the bundle imports no other', async () => {
    const installed = Object.keys(workerRuntimeDependencies()).sort();
    const flags = esbuildArgs()
      .filter((a) => a.startsWith('--external:'))
      .map((a) => a.slice('--external:'.length))
      .sort();
    expectIn(flags, 'the Dockerfile esbuild --external flags').toEqual(installed);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'worker-bundle-'));
    try {
      const { imports } = await bundleWorker(dir);
      // What the bundle still imports at run time (node built-ins aside) is what the image installs, no more.
      expectIn([...new Set(imports.map(packageOf))].sort(), 'bare imports left in the bundle').toEqual(
        installed,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("bundles with the Dockerfile's own options (entries, target, format, banner, output)", () => {
    const args = esbuildArgs();
    const options = workerBundleOptions('dist');
    // Every entry, the worker's and each thread's own, as `name=source`; and no other.
    const entries = args.filter((a) => /^[\w-]+=src\//.test(a)).sort();
    expect(entries).toEqual(
      Object.entries(options.entryPoints)
        .map(([name, file]) => `${name}=${file}`)
        .sort(),
    );
    expect(entries).toContain('worker=src/worker/main.ts');
    expect(args).toContain('--outdir=dist');
    expect(args).toContain('--out-extension:.js=.mjs');
    expect(args).toContain(`--target=${options.target}`);
    expect(args).toContain(`--format=${options.format}`);
    expect(args).toContain(`--banner:js=${WORKER_BANNER}`);
    expect(args).toContain('--bundle');
  });

  it('installs from the runtime package and its lockfile, not the repository root, and prunes other platforms', () => {
    const deps = stages.find((s) =>
      s.instructions.some((i) => i.keyword === 'RUN' && /\bnpm ci --omit=dev\b/.test(i.args)),
    );
    expectIn(deps, 'the stage that runs npm ci --omit=dev').toBeDefined();
    const copies = deps!.instructions.filter((i) => i.keyword === 'COPY' && !i.args.includes('--from='));
    expect(copies.map((c) => c.args.split(/\s+/).slice(0, -1).sort())).toEqual([
      ['containers/worker/package-lock.json', 'containers/worker/package.json'],
    ]);
    const install = deps!.instructions.find((i) => i.keyword === 'RUN' && /\bnpm ci\b/.test(i.args))!;
    const removed = /&&\s*rm -rf (.*)$/.exec(install.args)?.[1]?.trim().split(/\s+/) ?? [];
    expect(removed.sort()).toEqual(WORKER_PRUNED_PATHS.map((p) => `node_modules/${p}`).sort());
  });

  it("pins every package of its lockfile at the root package-lock's version (the versions the tests ran)", () => {
    const rootLock = readLockfile(path.join(REPO_ROOT, 'package-lock.json'));
    const rootVersions = new Map<string, Set<string>>();
    for (const [key, entry] of Object.entries(rootLock.packages)) {
      const name = key.replace(/^.*node_modules\//, '');
      if (key && entry.version)
        rootVersions.set(name, (rootVersions.get(name) ?? new Set()).add(entry.version));
    }
    const workerLock = readLockfile(path.join(WORKER_RUNTIME_DIR, 'package-lock.json'));
    // The lockfile is the package's (npm ci refuses one that does not match package.json).
    const lockRoot = (
      JSON.parse(fs.readFileSync(path.join(WORKER_RUNTIME_DIR, 'package-lock.json'), 'utf8')) as {
        packages: Record<string, { dependencies?: Record<string, string> }>;
      }
    ).packages[''];
    expect(lockRoot?.dependencies).toEqual(workerRuntimeDependencies());
    const packages = Object.entries(workerLock.packages).filter(([key]) => key !== '');
    expect(packages.length).toBeGreaterThan(3);
    for (const [key, entry] of packages) {
      const name = key.replace(/^.*node_modules\//, '');
      expectIn([...(rootVersions.get(name) ?? [])], `${name} in the root package-lock`).toContain(
        entry.version,
      );
    }
    const rootPackage = JSON.parse(root('package.json')) as { dependencies: Record<string, string> };
    for (const [name, version] of Object.entries(workerRuntimeDependencies())) {
      expectIn(rootPackage.dependencies[name], `${name} in the root package.json`).toBe(version);
    }
  });

  it('runs a tiny job from a folder holding only the bundle and the runtime packages', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'worker-image-'));
    try {
      await bundleWorker(dir);
      // The worker and each thread's own entry; a thread's is a small part of the worker's (it loads what it needs).
      const dist = path.join(dir, 'dist');
      expect(
        fs
          .readdirSync(dist)
          .filter((f) => f.endsWith('.mjs'))
          .sort(),
      ).toEqual(['decode-thread.mjs', 'inference-thread.mjs', 'worker.mjs']);
      const kib = (file: string): number => fs.statSync(path.join(dist, file)).size / 1024;
      for (const thread of ['decode-thread.mjs', 'inference-thread.mjs']) {
        expectIn(kib(thread), `${thread} KiB (worker.mjs: ${Math.round(kib('worker.mjs'))})`).toBeLessThan(
          kib('worker.mjs') / 20,
        );
      }
      const linked = linkRuntimeModules(dir);
      expect(linked).toEqual(expect.arrayContaining(['onnxruntime-node', '@duckdb/node-api', 'sharp']));
      expect(linked).not.toContain('@aws-sdk/client-s3');
      expect(linked).not.toContain('zod');

      const input = path.join(dir, 'input');
      const output = path.join(dir, 'output');
      fs.mkdirSync(input);
      await breastCancerInput(input, 40, 1, 1_000_000);
      const run = await planWorkerRun(breastCancerSpec(input, output), 'image-run');
      // Modules resolve from the staged folder (the links are not followed to the repository's node_modules),
      // from a working directory outside the repository: what the image's /app offers, no more.
      const result = spawnSync(
        process.execPath,
        ['--preserve-symlinks', '--preserve-symlinks-main', path.join(dir, 'dist/worker.mjs')],
        {
          cwd: dir,
          encoding: 'utf8',
          env: {
            PATH: process.env.PATH ?? '',
            [WORKER_ENV.runUri]: run.runUri,
            [WORKER_ENV.attempt]: '1',
            [WORKER_ENV.executionProviders]: 'cpu',
            [WORKER_ENV.threads]: '1',
            // Decode threads even for this one-block shard: their entry must load from the staged folder too.
            [DECODE_THREADS_ENV]: '2',
          },
        },
      );
      expectIn(result.status, `worker output:\n${result.stdout}\n${result.stderr}`).toBe(0);
      const marker = await readMarker(run);
      expect(marker.records).toBe(40);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
