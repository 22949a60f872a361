import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import * as ort from 'onnxruntime-node';
import {
  OnnxFormatError,
  readOnnxSignature,
  readOnnxSignatureFrom,
} from '../../src/preflight/onnx-signature.js';
import { LocalObjectStore } from '../../src/storage/local.js';
import { expectIn } from '../support/expect-in.js';

const root = path.resolve('test/fixtures/models');
const models = [
  ...readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.onnx')),
  '../../../examples/breast-cancer/registry/breast-cancer-mlp/1/model.onnx',
].map((f) => path.join(root, f));

describe('readOnnxSignature', () => {
  it('finds the fixture models', () => {
    expect(models.length).toBeGreaterThanOrEqual(8);
  });

  it.each(models)('reads the same inputs and outputs as ONNX Runtime: %s', async (file) => {
    const session = await ort.InferenceSession.create(file);
    try {
      const signature = await readOnnxSignature(new LocalObjectStore(), pathToFileURL(file).href);
      expectIn(
        signature.inputs.map((i) => i.name),
        file,
      ).toEqual([...session.inputNames]);
      expectIn(
        signature.outputs.map((o) => o.name),
        file,
      ).toEqual([...session.outputNames]);
      const metadata = [...session.inputMetadata, ...session.outputMetadata];
      const ours = [...signature.inputs, ...signature.outputs];
      metadata.forEach((m, i) => {
        if (!m.isTensor) return;
        expectIn(ours[i]!.type, `${file} ${m.name}`).toBe(m.type);
        expectIn(ours[i]!.shape, `${file} ${m.name}`).toEqual(m.shape);
      });
    } finally {
      await session.release();
    }
  });

  it('reads a model in small windows, skipping what it does not need', async () => {
    const bytes = readFileSync(path.join(root, 'affine.onnx'));
    const reads: [number, number][] = [];
    const signature = await readOnnxSignatureFrom(async (start, end) => {
      reads.push([start, end]);
      return bytes.subarray(start, end);
    }, bytes.length);
    expect(signature.inputs).toEqual([{ name: 'x', type: 'float32', shape: ['N', 3] }]);
    expect(signature.outputs).toEqual([{ name: 'y', type: 'float32', shape: ['N', 2] }]);
    expect(reads.length).toBeGreaterThan(0);
  });

  it('rejects bytes that are not a model, and a truncated one', async () => {
    const notModel = new TextEncoder().encode('a,b,c\n1,2,3\n');
    await expect(
      readOnnxSignatureFrom(async (s, e) => notModel.subarray(s, e), notModel.length),
    ).rejects.toThrow(OnnxFormatError);
    const bytes = readFileSync(path.join(root, 'affine.onnx'));
    const cut = bytes.subarray(0, Math.floor(bytes.length / 2));
    await expect(readOnnxSignatureFrom(async (s, e) => cut.subarray(s, e), cut.length)).rejects.toThrow(
      OnnxFormatError,
    );
  });
});
