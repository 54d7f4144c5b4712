"""Pre-activation Wide-ResNet (Zagoruyko & Komodakis 2016), the paper's WRN-28-10 (SPEC §5).

Departures from the authors' stax code (``google/autol2``), which used a 3×3 convolution on
the block's *raw* input as the shortcut of every group's first block: here the shortcut is the
standard 1×1 convolution of the block's pre-activation ``relu(BN(x))``, and only where the
shape changes (channels or stride), giving the usual WRN-28-10 parameter count (≈ 36.5M).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from l2dynamics.errors import ConfigError
from l2dynamics.models.init import as_float32, conv, dense
from l2dynamics.models.norm import BatchStatNorm

STEM_CHANNELS = 16
GROUP_CHANNELS = (16, 32, 64)
GROUP_STRIDES = (1, 2, 2)


def blocks_per_group(depth: int) -> int:
    """``n = (depth − 4)/6`` blocks per group; depth must be ≥ 10 with ``(depth − 4) % 6 == 0``.

    Raises:
        ConfigError: ``depth`` is not a valid WRN depth (10, 16, 22, 28, …).
    """
    if depth < 10 or (depth - 4) % 6 != 0:
        raise ConfigError(
            f"wrn depth must be 10, 16, 22, 28, ... ((depth-4) % 6 == 0), got {depth}"
        )
    return (depth - 4) // 6


class WRNBlock(nn.Module):
    """BN → ReLU → conv3×3(stride) → BN → ReLU → conv3×3, plus a shortcut.

    The shortcut is the identity when the shape is unchanged, else a 1×1 conv (stride) of the
    first pre-activation ``relu(BN(x))``. Maps ``(B, H, W, C_in)`` to
    ``(B, ceil(H/stride), ceil(W/stride), channels)``.

    Attributes:
        channels: Output channels.
        strides: Stride of the first 3×3 conv and of the shortcut.
        use_bias: Whether convolutions have biases.
        sigma_w: Weight init scale σ_w.
        sigma_b: Bias init scale σ_b.
        bn_group: Examples per BatchNorm statistics group (0: the whole batch).
    """

    channels: int
    strides: int = 1
    use_bias: bool = True
    sigma_w: float = 1.0
    sigma_b: float = 0.0
    bn_group: int = 0

    def _conv(self, kernel: int, strides: int, name: str) -> nn.Conv:
        return conv(
            self.channels,
            kernel,
            self.sigma_w,
            self.sigma_b,
            self.use_bias,
            strides=strides,
            name=name,
        )

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Apply the block to ``x`` of shape ``(B, H, W, C_in)``."""
        pre = nn.relu(BatchStatNorm(group=self.bn_group, name="norm_0")(x))
        h = self._conv(3, self.strides, "conv_0")(pre)
        h = self._conv(3, 1, "conv_1")(
            nn.relu(BatchStatNorm(group=self.bn_group, name="norm_1")(h))
        )
        if x.shape[-1] != self.channels or self.strides != 1:
            x = self._conv(1, self.strides, "shortcut")(pre)
        return x + h


class WideResNet(nn.Module):
    """WRN-depth-width: stem conv3×3(16) → 3 groups → BN → ReLU → global avg pool → Dense.

    Groups have ``(depth − 4)/6`` :class:`WRNBlock` s each, with ``16·width``, ``32·width``
    and ``64·width`` channels and strides 1, 2, 2. BatchNorm is :class:`BatchStatNorm` (batch
    statistics at test time, as in the paper). Standard parametrization: weights
    ``N(0, σ_w²/fan_in)`` (paper: σ_w = 1), biases ``N(0, σ_b²)``. Convolutions and the readout
    have biases when ``use_bias`` (default, initialized to zero at σ_b = 0 and, like every
    parameter, L2-regularized); ``use_bias=False`` gives the bias-free convs of the usual
    implementations. Parameters: ``stem``, ``group_{g}_block_{b}``, ``norm``, ``readout``.

    Attributes:
        depth: Total depth; 28 for WRN-28-10.
        width: Widening factor; 10 for WRN-28-10.
        num_classes: Number of logits.
        sigma_w: Weight init scale σ_w.
        sigma_b: Bias init scale σ_b.
        use_bias: Whether convolutions and the readout have biases.
        bn_group: Examples per BatchNorm statistics group, as on data-parallel devices (the
            paper: 128 of each batch of 1024); 0: statistics over the whole batch.
    """

    depth: int = 28
    width: int = 10
    num_classes: int = 10
    sigma_w: float = 1.0
    sigma_b: float = 0.0
    use_bias: bool = True
    bn_group: int = 0

    def scale_invariant(self) -> tuple[str, ...]:
        """Kernels whose scale the output ignores: each block's ``conv_0`` (followed by the
        block's ``norm_1``). The other convolutions add into the residual stream, whose scale
        the next BatchNorm removes only jointly with the stream's other terms, not kernel by
        kernel. Paths as ``"group_0_block_0/conv_0/kernel"``."""
        n = blocks_per_group(self.depth)
        return tuple(
            f"group_{g}_block_{b}/conv_0/kernel"
            for g in range(len(GROUP_CHANNELS))
            for b in range(n)
        )

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        """Map images ``(B, H, W, C)`` to logits ``(B, num_classes)``.

        ``train`` has no effect: BatchStatNorm uses batch statistics in both modes.
        """
        del train
        n = blocks_per_group(self.depth)
        h = conv(STEM_CHANNELS, 3, self.sigma_w, self.sigma_b, self.use_bias, name="stem")(
            as_float32(x)
        )
        for g, (base, stride) in enumerate(zip(GROUP_CHANNELS, GROUP_STRIDES, strict=True)):
            for b in range(n):
                h = WRNBlock(
                    base * self.width,
                    stride if b == 0 else 1,
                    self.use_bias,
                    self.sigma_w,
                    self.sigma_b,
                    self.bn_group,
                    name=f"group_{g}_block_{b}",
                )(h)
        h = jnp.mean(nn.relu(BatchStatNorm(group=self.bn_group, name="norm")(h)), axis=(1, 2))
        return dense(self.num_classes, self.sigma_w, self.sigma_b, self.use_bias, "readout")(h)
