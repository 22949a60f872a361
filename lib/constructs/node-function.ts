/**
 * A Lambda function written in TypeScript, bundled by the locally installed esbuild, with the project's defaults:
 * Node 24 (the newest Lambda Node runtime) on Graviton, an ESM bundle with source maps, X-Ray tracing, a log group
 * with a retention, the settings of the Powertools logger and metrics the handlers use (lambdas/shared/powertools.ts),
 * and a role that may write its own logs and nothing else until granted more.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Duration, RemovalPolicy, Token } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { METRICS_NAMESPACE } from '../../src/runtime/metrics.js';
import { REPO_ROOT } from '../paths.js';

/** Lambda's bounds: 128 MiB to 10 GiB of memory, 15 minutes per invocation. */
const MIN_MEMORY_MIB = 128;
const MAX_MEMORY_MIB = 10240;
const MAX_TIMEOUT = Duration.minutes(15);

/**
 * Prepended to the ESM bundle. esbuild turns a bundled CommonJS dependency's `require('node:x')` into a call of a
 * shim that throws in an ES module unless a `require` exists in scope; this defines one. The import is aliased so
 * it cannot collide with a `createRequire` of the bundled code (the banner is opaque text to esbuild).
 */
export const ESM_REQUIRE_BANNER =
  "import { createRequire as __batchInferCreateRequire } from 'node:module';" +
  'const require = __batchInferCreateRequire(import.meta.url);';

export interface NodeFunctionProps {
  /** The handler module, relative to the repository root (e.g. `lambdas/plan/handler.ts`) or absolute. */
  readonly entry: string;

  /**
   * Name of the exported handler function.
   *
   * @default 'handler'
   */
  readonly handler?: string;

  /**
   * A description of the function.
   *
   * @default - no description
   */
  readonly description?: string;

  /**
   * Memory size in MiB. Lambda allocates CPU in proportion to memory, so this is also the CPU knob.
   *
   * @default 1024
   */
  readonly memorySize?: number;

  /**
   * Time the function may run per invocation.
   *
   * @default Duration.minutes(1)
   */
  readonly timeout?: Duration;

  /**
   * Extra environment variables. `NODE_OPTIONS` and `POWERTOOLS_SERVICE_NAME` are set by this construct; passing
   * either here overrides it.
   *
   * @default - none
   */
  readonly environment?: Readonly<Record<string, string>>;

  /**
   * Service name for structured logs (`POWERTOOLS_SERVICE_NAME`, which the Powertools logger reads).
   *
   * @default 'batch-infer'
   */
  readonly serviceName?: string;

  /**
   * How long the function's logs are kept.
   *
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;

  /**
   * What happens to the log group when the function is removed from the stack.
   *
   * @default RemovalPolicy.DESTROY - logs are kept for `logRetention` while the function exists; a deleted
   *   function's logs would otherwise linger forever.
   */
  readonly logRemovalPolicy?: RemovalPolicy;

  /**
   * Bundle the AWS SDK v3 into the function instead of using the runtime's copy. The runtime's SDK is a version
   * we do not choose, and an ES module's bare `import '@aws-sdk/...'` is resolved from the bundle's folder (ESM
   * resolution ignores `NODE_PATH`), so bundling is the predictable choice.
   *
   * @default true
   */
  readonly bundleAwsSdk?: boolean;

  /**
   * Invocations that may run at once. Reserving concurrency also guarantees it; leave it unset unless a function
   * must be protected from (or protect others from) bursts.
   *
   * @default - the account's unreserved concurrency
   */
  readonly reservedConcurrentExecutions?: number;
}

/**
 * The lock file NodejsFunction is given. In the repository, package-lock.json. npm never packs a package's
 * package-lock.json, so when the package is installed under another app's node_modules its package.json stands in:
 * esbuild bundles locally (no `nodeModules` are installed from the lock file), so the file only anchors the project
 * root and the asset hash.
 */
function depsLockFile(): string {
  const lock = path.join(REPO_ROOT, 'package-lock.json');
  return fs.existsSync(lock) ? lock : path.join(REPO_ROOT, 'package.json');
}

/**
 * `NodejsFunction` with project defaults. Bundling runs esbuild from node_modules (never Docker). When the context
 * `aws:cdk:bundling-stacks` excludes the stack (`cdk synth --exclusively`, `cdk ls`, or `[]` as set by
 * `renderWorkflowDefinition`), CDK's asset staging skips bundling on its own and references the source folder.
 */
export class NodeFunction extends Construct {
  /** The underlying function. */
  readonly function: nodejs.NodejsFunction;
  /** The function's log group. */
  readonly logGroup: logs.LogGroup;
  /** The function's execution role: it may write the function's logs and traces; grant it the rest. */
  readonly role: iam.Role;

  constructor(scope: Construct, id: string, props: NodeFunctionProps) {
    super(scope, id);

    const entry = path.isAbsolute(props.entry) ? props.entry : path.join(REPO_ROOT, props.entry);
    const memorySize = props.memorySize ?? 1024;
    const timeout = props.timeout ?? Duration.minutes(1);
    if (!Token.isUnresolved(memorySize) && (memorySize < MIN_MEMORY_MIB || memorySize > MAX_MEMORY_MIB)) {
      throw new Error(
        `NodeFunction memorySize must be from ${MIN_MEMORY_MIB} to ${MAX_MEMORY_MIB} MiB, got ${memorySize}.`,
      );
    }
    if (
      !Token.isUnresolved(timeout.toSeconds()) &&
      (timeout.toSeconds() < 1 || timeout.toSeconds() > MAX_TIMEOUT.toSeconds())
    ) {
      throw new Error(
        `NodeFunction timeout must be from 1 second to 15 minutes, got ${timeout.toSeconds()} seconds.`,
      );
    }
    const reserved = props.reservedConcurrentExecutions;
    if (
      reserved !== undefined &&
      !Token.isUnresolved(reserved) &&
      (!Number.isInteger(reserved) || reserved < 1)
    ) {
      throw new Error(
        `NodeFunction reservedConcurrentExecutions must be a whole number of at least 1, got ${reserved}.`,
      );
    }

    this.logGroup = new logs.LogGroup(this, 'LogGroup', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: props.logRemovalPolicy ?? RemovalPolicy.DESTROY,
    });

    // Our own role instead of AWSLambdaBasicExecutionRole (which may create and write any log group): this
    // function's log group only. Tracing adds the X-Ray permissions.
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: props.description,
    });
    this.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [this.logGroup.logGroupArn],
      }),
    );

    this.function = new nodejs.NodejsFunction(this, 'Function', {
      entry,
      handler: props.handler ?? 'handler',
      description: props.description,
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize,
      timeout,
      role: this.role,
      reservedConcurrentExecutions: reserved,
      logGroup: this.logGroup,
      tracing: lambda.Tracing.ACTIVE,
      projectRoot: REPO_ROOT,
      depsLockFilePath: depsLockFile(),
      environment: {
        // Stack traces point at the TypeScript sources through the bundled source map.
        NODE_OPTIONS: '--enable-source-maps',
        POWERTOOLS_SERVICE_NAME: props.serviceName ?? 'batch-infer',
        // Read by Powertools Metrics (lambdas/shared/powertools.ts): the namespace the alarms and dashboard read.
        POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
        ...props.environment,
      },
      bundling: {
        format: nodejs.OutputFormat.ESM,
        target: 'node24',
        // Prefer packages' ESM entry points: better tree shaking, and no CJS interop where it can be avoided.
        mainFields: ['module', 'main'],
        banner: ESM_REQUIRE_BANNER,
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        bundleAwsSDK: props.bundleAwsSdk ?? true,
        forceDockerBundling: false,
      },
    });
  }
}
