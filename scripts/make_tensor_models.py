#!/usr/bin/python3
"""Writes the identity models the array-input tests run (test/fixtures/models/tensor/):

    /usr/bin/python3 scripts/make_tensor_models.py

- identity_dtypes.onnx: one input per ONNX element type onnxruntime-node can feed, `x_<dtype>` [N, 2] ->
  `y_<dtype>` [N, 2] (Identity), so every dtype makes a round trip through a real session;
- padded_identity.onnx: `seq` float32 [N, T, 2] -> `seq_out` (Identity), with a dynamic dimension T for
  padding-to-the-longest tests.

Deterministic (no timestamps): rerunning rewrites byte-identical files.
"""
import os

import onnx
from onnx import TensorProto, helper

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'models', 'tensor')
OPSET = 17
IR_VERSION = 8

# The job spec's dtype names, in its order, and their ONNX element types.
DTYPES = [
    ('float32', TensorProto.FLOAT),
    ('float64', TensorProto.DOUBLE),
    ('int32', TensorProto.INT32),
    ('int64', TensorProto.INT64),
    ('float16', TensorProto.FLOAT16),
    ('int8', TensorProto.INT8),
    ('int16', TensorProto.INT16),
    ('uint8', TensorProto.UINT8),
    ('uint16', TensorProto.UINT16),
    ('uint32', TensorProto.UINT32),
    ('uint64', TensorProto.UINT64),
    ('bool', TensorProto.BOOL),
    ('string', TensorProto.STRING),
]


def save(name, nodes, inputs, outputs, doc):
    graph = helper.make_graph(nodes, name, inputs, outputs)
    model = helper.make_model(graph, producer_name='batch-infer scripts/make_tensor_models.py', producer_version='1',
                              opset_imports=[helper.make_opsetid('', OPSET)], doc_string=doc)
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    path = os.path.join(OUT, f'{name}.onnx')
    with open(path, 'wb') as f:
        f.write(model.SerializeToString())
    print(f'{os.path.relpath(path, ROOT)}: {os.path.getsize(path)} bytes')


def main():
    os.makedirs(OUT, exist_ok=True)
    save(
        'identity_dtypes',
        [helper.make_node('Identity', [f'x_{name}'], [f'y_{name}']) for name, _ in DTYPES],
        [helper.make_tensor_value_info(f'x_{name}', elem, ['N', 2]) for name, elem in DTYPES],
        [helper.make_tensor_value_info(f'y_{name}', elem, ['N', 2]) for name, elem in DTYPES],
        'y_<dtype> = x_<dtype> for every element type onnxruntime-node can feed',
    )
    save(
        'padded_identity',
        [helper.make_node('Identity', ['seq'], ['seq_out'])],
        [helper.make_tensor_value_info('seq', TensorProto.FLOAT, ['N', 'T', 2])],
        [helper.make_tensor_value_info('seq_out', TensorProto.FLOAT, ['N', 'T', 2])],
        'seq_out = seq, with a dynamic dimension T',
    )


if __name__ == '__main__':
    main()
