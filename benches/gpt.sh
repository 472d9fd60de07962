#!/usr/bin/env bash
# nnc against PyTorch on examples/char_gpt.nn's training work (MODEL=char,
# the default) or benches/gpt_medium.nn's (MODEL=medium), side by side in
# one run: the same architecture, batch, optimizer and data (the Shakespeare
# text in data/), steady training samples/s (no evaluation), one thread
# pinned to core 0 and two threads on cores 0-1, reps interleaved.
#   PYTHON=/path/to/venv/bin/python bash benches/gpt.sh     (repo root)
#   REPS=5 STEPS=10 MODEL=medium bash benches/gpt.sh
# PyTorch comes from PyPI (`pip install torch numpy` in a virtualenv outside
# the repository); its rows are skipped when it is not importable.
set -euo pipefail
MODEL=${MODEL:-char}
case "$MODEL" in
char) example=examples/char_gpt.nn batch=32 steps=${STEPS:-40} ;;
medium) example=benches/gpt_medium.nn batch=8 steps=${STEPS:-8} ;;
*) echo "MODEL must be char or medium" >&2; exit 2 ;;
esac
. "$(dirname "$0")/side_by_side.sh"
side_by_side "$example" "$batch" "$steps" benches/peers/torch_gpt.py --model "$MODEL"
