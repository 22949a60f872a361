/** A TriggerStateStore in memory, with S3's semantics: create-only `putIfAbsent`, listings in key order. */
import type { TriggerStateStore } from '../../src/triggers/state-store.js';

/** S3 semantics in memory: `putIfAbsent` is create-only, listing is in key order. */
export class MemoryStateStore implements TriggerStateStore {
  readonly bucket = 'data-bucket';
  readonly objects = new Map<string, string>();
  puts = 0;
  /** Makes the next put of a key matching this fail once, as a crashed invocation would. */
  failNextPutOf: RegExp | undefined;

  async get(key: string): Promise<string | undefined> {
    return this.objects.get(key);
  }
  async exists(key: string): Promise<boolean> {
    return this.objects.has(key);
  }
  async put(key: string, body: string): Promise<void> {
    if (this.failNextPutOf?.test(key)) {
      this.failNextPutOf = undefined;
      throw new Error(`simulated crash before writing ${key}`);
    }
    this.puts++;
    this.objects.set(key, body);
  }
  async putIfAbsent(key: string, body: string): Promise<boolean> {
    if (this.objects.has(key)) return false;
    await this.put(key, body);
    return true;
  }
  async list(prefix: string): Promise<string[]> {
    return [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
  }
  async delete(key: string): Promise<void> {
    this.objects.delete(key);
  }
}
