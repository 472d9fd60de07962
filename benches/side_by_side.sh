# Sourced by cnn.sh and gpt.sh: nnc against a PyTorch peer script on the
# same training work, one thread pinned to core 0 and two on cores 0-1,
# reps interleaved, then a table of medians with nnc's ratio to each row.
#   side_by_side EXAMPLE BATCH STEPS PEER_SCRIPT PEER_ARGS...
# Reads PYTHON (default python3) and REPS (default 3).
side_by_side() {
    local example=$1 batch=$2 steps=$3 peer=$4
    shift 4
    local py=${PYTHON:-python3} reps=${REPS:-3} out have_torch=1
    cargo build --release --quiet
    out=$(mktemp -d)
    "$py" -c "import torch" 2>/dev/null || { have_torch=0; echo "(torch not importable with $py: PyTorch rows skipped)"; }
    for rep in $(seq "$reps"); do
        for t in 1 2; do
            local cores
            cores=$([ "$t" = 1 ] && echo 0 || echo 0,1)
            # Steady samples/s, from the end of the first step: the peers
            # time after warm-up steps too.
            echo "nnc compiled $t $(taskset -c "$cores" target/release/nnc run "$example" --threads "$t" --epochs 1 \
                --train-samples $((steps * batch)) --eval-samples "$batch" --quiet --out "$out/run" --overwrite 2>&1 |
                sed -n 's/.* samples\/s, \([0-9.]*\) steady after the first step.*/\1/p')"
            if [ "$have_torch" = 1 ]; then
                taskset -c "$cores" "$py" "$peer" "$@" --threads "$t" --steps "$steps" 2>/dev/null | grep '^torch'
            fi
        done
    done | tee "$out/rates"
    echo
    "$py" - "$out/rates" "$reps" <<'PYEOF'
import statistics, sys
rates = {}
for line in open(sys.argv[1]):
    system, mode, threads, rate = line.split()
    rates.setdefault((int(threads), f"{system} {mode}"), []).append(float(rate))
print(f"| system | threads | samples/s (median of {sys.argv[2]}) | nnc / this |")
print("| --- | --- | --- | --- |")
for (threads, name), v in sorted(rates.items()):
    nnc = statistics.median(rates[(threads, "nnc compiled")])
    m = statistics.median(v)
    print(f"| {name} | {threads} | {m:.2f} | {nnc / m:.2f}x |" if m < 100 else f"| {name} | {threads} | {m:.0f} | {nnc / m:.2f}x |")
PYEOF
}
