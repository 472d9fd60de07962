"""JAX on the same training work as nnc's `cargo bench --bench codegen -- train`.

Seed MLP (784-128-10, relu, softmax cross-entropy on integer labels, Adam
1e-3) at batch 32 and 128, and a 784-1024-1024-10 MLP at batch 256, on
random data of the same shapes, one CPU thread. Two ways JAX users run it:
a jitted step called from Python per batch, and a whole epoch in one
`lax.scan` (the fastest JAX gets). Prints samples/s and the time from
process start to the first finished step.

    python3 benches/peers/jax_mlp.py          (needs jax; skips cleanly without)
"""
import os, sys, time

START = time.perf_counter()
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
try:
    import jax
    import jax.numpy as jnp
    import numpy as np
except ImportError:
    print("jax not installed: skipping the JAX comparison")
    sys.exit(0)


def init(key, sizes):
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        key, k = jax.random.split(key)
        lim = (6.0 / (fan_in + fan_out)) ** 0.5
        params += [jax.random.uniform(k, (fan_in, fan_out), jnp.float32, -lim, lim), jnp.zeros(fan_out, jnp.float32)]
    return params


def loss_fn(params, x, y):
    h = x
    for i in range(0, len(params) - 2, 2):
        h = jax.nn.relu(h @ params[i] + params[i + 1])
    logits = h @ params[-2] + params[-1]
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def adam_step(state, batch):
    params, m, v, t = state
    x, y = batch
    loss, g = jax.value_and_grad(loss_fn)(params, x, y)
    t = t + 1
    m = [0.9 * a + 0.1 * b for a, b in zip(m, g)]
    v = [0.999 * a + 0.001 * b * b for a, b in zip(v, g)]
    c1, c2 = 1 - 0.9**t, 1 - 0.999**t
    params = [p - 1e-3 * (a / c1) / (jnp.sqrt(b / c2) + 1e-8) for p, a, b in zip(params, m, v)]
    return (params, m, v, t), loss


def bench(name, sizes, batch, steps):
    params = init(jax.random.PRNGKey(0), sizes)
    zeros = [jnp.zeros_like(p) for p in params]
    state = (params, zeros, [jnp.zeros_like(p) for p in params], jnp.float32(0))
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.random((steps, batch, sizes[0]), dtype=np.float32))
    ys = jnp.asarray(rng.integers(0, sizes[-1], (steps, batch)), dtype=jnp.int32)
    step = jax.jit(adam_step)
    t0 = time.perf_counter()
    s, loss = step(state, (xs[0], ys[0]))
    loss.block_until_ready()
    first = time.perf_counter() - START
    t0 = time.perf_counter()
    for i in range(steps):
        s, loss = step(s, (xs[i], ys[i]))
    loss.block_until_ready()
    per_step = steps * batch / (time.perf_counter() - t0)
    scan = jax.jit(lambda st, b: jax.lax.scan(adam_step, st, b))
    s2, losses = scan(state, (xs, ys))
    losses.block_until_ready()
    t0 = time.perf_counter()
    s2, losses = scan(state, (xs, ys))
    losses.block_until_ready()
    scanned = steps * batch / (time.perf_counter() - t0)
    print(f"| {name} | {batch} | {per_step:,.0f} | {scanned:,.0f} | {first:.2f} s |")


if __name__ == "__main__":
    print(f"jax {jax.__version__}, one thread")
    print("| model | batch | jit per step, samples/s | lax.scan epoch, samples/s | start to first step |")
    print("| --- | --- | --- | --- | --- |")
    bench("784-128-10", [784, 128, 10], 32, 1875)
    bench("784-128-10", [784, 128, 10], 128, 469)
    bench("784-1024-1024-10", [784, 1024, 1024, 10], 256, 60)
