"""PyTorch's BatchNorm, the outside oracle for std.nn.BatchNorm (tests/it/batchnorm.rs).

Writes tests/fixtures/oracle/batchnorm.json: for an NHWC image batch
(BatchNorm2d, run on the NCHW transpose) and for dense features
(BatchNorm1d), the training-mode output of the last of three steps, the
running mean and variance after them, and the evaluation-mode output on a
fresh batch, all in float64. Inputs, weights and biases come from
closed-form formulas that the Rust test repeats, so only PyTorch's answers
are stored.

Run from the repository root:  python3 benches/oracle/torch_batchnorm.py
Needs torch; exits 0 with a note when it is missing.
"""
import json, os, sys

try:
    import torch
except ImportError:
    print("torch not installed: skipping (the committed fixture stays as is)")
    sys.exit(0)

torch.set_default_dtype(torch.float64)
OUT = "tests/fixtures/oracle/batchnorm.json"
STEPS = 3


def formula(k, shape, scale, shift=0.0):
    """scale * sin(0.37 i + 1.3 k + 0.1) + shift, i the flat (row-major) index."""
    n = 1
    for d in shape:
        n *= d
    i = torch.arange(n, dtype=torch.float64)
    return (scale * torch.sin(0.37 * i + 1.3 * k + 0.1) + shift).reshape(shape)


def case(shape):
    """Channels last, as nnc lays them out; torch gets channels at axis 1."""
    c = shape[-1]
    bn = torch.nn.BatchNorm2d(c) if len(shape) == 4 else torch.nn.BatchNorm1d(c)
    with torch.no_grad():
        bn.weight.copy_(formula(1, [c], 0.5, 1.0))
        bn.bias.copy_(formula(2, [c], 0.3))
    to_torch = (lambda x: x.permute(0, 3, 1, 2)) if len(shape) == 4 else (lambda x: x)
    from_torch = (lambda y: y.permute(0, 2, 3, 1)) if len(shape) == 4 else (lambda y: y)
    bn.train()
    for step in range(STEPS):
        x = formula(10 + step, shape, 2.0, 0.5 * step)
        y = from_torch(bn(to_torch(x)))
    bn.eval()
    y_eval = from_torch(bn(to_torch(formula(20, shape, 2.0, 1.0))))
    flat = lambda t: t.detach().contiguous().reshape(-1).tolist()
    return {
        "shape": shape,
        "train_out": flat(y),
        "running_mean": flat(bn.running_mean),
        "running_var": flat(bn.running_var),
        "eval_out": flat(y_eval),
    }


fixture = {
    "torch": torch.__version__,
    "steps": STEPS,
    "image": case([4, 5, 3, 6]),
    "dense": case([7, 5]),
}
os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as f:
    json.dump(fixture, f)
print(f"wrote {OUT} (torch {torch.__version__})")
