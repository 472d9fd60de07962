#!/usr/bin/env bash
# Time per generated token at batch 1 on examples/char_gpt.nn's model: `nnc
# sample` (the one-position step with its key/value caches) and the
# generator `nnc build` makes of the same checkpoint, against PyTorch
# eager with its own key/value cache and without one (nanoGPT's generate),
# 63 tokens from the start of the 64-character window, one thread pinned to
# core 0, reps interleaved. The checkpoint comes from a few training steps
# (the time per token does not depend on the weights).
#   PYTHON=/path/to/venv/bin/python bash benches/sample.sh     (repo root)
set -euo pipefail
PY=${PYTHON:-python3}
REPS=${REPS:-5}
cargo build --release --quiet
out=$(mktemp -d)
target/release/nnc run examples/char_gpt.nn --train-samples 64 --eval-samples 32 --quiet --out "$out/run" >/dev/null
target/release/nnc build examples/char_gpt.nn --checkpoint "$out/run/checkpoints/final.safetensors" -o "$out/gen" >/dev/null
per_token() { sed -n 's/.*(\([0-9.]*\) ms per token.*/\1/p'; }
have_torch=1
"$PY" -c "import torch" 2>/dev/null || { have_torch=0; echo "(torch not importable with $PY: PyTorch rows skipped)"; }
for rep in $(seq "$REPS"); do
    echo "nnc sample 1 $(taskset -c 0 target/release/nnc sample examples/char_gpt.nn \
        --checkpoint "$out/run/checkpoints/final.safetensors" --prompt R --tokens 63 2>&1 >/dev/null | per_token)"
    echo "nnc built 1 $(taskset -c 0 "$out/gen" R --tokens 63 2>&1 >/dev/null | per_token)"
    if [ "$have_torch" = 1 ]; then
        taskset -c 0 "$PY" benches/peers/torch_sample.py --reps 3 | grep '^torch'
    fi
done | tee "$out/times"
echo
"$PY" - "$out/times" "$REPS" <<'PYEOF'
import statistics, sys
times = {}
for line in open(sys.argv[1]):
    system, mode, _, ms = line.split()
    times.setdefault(f"{system} {mode}", []).append(float(ms))
nnc = statistics.median(times["nnc sample"])
print(f"| system | ms per token (median of {sys.argv[2]}) | nnc / this |")
print("| --- | --- | --- |")
for name, v in sorted(times.items()):
    print(f"| {name} | {statistics.median(v):.3f} | {nnc / statistics.median(v):.2f}x |")
PYEOF
