"""Gradients from JAX, the outside oracle for nnc's autodiff (tests/it/oracle.rs).

Writes tests/fixtures/oracle/: the loss and every parameter's gradient, in
float64, for
  * the seed MLP of examples/mnist.nn (784-128-10, relu, softmax
    cross-entropy on integer labels) on the first 32 MNIST training images;
  * one transformer block of std (std/nn.nn `Block(16, 2)`) on a fixed input,
    with loss = sum(block(x) * r).
Weights and inputs come from closed-form formulas that tests/it/oracle.rs
repeats, so nothing but the gradients needs to be stored.

Run from the repository root:  python3 benches/oracle/jax_grads.py
Needs jax and numpy; exits 0 with a note when they are missing.
"""
import json, os, sys

try:
    import jax
    import jax.numpy as jnp
    import numpy as np

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from idx import read as idx
except ImportError:
    print("jax/numpy not installed: skipping (the committed fixture stays as is)")
    sys.exit(0)

jax.config.update("jax_enable_x64", True)
OUT = "tests/fixtures/oracle"


def formula(k, shape, scale=0.05):
    """Parameter k's values: scale * sin(0.37 i + 1.3 k + 0.1), i the flat index."""
    n = int(np.prod(shape)) if shape else 1
    i = np.arange(n, dtype=np.float64)
    return (scale * np.sin(0.37 * i + 1.3 * k + 0.1)).reshape(shape)


def save(name, loss, params, grads):
    os.makedirs(OUT, exist_ok=True)
    manifest = {"loss": float(loss), "grads": {}}
    for key in params:
        g = np.asarray(grads[key], dtype="<f8")
        fname = f"{name}.{key}.f64"
        g.tofile(os.path.join(OUT, fname))
        manifest["grads"][key] = {"shape": list(g.shape), "file": fname}
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    print(f"{name}: loss {float(loss):.12g}, {len(params)} gradients")


def mlp():
    images = idx("data/mnist/train-images-idx3-ubyte.gz")[:32].astype(np.float64) / 255.0
    labels = idx("data/mnist/train-labels-idx1-ubyte.gz")[:32].astype(np.int32)
    shapes = {"l1.w": (784, 128), "l1.b": (128,), "l2.w": (128, 10), "l2.b": (10,)}
    params = {k: jnp.asarray(formula(i, s)) for i, (k, s) in enumerate(shapes.items())}

    def loss(p):
        h = jnp.maximum(images.reshape(32, 784) @ p["l1.w"] + p["l1.b"], 0.0)
        logits = h @ p["l2.w"] + p["l2.b"]
        logp = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.mean(logp[jnp.arange(32), labels])

    value, grads = jax.value_and_grad(loss)(params)
    save("mlp", value, params, grads)


def block():
    d, heads, B, T = 16, 2, 2, 5
    shapes = {
        "ln1.gain": (d,), "ln1.shift": (d,),
        "attn.qkv.w": (d, 3 * d), "attn.qkv.b": (3 * d,),
        "attn.out.w": (d, d), "attn.out.b": (d,),
        "ln2.gain": (d,), "ln2.shift": (d,),
        "ff.up.w": (d, 4 * d), "ff.up.b": (4 * d,),
        "ff.down.w": (4 * d, d), "ff.down.b": (d,),
    }
    params = {k: jnp.asarray(formula(i, s, 0.3)) for i, (k, s) in enumerate(shapes.items())}
    n = B * T * d
    x = jnp.asarray(np.sin(0.11 * np.arange(n) + 0.5).reshape(B, T, d))
    r = jnp.asarray(np.cos(0.07 * np.arange(n)).reshape(B, T, d))

    def ln(x, g, s):
        c = x - x.mean(-1, keepdims=True)
        return c / jnp.sqrt((c * c).mean(-1, keepdims=True) + 1e-5) * g + s

    def gelu(x):
        return 0.5 * x * (1.0 + jnp.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))

    def attn(x, p):
        h = (x @ p["attn.qkv.w"] + p["attn.qkv.b"]).reshape(B, T, 3, heads, d // heads).transpose(2, 0, 3, 1, 4)
        q, k, v = h[0], h[1], h[2]
        scores = (q @ jnp.swapaxes(k, -2, -1)) / jnp.sqrt(d / heads)
        mask = jnp.arange(T)[:, None] >= jnp.arange(T)[None, :]
        w = jax.nn.softmax(jnp.where(mask, scores, -1e9), axis=-1)
        merged = (w @ v).transpose(0, 2, 1, 3).reshape(B, T, d)
        return merged @ p["attn.out.w"] + p["attn.out.b"]

    def loss(p):
        m = x + attn(ln(x, p["ln1.gain"], p["ln1.shift"]), p)
        f = gelu(ln(m, p["ln2.gain"], p["ln2.shift"]) @ p["ff.up.w"] + p["ff.up.b"]) @ p["ff.down.w"] + p["ff.down.b"]
        return jnp.sum((m + f) * r)

    value, grads = jax.value_and_grad(loss)(params)
    save("block", value, params, grads)


if __name__ == "__main__":
    mlp()
    block()
