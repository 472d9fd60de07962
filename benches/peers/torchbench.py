"""What the PyTorch peer scripts share: the imports (a clean skip when torch
is absent), the steady-rate timing loop and the one-line-per-mode report
that benches/side_by_side.sh reads."""
import sys, time

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("torch not installed: skipping the PyTorch comparison")
    sys.exit(0)

__all__ = ["np", "torch", "nn", "F", "steady_rate", "report"]


def steady_rate(step, xs, ys, warmup, batch):
    """Samples/s of `step` over the batches after the first `warmup` ones;
    the last loss is read so that queued work is finished inside the clock."""
    for i in range(warmup):
        step(xs[i], ys[i])
    t = time.perf_counter()
    for i in range(warmup, len(xs)):
        out = step(xs[i], ys[i])
    (out[0] if isinstance(out, tuple) else out).item()
    return (len(xs) - warmup) * batch / (time.perf_counter() - t)


def report(modes, threads, run):
    """One `torch <mode> <threads> <samples/s>` line per mode; compiled modes
    get a longer warm-up (run(mode, warmup) -> samples/s)."""
    torch.set_num_threads(threads)
    for mode in modes.split(","):
        rate = run(mode, 8 if mode == "compile" else 2)
        print(f"torch {mode} {threads} {rate:.2f}", flush=True)
