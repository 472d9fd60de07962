#!/usr/bin/env bash
# nnc against PyTorch on examples/mnist_cnn.nn's training work (MODEL=cnn,
# the default) or examples/resnet.nn's (MODEL=resnet), side by side in one
# run: the same architecture, batch (64), optimizer (Adam) and data
# (data/mnist), steady training samples/s (no evaluation), one thread
# pinned to core 0 and two threads on cores 0-1, reps interleaved.
#   PYTHON=/path/to/venv/bin/python bash benches/cnn.sh     (repo root)
#   REPS=5 STEPS=100 MODEL=resnet bash benches/cnn.sh
# PyTorch comes from PyPI (`pip install torch numpy` in a virtualenv outside
# the repository); its rows are skipped when it is not importable.
set -euo pipefail
MODEL=${MODEL:-cnn}
case "$MODEL" in
cnn) example=examples/mnist_cnn.nn ;;
resnet) example=examples/resnet.nn ;;
*) echo "MODEL must be cnn or resnet" >&2; exit 2 ;;
esac
. "$(dirname "$0")/side_by_side.sh"
side_by_side "$example" 64 "${STEPS:-100}" benches/peers/torch_cnn.py --model "$MODEL"
