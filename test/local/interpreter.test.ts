/**
 * The interpreter a local run loads (src/local/interpreter.ts) defers the packages it requires for what a local run
 * never does, and loads each of them when something does use it. Node's own loader is the one that honours the
 * deferral (jest's has its own module registry), so each case runs in a child Node process.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { REPO_ROOT } from '../../lib/paths.js';

/** Runs `body` (an ES module's text, with `loadInterpreter` and `loadedFiles(pattern)` in scope); its stdout. */
function inChildNode(body: string): string {
  const prelude = [
    `import { createRequire } from 'node:module';`,
    `import { loadInterpreter } from ${JSON.stringify(path.join(REPO_ROOT, 'src/local/interpreter.ts'))};`,
    `const cache = createRequire(import.meta.url).cache;`,
    // Files loaded under node_modules whose path matches: the stand-ins are entries for the three packages' own entry
    // files, so a file of a package they load (ajv, the SDK's core, smithy) is there only once the real one ran.
    `const loadedFiles = (pattern) => Object.keys(cache).filter((f) => pattern.test(f));`,
  ].join('\n');
  const result = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', `${prelude}\n${body}`],
    {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    },
  );
  if (result.status !== 0) throw new Error(`child node exited with ${result.status}:\n${result.stderr}`);
  return result.stdout.trim();
}

describe('loadInterpreter', () => {
  it('runs a state machine without loading the definition validator or the AWS SDK', () => {
    const out = inChildNode(`
      const { StateMachine } = loadInterpreter();
      const machine = new StateMachine(
        { StartAt: 'Echo', States: { Echo: { Type: 'Pass', Parameters: { 'doubled.$': 'States.MathAdd($.n, $.n)' }, End: true } } },
        { validationOptions: { noValidate: true } },
      );
      const result = await machine.run({ n: 21 }).result;
      console.log(JSON.stringify({ result, loaded: loadedFiles(/node_modules\\/(ajv|@aws-sdk\\/core|@smithy)\\//) }));
    `);
    expect(JSON.parse(out)).toEqual({ result: { doubled: 42 }, loaded: [] });
  });

  it('loads the validator when a definition is validated, and reports an invalid one as the interpreter does', () => {
    const out = inChildNode(`
      const { StateMachine } = loadInterpreter();
      let message = '';
      try {
        new StateMachine({ StartAt: 'A', States: { A: { Type: 'NotAType', End: true } } });
      } catch (err) {
        message = String(err);
      }
      new StateMachine({ StartAt: 'A', States: { A: { Type: 'Pass', End: true } } });
      console.log(JSON.stringify({ message, ajvLoaded: loadedFiles(/node_modules\\/ajv\\//).length > 0 }));
    `);
    const { message, ajvLoaded } = JSON.parse(out) as { message: string; ajvLoaded: boolean };
    expect(message).toMatch(/definition is invalid[\s\S]*SCHEMA_VALIDATION_FAILED/);
    expect(ajvLoaded).toBe(true);
  });

  it('loads the Lambda client when a task has no local handler', () => {
    const out = inChildNode(`
      const { StateMachine } = loadInterpreter();
      const machine = new StateMachine(
        { StartAt: 'Invoke', States: { Invoke: { Type: 'Task', Resource: 'arn:aws:lambda:us-east-1:123456789012:function:f', End: true } } },
        { validationOptions: { noValidate: true } },
      );
      // No credentials and no network here: the invocation fails, after the real client was built to make it.
      process.env.AWS_REGION = 'us-east-1';
      process.env.AWS_ACCESS_KEY_ID = 'x';
      process.env.AWS_SECRET_ACCESS_KEY = 'x';
      process.env.AWS_ENDPOINT_URL_LAMBDA = 'http://127.0.0.1:9';
      const error = await machine.run({}).result.then(() => 'succeeded', (err) => String(err));
      console.log(JSON.stringify({ error, sdkLoaded: loadedFiles(/node_modules\\/@smithy\\//).length > 0 }));
    `);
    const { error, sdkLoaded } = JSON.parse(out) as { error: string; sdkLoaded: boolean };
    expect(error).toMatch(/ECONNREFUSED/);
    expect(sdkLoaded).toBe(true);
  });
});
