#!/usr/bin/python3
"""Builds the breast-cancer example: data, registry (two model versions) and expected predictions.

Run with Debian's interpreter (it has scikit-learn, onnx and numpy):

    /usr/bin/python3 examples/breast-cancer/make_model.py

Everything is deterministic: rerunning it rewrites byte-identical files.

The model is StandardScaler + MLPClassifier(hidden_layer_sizes=(32, 16), relu), exported by hand with
onnx.helper (no skl2onnx here):

    features [N,30] -> Sub(mean) -> Div(scale) -> Gemm -> Relu -> Gemm -> Relu -> Gemm -> Softmax -> probabilities [N,2]

A binary MLPClassifier has ONE logistic output unit z with P(benign) = sigmoid(z). The last Gemm emits the logits
[0, z] instead, so Softmax gives [1 - sigmoid(z), sigmoid(z)]: exactly sklearn's predict_proba, columns in
sklearn's target order (malignant, benign).

onnxruntime-python is not available, so the script checks the exported graph with a small numpy interpreter of
the ops it contains (in float32, like onnxruntime) against sklearn's predict_proba.
"""
import json
import os
import warnings

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

HERE = os.path.dirname(os.path.abspath(__file__))
GROUP = 'breast-cancer-mlp'
OPSET = 17
IR_VERSION = 8  # onnxruntime-node 1.30 accepts it; keeps the files loadable by older runtimes too
SPLIT_SEED = 0
TOLERANCE = 1e-5

# version -> how it is trained and registered
VERSIONS = {
    1: {'seed': 1, 'status': 'Approved', 'createdAt': '2024-05-01T09:00:00.000Z'},
    2: {'seed': 7, 'status': 'PendingManualApproval', 'createdAt': '2024-06-01T09:00:00.000Z'},
}


def snake(name):
    return name.strip().replace(' ', '_').lower()


def train(X_train, y_train, seed):
    scaler = StandardScaler().fit(X_train)
    mlp = MLPClassifier(
        hidden_layer_sizes=(32, 16),
        activation='relu',
        solver='adam',
        alpha=1.0,  # L2 strength picked by 5-fold CV on the training split (1e-3 .. 1.0)
        learning_rate_init=1e-3,
        max_iter=400,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', ConvergenceWarning)
        mlp.fit(scaler.transform(X_train), y_train)
    return scaler, mlp


def sk_proba(scaler, mlp, X):
    return mlp.predict_proba(scaler.transform(X))


def export(scaler, mlp, description):
    """The fitted scaler + MLP as an ONNX model (float32 weights)."""
    assert mlp.out_activation_ == 'logistic' and mlp.coefs_[-1].shape[1] == 1, 'expects a binary classifier'
    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    inits = [
        numpy_helper.from_array(f32(scaler.mean_), 'scaler_mean'),
        numpy_helper.from_array(f32(scaler.scale_), 'scaler_scale'),
    ]
    nodes = [
        helper.make_node('Sub', ['features', 'scaler_mean'], ['centered'], name='scaler_sub'),
        helper.make_node('Div', ['centered', 'scaler_scale'], ['scaled'], name='scaler_div'),
    ]
    layers = list(zip(mlp.coefs_, mlp.intercepts_))
    prev = 'scaled'
    for i, (W, b) in enumerate(layers):
        last = i == len(layers) - 1
        if last:
            # one logistic unit z -> two softmax logits [0, z]
            W = np.concatenate([np.zeros_like(W), W], axis=1)
            b = np.concatenate([np.zeros_like(b), b])
        inits += [numpy_helper.from_array(f32(W), f'W{i}'), numpy_helper.from_array(f32(b), f'b{i}')]
        out = 'logits' if last else f'h{i}_linear'
        nodes.append(helper.make_node('Gemm', [prev, f'W{i}', f'b{i}'], [out], name=f'dense{i}'))
        if not last:
            nodes.append(helper.make_node('Relu', [out], [f'h{i}'], name=f'relu{i}'))
            prev = f'h{i}'
    nodes.append(helper.make_node('Softmax', ['logits'], ['probabilities'], name='softmax', axis=-1))
    n_features = scaler.mean_.shape[0]
    graph = helper.make_graph(
        nodes,
        'breast_cancer_mlp',
        [helper.make_tensor_value_info('features', TensorProto.FLOAT, ['N', n_features])],
        [helper.make_tensor_value_info('probabilities', TensorProto.FLOAT, ['N', 2])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        producer_name='batch-infer examples/breast-cancer/make_model.py',
        producer_version='1',
        opset_imports=[helper.make_opsetid('', OPSET)],
        doc_string=description,
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def run_onnx_numpy(model, feeds):
    """Evaluates the ops this script emits, in float32, following the ONNX operator definitions."""
    env = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    env.update({k: np.asarray(v, dtype=np.float32) for k, v in feeds.items()})
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        ins = [env[name] for name in node.input]
        if node.op_type == 'Sub':
            out = ins[0] - ins[1]
        elif node.op_type == 'Div':
            out = ins[0] / ins[1]
        elif node.op_type == 'Relu':
            out = np.maximum(ins[0], np.float32(0))
        elif node.op_type == 'Gemm':
            A, B = ins[0], ins[1]
            if attrs.get('transA', 0):
                A = A.T
            if attrs.get('transB', 0):
                B = B.T
            out = np.float32(attrs.get('alpha', 1.0)) * (A @ B)
            if len(ins) > 2:
                out = out + np.float32(attrs.get('beta', 1.0)) * ins[2]
        elif node.op_type == 'Softmax':
            axis = attrs.get('axis', -1)
            e = np.exp(ins[0] - ins[0].max(axis=axis, keepdims=True))
            out = e / e.sum(axis=axis, keepdims=True)
        else:
            raise NotImplementedError(node.op_type)
        env[node.output[0]] = out.astype(np.float32)
    return [env[o.name] for o in model.graph.output]


def write_text(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8', newline='\n') as f:
        f.write(text)


def main():
    data = load_breast_cancer()
    X, y = data.data, data.target
    labels = [str(n) for n in data.target_names]  # sklearn's order: malignant (0), benign (1)
    columns = [snake(n) for n in data.feature_names]
    ids = [f'P{i + 1:05d}' for i in range(len(X))]
    train_idx, test_idx = train_test_split(
        np.arange(len(X)), test_size=0.25, random_state=SPLIT_SEED, stratify=y
    )
    X_train, X_test, y_train, y_test = X[train_idx], X[test_idx], y[train_idx], y[test_idx]

    # data/breast_cancer.csv: every row, the raw feature values exactly as the dataset has them
    rows = ['patient_id,' + ','.join(columns) + ',diagnosis']
    for pid, features, target in zip(ids, X, y):
        rows.append(pid + ',' + ','.join(repr(float(v)) for v in features) + ',' + labels[target])
    write_text(os.path.join(HERE, 'data', 'breast_cancer.csv'), '\n'.join(rows) + '\n')

    for version, conf in VERSIONS.items():
        scaler, mlp = train(X_train, y_train, conf['seed'])
        accuracy = float(np.mean(mlp.predict(scaler.transform(X_test)) == y_test))
        description = (
            'StandardScaler + MLP (30-32-16-2, ReLU, softmax) trained on 75% of the Wisconsin breast-cancer '
            f'dataset (sklearn), split seed {SPLIT_SEED}, weight seed {conf["seed"]}. '
            'Input features float32 [N,30]; output probabilities float32 [N,2] in labels.txt order.'
        )
        model = export(scaler, mlp, description)

        (proba,) = run_onnx_numpy(model, {'features': X})
        diff = float(np.max(np.abs(proba.astype(np.float64) - sk_proba(scaler, mlp, X))))
        assert diff <= TOLERANCE, f'v{version}: ONNX graph differs from sklearn by {diff}'
        onnx_accuracy = float(np.mean(np.argmax(proba[test_idx], axis=1) == y_test))
        assert onnx_accuracy == accuracy, f'v{version}: ONNX accuracy {onnx_accuracy} != sklearn {accuracy}'

        vdir = os.path.join(HERE, 'registry', GROUP, str(version))
        os.makedirs(vdir, exist_ok=True)
        with open(os.path.join(vdir, 'model.onnx'), 'wb') as f:
            f.write(model.SerializeToString())
        write_text(os.path.join(vdir, 'labels.txt'), '\n'.join(labels) + '\n')
        metadata = {
            'status': conf['status'],
            'createdAt': conf['createdAt'],
            'description': description,
            'metrics': {'testAccuracy': round(accuracy, 4)},
        }
        write_text(os.path.join(vdir, 'metadata.json'), json.dumps(metadata, indent=2) + '\n')
        print(
            f'v{version} ({conf["status"]}): test accuracy {accuracy:.4f} '
            f'({round(accuracy * len(y_test))}/{len(y_test)}), max |onnx - sklearn| = {diff:.2e}'
        )

        if version == 1:
            out = ['patient_id,label,score']
            for pid, p in zip(ids, proba):
                k = int(np.argmax(p))
                out.append(f'{pid},{labels[k]},{float(p[k]):.7g}')
            write_text(os.path.join(HERE, 'expected', 'expected_v1.csv'), '\n'.join(out) + '\n')
            all_acc = float(np.mean(np.argmax(proba, axis=1) == y))
            print(f'v1 accuracy over all {len(y)} rows (numpy reference of the ONNX graph): {all_acc:.4f}')


if __name__ == '__main__':
    main()
