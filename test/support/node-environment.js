/**
 * Jest's node environment, with the host realm's typed arrays. Jest runs each test file in its own VM context, so a
 * test's `Float32Array` is not the one native addons (ONNX Runtime, DuckDB) create, and `instanceof` checks inside
 * those libraries fail across the two realms. Jest already shares `Uint8Array` and `ArrayBuffer` for this reason;
 * this shares the rest of the typed-array family, and `Date` (file times from `fs.stat`).
 */
import { TestEnvironment } from 'jest-environment-node';

const SHARED = [
  'Int8Array',
  'Uint8Array',
  'Uint8ClampedArray',
  'Int16Array',
  'Uint16Array',
  'Int32Array',
  'Uint32Array',
  'Float32Array',
  'Float64Array',
  'BigInt64Array',
  'BigUint64Array',
  'ArrayBuffer',
  'SharedArrayBuffer',
  'DataView',
  'Date',
];

export default class NodeRealmEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of SHARED) this.global[name] = globalThis[name];
  }
}
