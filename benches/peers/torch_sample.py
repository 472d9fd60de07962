"""PyTorch generating text from the model of `examples/char_gpt.nn` at batch
1, as `nnc sample` does: one new character per step from position 0 to the
end of the 64-character window, drawn from softmax(logits / 0.8).

Modes: `kv`, incremental decoding with its own key/value cache
(preallocated per layer; each step runs the new position only), and
`window`, nanoGPT's `generate` (the whole window again for every token).
Random weights (the time per token does not depend on them), eval mode,
`torch.inference_mode()`. Prints `torch <mode> <threads> <ms per token>`,
the median of `--reps` runs of 63 tokens each after a warm-up run.

    python3 benches/peers/torch_sample.py [--threads N] [--reps N] [--modes kv,window]
(needs torch and numpy; skips cleanly without)
"""
import argparse, math, statistics, time

from torchbench import F, torch
from torch_gpt import CONFIGS, VOCAB, Gpt


def step_kv(model, c, ids, pos, keys, values):
    """Scores after token `ids[:, -1]` at `pos`, caching its keys and values."""
    d, heads = c["d"], c["heads"]
    dh = d // heads
    x = model.tokens(ids[:, -1:]) + model.positions[pos]
    for i, blk in enumerate(model.blocks):
        q, k, v = blk.attn.qkv(blk.ln1(x)).reshape(1, 1, 3, heads, dh).permute(2, 0, 3, 1, 4)
        keys[i][:, :, pos] = k[:, :, 0]
        values[i][:, :, pos] = v[:, :, 0]
        scores = (q @ keys[i][:, :, : pos + 1].transpose(-2, -1)) * (1.0 / math.sqrt(dh))
        y = torch.softmax(scores, dim=-1) @ values[i][:, :, : pos + 1]
        x = x + blk.attn.out(y.permute(0, 2, 1, 3).reshape(1, 1, d))
        x = x + blk.down(F.gelu(blk.up(blk.ln2(x)), approximate="tanh"))
    return model.head(model.ln(x))[0, -1]


def generate(model, c, mode, tokens):
    ids = torch.zeros(1, 1, dtype=torch.long)
    shape = (1, c["heads"], c["context"], c["d"] // c["heads"])
    keys = [torch.zeros(shape) for _ in range(c["layers"])]
    values = [torch.zeros(shape) for _ in range(c["layers"])]
    for pos in range(tokens):
        if mode == "kv":
            logits = step_kv(model, c, ids, pos, keys, values)
        else:
            window = torch.zeros(1, c["context"], dtype=torch.long)
            window[:, : ids.shape[1]] = ids
            logits = model(window)[0, ids.shape[1] - 1]
        nxt = torch.multinomial(torch.softmax(logits / 0.8, dim=-1), 1)
        ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
    return ids


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--modes", default="kv,window")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c = CONFIGS["char"]
    model = Gpt(c["d"], c["heads"], c["layers"], c["context"], c["drop"], sdpa=False).eval()
    tokens = c["context"] - 1
    with torch.inference_mode():
        for mode in a.modes.split(","):
            generate(model, c, mode, tokens)
            times = []
            for _ in range(a.reps):
                t = time.perf_counter()
                generate(model, c, mode, tokens)
                times.append((time.perf_counter() - t) / tokens * 1e3)
            print(f"torch {mode} {a.threads} {statistics.median(times):.3f}", flush=True)


if __name__ == "__main__":
    main()
