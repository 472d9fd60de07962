#!/usr/bin/env bash
# `nnc export` measured in one run (BENCHMARKS.md, "ONNX export"): for the
# MLP, the CNN, the ResNet and the char transformer, train briefly, export
# to ONNX, and compare onnxruntime's outputs with `nnc predict` on real test
# inputs (largest |onnx - nnc| / (1 + |nnc|)); then time onnxruntime (one
# thread, batch 1 and 64, input already in memory) and the built predictor
# (`nnc build --emit predictor`, NNC_THREADS=1, pinned to one core, best of
# three, the whole process: reading the input, 64-sample
# batches, printing its default output: the class of each sample, or of
# each position for the transformer) on the same samples.
# PYTHON: a python with onnxruntime and numpy (else the onnxruntime part
# is skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
NNC=${NNC:-target/release/nnc}
PY=${PYTHON:-python3}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
gunzip -c data/mnist/t10k-images-idx3-ubyte.gz > "$W/images.idx"
# 2,000 windows of 64 characters from the corpus, as CSV ids (bytes above
# 127 as 127: the text dataset's own mapping of its ASCII corpus).
"$PY" - "$W/ids.csv" <<'PY'
import sys
text = open("data/shakespeare/plays.txt", "rb").read()
with open(sys.argv[1], "w") as f:
    for s in range(2000):
        f.write(",".join(str(min(c, 127)) for c in text[s * 500 : s * 500 + 64]) + "\n")
PY
ort_ok=0
"$PY" -c "import onnxruntime, numpy" 2>/dev/null && ort_ok=1
for spec in "examples/mnist.nn 60000 images.idx" "examples/mnist_cnn.nn 5000 images.idx" \
    "examples/resnet.nn 2000 images.idx" "examples/char_gpt.nn 2000 ids.csv"; do
    set -- $spec
    file=$1 train=$2 input="$W/$3"
    name=$(basename "$file" .nn)
    $NNC run "$file" --train-samples "$train" --epochs 1 --eval-samples 100 --quiet --out "$W/$name" > /dev/null
    ckpt="$W/$name/checkpoints/final.safetensors"
    $NNC export "$file" --checkpoint "$ckpt" -o "$W/$name.onnx" 2> /dev/null
    $NNC build "$file" --checkpoint "$ckpt" --emit predictor -o "$W/$name.exe" 2> /dev/null
    $NNC predict "$file" --checkpoint "$ckpt" "$input" --output raw --json > "$W/$name.jsonl"
    n=$(wc -l < "$W/$name.jsonl")
    best=
    for _ in 1 2 3; do
        t0=$(date +%s.%N)
        NNC_THREADS=1 taskset -c 0 "$W/$name.exe" "$input" > /dev/null
        t=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
        best=$(awk -v t="$t" -v b="${best:-1e9}" 'BEGIN { print (t < b ? t : b) }')
    done
    rate=$(awk -v n="$n" -v t="$best" 'BEGIN { print n / t }')
    printf '%s: %d samples; built predictor, 1 thread: %.0f samples/s\n' "$name" "$n" "$rate"
    if [ $ort_ok = 1 ]; then
        taskset -c 0 "$PY" benches/onnx_compare.py "$W/$name.onnx" "$input" --expect "$W/$name.jsonl" --bench
    else
        echo "  onnxruntime: skipped ($PY cannot import onnxruntime and numpy)"
    fi
done
