"""Homogeneity of a model in its parameters, and Lemma 1 checked numerically (SPEC §4).

A model is k-homogeneous when ``f_{aθ}(x) = a^k f_θ(x)`` for every a > 0; a bias-free ReLU network
with L weight layers is L-homogeneous. Lemma 1 (Euler's theorem, differentiated m times):
``Σ_μ θ_μ ∂_μ ∂_{ν1…νm} f = (k − m) ∂_{ν1…νm} f``. The m = 0 form, ``Σ θ_μ ∂_μ f = k f``, gives the
``−kλf`` term of eq. (1); the m = 1 form gives the kernel decay ``−2(k−1)λΘ`` of eq. (2).

``apply_fn(params, x)`` maps inputs ``(B, ...)`` to outputs of any shape; params is any pytree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

ApplyFn = Callable[[Any, jax.Array], jax.Array]


def _scaled(params: Any, a: float) -> Any:
    return jax.tree.map(lambda p: p * jnp.asarray(a, p.dtype), params)


def homogeneity_degree(
    apply_fn: ApplyFn, params: Any, x: jax.Array, scales: Sequence[float] = (0.5, 0.8, 1.25, 2.0)
) -> float:
    """Estimate k from ``f(aθ) = a^k f(θ)``: the least-squares slope of ``log|f(aθ)/f(θ)|``
    against ``log a`` over every output and scale.

    Args:
        apply_fn: the model; params: θ; x: inputs ``(B, ...)``.
        scales: the factors a (> 0, ≠ 1).

    Returns:
        The fitted degree (an integer up to round-off for a homogeneous model). Outputs with
        ``|f(θ)|`` below 1e-6 of the largest are left out (their ratio is round-off).
    """
    apply = jax.jit(apply_fn)
    f = np.asarray(apply(params, x), np.float64).ravel()
    keep = np.abs(f) > 1e-6 * np.abs(f).max()
    logs, ratios = [], []
    for a in scales:
        fa = np.asarray(apply(_scaled(params, a), x), np.float64).ravel()
        ratios.append(np.log(np.abs(fa[keep] / f[keep])))
        logs.append(np.full(int(keep.sum()), np.log(a)))
    logs_all, ratios_all = np.concatenate(logs), np.concatenate(ratios)
    return float(logs_all @ ratios_all / (logs_all @ logs_all))


def euler_residual(apply_fn: ApplyFn, params: Any, x: jax.Array, k: float) -> float:
    """Lemma 1 with m = 0: ``max|Σ_μ θ_μ ∂_μ f − k f| / max|f|`` over the outputs on ``x``.

    ``Σ_μ θ_μ ∂_μ f`` is the directional derivative of f along θ itself (one jvp).
    """
    f, along = jax.jit(lambda p: jax.jvp(lambda q: apply_fn(q, x), (p,), (p,)))(params)
    f, along = np.asarray(f, np.float64), np.asarray(along, np.float64)
    return float(np.max(np.abs(along - k * f)) / np.max(np.abs(f)))


def hessian_euler_residual(
    apply_fn: ApplyFn, params: Any, x: jax.Array, k: float, *, seed: int = 0
) -> float:
    """Lemma 1 with m = 1: ``‖Σ_μ θ_μ ∂_μ ∂_ν s − (k−1) ∂_ν s‖ / ‖∂_ν s‖`` (norms over ν).

    ``s(θ) = Σ_x c(x)·f_θ(x)`` with a fixed random Gaussian ``c`` (seeded), which checks the
    identity for a random combination of outputs at once; ``Σ_μ θ_μ ∂_μ ∇s`` is the jvp of the
    gradient along θ (a Hessian-vector product with v = θ).
    """
    out = jax.eval_shape(lambda p: apply_fn(p, x), params)
    c = jax.random.normal(jax.random.key(seed), out.shape, out.dtype)

    def grad_s(p: Any) -> Any:
        return jax.grad(lambda q: jnp.sum(c * apply_fn(q, x)))(p)

    grad, along = jax.jit(lambda p: jax.jvp(grad_s, (p,), (p,)))(params)
    g = np.concatenate([np.asarray(leaf, np.float64).ravel() for leaf in jax.tree.leaves(grad)])
    h = np.concatenate([np.asarray(leaf, np.float64).ravel() for leaf in jax.tree.leaves(along)])
    return float(np.linalg.norm(h - (k - 1) * g) / np.linalg.norm(g))
