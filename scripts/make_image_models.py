#!/usr/bin/python3
"""Writes the image model of the inference tests (test/fixtures/models/image/):

    /usr/bin/python3 scripts/make_image_models.py

- cnn.onnx: a small CNN classifier, pixel_values [N, 3, 32, 32] float32 -> logits [N, 4]
  (Conv 3->8 3x3, Relu, MaxPool 2, Conv 8->16 3x3, Relu, GlobalAveragePool, Gemm 16->4);
- labels.txt: its four class names;
- expected.json: logits from the numpy reference for the pattern images below, normalised as the tests declare
  (x / 255 - MEAN) / STD per channel. The tests draw the same patterns as PNGs with sharp, so decoding, layout and
  normalisation are all checked against this file.

Deterministic (fixed seed, no timestamps): rerunning rewrites byte-identical files.
"""
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'models', 'image')
OPSET = 17
IR_VERSION = 8
SIZE = 32
MEAN = [0.5, 0.4, 0.3]
STD = [0.25, 0.2, 0.3]
LABELS = ['stripes', 'checks', 'gradient', 'noise']
PATTERNS = 3


def pattern(k):
    """Pattern image k as [H, W, 3] uint8; the tests compute the same formula."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    channels = [(x * 7 + y * 13 + c * 50 + k * 31) % 256 for c in range(3)]
    return np.stack(channels, axis=-1).astype(np.uint8)


def conv2d(x, w, b):
    """NCHW convolution, 3x3 kernel, padding 1, stride 1."""
    n, c, h, wd = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, w.shape[0], h, wd), np.float32)
    for i in range(3):
        for j in range(3):
            patch = padded[:, :, i:i + h, j:j + wd]
            out += np.einsum('nchw,oc->nohw', patch, w[:, :, i, j])
    return out + b[None, :, None, None]


def reference(weights, x):
    h = np.maximum(conv2d(x, weights['c1_w'], weights['c1_b']), 0)
    n, c, hh, ww = h.shape
    h = h.reshape(n, c, hh // 2, 2, ww // 2, 2).max(axis=(3, 5))
    h = np.maximum(conv2d(h, weights['c2_w'], weights['c2_b']), 0)
    pooled = h.mean(axis=(2, 3))
    return pooled @ weights['fc_w'] + weights['fc_b']


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(7)
    weights = {
        'c1_w': (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32),
        'c1_b': (rng.standard_normal(8) * 0.1).astype(np.float32),
        'c2_w': (rng.standard_normal((16, 8, 3, 3)) * 0.2).astype(np.float32),
        'c2_b': (rng.standard_normal(16) * 0.1).astype(np.float32),
        'fc_w': (rng.standard_normal((16, 4)) * 0.5).astype(np.float32),
        'fc_b': (rng.standard_normal(4) * 0.1).astype(np.float32),
    }
    nodes = [
        helper.make_node('Conv', ['pixel_values', 'c1_w', 'c1_b'], ['c1'], pads=[1, 1, 1, 1]),
        helper.make_node('Relu', ['c1'], ['r1']),
        helper.make_node('MaxPool', ['r1'], ['p1'], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node('Conv', ['p1', 'c2_w', 'c2_b'], ['c2'], pads=[1, 1, 1, 1]),
        helper.make_node('Relu', ['c2'], ['r2']),
        helper.make_node('GlobalAveragePool', ['r2'], ['gap']),
        helper.make_node('Flatten', ['gap'], ['flat']),
        helper.make_node('Gemm', ['flat', 'fc_w', 'fc_b'], ['logits']),
    ]
    graph = helper.make_graph(
        nodes, 'cnn',
        [helper.make_tensor_value_info('pixel_values', TensorProto.FLOAT, ['N', 3, SIZE, SIZE])],
        [helper.make_tensor_value_info('logits', TensorProto.FLOAT, ['N', len(LABELS)])],
        initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, producer_name='batch-infer scripts/make_image_models.py', producer_version='1',
                              opset_imports=[helper.make_opsetid('', OPSET)],
                              doc_string='Test CNN: [N,3,32,32] -> logits [N,4]')
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    path = os.path.join(OUT, 'cnn.onnx')
    with open(path, 'wb') as f:
        f.write(model.SerializeToString())
    print(f'{os.path.relpath(path, ROOT)}: {os.path.getsize(path)} bytes')
    with open(os.path.join(OUT, 'labels.txt'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(LABELS) + '\n')

    images = np.stack([pattern(k) for k in range(PATTERNS)]).astype(np.float32) / 255
    x = ((images - np.array(MEAN, np.float32)) / np.array(STD, np.float32)).transpose(0, 3, 1, 2)
    logits = reference(weights, x.astype(np.float32))
    expected = {'size': SIZE, 'mean': MEAN, 'std': STD, 'labels': LABELS, 'logits': logits.tolist()}
    with open(os.path.join(OUT, 'expected.json'), 'w', encoding='utf-8') as f:
        json.dump(expected, f, separators=(',', ':'))
        f.write('\n')
    print('logits', logits.round(4).tolist())


if __name__ == '__main__':
    main()
