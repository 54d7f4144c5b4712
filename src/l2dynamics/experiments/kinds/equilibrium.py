"""The ``equilibrium`` kind (issue 20, SPEC §6): the rotational equilibrium of the kernels
followed by a BatchNorm, measured against its prediction, and the time to reach it against
1/(η·λ).

The numbers come from :mod:`l2dynamics.analysis.equilibrium` (its rules: which runs, which
angle, which part of a run, what "at equilibrium" means); the runs it leaves out (AutoL2, η·λ = 0,
no BatchNorm-fed kernel measured) are counted in a note. It reads the runs' per-layer measurements
(:func:`~l2dynamics.sweep.store.load_layer_measurements`), given as ``layers``. Units: angles
in radians per step, times in steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from l2dynamics.analysis.equilibrium import (
    TOLERANCE,
    equilibrium_table,
    fit_time_to_equilibrium,
    left_out_note,
    plot_equilibrium,
)
from l2dynamics.experiments.kinds.base import Outcome, rounded
from l2dynamics.experiments.spec import Experiment


def equilibrium(
    exp: Experiment,
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    out: Path,
    layers: pd.DataFrame | None = None,
) -> Outcome:
    """Measured/predicted equilibrium angle per run (median and range over runs), the angle of
    the kernels not followed by a BatchNorm beside it, and the fit of the time to equilibrium
    against 1/(η·λ) (slope with its bootstrap interval), over the runs the analysis reads
    (:func:`~l2dynamics.analysis.equilibrium.equilibrium_runs`); a note counts the others."""
    del curves
    notes: list[str] = []
    if layers is None or layers.empty:
        layers = pd.DataFrame(columns=["hash", "step", "layer", "angle", "scale_invariant"])
        notes.append("no run of this store measured its layers (measure_layers = true)")
    elif note := left_out_note(runs, layers):  # without layers, the note above says it all
        notes.append(note)
    table = equilibrium_table(runs, layers)
    fit = fit_time_to_equilibrium(table)
    ratios = table["ratio"].to_numpy(np.float64) if len(table) else np.array([])
    ratios = ratios[np.isfinite(ratios)]
    never = table[~np.isfinite(table["t_eq"])] if len(table) else table
    if len(never):
        notes.append(
            f"{len(never)} run(s) never stayed within {TOLERANCE:.0%} of their equilibrium angle"
        )
    if fit["slope"] is None and len(table):  # the report's "no fit (see the notes)" row
        notes.append(
            f"no fit of the time to equilibrium: the {fit['n_runs']} run(s) that reached their "
            "equilibrium angle span fewer than two values of η·λ"
        )
    summary = {
        "n_layer_runs": int(len(table)),
        "ratio_median": rounded(float(np.median(ratios))) if len(ratios) else None,
        "ratio_range": [rounded(float(ratios.min())), rounded(float(ratios.max()))]
        if len(ratios)
        else None,
        "ratio_n_runs": int(len(ratios)),  # runs with a prediction (sgdw+momentum, adam: none)
        # one entry per run, so runs sharing a λ (other η, seeds) do not overwrite each other
        "ratios": {
            f"eta={r.eta:g}, lam={r.lam:g}, run={r.hash}": rounded(r.ratio)
            for r in table.itertuples()
        },
        "t_eq_slope": rounded(fit["slope"]),
        "t_eq_slope_ci": [rounded(v) for v in fit["slope_ci"]] if fit["slope_ci"] else None,
        "t_eq_prefactor": rounded(fit["prefactor"]),
        "t_eq_decades": rounded(fit["decades"]),
        "t_eq_n_runs": fit["n_runs"],
    }
    png = plot_equilibrium(table, layers, fit, out / f"{exp.figure}.png", title=exp.title)
    caption = (
        "(a) angle per step of the BatchNorm-fed kernels (mean over them) vs steps·η·λ, dashed: "
        "the rotational-equilibrium prediction; (b) steps to stay within "
        f"{TOLERANCE:.0%} of the measured equilibrium angle vs 1/(η·λ), with the power-law fit"
    )
    return Outcome(summary, [(caption, png)], {"equilibrium": table}, notes)


__all__ = ["equilibrium"]
