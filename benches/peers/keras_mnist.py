"""The seed's Keras program, verbatim, timed from process start to exit.

    KERAS_BACKEND=jax taskset -c 0 python3 benches/peers/keras_mnist.py

Reads MNIST from data/mnist (the IDX files nnc uses). Needs keras and a
backend (jax here); exits 0 with a note when they are missing.
"""
import os, sys, time

START = time.perf_counter()
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
try:
    import numpy as np
    from keras import Sequential
    from keras.layers import Dense, Flatten, Input
except ImportError:
    print("keras not installed: skipping")
    sys.exit(0)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from idx import read as idx  # noqa: E402 (after the optional imports)


x_train, y_train = idx("data/mnist/train-images-idx3-ubyte.gz"), idx("data/mnist/train-labels-idx1-ubyte.gz")
x_test, y_test = idx("data/mnist/t10k-images-idx3-ubyte.gz"), idx("data/mnist/t10k-labels-idx1-ubyte.gz")

model = Sequential([Input((28, 28)), Flatten(), Dense(128, activation="relu"), Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train / 255.0, y_train, epochs=5, verbose=0)  # batch 32
loss, acc = model.evaluate(x_test / 255.0, y_test, verbose=0)
print(f"keras: test accuracy {acc:.4f}, wall {time.perf_counter() - START:.1f} s (process start to exit)")
