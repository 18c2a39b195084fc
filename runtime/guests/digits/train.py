#!/usr/bin/env python3
"""Trains the `digits` example guest's classifier and writes its weights.

Data: scikit-learn's bundled 8x8 digits (`sklearn.datasets.load_digits()`, shipped inside the
package; nothing is downloaded). Training uses samples 0..1199 only. The float MLP
(64 -> HIDDEN ReLU -> 10) is quantised to i8 weights and i32 biases:

    h   = relu(x @ W1q + b1q)                 x: pixels 0..16 as i8, i32 accumulators
    h8  = requantize(h, i8, REQUANT)          round half to even, saturate
    out = argmax(h8 @ W2q + b2q)

Writes (paths relative to this file):
  weights.bin                            the guest's weights (format below), embedded by main.rs
  ../../tests/data/digits-test-images.bin samples 1200.. as 64 bytes each (pixel values 0..16)
  ../../tests/data/digits-test-labels.bin their labels, one byte each

weights.bin, little endian: b"CDG1", u32 inputs (64), u32 hidden, u32 classes (10),
f32 REQUANT, W1q (inputs x hidden i8, row-major), b1q (hidden i32), W2q (hidden x classes i8,
row-major), b2q (classes i32).

The accuracy printed here is NumPy's emulation, for information only; the reported accuracy
is measured by running the guest in the sandbox (runtime/tests/it/tensor_guests.rs).

Usage: python3 train.py   (needs scikit-learn and numpy; e.g. in a venv outside the repo)
"""
import os
import struct

import numpy as np
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier

HIDDEN = 32
TRAIN = 1200
SEED = 0
# alpha chosen on a validation split of the training samples (fit 0..999, score 1000..1199):
# 0.01 and 0.1 tied best (0.98); the stronger regularisation is used.

here = os.path.dirname(os.path.abspath(__file__))
digits = load_digits()
x_all = digits.data.astype(np.int64)  # pixel values 0..16, row-major 8x8
y_all = digits.target.astype(np.int64)
x_train, y_train = x_all[:TRAIN], y_all[:TRAIN]
x_test, y_test = x_all[TRAIN:], y_all[TRAIN:]

mlp = MLPClassifier(hidden_layer_sizes=(HIDDEN,), activation="relu", alpha=0.1,
                    max_iter=2000, random_state=SEED)
mlp.fit(x_train / 16.0, y_train)
float_acc = mlp.score(x_test / 16.0, y_test)

w1 = mlp.coefs_[0] / 16.0  # fold the input scaling into the first layer
b1 = mlp.intercepts_[0]
w2 = mlp.coefs_[1]
b2 = mlp.intercepts_[1]

s1 = np.abs(w1).max() / 127.0
w1q = np.clip(np.rint(w1 / s1), -127, 127).astype(np.int8)
b1q = np.rint(b1 / s1).astype(np.int32)
h_train = np.maximum(x_train @ w1 + b1, 0.0)
sa = np.percentile(h_train, 99.9) / 127.0  # activation scale from the training set only
s2 = np.abs(w2).max() / 127.0
w2q = np.clip(np.rint(w2 / s2), -127, 127).astype(np.int8)
b2q = np.rint(b2 / (sa * s2)).astype(np.int32)
requant = np.float32(s1 / sa)


def predict(x):
    h = np.maximum(x.astype(np.int32) @ w1q.astype(np.int32) + b1q, 0)
    h8 = np.clip(np.rint(h.astype(np.float32) * requant), -128, 127).astype(np.int32)
    return np.argmax(h8 @ w2q.astype(np.int32) + b2q, axis=1)


quant_acc = (predict(x_test) == y_test).mean()
print(f"float MLP accuracy on samples {TRAIN}+: {float_acc:.4f}")
print(f"quantised (NumPy emulation) on samples {TRAIN}+: {quant_acc:.4f} of {len(y_test)}")

with open(os.path.join(here, "weights.bin"), "wb") as f:
    f.write(b"CDG1")
    f.write(struct.pack("<III", 64, HIDDEN, 10))
    f.write(struct.pack("<f", requant))
    f.write(w1q.tobytes())
    f.write(b1q.astype("<i4").tobytes())
    f.write(w2q.tobytes())
    f.write(b2q.astype("<i4").tobytes())

data = os.path.join(here, "..", "..", "tests", "data")
os.makedirs(data, exist_ok=True)
with open(os.path.join(data, "digits-test-images.bin"), "wb") as f:
    f.write(x_test.astype(np.uint8).tobytes())
with open(os.path.join(data, "digits-test-labels.bin"), "wb") as f:
    f.write(y_test.astype(np.uint8).tobytes())
