#!/usr/bin/env bash
# `nnc build` measured in one run (BENCHMARKS.md, "Standalone builds"):
# train the seed MLP for one epoch, build it (executable and object), then
# single-sample latency and batch-1000 throughput through the C ABI on all
# 10,000 MNIST test images (1 thread), executable size with and without the
# weights, and onnxruntime on the same weights when it is importable
# (ORT_PYTHON: a python with onnxruntime, onnx, numpy and safetensors).
set -euo pipefail
cd "$(dirname "$0")/.."
NNC=${NNC:-target/release/nnc}
PY=${ORT_PYTHON:-python3}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
$NNC run examples/mnist.nn --epochs 1 --quiet --out "$W/run" | grep -E "eval"
CKPT="$W/run/checkpoints/final.safetensors"
$NNC build examples/mnist.nn --checkpoint "$CKPT" -o "$W/mnist_mlp" 2>&1
$NNC build examples/mnist.nn --checkpoint "$CKPT" --emit obj -o "$W/model" 2>&1
gunzip -c data/mnist/t10k-images-idx3-ubyte.gz > "$W/images.idx"
cc -O2 -I"$W" benches/standalone/bench.c "$W/model.o" -lm -pthread -o "$W/bench"
"$W/bench" "$W/images.idx"
size=$(stat -c %s "$W/mnist_mlp")
weights=$(( (784 * 128 + 128 + 128 * 10 + 10) * 4 ))
echo "executable: $size bytes; without the $weights bytes of weights: $((size - weights)) bytes"
if "$PY" -c "import onnxruntime, onnx, numpy, safetensors" 2>/dev/null; then
    "$PY" benches/standalone/ort.py "$CKPT" "$W/images.idx"
else
    echo "onnxruntime: skipped ($PY cannot import onnxruntime, onnx, numpy and safetensors)"
fi
