"""The opt-in peak-aware stop: end a run once its test accuracy has clearly passed its peak.

The theory (SPEC §4) says learning switches off on the time scale 1/(η·λ): after the peak at
t* ≈ c/(η·λ) epochs the test accuracy decays and does not come back. A run whose accuracy
has fallen clearly below its best, well after that best, can stop without changing its t* or
its best accuracy; the rule is validated against full-budget runs in ``benchmarks/``. Its
version, :data:`l2dynamics.config.PEAK_STOP_RULES`, enters the hash of runs that use it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from l2dynamics.results import first_peak, near_peak

MIN_PEAK_EPOCHS = 1.0  # the earliest t* (epochs) the stop treats as a peak


def passed_peak(
    epochs: Sequence[float], test_acc: Sequence[float], factor: float, drop: float, n_test: int
) -> bool:
    """Whether the measured curve has clearly passed its peak, by both t* definitions.

    True when (the paper's t*, :func:`~l2dynamics.results.first_peak`) t* ≥
    ``MIN_PEAK_EPOCHS``, the last measurement is at an epoch ≥ ``factor`` × t* and its test
    accuracy is ≤ best − ``drop``, and (the
    toolkit's, :func:`~l2dynamics.results.near_peak`) the near-peak interval is settled: the
    curve has left it and been measured a smoothing window beyond, so that measuring on cannot
    move it. Either alone is not enough: on a plateau the paper's t* may sit a decade before
    the plateau's end, and a peak at epoch 0 (t* = 0) is passed by any later dip. A best
    within the first epoch is not a peak either: there the network is still learning its
    training set and its test accuracy wanders near chance (a CNN on 128 MNIST images, batch
    16, had its best at step 1 and a dip at step 3, which met every other clause); the L2 peak
    comes after the fit (SPEC §2).

    Args:
        epochs: epochs of the measurements so far, increasing (shape (M,)).
        test_acc: test accuracy at each (fraction in [0, 1], shape (M,)).
        factor: how far past t* (a ratio of epochs, > 1) before stopping is allowed.
        drop: how far below the best (accuracy fraction) the last measurement must be.
        n_test: the number of test examples the accuracy is measured on.
    """
    acc = np.asarray(test_acc, dtype=np.float64)
    best = first_peak(acc)
    if acc.size < 2 or best is None:
        return False
    t_star = float(epochs[best])
    paper = (
        t_star >= MIN_PEAK_EPOCHS
        and float(epochs[-1]) >= factor * t_star
        and acc[-1] <= acc[best] - drop
    )
    if not paper:
        return False
    peak = near_peak(epochs, acc, n_test)
    return bool(peak is not None and peak.settled)
