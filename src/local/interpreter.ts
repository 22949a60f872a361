/**
 * The local Step Functions interpreter (aws-local-stepfunctions), loaded without paying for what a local run never
 * uses. As it loads, the interpreter requires three packages for features a local run does not touch:
 * - asl-validator (and through it ajv), to validate a definition: a local run skips that (LOCAL_VALIDATION_OPTIONS);
 * - @aws-sdk/client-lambda (and through it the SDK's core), to invoke a real Lambda function for a Task state: every
 *   task of a local run is handled in this process (run-local.ts overrides each one);
 * - @aws-sdk/credential-providers, for the Cognito credentials of that Lambda client.
 * Loading them cost about 150 ms of CPU on the 2-core benchmark machine, before a run could plan. Each is replaced,
 * in Node's CommonJS module cache, by a stand-in that loads the real package the first time anything touches it: a
 * caller that does validate, or does reach a real Lambda, gets the real package, a moment later.
 *
 * Only Node's own loader consults that cache; under another loader (jest's) the interpreter loads the packages as
 * usual, which is slower and otherwise the same. The interpreter itself is required as CommonJS for the same reason
 * (see loadInterpreter).
 */
import '../runtime/polyfills.js';
import { createRequire, Module } from 'node:module';
import type * as Interpreter from 'aws-local-stepfunctions';

/** What the interpreter requires as it loads and a local run never uses; deferred until first touched. */
export const DEFERRED_INTERPRETER_PACKAGES = [
  'asl-validator',
  '@aws-sdk/client-lambda',
  '@aws-sdk/credential-providers',
] as const;

/** aws-local-stepfunctions, with DEFERRED_INTERPRETER_PACKAGES loaded only when first used. */
export function loadInterpreter(): typeof Interpreter {
  const requireHere = createRequire(import.meta.url);
  const interpreterFile = requireHere.resolve('aws-local-stepfunctions');
  for (const id of DEFERRED_INTERPRETER_PACKAGES) deferPackage(interpreterFile, id);
  // The package's CommonJS build: it reads what it required when it uses it (`client_lambda.LambdaClient`), where
  // its ES module build binds named imports as it loads, which a stand-in cannot defer.
  return requireHere(interpreterFile) as typeof Interpreter;
}

/**
 * Puts a stand-in for package `id`, as `fromFile` would resolve it, into the CommonJS module cache: a function
 * proxy (the packages export either an object or a function) that loads the package on its first property read,
 * call or construction, and then forwards to it. Nothing happens when the package is loaded already, or cannot be
 * resolved (the interpreter then fails as it would have).
 */
function deferPackage(fromFile: string, id: string): void {
  const requireFrom = createRequire(fromFile);
  let file: string;
  try {
    file = requireFrom.resolve(id);
  } catch {
    return;
  }
  if (requireFrom.cache[file] !== undefined) return;
  let real: object | undefined;
  const load = (): object => {
    if (real === undefined) {
      // The stand-in leaves the cache first, or requiring the package would return the stand-in again.
      delete requireFrom.cache[file];
      real = requireFrom(file) as object;
    }
    return real;
  };
  const standIn = new Proxy(function deferredPackage() {}, {
    get: (_target, key) => Reflect.get(load(), key) as unknown,
    has: (_target, key) => Reflect.has(load(), key),
    apply: (_target, self, args: unknown[]) =>
      Reflect.apply(load() as (...a: unknown[]) => unknown, self, args),
    construct: (_target, args: unknown[]) =>
      Reflect.construct(load() as new (...a: unknown[]) => object, args),
  });
  const module = new Module(file);
  module.filename = file;
  module.loaded = true;
  module.exports = standIn;
  requireFrom.cache[file] = module;
}
