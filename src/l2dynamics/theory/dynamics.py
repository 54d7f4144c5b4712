"""Infinite-width gradient flow with L2 regularization: eqs. (1)–(3) of SPEC §4.

Setting: gradient flow ``dθ/dt = −∂L/∂θ`` on ``L = Σ_{x∈S} ½(f(x) − y(x))² + (λ/2)‖θ‖²`` (a *sum*
over the training set S, not a mean) for a k-homogeneous model, in physical time t (for gradient
descent with step η, ``t = η·step``). At infinite width the kernel only decays (eq. 2),

    Θ_t = e^{−2(k−1)λt} Θ_0,

and the outputs on the training set obey the linear ODE (eq. 1 with MSE)

    df_t/dt = −Θ_t (f_t − y) − kλ f_t,

whose solution per eigenmode a of Θ_0 (eigenvalue λ_a, ``λ_a(t) = λ_a e^{−2(k−1)λt}``) is eq. (3).

Numerics: everything here is numpy float64. The integral of eq. (3) is evaluated after the
substitution ``w = ∫_{t'}^t λ_a(s) ds`` (the exponent of its integrand), which turns it into

    e^{−kλt} λ_a ∫_0^t e^{−(k−2)λt'} e^{(λ_a(t)−λ_a(t'))/(2(k−1)λ)} dt'
        = ∫_0^{W} e^{−w} e^{−kλ τ(w)} dw,   τ(w) = log(1 + r w/λ_a(t))/r,  r = 2(k−1)λ,

with ``W = ∫_0^t λ_a(s) ds``: a smooth integrand bounded by e^{−w}, integrated by Gauss–Legendre on
panels that are geometric near w = 0 and of width ≤ 4 beyond, cut at w = 64 (e^{−64} ≈ 1e-28).
Every ``(e^{x r} − 1)/r`` and ``log(1 + x r)/r`` is evaluated with expm1/log1p, so the formulas
are exact and continuous at k = 1 (r = 0, the linear model) and at λ = 0.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.integrate import solve_ivp

from l2dynamics.errors import ConfigError

GL_NODES = 24
W_CUT = 64.0
TAIL_PANEL = 4.0
MAX_GEOMETRIC_PANELS = 110
PAIR_CHUNK = 1024


def kernel_decay_rate(lam: float, k: float) -> float:
    """The decay rate ``2(k−1)λ`` of the NTK (eq. 2), per unit of physical time."""
    return 2.0 * (k - 1.0) * lam


def kernel_decay_factor(times: ArrayLike, lam: float, k: float) -> np.ndarray:
    """``e^{−2(k−1)λt}`` at physical times ``times`` (any shape); Θ_t = factor · Θ_0."""
    return np.exp(-kernel_decay_rate(lam, k) * np.asarray(times, np.float64))


def _expm1_over(rate: float, t: np.ndarray) -> np.ndarray:
    """``(e^{rate·t} − 1)/rate``, equal to t at rate 0."""
    return t if rate == 0 else np.expm1(rate * t) / rate


def _log1p_over(rate: float, x: np.ndarray) -> np.ndarray:
    """``log(1 + rate·x)/rate``, equal to x at rate 0."""
    return x if rate == 0 else np.log1p(rate * x) / rate


def _check(lam: float, k: float) -> None:
    if lam < 0:
        raise ConfigError(f"lam must be >= 0 (got {lam})")
    if k < 1:
        raise ConfigError(f"the homogeneity degree k must be >= 1 (got {k})")


def mode_evolution(
    eigvals: ArrayLike,
    f0: ArrayLike,
    y: ArrayLike,
    times: ArrayLike,
    *,
    lam: float,
    k: float,
) -> np.ndarray:
    """Eq. (3): the output ``f_a(t)`` of every eigenmode a of Θ_0 at every time.

    Args:
        eigvals: ``(M,)`` eigenvalues λ_a ≥ 0 of Θ_0 (round-off negatives are clipped to 0).
        f0: ``(M,)`` initial outputs projected on the eigenvectors, ``f_a(0)``.
        y: ``(M,)`` targets projected on the eigenvectors, ``y_a``.
        times: ``(T,)`` physical times t = η·step, ≥ 0.
        lam: L2 coefficient λ of ``(λ/2)‖θ‖²``.
        k: homogeneity degree (≥ 1); k = 1 is the linear model's constant-kernel limit.

    Returns:
        float64 ``(T, M)``. For k ≥ 2 it decays to 0 as t → ∞; for k = 1 it tends to
        ``λ_a y_a / (λ_a + λ)``.
    """
    _check(lam, k)
    lam_a = np.clip(np.asarray(eigvals, np.float64), 0.0, None)
    f0, y = np.asarray(f0, np.float64), np.asarray(y, np.float64)
    t = np.asarray(times, np.float64)[:, None]
    if k == 1:
        return _linear_modes(lam_a, f0, y, t, lam)
    r = kernel_decay_rate(lam, k)
    total = lam_a * _expm1_over(-r, t)  # W = ∫_0^t λ_a(s) ds, (T, M)
    free = np.exp(-k * lam * t - total) * f0
    driven = _driven_integral(lam_a * np.exp(-r * t), total, lam=lam, k=k)
    return free + driven * y


def _linear_modes(
    lam_a: np.ndarray, f0: np.ndarray, y: np.ndarray, t: np.ndarray, lam: float
) -> np.ndarray:
    """k = 1: ``f_a = e^{−(λ_a+λ)t} f_a(0) + λ_a y_a (1 − e^{−(λ_a+λ)t})/(λ_a + λ)``."""
    rate = lam_a + lam
    grown = np.where(rate > 0, -np.expm1(-rate * t) / np.where(rate > 0, rate, 1.0), t)
    return np.exp(-rate * t) * f0 + lam_a * y * grown


def _driven_integral(lam_t: np.ndarray, total: np.ndarray, *, lam: float, k: float) -> np.ndarray:
    """``∫_0^W e^{−w} e^{−kλτ(w)} dw`` for every (time, mode) pair; shapes ``(T, M)``.

    ``lam_t`` is λ_a(t), ``total`` is W. Pairs with W = 0 give 0.
    """
    r = kernel_decay_rate(lam, k)
    edges = _panel_edges(lam_t, total, lam=lam, k=k)
    nodes, weights = np.polynomial.legendre.leggauss(GL_NODES)
    flat_lt, flat_w = lam_t.ravel(), total.ravel()
    out = np.zeros_like(flat_w)
    for start in range(0, flat_w.size, PAIR_CHUNK):
        part = slice(start, start + PAIR_CHUNK)
        lo = np.minimum(edges[:-1], flat_w[part, None])  # (P, panels)
        hi = np.minimum(edges[1:], flat_w[part, None])
        half, mid = (hi - lo) / 2, (hi + lo) / 2
        w = mid[..., None] + half[..., None] * nodes  # (P, panels, nodes)
        scale = np.where(flat_lt[part] > 0, flat_lt[part], 1.0)[:, None, None]
        tau = _log1p_over(r, w / scale)
        values = np.exp(-w - k * lam * tau)
        out[part] = np.einsum("pqn,n,pq->p", values, weights, half)
    return out.reshape(total.shape)


def _panel_edges(lam_t: np.ndarray, total: np.ndarray, *, lam: float, k: float) -> np.ndarray:
    """Panel edges in w shared by all pairs: ``0, 4·2^{−J}, …, 2, 4, 8, …, 64``.

    J is set by the smallest scale on which an integrand varies near w = 0,
    ``min(1, λ_a(t)/max(2(k−1)λ, kλ))``, so the first panel is at most half of it.
    """
    rate = max(kernel_decay_rate(lam, k), k * lam)
    positive = lam_t[total > 0]
    smallest = 1.0 if positive.size == 0 or rate == 0 else min(1.0, positive.min() / rate)
    levels = int(np.clip(np.ceil(np.log2(TAIL_PANEL / max(smallest, 1e-300))) + 1, 1, None))
    levels = min(levels, MAX_GEOMETRIC_PANELS)
    geometric = TAIL_PANEL * 2.0 ** -np.arange(levels, 0, -1, dtype=np.float64)
    tail = np.arange(TAIL_PANEL, W_CUT + TAIL_PANEL / 2, TAIL_PANEL)
    return np.concatenate([[0.0], geometric, tail])


def evolve_outputs(
    theta0: ArrayLike,
    f0: ArrayLike,
    y: ArrayLike,
    times: ArrayLike,
    *,
    lam: float,
    k: float,
) -> np.ndarray:
    """Eq. (3) in matrix form: the training-set outputs ``f_t`` under the decaying kernel.

    ``f_t = e^{−kλt} {exp[(Θ_t−Θ_0)/(2(k−1)λ)] f_0 + ∫_0^t e^{−(k−2)λt'}
    exp[(Θ_t−Θ_{t'})/(2(k−1)λ)] Θ_0 y dt'}``. Every Θ_t is a multiple of Θ_0, so all the matrix
    exponentials are diagonal in Θ_0's eigenbasis: the result is :func:`mode_evolution` rotated
    back, ``f_t = V f_a(t)`` with ``Θ_0 = V diag(λ_a) Vᵀ``.

    Args:
        theta0: ``(N, N)`` symmetric positive semi-definite kernel Θ_0 on the training set.
        f0: ``(N,)`` initial outputs; y: ``(N,)`` targets.
        times: ``(T,)`` physical times t = η·step.
        lam: L2 coefficient λ; k: homogeneity degree (≥ 1).

    Returns:
        float64 ``(T, N)``.
    """
    theta0 = np.asarray(theta0, np.float64)
    eigvals, vecs = np.linalg.eigh((theta0 + theta0.T) / 2)
    f0_a = vecs.T @ np.asarray(f0, np.float64)
    y_a = vecs.T @ np.asarray(y, np.float64)
    return mode_evolution(eigvals, f0_a, y_a, times, lam=lam, k=k) @ vecs.T


def solve_eq1(
    theta0: ArrayLike,
    f0: ArrayLike,
    y: ArrayLike,
    times: ArrayLike,
    *,
    lam: float,
    k: float,
    rtol: float = 1e-12,
    atol: float = 1e-14,
    method: str = "LSODA",
) -> np.ndarray:
    """Numerical solution of eq. (1) with the kernel of eq. (2) (an independent check of eq. 3).

    Integrates ``df/dt = −e^{−2(k−1)λt} Θ_0 (f − y) − kλ f`` from t = 0 with scipy's
    ``solve_ivp`` in float64. The default is LSODA with the exact Jacobian, which switches to a
    stiff method when large eigenvalues of Θ_0 demand it: an explicit method alone then
    accumulates round-off over its many stability-limited steps (DOP853 reached only about 1e-8
    relative for λ_a/λ ~ 1e4, where LSODA and Radau stay near 1e-11).

    Args:
        theta0: ``(N, N)`` kernel Θ_0; f0: ``(N,)`` initial outputs; y: ``(N,)`` targets.
        times: ``(T,)`` increasing physical times ≥ 0 at which to report f.
        lam: L2 coefficient λ; k: homogeneity degree.
        rtol, atol: solver tolerances; method: a ``solve_ivp`` method.

    Returns:
        float64 ``(T, N)``.

    Raises:
        RuntimeError: the solver failed.
    """
    _check(lam, k)
    theta0 = np.asarray(theta0, np.float64)
    y = np.asarray(y, np.float64)
    t = np.asarray(times, np.float64)
    r = kernel_decay_rate(lam, k)

    eye = np.eye(theta0.shape[0])

    def rhs(time: float, f: np.ndarray) -> np.ndarray:
        return -np.exp(-r * time) * (theta0 @ (f - y)) - k * lam * f

    def jac(time: float, f: np.ndarray) -> np.ndarray:
        return -np.exp(-r * time) * theta0 - k * lam * eye

    options = {"jac": jac} if method in ("Radau", "BDF", "LSODA") else {}
    sol = solve_ivp(
        rhs,
        (0.0, float(t[-1])),
        np.asarray(f0, np.float64),
        method=method,
        t_eval=t,
        rtol=rtol,
        atol=atol,
        **options,
    )
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    return sol.y.T


def relative_error(approx: ArrayLike, reference: ArrayLike) -> float:
    """``max_t ‖approx_t − ref_t‖₂ / ‖ref_t‖₂`` over the rows t of two ``(T, N)`` arrays."""
    approx, reference = np.asarray(approx, np.float64), np.asarray(reference, np.float64)
    num = np.linalg.norm(approx - reference, axis=-1)
    den = np.linalg.norm(reference, axis=-1)
    return float(np.max(num / np.where(den > 0, den, 1.0)))
