#!/usr/bin/env bash
# `nnc watch` under a stream of edits: N saves of a copy of examples/mnist.nn
# (every third one broken, the others alternating the learning rate and the
# hidden width), one every PAUSE seconds, while it trains. Reports the time
# from each save to the first finished step of the new program (as logged in
# metrics.jsonl), and the resident memory after the 10th edit and after the
# last, so growth across reloads shows.
#
#   benches/watch.sh [N] [PAUSE]     (from the repository root; default 100 0.3)
set -euo pipefail
N=${1:-100}
PAUSE=${2:-0.3}
cargo build --release --quiet
BIN=$PWD/target/release/nnc
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; exec 3>&- || true; rm -rf "$dir"' EXIT
cp examples/mnist.nn "$dir/mnist.nn"
mkfifo "$dir/keys"
"$BIN" watch "$dir/mnist.nn" --threads 1 --epochs 100000 --eval-samples 1000 --out "$dir/run" \
    < "$dir/keys" > "$dir/out.txt" 2> "$dir/err.txt" &
pid=$!
exec 3> "$dir/keys"
until grep -q '^epoch 1/' "$dir/out.txt"; do sleep 0.1; done

rss() { awk '/VmRSS/ { print $2 }' "/proc/$pid/status"; }
save() {  # write a new file and rename it over the old one, as editors do
    sed "$1" "$dir/mnist.nn" > "$dir/next.nn" && mv "$dir/next.nn" "$dir/mnist.nn"
}
for i in $(seq "$N"); do
    case $((i % 3)) in
        0) save 's/^let hidden = \([0-9]*\) /let hidden = \1 + /' ;;       # broken
        1) save 's/^let hidden = \([0-9]*\) + /let hidden = \1 /; s/adam(lr: [0-9.e-]*)/adam(lr: 5e-4)/' ;;
        2) save 's/adam(lr: [0-9.e-]*)/adam(lr: 1e-3)/; s/^let hidden = 128 /let hidden = 96 /; t; s/^let hidden = 96 /let hidden = 128 /' ;;
    esac
    sleep "$PAUSE"
    [ "$i" -eq 10 ] && rss10=$(rss)
    [ $((i % 50)) -eq 0 ] && echo "RSS after edit $i: $(( $(rss) / 1024 )) MiB"
done
rss_end=$(rss)
kill -0 "$pid"   # still up
echo q >&3
wait "$pid"

reloads=$(grep -c '"event":"reload"' "$dir/run/metrics.jsonl")
broken=$(grep -c 'does not compile' "$dir/err.txt" || true)
echo "edits: $N, reloads: $reloads, broken edits reported: $broken, exit: clean"
grep -o '"first_step_ms":[0-9.]*' "$dir/run/metrics.jsonl" | cut -d: -f2 | sort -g | awk '
    { a[NR] = $1 }
    END { printf "save -> first step of the new program: median %.1f ms, p90 %.1f ms, max %.1f ms (n=%d)\n",
          a[int((NR + 1) / 2)], a[int(NR * 0.9 + 0.5)], a[NR], NR }'
grep -o '"reload_ms":[0-9.]*' "$dir/run/metrics.jsonl" | cut -d: -f2 | sort -g | awk '
    { a[NR] = $1 } END { printf "save -> new step swapped in:            median %.1f ms\n", a[int((NR + 1) / 2)] }'
echo "RSS after edit 10: $((rss10 / 1024)) MiB, after edit $N: $((rss_end / 1024)) MiB"
