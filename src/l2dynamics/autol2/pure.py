"""The AutoL2 controller in plain Python (no JAX, no numpy), decision for decision equal to
:mod:`l2dynamics.autol2.controller`.

It mirrors the JAX controller's arithmetic: λ and the refractory period ``R`` are float32
values multiplied by ``float32(1/decay)`` and ``float32(decay)``; steps and ``min_step = step +
⌊R⌋`` are integers (saturating at 2³¹ − 1); losses and errors are rounded to float32
(:func:`to_float32`) before they are compared. A product of two float32 values computed in
float64 is exact, so rounding it once to float32 gives the correctly rounded float32 product:
the same bits as JAX (subnormals are flushed to zero on both sides). See
:mod:`l2dynamics.autol2.controller` for the update rule.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any, NamedTuple

from l2dynamics.autol2.options import (
    INT32_MAX,
    AutoL2Options,
    initial_refractory_steps,
    resolve_options,
)

FLOAT32_TINY = 2.0**-126  # the smallest normal float32


def to_float32(x: float) -> float:
    """``x`` rounded to the nearest float32 (overflow to ±inf), subnormals flushed to ±0.

    XLA on CPU flushes subnormal float32 values to zero; the JAX controller flushes them
    explicitly (so every backend agrees) and this mirrors it.
    """
    try:
        y = struct.unpack("f", struct.pack("f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)
    return math.copysign(0.0, y) if abs(y) < FLOAT32_TINY else y


class PyAutoL2State(NamedTuple):
    """The controller's state as Python numbers (floats hold float32 values); the fields mean
    the same as :class:`l2dynamics.autol2.controller.AutoL2State`'s."""

    lam: float
    refractory: float
    min_step: int
    best_loss: float
    best_error: float
    prev_loss: float
    prev_error: float
    has_prev: bool
    decays: int


def init(options: AutoL2Options | None = None) -> PyAutoL2State:
    """The state before any measurement (see the JAX ``init``)."""
    opts = AutoL2Options() if options is None else options
    refractory = to_float32(initial_refractory_steps(opts))
    return PyAutoL2State(
        lam=to_float32(opts.lam0),
        refractory=refractory,
        min_step=_whole_steps(refractory) if opts.start_refractory else 0,
        best_loss=to_float32(opts.initial_best_loss),
        best_error=to_float32(opts.initial_best_error),
        prev_loss=math.nan,
        prev_error=math.nan,
        has_prev=False,
        decays=0,
    )


def _above(value: float, best: float, count_ties: bool) -> bool:
    return value >= best if count_ties else value > best


def rises(state: PyAutoL2State, loss: float, error: float, options: AutoL2Options) -> bool:
    """Whether this measurement and the previous one are both above the best loss, or both
    above the best error (False at the first measurement); inputs already float32."""
    ties = options.count_ties
    best_loss, best_error = state.best_loss, state.best_error
    loss_up = _above(loss, best_loss, ties) and _above(state.prev_loss, best_loss, ties)
    err_up = _above(error, best_error, ties) and _above(state.prev_error, best_error, ties)
    return state.has_prev and (loss_up or err_up)


def _whole_steps(steps: float) -> int:
    """``⌊steps⌋``, saturating at 2³¹ − 1 (``steps`` ≥ 0, maybe +∞)."""
    return INT32_MAX if steps >= 2.0**31 else math.floor(steps)


def _decayed(state: PyAutoL2State, step: int, options: AutoL2Options) -> PyAutoL2State:
    refractory = to_float32(state.refractory * to_float32(options.decay))
    return state._replace(
        lam=to_float32(state.lam * to_float32(1.0 / options.decay)),
        refractory=refractory,
        min_step=step + min(_whole_steps(refractory), INT32_MAX - step),
        decays=state.decays + 1,
    )


def _with_previous_as_best(state: PyAutoL2State) -> PyAutoL2State:
    if not state.has_prev:
        return state
    return state._replace(
        best_loss=state.prev_loss if state.prev_loss < state.best_loss else state.best_loss,
        best_error=state.prev_error if state.prev_error < state.best_error else state.best_error,
    )


def update(
    state: PyAutoL2State, step: int, loss: float, error: float, options: AutoL2Options
) -> PyAutoL2State:
    """Fold in the measurement taken after ``step`` updates (same rule as the JAX ``update``).

    Args:
        state: the state after the previous measurement (or :func:`init`).
        step: the step of this measurement (an integer number of updates).
        loss: bare training loss (without the L2 term) at that step.
        error: training error (a fraction in [0, 1]) at that step.
        options: the schedule's constants.

    Returns:
        The new state; its ``lam`` is λ for the updates from ``step`` on.
    """
    step = int(step)
    loss, error = to_float32(float(loss)), to_float32(float(error))
    if rises(state, loss, error, options) and step > state.min_step:
        new = _decayed(state, step, options)
    else:
        new = _with_previous_as_best(state)
    return new._replace(prev_loss=loss, prev_error=error, has_prev=True)


def replay(
    steps: Sequence[int],
    losses: Sequence[float],
    errors: Sequence[float],
    options: AutoL2Options | None = None,
    **overrides: Any,
) -> list[float]:
    """λ after each of a recorded sequence of measurements; equal, value for value, to
    :func:`l2dynamics.autol2.replay` (see it for the arguments)."""
    opts = resolve_options(options, **overrides)
    if not len(steps) == len(losses) == len(errors):
        raise ValueError("steps, losses and errors must have the same length")
    state, lams = init(opts), []
    for step, loss, error in zip(steps, losses, errors, strict=True):
        state = update(state, int(step), loss, error, opts)
        lams.append(state.lam)
    return lams
