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
PY=${PYTHON:-python3}
REPS=${REPS:-3}
STEPS=${STEPS:-100}
MODEL=${MODEL:-cnn}
case "$MODEL" in
cnn) example=examples/mnist_cnn.nn ;;
resnet) example=examples/resnet.nn ;;
*) echo "MODEL must be cnn or resnet" >&2; exit 2 ;;
esac
cargo build --release --quiet
out=$(mktemp -d)
have_torch=1
"$PY" -c "import torch" 2>/dev/null || { have_torch=0; echo "(torch not importable with $PY: PyTorch rows skipped)"; }
nnc_rate() { # threads cores
    taskset -c "$2" target/release/nnc run "$example" --threads "$1" --epochs 1 \
        --train-samples $((STEPS * 64)) --eval-samples 100 --quiet --out "$out/run" --overwrite 2>&1 |
        sed -n 's/.*steps in .* (\([0-9]*\) samples\/s.*/\1/p'
}
for rep in $(seq "$REPS"); do
    for t in 1 2; do
        cores=$([ "$t" = 1 ] && echo 0 || echo 0,1)
        echo "nnc compiled $t $(nnc_rate "$t" "$cores")"
        if [ "$have_torch" = 1 ]; then
            taskset -c "$cores" "$PY" benches/peers/torch_cnn.py --model "$MODEL" --threads "$t" --steps "$STEPS" 2>/dev/null | grep '^torch'
        fi
    done
done | tee "$out/rates"
echo
"$PY" - "$out/rates" "$REPS" <<'PYEOF'
import statistics, sys
rates = {}
for line in open(sys.argv[1]):
    system, mode, threads, rate = line.split()
    rates.setdefault((int(threads), f"{system} {mode}"), []).append(float(rate))
print(f"| system | threads | samples/s (median of {sys.argv[2]}) | nnc / this |")
print("| --- | --- | --- | --- |")
for (threads, name), v in sorted(rates.items()):
    nnc = statistics.median(rates[(threads, "nnc compiled")])
    print(f"| {name} | {threads} | {statistics.median(v):.0f} | {nnc / statistics.median(v):.2f}x |")
PYEOF
