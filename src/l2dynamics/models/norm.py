"""Batch normalization with the current batch's statistics, at training and at test time.

The paper evaluates its BatchNorm networks with *batch* statistics (its authors' stax
``BatchNorm`` keeps no running averages), so this layer has no running mean or variance. That
also keeps every model stateless: a model's whole state is its ``params`` pytree, which can be
vmapped over hyperparameters, and ``apply`` needs no ``mutable`` collections. The price is that
a prediction depends on the other examples in its batch; evaluate in batches of reasonable size.

``group`` reproduces data-parallel training, where each device normalizes its own share of the
batch (the paper: batches of 1024 over 8 devices, statistics over 128 images): the batch is cut
into ``ceil(B/group)`` consecutive groups of near-equal size (at most ``group``), each normalized
with its own statistics.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

BN_EPS = 1e-5


class BatchStatNorm(nn.Module):
    """``y = scale·(x − mean_B)/sqrt(var_B + eps) + bias`` per channel (the last axis).

    ``mean_B`` and ``var_B`` are the mean and (biased) variance of the current batch over all
    axes but the last, for ``x`` of shape ``(B, ..., C)``. ``scale`` (init 1) and ``bias``
    (init 0) are learnable parameters of shape ``(C,)``; both count as parameters for L2.

    Attributes:
        eps: Added to the variance before the square root.
        group: Examples per statistics group (0: the whole batch is one group).
    """

    eps: float = BN_EPS
    group: int = 0

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        """Normalize ``x`` ``(B, ..., C)`` with its own statistics; returns the same shape.

        Args:
            x: Activations, channels last.
            train: Accepted for interface parity with ``nn.BatchNorm``; ignored, because
                batch statistics are used both at training and at test time.
        """
        del train
        channels = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (channels,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (channels,), jnp.float32)
        return _grouped(x, self.group, self.eps) * scale + bias


def near_equal_chunks(n: int, max_size: int) -> tuple[int, int, int, int]:
    """Split ``n`` items into ``ceil(n/max_size)`` consecutive chunks whose sizes differ by ≤ 1.

    Returns ``(a, s + 1, b, s)``: ``a`` chunks of ``s + 1`` items, then ``b`` chunks of ``s``.
    """
    chunks = -(-n // max_size)
    s, a = divmod(n, chunks)
    return a, s + 1, chunks - a, s


def _normalize(x: jax.Array, eps: float) -> jax.Array:
    """``(x − mean)/sqrt(var + eps)`` with statistics over all axes but the last."""
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(x, axis=axes)
    var = jnp.mean(jnp.square(x - mean), axis=axes)
    return (x - mean) * jax.lax.rsqrt(var + eps)


def _grouped(x: jax.Array, group: int, eps: float) -> jax.Array:
    """:func:`_normalize` per group of consecutive examples (the leading axis).

    The batch is cut into ``ceil(B/group)`` groups of near-equal size (sizes differ by at most
    one, none larger than ``group``), so no group is left with a handful of examples whose
    statistics would be meaningless; ``group`` ≤ 0 or ≥ B: one group.
    """
    batch = x.shape[0]
    if group <= 0 or group >= batch:
        return _normalize(x, eps)
    big_count, big, _, small = near_equal_chunks(batch, group)
    cut = big_count * big
    parts = []
    for lo, hi, size in ((0, cut, big), (cut, batch, small)):
        if hi > lo:
            chunk = x[lo:hi].reshape((hi - lo) // size, size, *x.shape[1:])
            parts.append(
                jax.vmap(lambda g: _normalize(g, eps))(chunk).reshape(hi - lo, *x.shape[1:])
            )
    return jnp.concatenate(parts) if len(parts) > 1 else parts[0]
