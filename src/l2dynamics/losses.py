"""Losses and metrics with the paper's normalization (SPEC §1).

All losses are *bare* data losses (no L2 term); the L2 penalty ``(λ/2)‖θ‖²`` lives in the
optimizer (:mod:`l2dynamics.optim`) so that η and λ stay run-time arrays.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from l2dynamics.config import CONVENTIONS, L2_FACTORS, LOSSES


def one_hot(labels: jax.Array, num_classes: int) -> jax.Array:
    """Integer labels ``(B,)`` → float32 one-hot targets ``(B, k)``."""
    return jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)


def cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Normalized softmax cross-entropy ``−1/(2k|B|) Σ_B Σ_i y_i log softmax(f)_i``.

    Args:
        logits: ``(B, k)`` network outputs f(x).
        targets: ``(B, k)`` one-hot (or mixed, rows summing to 1) targets y.

    Returns:
        Scalar loss. Note the ``1/(2k)`` factor: it is the paper's convention, and it rescales
        the effective learning rate relative to the usual mean cross-entropy.
    """
    batch, k = logits.shape
    return -jnp.sum(targets * jax.nn.log_softmax(logits)) / (2.0 * k * batch)


def mse(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """Normalized squared error ``1/(2k|B|) Σ_B ‖f(x) − y‖²`` for ``(B, k)`` arrays."""
    batch, k = outputs.shape
    return jnp.sum(jnp.square(outputs - targets)) / (2.0 * k * batch)


def script_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """The authors' script's cross-entropy ``−1/(k|B|) Σ_B Σ_i y_i log softmax(f)_i`` (CE/k,
    the mean over batch and classes): twice :func:`cross_entropy`."""
    return 2.0 * cross_entropy(logits, targets)


def loss_fn(name: str, convention: str = "sm"):
    """The loss function called ``name`` (``"xent"`` or ``"mse"``) in ``convention``
    (:data:`l2dynamics.config.CONVENTIONS`): the script's MSE, ``0.5·mean((y − f)²)``, is the
    SM's; its cross-entropy is CE/k."""
    _check_convention(convention)
    if name == "xent":
        return script_cross_entropy if convention == "script" else cross_entropy
    if name == "mse":
        return mse
    raise ValueError(f"unknown loss {name!r} (choose from {', '.join(LOSSES)})")


def l2_scale(convention: str) -> float:
    """The factor of λ in the L2 gradient: 1 for the SM's ``(λ/2)‖θ‖²``, 2 for the script's
    ``λ·‖θ‖²`` (its λ multiplies ``Σθ²`` without the ½)."""
    _check_convention(convention)
    return L2_FACTORS[convention]


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        choices = ", ".join(CONVENTIONS)
        raise ValueError(f"unknown convention {convention!r} (choose from {choices})")


def correct(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Number of rows whose arg-max output equals the arg-max target (float32 scalar)."""
    hits = jnp.argmax(logits, axis=-1) == jnp.argmax(targets, axis=-1)
    return jnp.sum(hits.astype(jnp.float32))


def accuracy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Fraction of rows classified correctly, in [0, 1]."""
    return correct(logits, targets) / logits.shape[0]


def l2_norm_sq(params) -> jax.Array:
    """``‖θ‖² = Σ_μ θ_μ²`` over every leaf of a parameter pytree (float32 scalar)."""
    return sum((jnp.sum(jnp.square(x)) for x in jax.tree.leaves(params)), jnp.float32(0.0))
