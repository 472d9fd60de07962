#!/usr/bin/env bash
# Front-end latency: `nnc check` on each example (parse, resolve, check all
# of std, lower the experiments) and time to the first diagnostic on a broken
# file. Wall time of the whole process, median and min of N runs.
#
#   benches/frontend.sh [N]        (from the repository root; default N=50)
set -euo pipefail
N=${1:-50}
cargo build --release --quiet
BIN=target/release/nnc
broken=$(mktemp --suffix=.nn)
trap 'rm -f "$broken"' EXIT
sed 's/l2: Linear(hidden, 10)/l2: Linear(hidden + 1, 10)/' examples/mnist.nn > "$broken"

measure() {  # label, command...
    local label=$1; shift
    local times=()
    for _ in $(seq "$N"); do
        local t0 t1
        t0=$(date +%s%N)
        "$@" >/dev/null 2>&1 || true
        t1=$(date +%s%N)
        times+=($(( (t1 - t0) / 1000 )))
    done
    printf '%s\n' "${times[@]}" | sort -n | awk -v label="$label" '
        { a[NR] = $1 }
        END { printf "| %-40s | %6.2f ms | %6.2f ms |\n", label, a[int((NR + 1) / 2)] / 1000, a[1] / 1000 }'
}

echo "| command (N=$N) | median | min |"
echo "| --- | --- | --- |"
for f in examples/*.nn; do
    measure "nnc check $f" "$BIN" check "$f"
done
measure "nnc check std/*.nn" "$BIN" check std/*.nn
measure "first diagnostic (shape error)" "$BIN" check "$broken"
measure "nnc --version (process start-up)" "$BIN" --version
