"""PyTorch on the same training work as `nnc run examples/char_gpt.nn`
(`--model char`) or `benches/gpt_medium.nn` (`--model medium`).

Both: a decoder-only transformer over characters as std.nn.Block builds it:
token embedding plus learned positions, dropout, pre-norm blocks (LayerNorm,
causal self-attention with one fused qkv projection, scores scaled by
1/sqrt(head width), the mask as a -1e9 fill, softmax, dropout on the
weights and on the output projection; LayerNorm, dense to 4x width, GELU
(tanh form), dense back, dropout), a final LayerNorm, a dense head;
softmax cross-entropy averaged over every position, accuracy from the same
logits (the experiment's metric), AdamW (lr 1e-3, weight decay 0.1; the
example's cosine schedule changes no cost and is left out). Windows of the
Shakespeare text shipped in data/ (bytes; ids below 128).

char:   width 128, 4 heads, 4 layers, context 64, dropout 0.1, batch 32.
medium: width 384, 6 heads, 6 layers, context 256, dropout 0.2, batch 8.

Modes: eager with the attention written out as above (`manual`), eager
with F.scaled_dot_product_attention (`sdpa`, causal), and torch.compile of
the manual model (`compile`, default mode). Prints steady training
samples/s per mode (steps after a warm-up; no evaluation), one line each:
`torch <mode> <threads> <samples/s>`.

    python3 benches/peers/torch_gpt.py [--model char|medium] [--threads N] [--steps N] [--modes a,b]
(needs torch and numpy; skips cleanly without)
"""
import argparse, math, os

from torchbench import F, nn, np, report, steady_rate, torch

CONFIGS = {
    "char": dict(d=128, heads=4, layers=4, context=64, drop=0.1, batch=32),
    "medium": dict(d=384, heads=6, layers=6, context=256, drop=0.2, batch=8),
}
VOCAB = 128


class Attention(nn.Module):
    def __init__(self, d, heads, drop, sdpa):
        super().__init__()
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.heads, self.drop, self.sdpa = heads, drop, sdpa

    def forward(self, x):
        b, t, d = x.shape
        h = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = h[0], h[1], h[2]
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.drop if self.training else 0.0, is_causal=True)
        else:
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d // self.heads))
            mask = torch.ones(t, t, dtype=torch.bool).tril()
            weights = F.dropout(torch.softmax(scores.masked_fill(~mask, -1e9), dim=-1), self.drop, self.training)
            y = weights @ v
        return F.dropout(self.out(y.permute(0, 2, 1, 3).reshape(b, t, d)), self.drop, self.training)


class Block(nn.Module):
    def __init__(self, d, heads, drop, sdpa):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = Attention(d, heads, drop, sdpa)
        self.up, self.down = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.drop = drop

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        ff = self.down(F.gelu(self.up(self.ln2(x)), approximate="tanh"))
        return x + F.dropout(ff, self.drop, self.training)


class Gpt(nn.Module):
    def __init__(self, d, heads, layers, context, drop, sdpa):
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, d)
        self.positions = nn.Parameter(torch.randn(context, d) * 0.02)
        self.blocks = nn.Sequential(*[Block(d, heads, drop, sdpa) for _ in range(layers)])
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, VOCAB)
        self.drop = drop

    def forward(self, ids):
        x = F.dropout(self.tokens(ids) + self.positions, self.drop, self.training)
        return self.head(self.ln(self.blocks(x)))


def batches(batch, context, steps):
    here = os.path.dirname(__file__)
    with open(os.path.join(here, "..", "..", "data", "shakespeare", "plays.txt"), "rb") as f:
        text = np.frombuffer(f.read(), dtype=np.uint8) % VOCAB
    starts = np.random.default_rng(0).integers(0, len(text) - context - 1, size=steps * batch)
    windows = np.stack([text[s : s + context + 1] for s in starts]).astype(np.int64)
    w = torch.from_numpy(windows).reshape(steps, batch, context + 1)
    return w[:, :, :-1].contiguous(), w[:, :, 1:].contiguous()


def run(cfg, mode, steps, warmup):
    torch.manual_seed(0)
    c = CONFIGS[cfg]
    model = Gpt(c["d"], c["heads"], c["layers"], c["context"], c["drop"], sdpa=mode == "sdpa")
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))
        accuracy = (logits.argmax(-1) == y).float().mean()
        loss.backward()
        opt.step()
        return loss, accuracy

    if mode == "compile":
        step = torch.compile(step)
    xs, ys = batches(c["batch"], c["context"], warmup + steps)
    return steady_rate(step, xs, ys, warmup, c["batch"])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--modes", default="manual,sdpa,compile")
    p.add_argument("--model", default="char", choices=sorted(CONFIGS))
    a = p.parse_args()
    report(a.modes, a.threads, lambda mode, warmup: run(a.model, mode, a.steps, warmup))


if __name__ == "__main__":
    main()
