#!/usr/bin/python3
"""Writes the text models of the inference tests and the text examples (test/fixtures/models/text/):

    /usr/bin/python3 scripts/make_text_models.py

- vocab.txt, tokenizer.json: a BERT-style (WordPiece, lowercasing, accent stripping) tokenizer whose vocabulary is
  built from scripts/data/text_words.txt;
- encoder.onnx: a BERT-shaped encoder, input_ids / attention_mask / token_type_ids [N, T] int64 ->
  last_hidden_state [N, T, 128] float32 (4 post-LayerNorm transformer layers, 4 heads, masked attention);
- classifier.onnx: a smaller encoder of the same shape (input_ids / attention_mask only) with a head on the first
  token: logits [N, 3] for labels.txt;
- config.json, tokenizer_config.json: what @huggingface/transformers needs to load the encoder as a BertModel (the
  benchmark's baseline): copy encoder.onnx to <dir>/onnx/model.onnx next to these and tokenizer.json;
- expected.json: token ids from an independent Python WordPiece implementation, and outputs computed by the numpy
  reference of both graphs below, for the tests to compare with.

Deterministic (fixed seeds, no timestamps): rerunning rewrites byte-identical files. Weights are stored as float16
and cast to float32 inside the graph, which halves the files; the numpy reference uses the same float16 values.
"""
import json
import os
import unicodedata

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'models', 'text')
WORDS = os.path.join(ROOT, 'scripts', 'data', 'text_words.txt')
OPSET = 17
IR_VERSION = 8

SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
PUNCTUATION = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'
SUFFIXES = ['s', 'es', 'ed', 'ing', 'ly', 'er', 'est', 'ion', 'al', 'ness', 'ment', 'able', 'ful', 'less']

ENCODER = dict(hidden=128, heads=4, layers=4, ffn=512, max_positions=128, seed=1234)
CLASSIFIER = dict(hidden=64, heads=2, layers=2, ffn=256, max_positions=128, seed=5, classes=3)
CLASS_LABELS = ['negative', 'neutral', 'positive']

# Sentences the tests encode: plain words, punctuation, accents, subwords, unknown characters, and a long one that
# a small maxLength truncates.
SENTENCES = [
    'The cat sat on the table.',
    'I really loved this movie, it was wonderful!',
    'Café prices are CHEAP today?',
    'Unbelievably, the delivery arrived broken.',
    'hello',
    '',
    'Zebras ☃ xylophones',
    'The quick brown dog runs over the lazy cat in the garden while the family watched a movie in the living room',
]
TRUNCATE_AT = 12


# ------------------------------------------------------------------------------------------------ tokenizer


def build_vocab():
    words = [w.strip() for w in open(WORDS, encoding='utf-8') if w.strip() and not w.startswith('#')]
    chars = [chr(c) for c in range(ord('a'), ord('z') + 1)] + [str(d) for d in range(10)] + list(PUNCTUATION)
    vocab = []
    seen = set()
    for token in SPECIALS + chars + ['##' + c for c in chars[:36]] + ['##' + s for s in SUFFIXES] + words:
        if token not in seen:
            seen.add(token)
            vocab.append(token)
    return vocab


def tokenizer_json(vocab):
    ids = {t: i for i, t in enumerate(vocab)}

    def special(token):
        return {'id': ids[token], 'content': token, 'single_word': False, 'lstrip': False, 'rstrip': False,
                'normalized': False, 'special': True}

    def template(*items):
        out = []
        for kind, value, type_id in items:
            key = 'SpecialToken' if kind == 'special' else 'Sequence'
            out.append({key: {'id': value, 'type_id': type_id}})
        return out

    return {
        'version': '1.0',
        'truncation': None,
        'padding': None,
        'added_tokens': [special(t) for t in SPECIALS],
        'normalizer': {'type': 'BertNormalizer', 'clean_text': True, 'handle_chinese_chars': True,
                       'strip_accents': None, 'lowercase': True},
        'pre_tokenizer': {'type': 'BertPreTokenizer'},
        'post_processor': {
            'type': 'TemplateProcessing',
            'single': template(('special', '[CLS]', 0), ('seq', 'A', 0), ('special', '[SEP]', 0)),
            'pair': template(('special', '[CLS]', 0), ('seq', 'A', 0), ('special', '[SEP]', 0), ('seq', 'B', 1),
                             ('special', '[SEP]', 1)),
            'special_tokens': {t: {'id': t, 'ids': [ids[t]], 'tokens': [t]} for t in ['[CLS]', '[SEP]']},
        },
        'decoder': {'type': 'WordPiece', 'prefix': '##', 'cleanup': True},
        'model': {'type': 'WordPiece', 'unk_token': '[UNK]', 'continuing_subword_prefix': '##',
                  'max_input_chars_per_word': 100, 'vocab': ids},
    }


def is_punctuation(ch):
    return ch in PUNCTUATION or unicodedata.category(ch).startswith('P')


def reference_tokenize(text, vocab, max_length=None):
    """BERT's basic + WordPiece tokenization, written from the algorithm's description (not from the JS code)."""
    ids = {t: i for i, t in enumerate(vocab)}
    cleaned = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch).startswith('C') and ch not in '\t\n\r'):
            continue
        cleaned.append(' ' if ch.isspace() else ch)
    text = ''.join(cleaned).lower()
    text = ''.join(c for c in unicodedata.normalize('NFD', text) if unicodedata.category(c) != 'Mn')
    words = []
    for chunk in text.split():
        current = ''
        for ch in chunk:
            if is_punctuation(ch):
                if current:
                    words.append(current)
                    current = ''
                words.append(ch)
            else:
                current += ch
        if current:
            words.append(current)
    pieces = []
    for word in words:
        if len(word) > 100:
            pieces.append('[UNK]')
            continue
        start, sub = 0, []
        while start < len(word):
            end = len(word)
            found = None
            while start < end:
                candidate = ('##' if start > 0 else '') + word[start:end]
                if candidate in ids:
                    found = candidate
                    break
                end -= 1
            if found is None:
                sub = ['[UNK]']
                break
            sub.append(found)
            start = end
        pieces.extend(sub)
    if max_length is not None:
        pieces = pieces[:max_length - 2]
    return [ids['[CLS]']] + [ids[p] for p in pieces] + [ids['[SEP]']]


# ------------------------------------------------------------------------------------------------ models


def encoder_weights(vocab_size, cfg):
    rng = np.random.default_rng(cfg['seed'])
    h, f = cfg['hidden'], cfg['ffn']

    def w(*shape, scale=0.08):
        return (rng.standard_normal(shape) * scale).astype(np.float16)

    weights = {
        'word_emb': w(vocab_size, h, scale=0.5),
        'pos_emb': w(cfg['max_positions'], h, scale=0.1),
        'type_emb': w(2, h, scale=0.1),
        'emb_ln_g': (1 + w(h, scale=0.05)).astype(np.float16),
        'emb_ln_b': w(h, scale=0.05),
    }
    for layer in range(cfg['layers']):
        p = f'l{layer}_'
        for name in ['q', 'k', 'v', 'o']:
            weights[p + name + '_w'] = w(h, h)
            weights[p + name + '_b'] = w(h, scale=0.02)
        weights[p + 'ln1_g'] = (1 + w(h, scale=0.05)).astype(np.float16)
        weights[p + 'ln1_b'] = w(h, scale=0.05)
        weights[p + 'ff1_w'] = w(h, f)
        weights[p + 'ff1_b'] = w(f, scale=0.02)
        weights[p + 'ff2_w'] = w(f, h, scale=0.05)
        weights[p + 'ff2_b'] = w(h, scale=0.02)
        weights[p + 'ln2_g'] = (1 + w(h, scale=0.05)).astype(np.float16)
        weights[p + 'ln2_b'] = w(h, scale=0.05)
    if 'classes' in cfg:
        weights['head_dense_w'] = w(h, h, scale=0.8)
        weights['head_dense_b'] = w(h, scale=0.02)
        weights['head_out_w'] = w(h, cfg['classes'], scale=0.5)
        weights['head_out_b'] = np.zeros(cfg['classes'], np.float16)
    return weights



def np_layer_norm(x, g, b):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + np.float32(1e-5)) * g + b


def np_gelu(x):
    return np.float32(0.5) * x * (1 + np.tanh(np.float32(np.sqrt(2 / np.pi)) * (x + np.float32(0.044715) * x ** 3)))


def np_encoder(weights, cfg, input_ids, attention_mask, token_type_ids=None):
    """The numpy reference of the graph built by `encoder_graph`, in float32."""
    W = {k: v.astype(np.float32) for k, v in weights.items()}
    n, t = input_ids.shape
    h, heads = cfg['hidden'], cfg['heads']
    dh = h // heads
    x = W['word_emb'][input_ids] + W['pos_emb'][np.arange(t)][None]
    if token_type_ids is not None:
        x = x + W['type_emb'][token_type_ids]
    x = np_layer_norm(x, W['emb_ln_g'], W['emb_ln_b'])
    ext = (1 - attention_mask.astype(np.float32)) * np.float32(-10000)
    ext = ext[:, None, None, :]
    for layer in range(cfg['layers']):
        p = f'l{layer}_'

        def heads_of(y):
            return y.reshape(n, t, heads, dh).transpose(0, 2, 1, 3)

        q = heads_of(x @ W[p + 'q_w'] + W[p + 'q_b'])
        k = heads_of(x @ W[p + 'k_w'] + W[p + 'k_b'])
        v = heads_of(x @ W[p + 'v_w'] + W[p + 'v_b'])
        scores = q @ k.transpose(0, 1, 3, 2) * np.float32(1 / np.sqrt(dh)) + ext
        scores = scores - scores.max(-1, keepdims=True)
        probs = np.exp(scores)
        probs = probs / probs.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(n, t, h)
        x = np_layer_norm(x + ctx @ W[p + 'o_w'] + W[p + 'o_b'], W[p + 'ln1_g'], W[p + 'ln1_b'])
        ff = np_gelu(x @ W[p + 'ff1_w'] + W[p + 'ff1_b']) @ W[p + 'ff2_w'] + W[p + 'ff2_b']
        x = np_layer_norm(x + ff, W[p + 'ln2_g'], W[p + 'ln2_b'])
    if 'classes' not in cfg:
        return x
    pooled = np.tanh(x[:, 0] @ W['head_dense_w'] + W['head_dense_b'])
    return pooled @ W['head_out_w'] + W['head_out_b']


class Graph:
    def __init__(self):
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, hint):
        self.count += 1
        return f'{hint}_{self.count}'

    def op(self, op_type, inputs, hint=None, **attrs):
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def const(self, name, array):
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(self, name, array16):
        """A float16 initializer cast to float32 in the graph (ONNX Runtime folds the cast at load)."""
        self.const(name + '_f16', array16)
        return self.op('Cast', [name + '_f16'], name, to=TensorProto.FLOAT)


def encoder_graph(g, weights, cfg, with_types):
    h, heads = cfg['hidden'], cfg['heads']
    dh = h // heads
    W = {k: g.weight(k, v) for k, v in weights.items()}
    ln = lambda x, p: g.op('LayerNormalization', [x, W[p + '_g'], W[p + '_b']], 'ln', axis=-1, epsilon=1e-5)
    seq_len = g.op('Gather', ['input_ids_shape', g.const('one_i64', np.array(1, np.int64))], 'seq_len', axis=0)
    g.nodes.insert(0, helper.make_node('Shape', ['input_ids'], ['input_ids_shape']))
    positions = g.op('Range', [g.const('zero_i64', np.array(0, np.int64)), seq_len, 'one_i64'], 'positions')
    x = g.op('Add', [g.op('Gather', [W['word_emb'], 'input_ids'], 'words'),
                     g.op('Gather', [W['pos_emb'], positions], 'pos')], 'emb')
    if with_types:
        x = g.op('Add', [x, g.op('Gather', [W['type_emb'], 'token_type_ids'], 'types')], 'emb')
    x = ln(x, 'emb_ln')
    mask = g.op('Cast', ['attention_mask'], 'maskf', to=TensorProto.FLOAT)
    ext = g.op('Mul', [g.op('Sub', [g.const('one_f', np.array(1, np.float32)), mask]),
                       g.const('neg_big', np.array(-10000, np.float32))], 'ext')
    ext = g.op('Unsqueeze', [ext, g.const('axes_12', np.array([1, 2], np.int64))], 'ext4')
    split_shape = g.const('split_shape', np.array([0, 0, heads, dh], np.int64))
    merge_shape = g.const('merge_shape', np.array([0, 0, h], np.int64))
    scale = g.const('scale', np.array(1 / np.sqrt(dh), np.float32))
    gelu_c = g.const('gelu_c', np.array(np.sqrt(2 / np.pi), np.float32))
    gelu_k = g.const('gelu_k', np.array(0.044715, np.float32))
    half = g.const('half', np.array(0.5, np.float32))
    for layer in range(cfg['layers']):
        p = f'l{layer}_'
        dense = lambda y, name: g.op('Add', [g.op('MatMul', [y, W[p + name + '_w']]), W[p + name + '_b']], name)
        split = lambda y, perm: g.op('Transpose', [g.op('Reshape', [y, split_shape])], perm=perm)
        q = split(dense(x, 'q'), [0, 2, 1, 3])
        k = split(dense(x, 'k'), [0, 2, 3, 1])
        v = split(dense(x, 'v'), [0, 2, 1, 3])
        scores = g.op('Add', [g.op('Mul', [g.op('MatMul', [q, k]), scale]), ext], 'scores')
        probs = g.op('Softmax', [scores], 'probs', axis=-1)
        ctx = g.op('Reshape', [g.op('Transpose', [g.op('MatMul', [probs, v])], perm=[0, 2, 1, 3]), merge_shape])
        x = ln(g.op('Add', [x, dense(ctx, 'o')]), p + 'ln1')
        u = dense(x, 'ff1')
        cube = g.op('Mul', [g.op('Mul', [u, u]), u])
        inner = g.op('Mul', [g.op('Add', [u, g.op('Mul', [cube, gelu_k])]), gelu_c])
        gelu = g.op('Mul', [g.op('Mul', [u, half]), g.op('Add', [g.op('Tanh', [inner]), 'one_f'])], 'gelu')
        x = ln(g.op('Add', [x, dense(gelu, 'ff2')]), p + 'ln2')
    return x, W


def save(path, g, inputs, outputs, doc):
    graph = helper.make_graph(g.nodes, os.path.splitext(os.path.basename(path))[0], inputs, outputs,
                              initializer=g.inits)
    model = helper.make_model(graph, producer_name='batch-infer scripts/make_text_models.py', producer_version='1',
                              opset_imports=[helper.make_opsetid('', OPSET)], doc_string=doc)
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    with open(path, 'wb') as f:
        f.write(model.SerializeToString())
    print(f'{os.path.relpath(path, ROOT)}: {os.path.getsize(path)} bytes')


def ids_input(name):
    return helper.make_tensor_value_info(name, TensorProto.INT64, ['N', 'T'])


def make_encoder(vocab_size):
    weights = encoder_weights(vocab_size, ENCODER)
    g = Graph()
    x, _ = encoder_graph(g, weights, ENCODER, with_types=True)
    g.nodes.append(helper.make_node('Identity', [x], ['last_hidden_state']))
    save(os.path.join(OUT, 'encoder.onnx'), g,
         [ids_input('input_ids'), ids_input('attention_mask'), ids_input('token_type_ids')],
         [helper.make_tensor_value_info('last_hidden_state', TensorProto.FLOAT, ['N', 'T', ENCODER['hidden']])],
         'BERT-shaped test encoder: 4 layers, hidden 128, 4 heads, FFN 512, max 128 positions')
    return weights


def make_classifier(vocab_size):
    weights = encoder_weights(vocab_size, CLASSIFIER)
    g = Graph()
    x, W = encoder_graph(g, weights, CLASSIFIER, with_types=False)
    first = g.op('Gather', [x, g.const('zero_idx', np.array(0, np.int64))], 'cls', axis=1)
    pooled = g.op('Tanh', [g.op('Add', [g.op('MatMul', [first, W['head_dense_w']]), W['head_dense_b']])])
    g.nodes.append(helper.make_node('Gemm', [pooled, W['head_out_w'], W['head_out_b']], ['logits']))
    save(os.path.join(OUT, 'classifier.onnx'), g,
         [ids_input('input_ids'), ids_input('attention_mask')],
         [helper.make_tensor_value_info('logits', TensorProto.FLOAT, ['N', CLASSIFIER['classes']])],
         'Test text classifier: 2 layers, hidden 64, first-token head -> logits for negative, neutral, positive')
    return weights


def main():
    os.makedirs(OUT, exist_ok=True)
    vocab = build_vocab()
    with open(os.path.join(OUT, 'vocab.txt'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(vocab) + '\n')
    with open(os.path.join(OUT, 'tokenizer.json'), 'w', encoding='utf-8') as f:
        json.dump(tokenizer_json(vocab), f, ensure_ascii=False, separators=(',', ':'))
        f.write('\n')
    with open(os.path.join(OUT, 'labels.txt'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(CLASS_LABELS) + '\n')
    print(f'vocabulary: {len(vocab)} tokens')

    hf_config = {
        'model_type': 'bert', 'architectures': ['BertModel'], 'vocab_size': len(vocab),
        'hidden_size': ENCODER['hidden'], 'num_attention_heads': ENCODER['heads'],
        'num_hidden_layers': ENCODER['layers'], 'intermediate_size': ENCODER['ffn'],
        'max_position_embeddings': ENCODER['max_positions'], 'type_vocab_size': 2, 'hidden_act': 'gelu_new',
        'layer_norm_eps': 1e-5, 'pad_token_id': 0,
    }
    tokenizer_config = {
        'tokenizer_class': 'BertTokenizer', 'do_lower_case': True, 'model_max_length': ENCODER['max_positions'],
        'pad_token': '[PAD]', 'unk_token': '[UNK]', 'cls_token': '[CLS]', 'sep_token': '[SEP]',
        'mask_token': '[MASK]',
    }
    for name, value in [('config.json', hf_config), ('tokenizer_config.json', tokenizer_config)]:
        with open(os.path.join(OUT, name), 'w', encoding='utf-8') as f:
            json.dump(value, f, indent=2)
            f.write('\n')

    enc_w = make_encoder(len(vocab))
    cls_w = make_classifier(len(vocab))

    expected = {'vocabSize': len(vocab), 'hidden': ENCODER['hidden'], 'truncateAt': TRUNCATE_AT, 'sentences': []}
    for text in SENTENCES:
        ids = reference_tokenize(text, vocab)
        arr = np.array([ids], np.int64)
        mask = np.ones_like(arr)
        hidden = np_encoder(enc_w, ENCODER, arr, mask, np.zeros_like(arr))[0]
        mean = hidden.mean(0)
        entry = {
            'text': text,
            'ids': ids,
            'idsTruncated': reference_tokenize(text, vocab, TRUNCATE_AT),
            # Mean over the tokens (all real: no padding here), then L2-normalised: a sentence embedding.
            'meanNormalized': (mean / np.linalg.norm(mean)).tolist(),
            'cls': hidden[0].tolist(),
            'logits': np_encoder(cls_w, CLASSIFIER, arr, mask)[0].tolist(),
        }
        expected['sentences'].append(entry)
    first = expected['sentences'][0]
    arr = np.array([first['ids']], np.int64)
    expected['firstHidden'] = np_encoder(enc_w, ENCODER, arr, np.ones_like(arr), np.zeros_like(arr))[0].tolist()
    with open(os.path.join(OUT, 'expected.json'), 'w', encoding='utf-8') as f:
        json.dump(expected, f, ensure_ascii=False, separators=(',', ':'))
        f.write('\n')
    print(f'{os.path.relpath(os.path.join(OUT, "expected.json"), ROOT)} written')


if __name__ == '__main__':
    main()
