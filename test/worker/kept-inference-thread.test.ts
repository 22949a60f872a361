/**
 * The inference thread a worker host keeps between shards (KeptInferenceThreads, src/worker/inference-thread.ts):
 * lent to the next shard with the same key, never to another; a thread with work in flight or closed is not kept.
 * Real threads on the shipped breast-cancer model. That a kept thread does not hold the process is what every
 * single-task worker test checks: main.ts keeps the thread there too, and such a worker must exit after its task.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from '@jest/globals';
import * as ort from 'onnxruntime-node';
import { InferenceThread, KeptInferenceThreads } from '../../src/worker/inference-thread.js';

const repo = path.resolve(fileURLToPath(import.meta.url), '../../..');
const model = readFileSync(path.join(repo, 'examples/breast-cancer/registry/breast-cancer-mlp/2/model.onnx'));

const started: InferenceThread[] = [];
async function start(): Promise<InferenceThread> {
  const thread = await InferenceThread.start(model, { threads: 1 });
  started.push(thread);
  return thread;
}
afterEach(async () => {
  await Promise.all(started.splice(0).map((t) => t.terminate()));
});

/** One batch of `rows` records of zeros through `thread`; the rows it returned. */
async function infer(thread: InferenceThread, rows: number): Promise<number> {
  const input = thread.inputs[0]!;
  const width = Number(input.shape?.at(-1));
  const feeds = { [input.name]: new ort.Tensor('float32', new Float32Array(rows * width), [rows, width]) };
  const result = await thread.run(feeds, rows);
  return result.segments.reduce((n, s) => n + (s.error === undefined ? s.count : 0), 0);
}

describe('KeptInferenceThreads', () => {
  it('lends the kept thread, still working, to the next shard with the same key, once', async () => {
    const kept = new KeptInferenceThreads();
    const thread = await start();
    expect(await infer(thread, 4)).toBe(4);
    kept.keep('model-a', thread);
    const lent = kept.take('model-a');
    expect(lent).toBe(thread);
    expect(await infer(lent!, 8)).toBe(8);
    // Taken: the next shard gets none unless it is kept again.
    expect(kept.take('model-a')).toBeUndefined();
  });

  it('does not lend it for another key, and closes it then', async () => {
    const kept = new KeptInferenceThreads();
    const thread = await start();
    kept.keep('model-a', thread);
    expect(kept.take('model-b')).toBeUndefined();
    expect(kept.take('model-a')).toBeUndefined();
    await expect(infer(thread, 1)).rejects.toThrow(/closed/);
  });

  it('does not keep a thread that is closed or has a batch in flight', async () => {
    const kept = new KeptInferenceThreads();
    const closed = await start();
    await closed.close();
    expect(closed.usable).toBe(false);
    kept.keep('model-a', closed);
    expect(kept.take('model-a')).toBeUndefined();

    const busy = await start();
    const running = infer(busy, 2);
    expect(busy.usable).toBe(false);
    kept.keep('model-a', busy);
    expect(kept.take('model-a')).toBeUndefined();
    await running.catch(() => undefined);
  });
});
