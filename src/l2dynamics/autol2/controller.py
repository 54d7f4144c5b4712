"""The AutoL2 controller (SPEC §3) as a pure, jittable and vmappable JAX state machine.

The controller is fed one measurement at a time: ``(step, loss, error)``, with ``loss`` the
*bare* training loss (no L2 term) and ``error`` the training error (a fraction), both on a
training minibatch at the parameters reached after ``step`` updates. At each measurement:

    up       = (loss > best_loss  and prev_loss > best_loss)
               or (error > best_error and prev_error > best_error)   (needs a previous one)
    if up and step > min_step:                                          (a decay)
        λ ← λ/decay;  min_step ← step + r/λ   (r/λ with the new λ, in steps)
        the bests are left as they are
    else:                                       (no rise, or a rise inside the refractory period)
        best_loss ← min(prev_loss, best_loss);  best_error ← min(prev_error, best_error)
    prev_loss, prev_error ← loss, error

So a decay needs two rises *in a row* against the best of all measurements before them, and
one noisy measurement never decays λ. There is no lower bound on λ. The λ in the state after
the measurement at step ``s`` reflects every measurement up to and including step ``s``; the
training code uses it from the update at step ``s`` (θ_s → θ_{s+1}) on.

Where the authors' code (google/autol2, 2020) differs, this follows SPEC §3:
- it compares with ``>=`` (a tie with the best counts as a rise); here ``>`` unless
  ``count_ties`` is set;
- it starts inside a refractory period (``min_step = ⌊r/λ₀⌋``); here ``min_step = 0`` unless
  ``start_refractory`` is set;
- its λ multiplies ``‖θ‖²`` without the ½, and its data loss is CE/k, twice the SM's CE/(2k):
  the two factors of 2 cancel in the ratio of the L2 to the data gradient (SPEC §1), so its
  ``L2=λ, delay=d`` at learning rate η is our ``lam0=λ, refractory=d`` at ``2η``.
Like the authors' code (and SPEC's "otherwise"), the bests *are* updated when a rise is
blocked by the refractory period, and are not updated at a decay. The ``"authors-code"`` preset
(:func:`l2dynamics.autol2.start.preset`) sets both of the authors' rules.

Arithmetic, chosen so that the plain-Python twin :mod:`l2dynamics.autol2.pure` takes the
same decisions and reports the same λ bit for bit, on any backend, using only float32
multiplications (correctly rounded everywhere; a division is not: XLA turns division by a
constant into a multiplication by its reciprocal, and GPU float32 division is not correctly
rounded) and exact operations:
- the refractory period ``R = r/λ`` is kept in the state as float32 steps: ``R₀`` is the
  exact ratio of the options' decimal values ``r/λ₀`` rounded to float32 on the host, and
  each decay multiplies it by ``float32(decay)`` (exact for the defaults: 1, 10, 100, …);
- the refractory test is on integers: ``min_step = step + ⌊R⌋`` (int32, saturating at
  2³¹ − 1); for whole steps ``step > decay_step + R`` ⟺ ``step > decay_step + ⌊R⌋``;
- losses and errors are rounded to float32, then compared;
- λ ← λ·float32(1/decay) in float32: after n decays λ is λ₀/decayⁿ within a relative
  1.2e-7·n (e.g. 0.010000001 for 0.01);
- subnormal float32 values (below 1.2e-38: inputs, λ) are flushed to zero explicitly.
A NaN measurement is never a rise and never a best.

λ₀ and ``r`` enter only through :func:`init`'s state; :func:`update` reads ``decay`` and
``count_ties`` alone, so one compiled update serves runs with different λ₀ and ``r``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from l2dynamics.autol2 import pure
from l2dynamics.autol2.options import INT32_MAX, AutoL2Options, resolve_options


class AutoL2State(NamedTuple):
    """The controller's state: scalars (or batches of them under ``vmap``).

    Attributes:
        lam: λ now (float32).
        refractory: ``r/λ`` for the current λ: the refractory period after a decay to it
            (float32, steps).
        min_step: no decay unless ``step > min_step`` (int32, steps).
        best_loss: best bare training loss among the measurements already folded in (float32).
        best_error: best training error likewise (float32).
        prev_loss: loss of the latest measurement (float32; meaningless until ``has_prev``).
        prev_error: error of the latest measurement (float32).
        has_prev: whether a measurement has been taken (bool).
        decays: number of decays so far (int32); ``lam ≈ lam0/decay**decays``.
    """

    lam: jax.Array
    refractory: jax.Array
    min_step: jax.Array
    best_loss: jax.Array
    best_error: jax.Array
    prev_loss: jax.Array
    prev_error: jax.Array
    has_prev: jax.Array
    decays: jax.Array


def init(options: AutoL2Options | None = None) -> AutoL2State:
    """The state before any measurement: λ = λ₀, refractory period ``r/λ₀`` steps,
    ``min_step`` = 0 (or ``⌊r/λ₀⌋`` with ``start_refractory``), bests at
    ``initial_best_loss`` / ``initial_best_error``.

    Everything that depends on λ₀ and ``r`` lives here, in the state: :func:`update` only
    reads ``decay`` and ``count_ties`` from its options, so one compiled update serves every
    λ₀ and ``r`` (vmap over states built with different ones).
    """
    host = pure.init(options)  # float32 values, computed once on the host for both twins
    f32 = functools.partial(jnp.asarray, dtype=jnp.float32)
    return AutoL2State(
        lam=f32(host.lam),
        refractory=f32(host.refractory),
        min_step=jnp.asarray(host.min_step, dtype=jnp.int32),
        best_loss=f32(host.best_loss),
        best_error=f32(host.best_error),
        prev_loss=f32(host.prev_loss),
        prev_error=f32(host.prev_error),
        has_prev=jnp.asarray(host.has_prev),
        decays=jnp.asarray(host.decays, dtype=jnp.int32),
    )


def _flush(x: jax.Array) -> jax.Array:
    """Subnormal float32 values → 0, whatever the backend's own mode (CPU XLA flushes)."""
    return jnp.where(jnp.abs(x) < jnp.finfo(jnp.float32).tiny, jnp.zeros_like(x), x)


def _whole_steps(steps: jax.Array) -> jax.Array:
    """``⌊steps⌋`` as int32, saturating at 2³¹ − 1 (``steps`` ≥ 0, float32, maybe +∞)."""
    big = steps >= jnp.float32(2**31)
    return jnp.where(big, INT32_MAX, jnp.floor(jnp.where(big, 0, steps)).astype(jnp.int32))


def _above(value: jax.Array, best: jax.Array, count_ties: bool) -> jax.Array:
    return value >= best if count_ties else value > best


def rises(
    state: AutoL2State, loss: jax.Array, error: jax.Array, options: AutoL2Options
) -> jax.Array:
    """Whether this measurement and the previous one are both above the best loss, or both
    above the best error (False at the first measurement)."""
    ties = options.count_ties
    loss_up = _above(loss, state.best_loss, ties) & _above(state.prev_loss, state.best_loss, ties)
    err_up = _above(error, state.best_error, ties) & _above(
        state.prev_error, state.best_error, ties
    )
    return state.has_prev & (loss_up | err_up)


def _decayed(state: AutoL2State, step: jax.Array, options: AutoL2Options) -> AutoL2State:
    refractory = _flush(state.refractory * jnp.float32(pure.to_float32(options.decay)))
    return state._replace(
        lam=_flush(state.lam * jnp.float32(pure.to_float32(1.0 / options.decay))),
        refractory=refractory,
        min_step=step + jnp.minimum(_whole_steps(refractory), INT32_MAX - step),
        decays=state.decays + 1,
    )


def _with_previous_as_best(state: AutoL2State) -> AutoL2State:
    new_loss = state.has_prev & (state.prev_loss < state.best_loss)
    new_error = state.has_prev & (state.prev_error < state.best_error)
    return state._replace(
        best_loss=jnp.where(new_loss, state.prev_loss, state.best_loss),
        best_error=jnp.where(new_error, state.prev_error, state.best_error),
    )


def update(
    state: AutoL2State,
    step: jax.Array | int,
    loss: jax.Array | float,
    error: jax.Array | float,
    options: AutoL2Options,
) -> AutoL2State:
    """Fold in the measurement taken after ``step`` updates (see the module docstring).

    Args:
        state: the state after the previous measurement (or :func:`init`).
        step: the step of this measurement (an integer number of updates, below 2³¹).
        loss: bare training loss (without the L2 term) at that step.
        error: training error (a fraction in [0, 1]) at that step.
        options: the schedule's constants (static under ``jit``).

    Returns:
        The new state; its ``lam`` is λ for the updates from ``step`` on.
    """
    step = jnp.asarray(step, dtype=jnp.int32)
    loss = _flush(jnp.asarray(loss, dtype=jnp.float32))
    error = _flush(jnp.asarray(error, dtype=jnp.float32))
    decay = rises(state, loss, error, options) & (step > state.min_step)
    new = jax.tree.map(
        functools.partial(jnp.where, decay),
        _decayed(state, step, options),
        _with_previous_as_best(state),
    )
    return new._replace(prev_loss=loss, prev_error=error, has_prev=jnp.ones_like(state.has_prev))


@functools.partial(jax.jit, static_argnums=0)
def _replay_lams(
    options: AutoL2Options, steps: jax.Array, losses: jax.Array, errors: jax.Array
) -> jax.Array:
    def body(state: AutoL2State, xs: tuple[jax.Array, ...]) -> tuple[AutoL2State, jax.Array]:
        state = update(state, *xs, options)
        return state, state.lam

    return lax.scan(body, init(options), (steps, losses, errors))[1]


def replay(
    steps: Sequence[int] | np.ndarray,
    losses: Sequence[float] | np.ndarray,
    errors: Sequence[float] | np.ndarray,
    options: AutoL2Options | None = None,
    **overrides: Any,
) -> list[float]:
    """Run the controller over a recorded sequence of measurements.

    Args:
        steps: the step (number of updates) of each measurement, as int32-representable ints.
        losses: bare training loss at each of those steps.
        errors: training error at each of those steps.
        options: the schedule (default :class:`AutoL2Options`), with ``overrides`` applied
            (e.g. ``lam0=0.05``).

    Returns:
        λ after each measurement (float32 values as Python floats), one per measurement.
    """
    opts = resolve_options(options, **overrides)
    steps_np, losses_np, errors_np = (np.asarray(x) for x in (steps, losses, errors))
    if not steps_np.shape == losses_np.shape == errors_np.shape or steps_np.ndim != 1:
        raise ValueError("steps, losses and errors must be 1-d sequences of the same length")
    if steps_np.size and not (steps_np.min() >= 0 and steps_np.max() < 2**31):
        raise ValueError("steps must be integers in [0, 2**31)")
    lams = _replay_lams(
        opts,
        jnp.asarray(steps_np, dtype=jnp.int32),
        jnp.asarray(losses_np, dtype=jnp.float32),
        jnp.asarray(errors_np, dtype=jnp.float32),
    )
    return [float(x) for x in np.asarray(lams)]
