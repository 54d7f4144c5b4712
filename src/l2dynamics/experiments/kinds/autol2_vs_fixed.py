"""The ``autol2`` kind (Fig. 1c, S9–S11): AutoL2 against a grid of fixed λ, per setting.

The numbers come from :mod:`l2dynamics.analysis.autol2_vs_fixed` (epochs to near-best, the
comparison seed by seed and its verdict per AutoL2 mode, the figures). Units: epochs;
accuracies are fractions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from l2dynamics.analysis.autol2_vs_fixed import (
    compare_setting,
    epochs_to_near_best,
    plot_lambda_schedule,
    plot_modes_vs_grid,
    split_variant,
)
from l2dynamics.analysis.tables import run_table
from l2dynamics.experiments.kinds.base import Outcome
from l2dynamics.experiments.spec import Experiment


def autol2_compare(exp: Experiment, runs: pd.DataFrame, curves: pd.DataFrame, out: Path) -> Outcome:
    """Figure 1c/S9–S11: AutoL2 against a grid of fixed λ at the same budget, per setting.

    Variants are labelled ``SETTING/autol2`` and ``SETTING/fixed`` (and optionally further
    ``SETTING/autol2…`` modes, e.g. one per preset). For each setting: each AutoL2 mode's best
    test accuracy against the best fixed λ of the grid, the epochs each needs to come within
    ``near_best`` (accuracy fraction, default 0.005) of its own best, the epochs AutoL2 needs
    to come within it of the best fixed λ's accuracy, and a verdict per mode (see
    :func:`~l2dynamics.analysis.autol2_vs_fixed.compare_setting`). Two figures per setting: the
    AutoL2 runs and the best fixed λ's runs, accuracy above and λ(t) below; and best test
    accuracy vs λ for the fixed grid with each AutoL2 mode beside it.
    """
    tol = float(exp.settings.get("near_best", 0.005))
    table = split_variant(run_table(runs, curves))
    table["near_best_epochs"] = table["hash"].map(epochs_to_near_best(curves, tol))
    summary: dict[str, Any] = {"near_best": tol, "settings": {}}
    figures = []
    for setting, rows in table.groupby("setting", sort=False):
        summary["settings"][setting] = compare_setting(rows, curves, tol)
        best_lam = summary["settings"][setting].get("best_fixed_lam")
        keep = rows[rows["mode"].astype(str).str.startswith("autol2") | (rows["lam"] == best_lam)]
        shown = curves[curves["hash"].isin(keep["hash"])]
        png = plot_lambda_schedule(
            shown, out / f"{exp.figure}-{setting}.png", title=f"{exp.title}: {setting}"
        )
        best = f"the best fixed λ ({best_lam:g})" if best_lam is not None else "no fixed λ"
        figures.append((f"{setting}: AutoL2 and {best}, λ(t) below", png))
        grid = plot_modes_vs_grid(
            rows,
            curves,
            out / f"{exp.figure}-{setting}-grid.png",
            title=f"{exp.title}: {setting}, each AutoL2 preset beside the fixed grid",
        )
        caption = f"{setting}: best test accuracy vs λ, each AutoL2 preset beside the fixed grid"
        figures.append((caption, grid))
    return Outcome(summary, figures, {"runs": table})


__all__ = ["autol2_compare"]
