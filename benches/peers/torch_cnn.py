"""PyTorch on the same training work as `nnc run examples/mnist_cnn.nn`.

The architecture of examples/mnist_cnn.nn (3x3 conv 1->32, ReLU, 2x2 max
pool, 3x3 conv 32->64, ReLU, 2x2 max pool, dense 3136->128, ReLU, dense
128->10), softmax cross-entropy, Adam 1e-3, batch 64, on the MNIST training
images shipped in data/ (scaled to [0, 1], shuffled once). Three ways to run
it: eager NCHW, eager channels-last, and torch.compile (default mode). Prints
steady training samples/s per mode (steps after a warm-up; no evaluation),
one line each: `torch <mode> <threads> <samples/s>`.

    python3 benches/peers/torch_cnn.py [--threads N] [--steps N] [--modes a,b]
(needs torch and numpy; skips cleanly without)
"""
import argparse, os, sys, time

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("torch not installed: skipping the PyTorch comparison")
    sys.exit(0)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import idx  # noqa: E402


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc = nn.Linear(7 * 7 * 64, 128)
        self.head = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.head(F.relu(self.fc(torch.flatten(x, 1))))


def batches(batch, steps, channels_last):
    here = os.path.dirname(__file__)
    images = idx.read(os.path.join(here, "..", "..", "data", "mnist", "train-images-idx3-ubyte.gz"))
    labels = idx.read(os.path.join(here, "..", "..", "data", "mnist", "train-labels-idx1-ubyte.gz"))
    order = np.random.default_rng(0).permutation(len(images))
    n = steps * batch
    order = np.resize(order, n)
    x = torch.from_numpy(images[order].astype(np.float32) / 255.0).reshape(steps, batch, 1, 28, 28)
    y = torch.from_numpy(labels[order].astype(np.int64)).reshape(steps, batch)
    if channels_last:
        x = torch.stack([b.contiguous(memory_format=torch.channels_last) for b in x])
    return x, y


def run(mode, batch, steps, warmup):
    torch.manual_seed(0)
    model = Cnn()
    channels_last = mode == "channels_last"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    if mode == "compile":
        step = torch.compile(step)
    xs, ys = batches(batch, warmup + steps, channels_last)
    for i in range(warmup):
        step(xs[i], ys[i])
    t = time.perf_counter()
    for i in range(warmup, warmup + steps):
        loss = step(xs[i], ys[i])
    loss.item()
    return steps * batch / (time.perf_counter() - t)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--modes", default="nchw,channels_last,compile")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    for mode in a.modes.split(","):
        warmup = 10 if mode == "compile" else 3
        rate = run(mode, a.batch, a.steps, warmup)
        print(f"torch {mode} {a.threads} {rate:.0f}", flush=True)


if __name__ == "__main__":
    main()
