"""The time to fit the training set (Fig. S1): t_fit ∝ 1/η, barely dependent on λ.

t_fit is a run's ``epochs_to_train_acc_1`` (:func:`~l2dynamics.analysis.tables.run_table`):
the epoch of its first measurement at training accuracy 1. The joint fit
log t_fit = a + b_η·log η + b_λ·log λ is :func:`~l2dynamics.analysis.fits.fit_time_to_fit`
(beside the t* fit); this module holds what is compared with λ = 0
(:func:`ratio_to_lam0`) and the figure (:func:`plot_time_to_fit`).

Units: t_fit in epochs; η·t_fit is the physical time η·epochs to fit (constant if t_fit ∝ 1/η).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from l2dynamics.analysis.plotting import (
    Colors,
    figure,
    grid_ticks,
    lam_colors,
    lam_legend,
    lam_panel,
    placed,
    save_panels,
    say_empty,
    seq_colors,
)


def ratio_to_lam0(hit: pd.DataFrame) -> float | None:
    """Median over (η, λ > 0) of t_fit(η, λ)/t_fit(η, λ = 0), each the median over seeds.

    Args:
        hit: run-table rows of the runs that reached training accuracy 1 (``eta``, ``lam``,
            ``epochs_to_train_acc_1``).

    Returns:
        The median ratio (1: λ does not change the time to fit), or None without a λ = 0 run
        at the η of some λ > 0 run.
    """
    per = hit.groupby(["eta", "lam"])["epochs_to_train_acc_1"].median()
    ratios = [
        per[(eta, lam)] / per[(eta, 0.0)]
        for eta, lam in per.index
        if lam > 0 and (eta, 0.0) in per.index
    ]
    return float(np.median(ratios)) if ratios else None


def plot_time_to_fit(
    table: pd.DataFrame,
    fit: Mapping[str, float] | None,
    path: str | os.PathLike,
    *,
    title: str = "",
) -> Path:
    """(a) Epochs to training accuracy 1 vs η (log-log, colour = λ); (b) the same vs λ.

    Args:
        table: one row per run with ``eta``, ``lam``, ``epochs_to_train_acc_1`` (NaN: never).
        fit: ``{"intercept", "slope_eta", "slope_lam"}`` of
            log t = intercept + slope_eta·log η + slope_lam·log λ (natural logs), or None.
        path: the PNG to write.
        title: figure title.

    On (b) each η is one line (its own colormap), λ = 0 at the left edge.
    """
    fig, (ax_a, ax_b) = figure(2, size=(11.0, 4.4))
    hit = table[np.isfinite(table["epochs_to_train_acc_1"])] if len(table) else table
    colors = lam_colors(hit["lam"]) if len(hit) else {}
    _draw_fit_vs_eta(ax_a, hit, fit, colors)
    lam_legend(ax_a, colors, ax_a.get_legend_handles_labels()[0])
    _draw_fit_vs_lam(ax_b, hit)
    return save_panels(fig, (ax_a, ax_b), path, title)


def _draw_fit_vs_eta(
    ax: Axes, hit: pd.DataFrame, fit: Mapping[str, float] | None, colors: Colors
) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("η")
    ax.set_ylabel("epochs to training accuracy 1")
    if not len(hit):
        say_empty(ax, "no run reached training accuracy 1")
        return
    for lam, rows in hit.groupby("lam"):
        ax.plot(rows["eta"], rows["epochs_to_train_acc_1"], "o", ms=5, color=colors[float(lam)],
                alpha=0.85)  # fmt: skip
    grid_ticks(ax, hit["eta"])
    if fit is not None and np.isfinite(fit.get("slope_eta", np.nan)):
        _fit_line(ax, hit, fit)


def _fit_line(ax: Axes, hit: pd.DataFrame, fit: Mapping[str, float]) -> None:
    """The fitted t_fit(η) at λ = ``fit["lam_ref"]`` (the λ term left out when unknown)."""
    etas = np.geomspace(hit["eta"].min(), hit["eta"].max(), 50)
    lam_ref = float(fit.get("lam_ref", np.nan))
    lam_term = fit["slope_lam"] * np.log(lam_ref) if np.isfinite(lam_ref) else 0.0
    t = np.exp(fit["intercept"] + fit["slope_eta"] * np.log(etas) + lam_term)
    ax.plot(etas, t, color="crimson", lw=1.3,
            label=f"fit: t ∝ η^{fit['slope_eta']:.2f} λ^{fit['slope_lam']:.2f}")  # fmt: skip


def _draw_fit_vs_lam(ax: Axes, hit: pd.DataFrame) -> None:
    ax.set_yscale("log")
    empty = "no run reached training accuracy 1"
    x0 = lam_panel(ax, hit, ylabel="epochs to training accuracy 1", empty=empty)
    if x0 is None:
        return
    colors = seq_colors(hit["eta"])
    for eta, rows in hit.groupby("eta"):
        rows = rows.groupby("lam")["epochs_to_train_acc_1"].median().sort_index()
        x = placed(rows.index.to_numpy(np.float64), x0)
        ax.plot(x, rows.to_numpy(), "o-", ms=4, color=colors[float(eta)], label=f"η = {eta:g}")
    grid_ticks(ax, hit["lam"])
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))


__all__ = ["plot_time_to_fit", "ratio_to_lam0"]
