"""Curves against time and their collapse against τ = η·λ·epochs (SPEC §1; Fig. 2c, S6, S12).

The paper's claim for curves is that, plotted against normalized time τ = η·λ·epochs instead of
epochs, the runs of different (η, λ) collapse onto one curve; and (Fig. S12) that at late times
they barely depend on the initialization scale σ_w. This module holds the curve plots and the
numbers that test both claims:

- :func:`plot_curves` / :func:`draw_curves`: one line per run, coloured by its λ, against
  epochs, physical time η·epochs or τ; :func:`plot_curve_grid` for accuracy and loss against
  epochs and τ side by side (Fig. S6); :func:`collapse_stats`: how much closer the landmarks
  of the runs (peak, loss minimum) lie against τ than against epochs.
- :func:`spread_vs_tau`: the spread of test accuracy across variants (e.g. σ_w) on a common τ
  grid, :func:`variant_values` (each variant's numeric option), :func:`acc_by_variant` and
  :func:`plot_variant_spread` (Fig. S12).

Units: epochs; physical time ``time`` = η·epochs; normalized time ``tau`` = τ = η·λ·epochs;
accuracies are fractions. Frames are :func:`~l2dynamics.sweep.store.load_measurements` rows
(``hash``, ``epoch``, ``time``, ``tau``, ``test_acc``, ``train_acc``, ``train_loss``, the run's
configured ``eta``/``lam`` and, when the experiment has variants, ``variant``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from l2dynamics.analysis.plotting import (
    LINESTYLES,
    Colors,
    color_of,
    figure,
    lam_colors,
    lam_key,
    lam_legend,
    lam_panel,
    placed,
    save_panels,
    save_png,
    say_empty,
    seq_colors,
)
from l2dynamics.analysis.tables import best_acc_vs_lam, of_variant, run_configs, variants

X_LABELS = {"epoch": "epochs", "time": "η·epochs", "tau": "τ = η·λ·epochs"}
Y_LABELS = {
    "test_acc": "test accuracy",
    "train_acc": "training accuracy",
    "test_loss": "test loss",
    "train_loss": "training loss (data term, no L2)",
    "l2_norm_sq": r"$\|\theta\|^2$",
    "lam": "λ",
    "eta": "η",
}
CURVE_PANELS = ("test_acc", "train_acc", "train_loss")


# -- curves vs time -------------------------------------------------------------------------


def run_lams(measurements: pd.DataFrame) -> pd.Series:
    """The configured λ of each measurement's run (``lam``, not the ``lam_now`` in force)."""
    return measurements["lam"] if len(measurements) else pd.Series(dtype=float)


def plot_curves(
    measurements: pd.DataFrame,
    path: str | os.PathLike,
    *,
    x: str = "tau",
    y: str = "test_acc",
    title: str = "",
) -> Path:
    """Measured curves, one line per run, coloured by the run's λ, against log time.

    Args:
        measurements: :func:`~l2dynamics.sweep.store.load_measurements` rows.
        path: the PNG to write.
        x: ``"epoch"`` (epochs), ``"time"`` (η·epochs) or ``"tau"`` (τ = η·λ·epochs; curves
            of different (η, λ) collapse on it, SPEC §1).
        y: a measurement column, e.g. ``"test_acc"``, ``"train_acc"``, ``"train_loss"``.
        title: figure title.

    Raises:
        ValueError: unknown ``x``, or ``y`` not a column.

    Points at x <= 0 (the initial measurement; every point of a λ = 0 run against τ) have no
    place on a log axis and are left out.
    """
    fig, (ax,) = figure(size=(5.5, 4.2))
    colors = lam_colors(run_lams(measurements))
    draw_curves(ax, measurements, colors, x=x, y=y)
    lam_key(fig, ax, colors)
    return save_png(fig, path, title)


def draw_curves(
    ax: Axes, measurements: pd.DataFrame, colors: Colors, *, x: str = "tau", y: str = "test_acc"
) -> None:
    """Draw curves of ``y`` vs ``x`` into ``ax`` (see :func:`plot_curves`)."""
    if x not in X_LABELS:
        raise ValueError(f"x: expected one of {sorted(X_LABELS)}, got {x!r}")
    if len(measurements) and y not in measurements:
        raise ValueError(f"y: {y!r} is not a measurement column")
    ax.set_xscale("log")
    ax.set_xlabel(X_LABELS[x])
    ax.set_ylabel(Y_LABELS.get(y, y))
    drawn = False
    for _, curve in measurements.groupby("hash", sort=False) if len(measurements) else ():
        curve = curve.sort_values("epoch", kind="stable")
        xs, ys = curve[x].to_numpy(np.float64), curve[y].to_numpy(np.float64)
        keep = np.isfinite(xs) & (xs > 0) & np.isfinite(ys)
        if keep.any():
            color = color_of(colors, float(curve["lam"].iloc[0]))
            ax.plot(xs[keep], ys[keep], color=color, lw=1, alpha=0.8)
            drawn = True
    if not drawn:
        say_empty(ax, "no curve points with x > 0")


def plot_curve_grid(
    measurements: pd.DataFrame, path: str | os.PathLike, *, title: str = ""
) -> Path:
    """Test accuracy, training accuracy and bare training loss (columns) against epochs (top
    row) and against τ = η·λ·epochs (bottom row), one line per run coloured by its λ.

    Args:
        measurements: :func:`~l2dynamics.sweep.store.load_measurements` rows of one setting.
        path: the PNG to write.
        title: figure title.

    The loss is on a log axis. Against τ the curves of different λ should collapse (SPEC §1).
    """
    fig, axes = figure(3, 2, size=(14.0, 7.6))
    colors = lam_colors(measurements["lam"]) if len(measurements) else {}
    for row, x in enumerate(("epoch", "tau")):
        for col, y in enumerate(CURVE_PANELS):
            ax = axes[row * 3 + col]
            draw_curves(ax, measurements, colors, x=x, y=y)
            if y == "train_loss":
                ax.set_yscale("log")
    lam_legend(axes[2], colors)
    return save_png(fig, path, title)


# -- collapse against τ ---------------------------------------------------------------------


def _spread_ratio(epochs: np.ndarray, taus: np.ndarray, prefix: str) -> dict[str, Any]:
    """std of log10 epochs and of log10 τ over runs (decades) and their ratio."""
    keys = (f"std_log10_{prefix}_epochs", f"std_log10_{prefix}_tau", f"{prefix}_collapse_ratio")
    ok = np.isfinite(epochs) & np.isfinite(taus) & (epochs > 0) & (taus > 0)
    if ok.sum() < 2:
        return dict.fromkeys(keys)
    s_t, s_tau = float(np.log10(epochs[ok]).std()), float(np.log10(taus[ok]).std())
    ratio = round(s_tau / s_t, 4) if s_t > 0 else None
    return dict(zip(keys, (round(s_t, 4), round(s_tau, 4), ratio), strict=True))


def collapse_stats(table: pd.DataFrame, minima: pd.DataFrame | None = None) -> dict[str, Any]:
    """How well the runs of different λ line up against τ = η·λ·epochs rather than epochs.

    Two landmarks, each over the runs with λ > 0: the peak t* of the test accuracy (runs whose
    peak lies inside the budget), and the minimum of the bare training loss (``minima`` from
    :func:`~l2dynamics.analysis.catapult.loss_minimum`; runs whose minimum is not their last
    measurement). The first is noisy when the accuracy has a long flat plateau (t* is its
    first maximum); the second is not.

    Args:
        table: a :func:`~l2dynamics.analysis.tables.run_table` (``lam``, ``peak_inside``,
            ``t_star_epochs``, ``t_star_tau``).
        minima: per run ``lam``, ``epoch_min``, ``tau_min`` and optionally ``interior``.

    Returns:
        ``std_log10_peak_epochs`` / ``std_log10_peak_tau``: the spread of the landmark in
        decades against epochs and against τ, and ``peak_collapse_ratio`` = τ spread / epoch
        spread (≪ 1: the curves collapse against τ); the same with ``loss_min`` for the loss
        minimum. None where fewer than 2 runs qualify.
    """
    ok = table[(table["lam"] > 0) & table["peak_inside"].astype(bool)]
    out = _spread_ratio(
        ok["t_star_epochs"].to_numpy(np.float64), ok["t_star_tau"].to_numpy(np.float64), "peak"
    )
    m = minima if minima is not None else pd.DataFrame(columns=["lam", "epoch_min", "tau_min"])
    if "interior" in m:
        m = m[m["interior"]]
    m = m[m["lam"] > 0]
    epochs, taus = m["epoch_min"].to_numpy(np.float64), m["tau_min"].to_numpy(np.float64)
    return out | _spread_ratio(epochs, taus, "loss_min")


# -- spread across variants (σ_w, Figure S12) -----------------------------------------------


def variant_values(runs: pd.DataFrame, option: str) -> dict[str, float]:
    """{variant label: the model option ``option`` (e.g. σ_w) of its runs} (NaN if absent).

    Args:
        runs: :func:`~l2dynamics.sweep.store.load_runs` rows (``hash``, ``config`` and
            optionally ``variant``; without it every run is variant ``""``).
        option: a key of the runs' ``model.options``.
    """
    configs = run_configs(runs)
    out = {}
    for run_hash, variant in zip(runs["hash"], runs.get("variant", [""] * len(runs)), strict=True):
        value = configs.get(run_hash, {}).get("model", {}).get("options", {}).get(option)
        out.setdefault(variant, float(value) if isinstance(value, int | float) else float("nan"))
    return out


def acc_by_variant(table: pd.DataFrame, values: Mapping[str, float]) -> pd.DataFrame:
    """Best test accuracy per (variant, λ), each variant with its numeric option value.

    Args:
        table: a :func:`~l2dynamics.analysis.tables.run_table` with ``variant``.
        values: {variant: its numeric value} (:func:`variant_values`; NaN when unknown).

    Returns:
        ``variant``, the columns of :func:`~l2dynamics.analysis.tables.best_acc_vs_lam` (best
        η, mean over seeds) and ``value``.
    """
    frames = []
    for variant in variants(table):
        acc = best_acc_vs_lam(of_variant(table, variant))
        acc.insert(0, "variant", variant)
        acc["value"] = values.get(variant, float("nan"))
        frames.append(acc)
    return pd.concat(frames, ignore_index=True)


def spread_vs_tau(curves: pd.DataFrame, points: int = 60) -> pd.DataFrame:
    """Per λ: max − min over variants of the test accuracy on a common log τ grid.

    Each run's curve is interpolated linearly in log τ; runs of the same (λ, η, seed) that
    differ only by variant are compared. Seeds and η are then averaged.

    Args:
        curves: measurements with ``variant``, ``lam``, ``eta``, ``tau``, ``test_acc``
            (and ``seed``).
        points: size of each compared group's τ grid.

    Returns:
        ``lam``, ``tau``, ``spread`` (accuracy fraction), over the τ range every compared curve
        covers; empty when no λ has 2 variants.
    """
    rows = []
    keys = ["lam", "eta", "seed"] if "seed" in curves else ["lam", "eta"]
    for key, group in curves.groupby(keys, sort=True):
        grid, spread = _group_spread(group, points)
        rows += [
            {"lam": float(key[0]), "tau": t, "spread": s} for t, s in zip(grid, spread, strict=True)
        ]
    frame = pd.DataFrame(rows, columns=["lam", "tau", "spread"])
    return frame.groupby(["lam", "tau"], as_index=False)["spread"].mean() if len(frame) else frame


def _group_spread(group: pd.DataFrame, points: int) -> tuple[np.ndarray, np.ndarray]:
    """The common log τ grid of one (λ, η, seed) group's runs and the spread of their test
    accuracy on it (both empty with fewer than 2 variants or no common τ range)."""
    runs = [c.sort_values("epoch") for _, c in group.groupby("hash")]
    runs = [c[c["tau"] > 0] for c in runs]
    empty = np.zeros(0), np.zeros(0)
    if len({c["variant"].iloc[0] for c in runs if len(c)}) < 2:
        return empty
    lo = max(c["tau"].min() for c in runs)
    hi = min(c["tau"].max() for c in runs)
    if not hi > lo:
        return empty
    grid = np.geomspace(lo, hi, points)
    accs = np.array([np.interp(np.log(grid), np.log(c["tau"]), c["test_acc"]) for c in runs])
    return grid, np.ptp(accs, axis=0)


def plot_variant_spread(
    acc: pd.DataFrame,
    curves: pd.DataFrame,
    spread: pd.DataFrame,
    path: str | os.PathLike,
    *,
    title: str = "",
) -> Path:
    """(a) Best test accuracy vs λ per variant; (b) test accuracy vs τ, colour = variant,
    line style = λ; (c) the spread (max − min over variants) of test accuracy vs τ per λ.

    Args:
        acc: one row per (variant, λ): ``variant``, ``value`` (its numeric σ_w, for colours),
            ``lam``, ``mean``, ``std``.
        curves: measurements with ``variant``, ``value``, ``lam``, ``tau``, ``test_acc``.
        spread: one row per (λ, τ): ``lam``, ``tau``, ``spread`` (accuracy fraction).
        path: the PNG to write.
        title: figure title.
    """
    fig, axes = figure(3, size=(16.0, 4.6))
    values = acc.drop_duplicates("variant").set_index("variant")["value"] if len(acc) else {}
    vcolors = seq_colors(list(values.values) if len(values) else [])
    _draw_variant_acc(axes[0], acc, vcolors)
    _draw_variant_curves(axes[1], curves, vcolors)
    _draw_spread(axes[2], spread)
    return save_panels(fig, axes, path, title)


def _variant_color(vcolors: Colors, value: float, i: int) -> tuple | str:
    return vcolors.get(float(value), f"C{i % 10}") if np.isfinite(value) else f"C{i % 10}"


def _draw_variant_acc(ax: Axes, acc: pd.DataFrame, vcolors: Colors) -> None:
    x0 = lam_panel(ax, acc, ylabel="best test accuracy", empty="no finished runs")
    if x0 is None:
        return
    for i, (variant, rows) in enumerate(acc.groupby("variant", sort=False)):
        rows = rows.sort_values("lam")
        err = np.nan_to_num(rows["std"].to_numpy(np.float64), nan=0.0)
        color = _variant_color(vcolors, float(rows["value"].iloc[0]), i)
        ax.errorbar(placed(rows["lam"].to_numpy(np.float64), x0), rows["mean"], yerr=err,
                    fmt="o-", ms=4, color=color, label=str(variant))  # fmt: skip
    ax.legend(fontsize=7)


def _draw_variant_curves(ax: Axes, curves: pd.DataFrame, vcolors: Colors) -> None:
    ax.set_xscale("log")
    ax.set_xlabel(X_LABELS["tau"])
    ax.set_ylabel(Y_LABELS["test_acc"])
    if not len(curves):
        say_empty(ax, "no measurements")
        return
    lams = sorted(curves["lam"].unique())
    styles = {lam: LINESTYLES[i % len(LINESTYLES)] for i, lam in enumerate(lams)}
    order = {v: i for i, v in enumerate(curves["variant"].unique())}
    for _, curve in curves.groupby("hash", sort=False):
        curve = curve.sort_values("epoch")
        keep = curve["tau"] > 0
        i = order[curve["variant"].iloc[0]]
        color = _variant_color(vcolors, float(curve["value"].iloc[0]), i)
        ax.plot(curve.loc[keep, "tau"], curve.loc[keep, "test_acc"], color=color, lw=1,
                ls=styles[curve["lam"].iloc[0]], alpha=0.85)  # fmt: skip
    handles = [Line2D([], [], color="0.3", ls=styles[lam], label=f"λ = {lam:g}") for lam in lams]
    for v, i in order.items():
        value = float(curves.loc[curves["variant"] == v, "value"].iloc[0])
        handles.append(Line2D([], [], color=_variant_color(vcolors, value, i), label=str(v)))
    ax.legend(handles=handles, fontsize=7)


def _draw_spread(ax: Axes, spread: pd.DataFrame) -> None:
    ax.set_xscale("log")
    ax.set_xlabel(X_LABELS["tau"])
    ax.set_ylabel("test accuracy spread across variants (max − min)")
    if not len(spread):
        say_empty(ax, "fewer than 2 variants share a λ")
        return
    colors = lam_colors(spread["lam"])
    for lam, rows in spread.groupby("lam"):
        ax.plot(rows["tau"], rows["spread"], color=colors[float(lam)], lw=1.3)
    lam_legend(ax, colors)


__all__ = [
    "CURVE_PANELS",
    "X_LABELS",
    "Y_LABELS",
    "acc_by_variant",
    "collapse_stats",
    "draw_curves",
    "plot_curve_grid",
    "plot_curves",
    "plot_variant_spread",
    "run_lams",
    "spread_vs_tau",
    "variant_values",
]
