#!/usr/bin/env bash
# nnc against JAX on the same training work, in one run, side by side.
#   benches/peers.sh          (from the repository root)
# JAX is pinned to one core (taskset) for the one-thread comparison; its
# section is skipped when jax is not importable (python3 -m pip install jax).
set -euo pipefail
PY=${PYTHON:-python3}
echo "## JAX (one core)"
taskset -c 0 "$PY" benches/peers/jax_mlp.py || echo "(JAX comparison failed or skipped)"
echo
echo "## Keras (the seed program verbatim, one core)"
KERAS_BACKEND=jax taskset -c 0 "$PY" benches/peers/keras_mnist.py || echo "(Keras comparison failed or skipped)"
echo
echo "## nnc (compiled train step, random inputs)"
cargo bench --quiet --bench codegen -- train
echo
echo "## nnc end to end: examples/mnist.nn, 5 epochs, one thread"
cargo build --release --quiet
/usr/bin/time -f "wall %e s, peak RSS %M KB" target/release/nnc run examples/mnist.nn --threads 1 --quiet --out "$(mktemp -d)"
