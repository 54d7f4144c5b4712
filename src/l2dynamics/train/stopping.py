"""The opt-in peak-aware stop: end a run once its test accuracy has clearly passed its peak.

The theory (SPEC §4) says learning switches off on the time scale 1/(η·λ): after the peak at
t* ≈ c/(η·λ) epochs the test accuracy decays and does not come back. A run whose accuracy
has fallen clearly below its best, well after that best, can stop without changing its t* or
its best accuracy; the rule is validated against full-budget runs in ``benchmarks/``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from l2dynamics.results import first_peak


def passed_peak(
    epochs: Sequence[float], test_acc: Sequence[float], factor: float, drop: float
) -> bool:
    """Whether the measured curve has clearly passed its peak.

    True when the last measurement is at an epoch ≥ ``factor`` × t* (t* = the epoch of the
    first maximum of test accuracy so far) and its test accuracy is ≤ best − ``drop``.

    Args:
        epochs: epochs of the measurements so far, increasing (shape (M,)).
        test_acc: test accuracy at each (fraction in [0, 1], shape (M,)).
        factor: how far past t* (a ratio of epochs, > 1) before stopping is allowed.
        drop: how far below the best (accuracy fraction) the last measurement must be.
    """
    acc = np.asarray(test_acc, dtype=np.float64)
    best = first_peak(acc)
    if acc.size < 2 or best is None:
        return False
    t_star = float(epochs[best])
    return bool(float(epochs[-1]) >= factor * t_star and acc[-1] <= acc[best] - drop)
