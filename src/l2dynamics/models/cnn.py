"""The paper's convolutional network (SPEC §5, figures 3a–f), with or without BatchNorm."""

from __future__ import annotations

import math

import flax.linen as nn
import jax

from l2dynamics.errors import ConfigError
from l2dynamics.models.init import activation_fn, as_float32, conv
from l2dynamics.models.init import dense as dense_layer
from l2dynamics.models.norm import BatchStatNorm


def pooled_size(size: int, window: int, stride: int) -> int:
    """Spatial size after a VALID max-pool: ``floor((size − window)/stride) + 1`` (≤ 0: empty)."""
    return (size - window) // stride + 1


def cnn_spatial_size(size: int, window: int, stride: int) -> int:
    """Final spatial size of :class:`CNN` for a ``size×size`` input (≤ 0 when it vanishes).

    SAME conv keeps the size, each 3×3 VALID conv removes 2, each pool maps ``s`` to
    :func:`pooled_size`.
    """
    return pooled_size(pooled_size(size - 2, window, stride) - 2, window, stride)


def window_max_pool(h: jax.Array, window: int, stride: int) -> jax.Array:
    """VALID max-pool of ``(B, H, W, C)`` over ``window``² windows at ``stride``: shape
    ``(B, pooled_size(H), pooled_size(W), C)``.

    Non-overlapping windows (``window == stride``, the paper's 2×2/2) are a reshape to
    ``(B, H', window, W', window, C)`` and a max over the window axes; others flax's
    ``nn.max_pool`` (``lax.reduce_window``). Why: on XLA:CPU the gradient of ``reduce_window``
    is a select-and-scatter that costs a large share of the CNN's step, while the reshape's is a
    comparison with the maximum that XLA fuses (``benchmarks/perf_pool.py``). Same maximum; the
    same gradient except in a window with several equal maxima, where select-and-scatter gives it
    all to the first and the reshape splits it evenly. After a ReLU such ties are zeros, whose
    gradient the ReLU then drops, so the CNN's gradients are the same.
    """
    if window != stride:
        return nn.max_pool(h, (window, window), strides=(stride, stride), padding="VALID")
    batch, height, width, channels = h.shape
    rows, cols = height // window, width // window  # pooled_size when window == stride
    h = h[:, : rows * window, : cols * window, :]
    return h.reshape(batch, rows, window, cols, window, channels).max(axis=(2, 4))


class CNN(nn.Module):
    """The paper's CNN, written exactly as SPEC §5 lists it (3×3 kernels throughout)::

        Conv(ch, SAME) → Act → Conv(ch, VALID) → Act → MaxPool(VALID)
        → Conv(ch, SAME) → Act → Conv(ch, VALID) → MaxPool(VALID)
        → Flatten → Dense(dense) → Dense(num_classes)

    ``Act`` is the activation, or BatchStatNorm → activation when ``batch_norm``. Following
    the listing literally, there is *no* activation after the fourth convolution nor after
    Dense(dense): those are composed linearly with the next layer. Max-pools use a
    ``pool_window``² window and ``pool_stride`` stride (the source is ambiguous: (6,6) in one
    place, (2,2) in another, and stax pools default to stride 1). Every weight is
    ``N(0, σ_w²/fan_in)``, every bias ``N(0, σ_b²)``. Parameters: ``conv_0 … conv_3``,
    ``norm_0 … norm_2`` (with ``batch_norm``), ``dense``, ``readout``.

    Attributes:
        channels: Channels of every convolution.
        dense: Units of the hidden Dense layer.
        num_classes: Number of logits.
        batch_norm: Insert BatchStatNorm before each activation.
        pool_window: Max-pool window side.
        pool_stride: Max-pool stride.
        activation: One of ``relu, tanh, erf, gelu, linear``.
        use_bias: Whether convolutions and Dense layers have biases.
        sigma_w: Weight init scale σ_w.
        sigma_b: Bias init scale σ_b.
        bn_group: Examples per BatchNorm statistics group (0: the whole batch).
    """

    channels: int = 300
    dense: int = 500
    num_classes: int = 10
    batch_norm: bool = False
    pool_window: int = 2
    pool_stride: int = 2
    activation: str = "relu"
    use_bias: bool = True
    sigma_w: float = math.sqrt(2.0)
    sigma_b: float = 0.0
    bn_group: int = 0

    def scale_invariant(self) -> tuple[str, ...]:
        """Kernels whose scale the output ignores: with ``batch_norm``, those of ``conv_0 …
        conv_2``, each followed by a BatchStatNorm (its per-channel normalization also removes
        the conv's bias, so a kernel times a > 0 gives the same output). ``conv_3`` feeds a
        pool and the Dense layers, which are not normalized. Paths as ``"conv_0/kernel"``."""
        if not self.batch_norm:
            return ()
        return tuple(f"conv_{i}/kernel" for i in range(3))

    def _conv(self, padding: str, index: int) -> nn.Conv:
        return conv(
            self.channels,
            3,
            self.sigma_w,
            self.sigma_b,
            self.use_bias,
            padding=padding,
            name=f"conv_{index}",
        )

    def _dense(self, features: int, name: str) -> nn.Dense:
        return dense_layer(features, self.sigma_w, self.sigma_b, self.use_bias, name)

    def _act(self, h: jax.Array, index: int) -> jax.Array:
        if self.batch_norm:
            h = BatchStatNorm(group=self.bn_group, name=f"norm_{index}")(h)
        return activation_fn(self.activation)(h)

    def _pool(self, h: jax.Array) -> jax.Array:
        return window_max_pool(h, self.pool_window, self.pool_stride)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        """Map images ``(B, H, W, C)`` to logits ``(B, num_classes)``.

        ``train`` has no effect: BatchStatNorm uses batch statistics in both modes.

        Raises:
            ConfigError: the input is too small for two VALID convs and pools.
        """
        del train
        self._check_size(x.shape[1:3])
        h = self._act(self._conv("SAME", 0)(as_float32(x)), 0)
        h = self._pool(self._act(self._conv("VALID", 1)(h), 1))
        h = self._act(self._conv("SAME", 2)(h), 2)
        h = self._pool(self._conv("VALID", 3)(h))
        h = h.reshape(h.shape[0], -1)
        h = self._dense(self.dense, "dense")(h)
        return self._dense(self.num_classes, "readout")(h)

    def _check_size(self, spatial: tuple[int, ...]) -> None:
        if min(cnn_spatial_size(s, self.pool_window, self.pool_stride) for s in spatial) < 1:
            raise ConfigError(
                f"cnn: input {spatial[0]}x{spatial[1]} is too small for pool_window="
                f"{self.pool_window}, pool_stride={self.pool_stride}"
            )
