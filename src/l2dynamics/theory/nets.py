"""The bias-free 2-layer ReLU network of the theory section, and its exact finite-width NTK.

``f(x) = a · Σ_i v_i relu(b · w_i·x)`` with ``W: (d, n)`` and ``v: (n,)``, no biases, so f is
2-homogeneous in θ = (W, v) (k = 2, SPEC §4).

Two parametrizations (same function at initialization, different gradients):

- ``"ntk"`` (default here): ``W, v ~ N(0, 1)``, ``b = σ_w/√d``, ``a = σ_v/√n``. The NTK is O(1)
  in the width n, so a fixed η and the physical time ``t = η·step`` have a width-independent
  limit: this is the normalization in which the infinite-width statements (2)–(3) hold at fixed
  t, and the one used for kernel decay and Figure 5(c).
- ``"standard"`` (SPEC §1): ``W ~ N(0, σ_w²/d)``, ``v ~ N(0, σ_v²/n)``, ``a = b = 1``. Its NTK grows
  ∝ n (the readout gradients), so η must shrink ∝ 1/n to stay stable.

Either way the L2 term acts on the trainable θ; the homogeneity degree is 2 in both.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from l2dynamics.errors import ConfigError

PARAMETRIZATIONS = ("ntk", "standard")
Initializer = jax.nn.initializers.Initializer


class TwoLayerReLU(nn.Module):
    """Flatten → ``b·xW`` → ReLU → ``a·h·v``: one scalar output per input, no biases.

    Attributes:
        width: hidden units n.
        parametrization: ``"ntk"`` or ``"standard"`` (see the module docstring).
        sigma_w: first-layer scale σ_w (√2, He, by default).
        sigma_v: readout scale σ_v.
    """

    width: int
    parametrization: str = "ntk"
    sigma_w: float = math.sqrt(2.0)
    sigma_v: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Map inputs ``(B, ...)`` (flattened to ``(B, d)``) to outputs ``(B,)``."""
        h = jnp.asarray(x, jnp.float32).reshape(x.shape[0], -1)
        a, b, init_w, init_v = _scales(self, h.shape[1])
        w = self.param("w", init_w, (h.shape[1], self.width), jnp.float32)
        v = self.param("v", init_v, (self.width,), jnp.float32)
        return a * (jax.nn.relu(b * (h @ w)) @ v)


def _scales(net: TwoLayerReLU, d: int) -> tuple[float, float, Initializer, Initializer]:
    """Forward multipliers (a, b) and the initializers of W and v."""
    if net.parametrization not in PARAMETRIZATIONS:
        raise ConfigError(
            f"unknown parametrization {net.parametrization!r} (choose from "
            f"{', '.join(PARAMETRIZATIONS)})"
        )
    if net.parametrization == "ntk":
        unit = nn.initializers.normal(1.0)
        return net.sigma_v / math.sqrt(net.width), net.sigma_w / math.sqrt(d), unit, unit
    init_w = nn.initializers.normal(net.sigma_w / math.sqrt(d))
    init_v = nn.initializers.normal(net.sigma_v / math.sqrt(net.width))
    return 1.0, 1.0, init_w, init_v


def two_layer_ntk(net: TwoLayerReLU, params: dict, x1: jax.Array, x2: jax.Array) -> jax.Array:
    """The exact empirical NTK of :class:`TwoLayerReLU` in closed form.

    ``Θ(x, x') = a² [Σ_i relu(h_i) relu(h'_i) + b² (x·x') Σ_i v_i² 1[h_i > 0] 1[h'_i > 0]]``
    with ``h = b·xW``: the first sum is the readout gradient, the second the first layer's.

    Args:
        net: the module (its width, parametrization and scales).
        params: its ``params`` collection ``{"w": (d, n), "v": (n,)}``.
        x1: inputs ``(N1, ...)``; x2: inputs ``(N2, ...)``.

    Returns:
        float32 ``(N1, N2)``.
    """
    x1 = jnp.asarray(x1, jnp.float32).reshape(x1.shape[0], -1)
    x2 = jnp.asarray(x2, jnp.float32).reshape(x2.shape[0], -1)
    a, b, _, _ = _scales(net, x1.shape[1])
    h1, h2 = b * (x1 @ params["w"]), b * (x2 @ params["w"])
    readout = jax.nn.relu(h1) @ jax.nn.relu(h2).T
    on1, on2 = (h1 > 0).astype(jnp.float32), (h2 > 0).astype(jnp.float32)
    hidden = (on1 * jnp.square(params["v"])) @ on2.T
    return a**2 * (readout + b**2 * (x1 @ x2.T) * hidden)
