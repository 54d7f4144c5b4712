"""Batch normalization with the current batch's statistics, at training and at test time.

The paper evaluates its BatchNorm networks with *batch* statistics (its authors' stax
``BatchNorm`` keeps no running averages), so this layer has no running mean or variance. That
also keeps every model stateless: a model's whole state is its ``params`` pytree, which can be
vmapped over hyperparameters, and ``apply`` needs no ``mutable`` collections. The price is that
a prediction depends on the other examples in its batch; evaluate in batches of reasonable size.
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
    """

    eps: float = BN_EPS

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
        axes = tuple(range(x.ndim - 1))
        mean = jnp.mean(x, axis=axes)
        var = jnp.mean(jnp.square(x - mean), axis=axes)
        return (x - mean) * jax.lax.rsqrt(var + self.eps) * scale + bias
