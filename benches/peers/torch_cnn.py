"""PyTorch on the same training work as `nnc run examples/mnist_cnn.nn`
(`--model cnn`) or `examples/resnet.nn` (`--model resnet`).

cnn: the architecture of examples/mnist_cnn.nn (3x3 conv 1->32, ReLU, 2x2
max pool, 3x3 conv 32->64, ReLU, 2x2 max pool, dense 3136->128, ReLU, dense
128->10), Adam 1e-3.
resnet: examples/resnet.nn (3x3 conv stem to 16 channels; a basic residual
block at 16; a downsampling block (stride 2, 1x1 projection shortcut) and a
basic block at 32 and at 64; every convolution without bias and followed by
BatchNorm2d; global average pooling; dense 64->10), Adam 2e-3 (the
example's cosine schedule changes no cost and is left out).
Both: softmax cross-entropy, batch 64, the MNIST training images shipped in
data/ (scaled to [0, 1], shuffled once). Three ways to run each: eager NCHW,
eager channels-last, and torch.compile (default mode). Prints steady
training samples/s per mode (steps after a warm-up; no evaluation), one
line each: `torch <mode> <threads> <samples/s>`.

    python3 benches/peers/torch_cnn.py [--model cnn|resnet] [--threads N] [--steps N] [--modes a,b]
(needs torch and numpy; skips cleanly without)
"""
import argparse, os, sys

from torchbench import F, nn, np, report, steady_rate, torch

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


class ConvBn(nn.Sequential):
    def __init__(self, cin, cout, k=3, stride=1):
        super().__init__(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, bias=False), nn.BatchNorm2d(cout))


class Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.a, self.b = ConvBn(c, c), ConvBn(c, c)

    def forward(self, x):
        return F.relu(x + self.b(F.relu(self.a(x))))


class Downsample(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.a, self.b = ConvBn(cin, cout, stride=2), ConvBn(cout, cout)
        self.project = ConvBn(cin, cout, k=1, stride=2)

    def forward(self, x):
        return F.relu(self.project(x) + self.b(F.relu(self.a(x))))


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = ConvBn(1, 16)
        self.body = nn.Sequential(Residual(16), Downsample(16, 32), Residual(32), Downsample(32, 64), Residual(64))
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        x = self.body(F.relu(self.stem(x)))
        return self.head(x.mean(dim=(2, 3)))


MODELS = {"cnn": (Cnn, 1e-3), "resnet": (ResNet, 2e-3)}


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


def run(name, mode, batch, steps, warmup):
    torch.manual_seed(0)
    make, lr = MODELS[name]
    model = make()
    channels_last = mode == "channels_last"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    if mode == "compile":
        step = torch.compile(step)
    xs, ys = batches(batch, warmup + steps, channels_last)
    return steady_rate(step, xs, ys, warmup, batch)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--modes", default="nchw,channels_last,compile")
    p.add_argument("--model", default="cnn", choices=sorted(MODELS))
    a = p.parse_args()
    report(a.modes, a.threads, lambda mode, warmup: run(a.model, mode, a.batch, a.steps, warmup))


if __name__ == "__main__":
    main()
