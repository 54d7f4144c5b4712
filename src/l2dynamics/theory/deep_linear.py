"""The fixed point of a one-hidden-layer deep linear network under L2 (SPEC §4, "deep linear").

Model: ``f = β W₁ W₀ x`` with ``W₀: (n, 1)``, ``W₁: (1, n)``, NTK normalization ``β = n^{−1/2}``
(the L = 1 case of ``β = n^{−L/2}``), weights initialized ``N(0, 1)``. One sample ``x = y = 1`` and
``L = ½(f − 1)² + (λ/2)(‖W₀‖² + ‖W₁‖²)``. Setting the gradient to zero gives ``W₀ = W₁ᵀ`` and
``|f − 1| = λ/β = λ√n``: the non-trivial fixed point ``f = 1 − λ√n`` exists while λ√n < 1;
above it only ``W = 0, f = 0`` remains. Gradient descent (step η, physical time t = η·step) is run
to convergence to check this; it is float32 and vmapped over λ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

CHUNK = 256


def fixed_point(n: int, lam: float) -> float:
    """The predicted gradient-descent fixed point ``max(0, 1 − λ√n)`` (NTK normalization)."""
    return max(0.0, 1.0 - lam * math.sqrt(n))


class DeepLinearResult(NamedTuple):
    """Gradient descent on the deep linear model, one entry per λ.

    Attributes:
        f: ``(L,)`` final outputs f.
        steps: ``(L,)`` steps taken.
        grad_norm: ``(L,)`` final relative gradient norms ‖∂L/∂θ‖ / (1 + ‖θ‖).
    """

    f: np.ndarray
    steps: np.ndarray
    grad_norm: np.ndarray


def _grads(u: jax.Array, v: jax.Array, lam: jax.Array, beta: float) -> tuple[jax.Array, ...]:
    """Gradients of ``½(βv·u − 1)² + (λ/2)(|u|² + |v|²)`` and the output f."""
    f = beta * jnp.dot(u, v)
    return (f - 1.0) * beta * v + lam * u, (f - 1.0) * beta * u + lam * v, f


def _descend(
    u0: jax.Array,
    v0: jax.Array,
    lam: jax.Array,
    eta: jax.Array,
    *,
    beta: float,
    max_steps: int,
    tol: float,
) -> tuple[jax.Array, ...]:
    """Run ``θ ← θ − η∇L`` in chunks of CHUNK steps until ‖∇L‖ < tol·(1 + ‖θ‖) or max_steps.

    The tolerance is relative to ‖θ‖ because float32 round-off leaves a gradient floor that
    grows with ‖θ‖ (about 1e-7·‖θ‖·…); an absolute one would never be met at large n.
    """

    def chunk(state: tuple) -> tuple:
        def step(carry: tuple, _: None) -> tuple:
            u, v = carry
            gu, gv, _ = _grads(u, v, lam, beta)
            return (u - eta * gu, v - eta * gv), None

        (u, v), _ = jax.lax.scan(step, state[:2], None, length=CHUNK)
        gu, gv, _ = _grads(u, v, lam, beta)
        gnorm = jnp.sqrt(jnp.sum(gu**2) + jnp.sum(gv**2))
        return u, v, state[2] + CHUNK, gnorm / (1.0 + jnp.sqrt(jnp.sum(u**2) + jnp.sum(v**2)))

    def running(state: tuple) -> jax.Array:
        return (state[2] < max_steps) & (state[3] >= tol)

    u, v, steps, gnorm = jax.lax.while_loop(running, chunk, (u0, v0, 0, jnp.inf))
    return _grads(u, v, lam, beta)[2], steps, gnorm


def train_deep_linear(
    n: int,
    lams: Sequence[float],
    *,
    eta: float = 0.1,
    max_steps: int = 4_000_000,
    tol: float = 1e-6,
    seed: int = 0,
) -> DeepLinearResult:
    """Gradient descent on ``f = n^{−1/2} W₁ W₀ x`` (x = y = 1, MSE, L2) for every λ in ``lams``.

    Args:
        n: hidden width.
        lams: L2 coefficients λ (one run each, all from the same N(0, 1) initialization).
        eta: learning rate η per step.
        max_steps: step budget per run.
        tol: stop once ``‖∂L/∂θ‖ < tol·(1 + ‖θ‖)``.
        seed: seed of the initialization.

    Returns:
        The final f, steps and gradient norms, one per λ.
    """
    ku, kv = jax.random.split(jax.random.key(seed))
    u0 = jax.random.normal(ku, (n,), jnp.float32)
    v0 = jax.random.normal(kv, (n,), jnp.float32)
    descend = partial(_descend, beta=1.0 / math.sqrt(n), max_steps=max_steps, tol=tol)
    run = jax.jit(jax.vmap(descend, in_axes=(None, None, 0, None)))
    lam_arr = jnp.asarray(np.asarray(lams, np.float32))
    f, steps, gnorm = run(u0, v0, lam_arr, jnp.float32(eta))
    return DeepLinearResult(np.asarray(f), np.asarray(steps), np.asarray(gnorm))
