"""The fully connected network of the paper (SPEC §5: 3 hidden layers of width 2048, ReLU)."""

from __future__ import annotations

import math

import flax.linen as nn
import jax

from l2dynamics.models.init import activation_fn, as_float32, dense


class FC(nn.Module):
    """Flatten → ``depth`` × (Dense(width) → activation) → Dense(num_classes).

    Standard parametrization: hidden weights ``N(0, σ_w²/fan_in)``, readout weights
    ``N(0, σ_last²/width)`` with ``σ_last = sigma_w_last or sigma_w`` (the paper uses σ_w = √2
    for every layer), biases ``N(0, σ_b²)``. Parameters are named ``dense_0 … dense_{depth-1}``
    and ``readout``, each with ``kernel`` (and ``bias`` when ``use_bias``).

    Attributes:
        depth: Number of hidden layers (≥ 1).
        width: Units per hidden layer.
        num_classes: Number of logits.
        activation: One of ``relu, tanh, erf, gelu, linear``.
        use_bias: Whether every layer has a bias.
        sigma_w: Weight init scale σ_w.
        sigma_b: Bias init scale σ_b.
        sigma_w_last: Readout weight init scale (default: ``sigma_w``).
    """

    depth: int = 3
    width: int = 2048
    num_classes: int = 10
    activation: str = "relu"
    use_bias: bool = True
    sigma_w: float = math.sqrt(2.0)
    sigma_b: float = 0.0
    sigma_w_last: float | None = None

    def scale_invariant(self) -> tuple[str, ...]:
        """Parameters whose scale the output ignores: none (no normalization layer)."""
        return ()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        """Map images ``(B, H, W, C)`` (or any ``(B, ...)``) to logits ``(B, num_classes)``.

        ``train`` is accepted for a uniform model interface and has no effect here.
        """
        del train
        act = activation_fn(self.activation)
        h = as_float32(x).reshape(x.shape[0], -1)
        for i in range(self.depth):
            h = act(dense(self.width, self.sigma_w, self.sigma_b, self.use_bias, f"dense_{i}")(h))
        sigma_last = self.sigma_w if self.sigma_w_last is None else self.sigma_w_last
        return dense(self.num_classes, sigma_last, self.sigma_b, self.use_bias, "readout")(h)
