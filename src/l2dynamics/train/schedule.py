"""Measurement schedules: at which steps a run measures its losses and accuracies.

A schedule is a sorted int64 array of step counts in ``[0, total_steps]`` that always contains
0 (the initialization) and ``total_steps`` (the end of the budget). All units are steps.
"""

from __future__ import annotations

import math

import numpy as np


def every_k(total_steps: int, k: int) -> np.ndarray:
    """Steps ``0, k, 2k, …`` plus ``total_steps``; the resolution of t* is ``k`` steps."""
    steps = np.arange(0, total_steps + 1, k, dtype=np.int64)
    return np.union1d(steps, [total_steps]).astype(np.int64)


def log_spaced(total_steps: int, resolution: float) -> np.ndarray:
    """Steps spaced so consecutive ones differ by at most a factor ``1 + resolution``.

    Every step up to ``1/resolution`` is measured; beyond it the gap grows geometrically. So a
    t* read off this schedule lies within a relative ``resolution`` of the true peak step (for
    t* ≥ 1 step), with about ``log(total_steps·resolution)/log(1+resolution) + 1/resolution``
    measurements in all.
    """
    dense = min(total_steps, math.ceil(1.0 / resolution))
    steps = list(range(dense + 1))
    while steps[-1] < total_steps:
        steps.append(min(total_steps, max(steps[-1] + 1, math.floor(steps[-1] * (1 + resolution)))))
    return np.asarray(steps, dtype=np.int64)


PEAK_WINDOW = 0.01  # the dense part of a "peak" schedule starts at this fraction of the budget
PEAK_HEAD_RESOLUTION = 0.25  # relative gap of a "peak" schedule before its dense part


def peak_window(
    total_steps: int,
    resolution: float,
    *,
    window: float = PEAK_WINDOW,
    head_resolution: float = PEAK_HEAD_RESOLUTION,
) -> np.ndarray:
    """Steps dense where a peak is expected, sparse before it.

    Consecutive steps differ by at most a factor ``1 + resolution`` from step
    ``window · total_steps`` to the end, and by ``1 + head_resolution`` before it (every step up
    to ``1/head_resolution``). With the budget ``c_budget/(η·λ)`` epochs and the peak at
    ``c/(η·λ)``, the dense part covers every ``c ≥ window · c_budget`` (0.02 for the paper's
    budget of 2/(η·λ); measured c is 0.3–0.4 on its grids). A t* before the dense part is
    resolved to ``head_resolution`` (the run's curve states its resolution at t*).
    """
    start = max(1, math.floor(window * total_steps))
    head = log_spaced(min(start, total_steps), head_resolution)
    steps = [int(head[-1])]
    while steps[-1] < total_steps:
        steps.append(min(total_steps, max(steps[-1] + 1, math.floor(steps[-1] * (1 + resolution)))))
    return np.union1d(head, steps).astype(np.int64)


def relative_resolution(steps: np.ndarray, at_step: int) -> float:
    """The relative gap ``(next − this)/this`` around ``at_step`` in a schedule (0 at the end)."""
    i = int(np.searchsorted(steps, at_step))
    if i + 1 >= len(steps) or at_step <= 0:
        return 0.0
    return float((steps[i + 1] - steps[i]) / steps[i])
