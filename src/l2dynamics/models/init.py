"""Standard-parametrization layers: initializers, Dense/Conv factories and activations.

Every weight is drawn ``W ~ N(0, σ_w²/fan_in)`` from an *untruncated* normal, where fan_in is
the input width of a Dense layer and ``kh·kw·C_in`` for a convolution; every bias is drawn
``b ~ N(0, σ_b²)`` (zeros when σ_b = 0). The forward pass is ``h = x·W + b`` with no width
factors (standard, not NTK, parametrization: SPEC §1).
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from l2dynamics.errors import ConfigError

Initializer = jax.nn.initializers.Initializer

ACTIVATIONS = ("relu", "tanh", "erf", "gelu", "linear")


def weight_init(sigma_w: float) -> Initializer:
    """``W ~ N(0, σ_w²/fan_in)``, untruncated; fan_in = product of all axes but the last."""
    return jax.nn.initializers.variance_scaling(float(sigma_w) ** 2, "fan_in", "normal")


def bias_init(sigma_b: float) -> Initializer:
    """``b ~ N(0, σ_b²)``; exactly zero when ``sigma_b == 0``."""
    if sigma_b == 0:
        return jax.nn.initializers.zeros
    return jax.nn.initializers.normal(float(sigma_b))


def dense(
    features: int, sigma_w: float, sigma_b: float, use_bias: bool, name: str | None = None
) -> nn.Dense:
    """A Dense layer ``(..., N_in) -> (..., features)`` with the standard-parametrization init."""
    return nn.Dense(
        features,
        use_bias=use_bias,
        kernel_init=weight_init(sigma_w),
        bias_init=bias_init(sigma_b),
        name=name,
    )


def conv(
    features: int,
    kernel: int,
    sigma_w: float,
    sigma_b: float,
    use_bias: bool,
    *,
    strides: int = 1,
    padding: str = "SAME",
    name: str | None = None,
) -> nn.Conv:
    """A ``kernel×kernel`` NHWC convolution ``(B, H, W, C_in) -> (B, H', W', features)``.

    Its kernel has shape ``(kernel, kernel, C_in, features)`` and fan_in ``kernel²·C_in``.
    """
    return nn.Conv(
        features,
        (kernel, kernel),
        strides=(strides, strides),
        padding=padding,
        use_bias=use_bias,
        kernel_init=weight_init(sigma_w),
        bias_init=bias_init(sigma_b),
        name=name,
    )


def _linear(x: jax.Array) -> jax.Array:
    return x


def _gelu(x: jax.Array) -> jax.Array:
    return jax.nn.gelu(x, approximate=False)


_ACTIVATION_FNS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "erf": jax.lax.erf,
    "gelu": _gelu,
    "linear": _linear,
}


def activation_fn(name: str) -> Callable[[jax.Array], jax.Array]:
    """The elementwise activation called ``name`` (``gelu`` is the exact, erf-based GELU).

    Raises:
        ConfigError: ``name`` is not one of :data:`ACTIVATIONS`.
    """
    if name not in _ACTIVATION_FNS:
        raise ConfigError(f"unknown activation {name!r} (choose from {', '.join(ACTIVATIONS)})")
    return _ACTIVATION_FNS[name]


def as_float32(x: jax.Array) -> jax.Array:
    """Cast an image batch to float32 explicitly (the models' parameters are float32)."""
    return jnp.asarray(x, jnp.float32)
