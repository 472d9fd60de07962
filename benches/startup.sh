#!/usr/bin/env bash
# Process start to the first finished training step, and the compile of the
# step, as `nnc run` reports them ("compiled in X ms, first step after Y
# ms"), for the seed MLP, the CNN and the char transformer. REPS runs each
# (default 5), interleaved across the binaries in NNC (default
# target/release/nnc; give several, space-separated, to compare builds side
# by side); medians. THREADS (default: nnc's own, every core) is passed as
# --threads when set.
set -euo pipefail
cd "$(dirname "$0")/.."
NNC=${NNC:-target/release/nnc}
REPS=${REPS:-5}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
threads=()
[ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")
for model in examples/mnist.nn examples/mnist_cnn.nn examples/char_gpt.nn; do
    for r in $(seq "$REPS"); do
        for bin in $NNC; do
            line=$("$bin" run "$model" --epochs 1 --train-samples 320 --eval-samples 100 "${threads[@]}" \
                --overwrite --out "$W/run" 2>&1 | grep -oE "compiled in [0-9.]+ ms, first step after [0-9.]+ ms")
            echo "$model $bin $line" >> "$W/all"
        done
    done
done
awk '{ key = $1 " " $2; c[key] = c[key] " " $5; f[key] = f[key] " " $10 }
     END { for (k in c) print k " |" c[k] " |" f[k] }' "$W/all" | sort | while IFS='|' read -r key cs fs; do
    med() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
    printf '%s: compile %s ms (%s), first step %s ms (%s)\n' "$key" "$(echo "$cs" | med)" "${cs# }" \
        "$(echo "$fs" | med)" "${fs# }"
done
