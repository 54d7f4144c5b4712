"""Kernel decay in finite networks: train with gradient descent and L2, measure Θ_t along the way.

Training is full-batch gradient descent on the loss of the theory (SPEC §4),

    L(θ) = Σ_{x∈S} ½(f_θ(x) − y(x))² + (λ/2)‖θ‖²      (a sum over S, not a mean),

``θ ← θ − η ∇L(θ)``, so that it follows the gradient flow of eqs. (1)–(3) in physical time
``t = η·step`` when η is small. (The project's MSE ``1/(2k|B|) Σ‖f − y‖²`` is this data term divided
by ``k|B|``: its flow is the same with Θ replaced by ``Θ/(k|B|)`` and λ unchanged.)

Along training the empirical NTK Θ_t is measured on a fixed set of probe inputs and compared with
the infinite-width prediction ``e^{−2(k−1)λt} Θ_0`` (eq. 2); at finite width the term T_t of
SPEC §4 makes them differ, by an amount that shrinks as the width grows.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from l2dynamics.errors import ConfigError
from l2dynamics.theory.dynamics import kernel_decay_factor
from l2dynamics.theory.ntk import ApplyFn, empirical_ntk

ProgressFn = Callable[[str, float, float | None], None]


def sum_mse_l2(
    apply_fn: ApplyFn, params: Any, x: jax.Array, y: jax.Array, lam: jax.Array
) -> jax.Array:
    """``Σ_x ½(f(x) − y(x))² + (λ/2)‖θ‖²`` for outputs ``(N,)`` and targets ``(N,)``."""
    residual = apply_fn(params, x) - y
    l2 = sum(jnp.sum(jnp.square(p)) for p in jax.tree.leaves(params))
    return 0.5 * jnp.sum(jnp.square(residual)) + 0.5 * lam * l2


@partial(jax.jit, static_argnames=("apply_fn", "records", "every"))
def gd_segment(
    apply_fn: ApplyFn,
    params: Any,
    x: jax.Array,
    y: jax.Array,
    eta: jax.Array,
    lam: jax.Array,
    *,
    records: int,
    every: int,
) -> tuple[Any, jax.Array]:
    """``records·every`` steps of ``θ ← θ − η∇L``; the outputs on ``x`` after every ``every`` steps.

    Args:
        apply_fn: the model, ``(params, x (N, ...)) -> (N,)``; params: θ.
        x: training inputs ``(N, ...)``; y: targets ``(N,)`` float32.
        eta: learning rate η (float32 scalar); lam: λ (float32 scalar).
        records: outputs recorded; every: steps between records.

    Returns:
        ``(params, outputs)`` with outputs float32 ``(records, N)``.
    """
    grad = jax.grad(partial(sum_mse_l2, apply_fn), argnums=0)

    def step(p: Any, _: None) -> tuple[Any, None]:
        g = grad(p, x, y, lam)
        return jax.tree.map(lambda a, b: a - eta * b, p, g), None

    def record(p: Any, _: None) -> tuple[Any, jax.Array]:
        p, _ = jax.lax.scan(step, p, None, length=every)
        return p, apply_fn(p, x)

    return jax.lax.scan(record, params, None, length=records)


class DecayTrace(NamedTuple):
    """What :func:`train_with_kernels` measured.

    Attributes:
        kernel_times: ``(M,)`` physical times t = η·step of the kernel measurements (t = 0 first).
        kernels: ``(M, P, P)`` Θ_t on the probe inputs.
        output_times: ``(F,)`` physical times of the output records (t = 0 first).
        outputs: ``(F, N)`` f_t on the training inputs.
        params0: the initial parameters (to measure Θ_0 on other inputs).
    """

    kernel_times: np.ndarray
    kernels: np.ndarray
    output_times: np.ndarray
    outputs: np.ndarray
    params0: Any


def train_with_kernels(
    apply_fn: ApplyFn,
    params: Any,
    x: jax.Array,
    y: jax.Array,
    probe: jax.Array,
    *,
    eta: float,
    lam: float,
    segments: int,
    segment_steps: int,
    record_every: int,
    block_size: int = 32,
    progress: ProgressFn | None = None,
) -> DecayTrace:
    """Gradient descent with L2 for ``segments·segment_steps`` steps, measuring Θ_t on ``probe``
    every ``segment_steps`` steps and f_t on ``x`` every ``record_every`` steps.

    Args:
        apply_fn: the model ``(params, x) -> (N,)``; params: the initial θ.
        x: training inputs ``(N, ...)``; y: float32 targets ``(N,)``.
        probe: inputs ``(P, ...)`` on which the kernel is measured (e.g. part of ``x``).
        eta: learning rate η; lam: L2 coefficient λ.
        segments: kernel measurements after t = 0; segment_steps: steps between them (a multiple
            of ``record_every``).
        record_every: steps between output records.
        block_size: NTK block size (memory ∝ block_size × parameters).
        progress: optional ``progress(message, done, total)`` called once per segment.

    Returns:
        The :class:`DecayTrace`; times are physical, ``t = η·step``.

    Raises:
        ConfigError: ``segment_steps`` is not a multiple of ``record_every``.
    """
    if segment_steps % record_every:
        raise ConfigError(
            f"segment_steps ({segment_steps}) must be a multiple of record_every ({record_every})"
        )
    ntk = partial(empirical_ntk, apply_fn, x1=probe, block_size=block_size)
    eta_a, lam_a = jnp.float32(eta), jnp.float32(lam)
    kernels, outputs = [ntk(params)], [np.asarray(apply_fn(params, x))[None]]
    params0, records = params, segment_steps // record_every
    for s in range(segments):
        params, out = gd_segment(
            apply_fn, params, x, y, eta_a, lam_a, records=records, every=record_every
        )
        outputs.append(np.asarray(out))
        kernels.append(ntk(params))
        if progress is not None:
            progress("training", s + 1, segments)
    kernel_times = eta * segment_steps * np.arange(segments + 1, dtype=np.float64)
    output_times = eta * record_every * np.arange(segments * records + 1, dtype=np.float64)
    return DecayTrace(
        kernel_times, np.stack(kernels), output_times, np.concatenate(outputs), params0
    )


def fit_decay_rate(times: np.ndarray, kernels: np.ndarray) -> float:
    """Fitted decay rate of Θ_t: the least-squares slope through the origin of ``−log r(t)``
    against t, with ``r(t) = ⟨Θ_t, Θ_0⟩_F / ⟨Θ_0, Θ_0⟩_F`` (the component of Θ_t along Θ_0).

    Args:
        times: ``(M,)`` physical times (t = η·step); kernels: ``(M, P, P)`` with Θ_0 first.

    Returns:
        The rate per unit physical time, to compare with ``2(k−1)λ``.
    """
    ratio = kernel_overlap(kernels)
    t = np.asarray(times, np.float64)
    keep = ratio > 0  # a kernel that turned against Θ_0 has no log; leave it out of the fit
    return float(-(t[keep] @ np.log(ratio[keep])) / (t[keep] @ t[keep]))


def kernel_overlap(kernels: np.ndarray) -> np.ndarray:
    """``r(t) = ⟨Θ_t, Θ_0⟩_F / ⟨Θ_0, Θ_0⟩_F`` for kernels ``(M, P, P)`` with Θ_0 first; ``(M,)``.

    At infinite width r(t) = e^{−2(k−1)λt}.
    """
    kernels = np.asarray(kernels, np.float64)
    return np.einsum("mij,ij->m", kernels, kernels[0]) / np.sum(kernels[0] * kernels[0])


def kernel_deviation(times: np.ndarray, kernels: np.ndarray, *, lam: float, k: float) -> np.ndarray:
    """``‖Θ_t − e^{−2(k−1)λt} Θ_0‖_F / ‖e^{−2(k−1)λt} Θ_0‖_F`` at every measured time (eq. 2).

    Args:
        times: ``(M,)`` physical times t = η·step; kernels: ``(M, P, P)`` with Θ_0 first.
        lam: the L2 coefficient λ of training; k: the homogeneity degree.

    Returns:
        float64 ``(M,)``; 0 at t = 0.
    """
    kernels = np.asarray(kernels, np.float64)
    predicted = kernel_decay_factor(times, lam, k)[:, None, None] * kernels[0]
    num = np.linalg.norm((kernels - predicted).reshape(len(kernels), -1), axis=1)
    return num / np.linalg.norm(predicted.reshape(len(kernels), -1), axis=1)
