#!/usr/bin/python3
"""Writes the tiny ONNX models unit tests run (test/fixtures/models/), documented in its README.md.

    /usr/bin/python3 scripts/make_test_models.py

Deterministic: no timestamps, fixed names, so rerunning rewrites byte-identical files. Weights are small integers
so expected outputs are exact in float32.
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'models')
OPSET = 17
IR_VERSION = 8

AFFINE_W = np.array([[1, 2], [0, -1], [3, 1]], dtype=np.float32)  # [3,2]
AFFINE_B = np.array([10, -5], dtype=np.float32)  # [2]
TWO_OUT_W = np.array([[1, 0, 2], [0, 1, -1], [1, 1, 0], [-2, 0, 1]], dtype=np.float32)  # [4,3]
NAN_GUARD_LIMIT = 1000.0


def io(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def save(name, nodes, inputs, outputs, inits=(), doc=''):
    graph = helper.make_graph(list(nodes), name, inputs, outputs, initializer=list(inits))
    model = helper.make_model(
        graph,
        producer_name='batch-infer scripts/make_test_models.py',
        producer_version='1',
        opset_imports=[helper.make_opsetid('', OPSET)],
        doc_string=doc,
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    path = os.path.join(OUT, f'{name}.onnx')
    with open(path, 'wb') as f:
        f.write(model.SerializeToString())
    print(f'{os.path.relpath(path)}: {os.path.getsize(path)} bytes')


def main():
    os.makedirs(OUT, exist_ok=True)

    save(
        'affine',
        [helper.make_node('Gemm', ['x', 'W', 'b'], ['y'])],
        [io('x', TensorProto.FLOAT, ['N', 3])],
        [io('y', TensorProto.FLOAT, ['N', 2])],
        [numpy_helper.from_array(AFFINE_W, 'W'), numpy_helper.from_array(AFFINE_B, 'b')],
        'y = x @ W + b, W = [[1,2],[0,-1],[3,1]], b = [10,-5]',
    )

    save(
        'two_outputs',
        [
            helper.make_node('MatMul', ['x', 'W'], ['logits']),
            helper.make_node('Mul', ['x', 'two'], ['embedding']),
        ],
        [io('x', TensorProto.FLOAT, ['N', 4])],
        [io('logits', TensorProto.FLOAT, ['N', 3]), io('embedding', TensorProto.FLOAT, ['N', 4])],
        [
            numpy_helper.from_array(TWO_OUT_W, 'W'),
            numpy_helper.from_array(np.array(2, dtype=np.float32), 'two'),
        ],
        'logits = x @ W, W = [[1,0,2],[0,1,-1],[1,1,0],[-2,0,1]]; embedding = x * 2',
    )

    save(
        'int64_identity',
        [helper.make_node('Identity', ['ids'], ['ids_out'])],
        [io('ids', TensorProto.INT64, ['N', 5])],
        [io('ids_out', TensorProto.INT64, ['N', 5])],
        doc='ids_out = ids',
    )

    save(
        'double_sum',
        [helper.make_node('ReduceSum', ['x', 'axes'], ['s'], keepdims=1)],
        [io('x', TensorProto.DOUBLE, ['N', 2])],
        [io('s', TensorProto.DOUBLE, ['N', 1])],
        [numpy_helper.from_array(np.array([1], dtype=np.int64), 'axes')],
        's = x[:, 0] + x[:, 1], shape [N,1]',
    )

    # y = x, but the whole run fails when any element is >= 1000 (or NaN): the graph reshapes x to
    # [N, 1 + bad] where bad counts those elements, which only fits when bad == 0. Reshape checks the element
    # count on every execution provider; how an out-of-range Gather index is handled is EP-specific.
    save(
        'nan_guard',
        [
            helper.make_node('Less', ['x', 'limit'], ['ok']),
            helper.make_node('Not', ['ok'], ['bad']),
            helper.make_node('Cast', ['bad'], ['bad_i64'], to=TensorProto.INT64),
            helper.make_node('ReduceSum', ['bad_i64', 'all_axes'], ['bad_count'], keepdims=0),
            helper.make_node('Add', ['bad_count', 'one'], ['cols']),
            helper.make_node('Shape', ['x'], ['x_shape']),
            helper.make_node('Slice', ['x_shape', 'zero', 'one'], ['rows']),
            helper.make_node('Concat', ['rows', 'cols'], ['target_shape'], axis=0),
            helper.make_node('Reshape', ['x', 'target_shape'], ['y']),
        ],
        [io('x', TensorProto.FLOAT, ['N', 1])],
        [io('y', TensorProto.FLOAT, ['N', 1])],
        [
            numpy_helper.from_array(np.array(NAN_GUARD_LIMIT, dtype=np.float32), 'limit'),
            numpy_helper.from_array(np.array([0, 1], dtype=np.int64), 'all_axes'),
            numpy_helper.from_array(np.array([0], dtype=np.int64), 'zero'),
            numpy_helper.from_array(np.array([1], dtype=np.int64), 'one'),
        ],
        'y = x; fails (Reshape element-count error) when any x >= 1000 or x is NaN',
    )


if __name__ == '__main__':
    main()
