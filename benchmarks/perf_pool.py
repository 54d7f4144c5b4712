"""Issue 21, item 6: the CNN's max-pool and its gradient on XLA:CPU, two formulations.

``reduce_window``: flax's ``nn.max_pool`` (``lax.reduce_window``; its gradient is XLA's
select-and-scatter). ``reshape``: for a pool whose window equals its stride (the paper CNN's
2×2/2), the same maximum as a reshape to ``(B, H/s, s, W/s, s, C)`` and a max over the two window
axes (its gradient: a comparison with the maximum and a broadcast, which XLA fuses).

Times, best of ``--repeats`` after a warm-up: the pool's forward and gradient alone at the
paper CNN's shapes, and one jitted training step (loss gradient of the whole CNN) with each
formulation; checks that both give the same logits and gradients. Run from the repository root::

    PYTHONPATH=src python benchmarks/perf_pool.py [--channels 32] [--batch 128] [--size 32]
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from l2dynamics.models.cnn import CNN, window_max_pool


def best_time(fn, *args, repeats: int) -> float:
    """Best wall time of ``fn(*args)`` (seconds), after one warm-up call."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return min(times)


def flax_pool(h: jax.Array) -> jax.Array:
    return nn.max_pool(h, (2, 2), strides=(2, 2), padding="VALID")


def reshape_pool(h: jax.Array) -> jax.Array:
    return window_max_pool(h, 2, 2)


class FlaxPoolCNN(CNN):
    """The CNN with flax's ``nn.max_pool`` (the formulation before this change)."""

    def _pool(self, h: jax.Array) -> jax.Array:
        return flax_pool(h)


def pool_alone(shape: tuple[int, ...], repeats: int) -> dict[str, dict[str, float]]:
    """Forward and gradient of each pool on an array of ``shape`` (post-ReLU values)."""
    h = jax.nn.relu(jax.random.normal(jax.random.key(0), shape))
    g = jax.random.normal(jax.random.key(1), (shape[0], shape[1] // 2, shape[2] // 2, shape[3]))
    out = {}
    for name, pool in (("reduce_window", flax_pool), ("reshape", reshape_pool)):
        fwd = jax.jit(pool)
        grad = jax.jit(lambda x, pool=pool: jax.vjp(pool, x)[1](g)[0])
        out[name] = {
            "forward_ms": 1e3 * best_time(fwd, h, repeats=repeats),
            "gradient_ms": 1e3 * best_time(grad, h, repeats=repeats),
        }
    ref, new = flax_pool(h), reshape_pool(h)
    gref = jax.vjp(flax_pool, h)[1](g)[0]
    gnew = jax.vjp(reshape_pool, h)[1](g)[0]
    out["max_abs_diff"] = {
        "forward": float(jnp.max(jnp.abs(ref - new))),
        "gradient": float(jnp.max(jnp.abs(gref - gnew))),
    }
    return out


def train_step(
    channels: int, batch: int, size: int, repeats: int, cls: type
) -> tuple[float, object]:
    """One jitted gradient of the CNN's cross-entropy on ``size``² images of 3 channels (CIFAR:
    32; 1 channel for MNIST's 28), in seconds, and the gradient."""
    model = cls(channels=channels, dense=500)
    x = jax.random.normal(jax.random.key(2), (batch, size, size, 3 if size == 32 else 1))
    y = jax.random.randint(jax.random.key(3), (batch,), 0, 10)
    params = model.init(jax.random.key(4), x)["params"]

    def loss(p):
        logits = model.apply({"params": p}, x)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))

    grad = jax.jit(jax.grad(loss))
    return best_time(grad, params, repeats=repeats), grad(params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=32, help="image side: 32 CIFAR, 28 MNIST")
    parser.add_argument("--repeats", type=int, default=20)
    a = parser.parse_args()
    print(f"jax {jax.__version__}, {jax.default_backend()}, load {os.getloadavg()[0]:.2f}")
    # the shapes the CNN pools: after conv_1 (size − 2) and conv_3 ((size − 2)/2 − 2)
    first, second = a.size - 2, (a.size - 2) // 2 - 2
    for shape in ((a.batch, first, first, a.channels), (a.batch, second, second, a.channels)):
        print("pool alone", shape, pool_alone(shape, a.repeats))
    t_ref, g_ref = train_step(a.channels, a.batch, a.size, a.repeats, FlaxPoolCNN)
    t_new, g_new = train_step(a.channels, a.batch, a.size, a.repeats, CNN)
    pairs = list(zip(jax.tree.leaves(g_ref), jax.tree.leaves(g_new), strict=True))
    diff = max(float(jnp.max(jnp.abs(r - n))) for r, n in pairs)
    equal = all(np.array_equal(r, n) for r, n in pairs)
    print(
        f"CNN gradient step, {a.size}², {a.channels} channels, batch {a.batch}: reduce_window "
        f"{1e3 * t_ref:.1f} ms, reshape {1e3 * t_new:.1f} ms "
        f"({100 * (1 - t_new / t_ref):.0f}% less); max |Δgrad| {diff:.3g}, bit-equal: {equal}"
    )
    print(f"load after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
