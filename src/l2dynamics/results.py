"""Names and rules shared by training, the run store and analysis (no JAX import here).

``CURVE_COLUMNS``: one measurement of a run — ``step`` (SGD steps), ``epoch`` (= step·B/N),
``time`` (physical time η·epochs, schedule included), ``tau`` (normalized time η·λ·epochs),
bare ``train_loss``/``train_acc`` (full training set), ``test_loss``/``test_acc`` (full test
set), ``l2_norm_sq`` (‖θ‖²), and ``eta_now``/``lam_now``: the learning rate and λ in force
at that step (the schedule's η; AutoL2's λ), as opposed to the run's configured ``eta``/``lam``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

CURVE_COLUMNS = (
    "step",
    "epoch",
    "time",
    "tau",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "l2_norm_sq",
    "eta_now",
    "lam_now",
)
# One per-layer measurement of a run with ``measure_layers``: ``step``, ``layer`` (a parameter
# tensor's name, ``"conv_0/kernel"``), ``norm_sq`` (‖θ_l‖²), ``angle`` (radians it turned by in
# the step before ``step``) and ``scale_invariant`` (a kernel followed by a BatchNorm).
LAYER_COLUMNS = ("step", "layer", "norm_sq", "angle", "scale_invariant")


def first_peak(test_acc: Sequence[float] | np.ndarray) -> int | None:
    """Index of the paper's t*: the FIRST measurement reaching the maximum test accuracy.

    The one definition of t* (SPEC §1: performance is the maximum test accuracy reached during
    training, t* the epoch where it is reached), used by a run's summary, the peak-aware stop
    and the analysis of stored curves. NaN accuracies (unknown) are passed over.

    Args:
        test_acc: test accuracy per measurement, in measurement order (shape (M,)).

    Returns:
        The index into ``test_acc``, or None when no accuracy is finite.
    """
    acc = np.asarray(test_acc, dtype=np.float64)
    if not np.isfinite(acc).any():
        return None
    return int(np.nanargmax(acc))  # numpy returns the first occurrence of the maximum


# The toolkit's t* (robust to a noisy plateau): the near-peak interval of the test accuracy.
# Half-width of the log-time window the accuracy is averaged over (decades): ±0.1 decade is a
# factor 1.26 either side, about ten measurements of the default log schedule (resolution
# 0.05), and, being a fixed width in log time, it treats every time scale alike: curves that
# collapse on τ = η·λ·epochs give a t* exactly ∝ 1/(η·λ).
PEAK_WINDOW_DECADES = 0.1
# The near-peak band: smoothed accuracy within this many binomial standard errors √(p(1−p)/n)
# of its maximum (n test images). Half of one: the accuracies at two times are measured on the
# same images, so their difference is less noisy than either (only images whose answer changed
# count); and with a whole one the band of most small-λ runs of the quickstart grid still
# reached the end of their budget 2/(η·λ) (design seeds 10–12: 42% of runs at λ ≤ 5e-4 closed,
# against 83% at one half; seed-to-seed median |Δt*|/t* 0.15 and 0.23).
PEAK_BAND_SE = 0.5
# Window means of equal accuracies may differ in their last bits (running sums): a band of
# depth 0 (accuracy 1, standard error 0) must still hold all of them.
_ROUNDING = 1e-9


@dataclasses.dataclass(frozen=True)
class NearPeak:
    """The near-peak interval of one curve and the t* it gives (epochs).

    Attributes:
        t_star: the geometric centre √(lo·hi) of the interval (epochs): the toolkit's t*.
        lo: the epoch of the interval's first measurement.
        hi: the epoch of its last measurement.
        level: the smoothed accuracy at its maximum (fraction).
        se: the binomial standard error of ``level`` on the test set (fraction).
        closed: the curve was measured after ``hi`` (it left the band after its peak): the
            interval is complete. When False the peak may lie beyond the measurements.
        settled: closed, and measured at least one window beyond the first measurement after
            ``hi``: every smoothed value the interval depends on is final, so measurements
            further on cannot move ``lo`` or ``hi`` unless the accuracy rises above ``level``
            again.
    """

    t_star: float
    lo: float
    hi: float
    level: float
    se: float
    closed: bool
    settled: bool


def smoothed_accuracy(
    epochs: np.ndarray, acc: np.ndarray, window: float = PEAK_WINDOW_DECADES
) -> np.ndarray:
    """The accuracy averaged over a window in log time: for each measurement i, the mean of the
    accuracies measured at epochs within a factor 10^``window`` of epoch i.

    Args:
        epochs: measurement epochs, increasing and > 0 (shape (M,)).
        acc: test accuracy at each (fraction, finite; shape (M,)).
        window: the half-width of the window, in decades of epochs.

    Returns:
        The smoothed accuracy (shape (M,)).
    """
    logt = np.log10(np.asarray(epochs, dtype=np.float64))
    acc = np.asarray(acc, dtype=np.float64)
    lo = np.searchsorted(logt, logt - window, side="left")
    hi = np.searchsorted(logt, logt + window, side="right")
    sums = np.concatenate([[0.0], np.cumsum(acc)])
    return (sums[hi] - sums[lo]) / (hi - lo)


def near_peak(
    epochs: Sequence[float] | np.ndarray,
    test_acc: Sequence[float] | np.ndarray,
    n_test: int,
    *,
    window: float = PEAK_WINDOW_DECADES,
    band_se: float = PEAK_BAND_SE,
) -> NearPeak | None:
    """The toolkit's t*: the centre of the interval where the test accuracy stays within the
    test set's own standard error of its maximum.

    The paper's t* (:func:`first_peak`) is the first maximum of a curve whose plateau is flat
    to within one test image, so another seed can put it a decade away. Here the accuracy is
    first averaged over ±``window`` decades of log time (:func:`smoothed_accuracy`); its
    maximum ``level`` has the binomial standard error ``se = √(level·(1−level)/n_test)``; the
    near-peak interval is the contiguous run of measurements around that maximum whose smoothed
    accuracy is ≥ ``level − band_se·se``; t* is its geometric centre (the law is in log time).
    Measurements at epoch 0 (before training) and NaN accuracies are passed over.

    Args:
        epochs: measurement epochs, increasing (shape (M,)).
        test_acc: test accuracy at each (fraction; shape (M,)).
        n_test: the number of test examples the accuracy is measured on.
        window: the smoothing half-width, in decades of epochs.
        band_se: the band's depth below the maximum, in standard errors.

    Returns:
        The :class:`NearPeak`, or None when no measurement after epoch 0 has a finite accuracy.
    """
    t = np.asarray(epochs, dtype=np.float64)
    acc = np.asarray(test_acc, dtype=np.float64)
    keep = (t > 0) & np.isfinite(acc)
    t, acc = t[keep], acc[keep]
    if not len(t):
        return None
    smooth = smoothed_accuracy(t, acc, window)
    top = int(np.argmax(smooth))
    level = float(smooth[top])
    se = math.sqrt(max(level * (1.0 - level), 0.0) / n_test)
    inside = smooth >= level - band_se * se - _ROUNDING
    first = top - _trues_from_start(inside[top::-1]) + 1  # the interval's first measurement
    after = top + _trues_from_start(inside[top:])  # the first measurement after it (or M)
    closed = after < len(t)
    settled = closed and math.log10(t[-1] / t[after]) >= window
    lo, hi = float(t[first]), float(t[after - 1])
    return NearPeak(math.sqrt(lo * hi), lo, hi, level, se, closed, settled)


def _trues_from_start(flags: np.ndarray) -> int:
    """How many of ``flags`` are True before its first False (all of them when none is)."""
    stop = np.flatnonzero(~flags)
    return int(stop[0]) if len(stop) else len(flags)
