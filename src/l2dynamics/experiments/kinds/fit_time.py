"""The ``time_to_fit`` kind (Fig. S1): the epochs to training accuracy 1 scale as 1/η.

The numbers come from :func:`l2dynamics.analysis.fits.fit_time_to_fit`,
:func:`~l2dynamics.analysis.fits.log_slope` and :mod:`l2dynamics.analysis.fit_time`.
Units: t_fit (``epochs_to_train_acc_1``) in epochs; η·t_fit in η·epochs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from l2dynamics.analysis.fit_time import plot_time_to_fit, ratio_to_lam0
from l2dynamics.analysis.fits import fit_time_to_fit, log_slope
from l2dynamics.analysis.tables import run_table
from l2dynamics.experiments.kinds.base import Outcome, run_pairs
from l2dynamics.experiments.spec import Experiment


def time_to_fit(exp: Experiment, runs: pd.DataFrame, curves: pd.DataFrame, out: Path) -> Outcome:
    """Figure S1: the time (epochs) to training accuracy 1 scales as 1/η and barely depends on λ.

    Summary: the joint fit of :func:`~l2dynamics.analysis.fits.fit_time_to_fit` (slopes vs η and
    vs λ with intervals), the slope vs η of the λ = 0 runs alone, the median ratio
    t_fit(λ)/t_fit(λ = 0) at equal η, the range of η·t_fit (physical time to fit; constant if
    t_fit ∝ 1/η), and which runs never fit.
    """
    table = run_table(runs, curves)
    notes: list[str] = []
    fit = fit_time_to_fit(table)
    hit = table[np.isfinite(table["epochs_to_train_acc_1"])]
    never = table[~table["reached_train_acc_1"].astype(bool)]
    if len(never):
        notes.append(
            f"{len(never)} run(s) never reached training accuracy 1 in their budget: "
            f"{run_pairs(never)}"
        )
    zero = hit[hit["lam"] == 0]
    phys = (hit["eta"] * hit["epochs_to_train_acc_1"]).to_numpy(np.float64)
    summary = {
        **fit,
        "slope_eta_lam0": log_slope(
            zero["eta"].to_numpy(np.float64), zero["epochs_to_train_acc_1"].to_numpy(np.float64)
        ),
        "median_ratio_to_lam0": ratio_to_lam0(hit),
        "eta_times_t_fit_range": [float(phys.min()), float(phys.max())] if len(phys) else None,
        "n_never_fit": int(len(never)),
    }
    drawn = fit if fit["slope_eta"] is not None else None
    png = plot_time_to_fit(table, drawn, out / f"{exp.figure}.png", title=exp.title)
    caption = (
        "(a) epochs to training accuracy 1 vs η (colour: λ); (b) the same vs λ, one line per η"
    )
    return Outcome(summary, [(caption, png)], {"runs": table}, notes)


__all__ = ["time_to_fit"]
