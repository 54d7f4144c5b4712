"""Names and rules shared by training, the run store and analysis (no JAX import here).

``CURVE_COLUMNS``: one measurement of a run — ``step`` (SGD steps), ``epoch`` (= step·B/N),
``time`` (physical time η·epochs, schedule included), ``tau`` (normalized time η·λ·epochs),
bare ``train_loss``/``train_acc`` (full training set), ``test_loss``/``test_acc`` (full test
set), ``l2_norm_sq`` (‖θ‖²), and ``eta_now``/``lam_now``: the learning rate and λ in force
at that step (the schedule's η; AutoL2's λ), as opposed to the run's configured ``eta``/``lam``.
"""

from __future__ import annotations

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
