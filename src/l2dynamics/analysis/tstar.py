"""The time-to-peak law t* ≈ c/(η·λ) on a figure (SPEC §2.1; Fig. 2a–c, 2d–f, 3).

The fit itself lives in :mod:`l2dynamics.analysis.fits` (:func:`~.fits.fit_tstar`); this module
draws it: :func:`plot_tstar` (t* vs η·λ on log-log axes, with the fitted power law and the
slope −1 law) and :func:`plot_panels`, the paper's Figure 2 layout that puts t* beside the best
accuracy vs λ (:mod:`.budgets`) and the test accuracy vs τ (:mod:`.curves`).

Units: t* in epochs; η·λ per epoch, so that t*·η·λ is the normalized time τ = η·λ·epochs of
the peak. λ = 0 runs (left out of the fit) are drawn at the left edge.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from l2dynamics.analysis.budgets import draw_best_acc
from l2dynamics.analysis.curves import draw_curves, run_lams
from l2dynamics.analysis.fits import DEFAULT_ESTIMATOR, PowerFit, t_star_column, usable_for_fit
from l2dynamics.analysis.plotting import (
    Colors,
    color_of,
    figure,
    lam_colors,
    lam_key,
    mark_zero,
    save_panels,
    save_png,
    say_empty,
    zero_x,
)


def seed_agreement(table: pd.DataFrame, estimator: str = DEFAULT_ESTIMATOR) -> dict[str, Any]:
    """How well a second seed reproduces t*: over every (η, λ) with ≥ 2 seeds and every pair
    of its seeds i < j (in seed order), the relative difference |t*_j − t*_i| / t*_i.

    Runs with λ > 0 and a finite t* > 0 (by ``estimator``) count, usable for the fit or not.

    Returns:
        ``median`` and ``p90`` of the relative differences (None without a pair), ``n_pairs``.
    """
    column = t_star_column(estimator)
    runs = table[(table["lam"] > 0) & np.isfinite(table[column]) & (table[column] > 0)]
    diffs: list[float] = []
    for _, cell in runs.sort_values("seed").groupby(["eta", "lam"]):
        t = cell[column].to_numpy(np.float64)
        i, j = np.triu_indices(len(t), k=1)
        diffs += list(np.abs(t[j] - t[i]) / t[i])
    if not diffs:
        return {"median": None, "p90": None, "n_pairs": 0}
    d = np.asarray(diffs)
    return {"median": float(np.median(d)), "p90": float(np.quantile(d, 0.9)), "n_pairs": len(d)}


def plot_tstar(
    table: pd.DataFrame, fit: PowerFit | None, path: str | os.PathLike, *, title: str = ""
) -> Path:
    """t* (epochs) vs η·λ on log-log axes, with the fitted power law.

    Args:
        table: a :func:`~l2dynamics.analysis.tables.run_table`.
        fit: the :func:`~l2dynamics.analysis.fits.fit_tstar` result, or None (no line).
        path: the PNG to write.
        title: figure title.

    One marker per (η, λ): the median t* over its seeds (the fit's estimator); filled markers
    are fitted, hollow ones were left out (λ = 0, diverged, never reached training accuracy 1,
    or peaked at the end of the budget). Bars span the seeds' t* (one seed: its near-peak
    interval, or for the paper's t* the neighbouring measurements). λ = 0 runs sit at the left
    edge.
    """
    fig, (ax,) = figure(size=(5.5, 4.2))
    colors = lam_colors(table["lam"]) if len(table) else {}
    draw_tstar(ax, table, fit, colors)
    lam_key(fig, ax, colors, ax.get_legend_handles_labels()[0])
    return save_png(fig, path, title)


def draw_tstar(ax: Axes, table: pd.DataFrame, fit: PowerFit | None, colors: Colors) -> None:
    """Draw t* vs η·λ into ``ax`` (see :func:`plot_tstar`): the fit's estimator (the default's
    without a fit) as the median over seeds of each (η, λ), with the paper's first maximum of
    each run as a small grey cross beside it when the estimator is another."""
    estimator = fit.estimator if fit is not None else DEFAULT_ESTIMATOR
    column = t_star_column(estimator)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("η·λ")
    ax.set_ylabel("t* (epochs)")
    measured = table[np.isfinite(table[column]) & (table[column] > 0)]
    if measured.empty:
        say_empty(ax, "no run with a measured t* > 0")
        return
    used = usable_for_fit(measured, estimator)
    positive = measured["lam"] > 0
    x0 = zero_x(measured.loc[positive, "eta_lam"].to_numpy(np.float64))
    for (lam, keep), runs in measured.groupby([measured["lam"], used]):
        cells = _cells(runs, column, estimator)
        x = cells["eta_lam"].to_numpy(np.float64) if lam > 0 else np.full(len(cells), x0)
        _tstar_points(ax, x, cells, color_of(colors, lam), filled=bool(keep))
    if estimator != "paper":
        _paper_crosses(ax, measured, x0)
    if (~positive).any():
        mark_zero(ax, x0)
    if fit is not None:
        _fit_lines(ax, fit, measured.loc[used, "eta_lam"].to_numpy(np.float64))
    ax.plot([], [], "o", color="0.4", label=_bars_label(measured, estimator))
    if (~used).any():
        ax.plot([], [], "o", color="0.4", mfc="none", label="hollow: left out of the fit")


def _cells(runs: pd.DataFrame, column: str, estimator: str) -> pd.DataFrame:
    """One row per (η, λ): the median t* over its seeds (``t``) and the bar's ends (``lo``,
    ``hi``): the range over the seeds, or with one seed its own interval (the near-peak
    interval, or the neighbouring measurements of the paper's t*)."""
    lo_col, hi_col = (
        ("t_star_lo", "t_star_hi") if estimator == "paper" else (f"{column}_lo", f"{column}_hi")
    )
    rows = []
    for (eta_lam, _), g in runs.groupby(["eta_lam", "eta"], sort=True):
        t = g[column].to_numpy(np.float64)
        one = len(t) == 1
        lo = float(g[lo_col].iloc[0]) if one else float(t.min())
        hi = float(g[hi_col].iloc[0]) if one else float(t.max())
        rows.append({"eta_lam": eta_lam, "t": float(np.median(t)), "lo": lo, "hi": hi})
    return pd.DataFrame(rows, columns=["eta_lam", "t", "lo", "hi"])


def _bars_label(measured: pd.DataFrame, estimator: str) -> str:
    """What the markers and bars are, for the legend."""
    seeds = int(measured.groupby(["eta", "lam"])["seed"].nunique().max())
    name = "first maximum (paper)" if estimator == "paper" else "near-peak centre"
    if seeds > 1:
        return f"t*: {name}, median of {seeds} seeds; bars: range over seeds"
    interval = "neighbouring measurements" if estimator == "paper" else "near-peak interval"
    return f"t*: {name}; bars: {interval}"


def _paper_crosses(ax: Axes, measured: pd.DataFrame, x0: float) -> None:
    """The paper's t* (first maximum) of every run, as small grey crosses."""
    t = measured["t_star_epochs"].to_numpy(np.float64)
    x = np.where(measured["lam"] > 0, measured["eta_lam"].to_numpy(np.float64), x0)
    ok = np.isfinite(t) & (t > 0)
    ax.plot(x[ok], t[ok], "x", ms=3.5, color="0.55", alpha=0.8,
            label="first maximum (paper), each run")  # fmt: skip


def _tstar_points(ax: Axes, x: np.ndarray, cells: pd.DataFrame, color: tuple, filled: bool):
    t = cells["t"].to_numpy(np.float64)
    lo = np.nan_to_num(t - cells["lo"].to_numpy(np.float64), nan=0.0)
    hi = np.nan_to_num(cells["hi"].to_numpy(np.float64) - t, nan=0.0)
    ax.errorbar(
        x, t, yerr=np.vstack([lo, hi]), fmt="o", ms=5, color=color, ecolor=color,
        mfc=color if filled else "none", elinewidth=0.8, capsize=0, alpha=0.9,
    )  # fmt: skip


def _fit_lines(ax: Axes, fit: PowerFit, x_used: np.ndarray) -> None:
    """The free-slope fit (solid) and the slope −1 law with its c (dotted)."""
    if not len(x_used):
        return
    xs = np.geomspace(x_used.min(), x_used.max(), 50)
    lo, hi = fit.slope_ci
    label = f"fit: slope {fit.slope:.2f} [{lo:.2f}, {hi:.2f}], c = {fit.c:.3g}"
    ax.plot(xs, fit.predict(xs), color="crimson", lw=1.5, label=label)
    if np.isfinite(fit.c_fixed_slope):
        label = f"t* = c/(η·λ), c = {fit.c_fixed_slope:.3g}"
        ax.plot(xs, fit.c_fixed_slope / xs, color="0.3", ls=":", lw=1.2, label=label)


def plot_panels(
    measurements: pd.DataFrame,
    table: pd.DataFrame,
    fit: PowerFit | None,
    path: str | os.PathLike,
    *,
    title: str = "",
) -> Path:
    """The paper's Figure 2 layout: (a) t* vs η·λ, (b) best accuracy vs λ, (c) test acc vs τ.

    Args:
        measurements: the sweep's measurements (panel c).
        table: its :func:`~l2dynamics.analysis.tables.run_table` (panels a, b).
        fit: the t* fit drawn in panel a, or None.
        path: the PNG to write.
        title: figure title.
    """
    fig, axes = figure(3, size=(15.0, 4.4))
    colors = lam_colors([*table["lam"], *run_lams(measurements)])
    draw_tstar(axes[0], table, fit, colors)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=7)
    draw_best_acc(axes[1], table)
    draw_curves(axes[2], measurements, colors, x="tau", y="test_acc")
    lam_key(fig, axes[2], colors)
    return save_panels(fig, axes, path, title)


__all__ = ["draw_tstar", "plot_panels", "plot_tstar", "seed_agreement"]
