"""MSE and the catapult effect (SPEC §2.6; Fig. S5).

With MSE loss and no L2, a high learning rate changes the accuracy reached when training is
stopped at training accuracy 1 (the catapult); with L2 and a budget of 1/(η·λ) epochs the
η dependence flattens. The training MSE has a minimum, after which it rises. This module holds
the measurements of both claims and their figure:

- :func:`acc_at_train_fit`: the test accuracy of a run stopped at training accuracy 1;
- :func:`eta_spread`: per λ, how much an accuracy varies over η (max − min);
- :func:`loss_minimum`: where a run's training loss is lowest and whether it rises after;
- :func:`plot_catapult`.

Units: epochs; normalized time τ = η·λ·epochs; accuracies are fractions; the loss is the bare
training loss (data term, no L2). Frames are :func:`~l2dynamics.sweep.store.load_measurements`
rows (``hash``, ``eta``, ``lam``, ``epoch``, ``tau``, ``train_loss``, ``train_acc``,
``test_acc``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from l2dynamics.analysis.curves import draw_curves
from l2dynamics.analysis.plotting import (
    Colors,
    figure,
    grid_ticks,
    lam_colors,
    lam_legend,
    save_panels,
    say_empty,
)
from l2dynamics.analysis.tables import TRAIN_ACC_ONE_TOL

MINIMUM_COLUMNS = ("hash", "lam", "loss_min", "epoch_min", "tau_min", "loss_final", "interior")


def acc_at_train_fit(curves: pd.DataFrame) -> pd.DataFrame:
    """Per run: the test accuracy at the first measurement with training accuracy 1 (the
    λ = 0 runs of Fig. S5 are "stopped at training accuracy 1"), and that epoch.

    Args:
        curves: measurements (``hash``, ``eta``, ``lam``, ``epoch``, ``train_acc``,
            ``test_acc`` and optionally ``seed``).

    Returns:
        ``hash``, ``eta``, ``lam``, ``seed``, ``fit_epoch`` and ``acc_at_fit`` (NaN if never).
    """
    rows = []
    for run_hash, curve in curves.groupby("hash", sort=False):
        curve = curve.sort_values("epoch", kind="stable")
        hit = np.flatnonzero(curve["train_acc"].to_numpy(np.float64) >= 1 - TRAIN_ACC_ONE_TOL)
        first = curve.iloc[0]
        at = curve.iloc[hit[0]] if len(hit) else None
        rows.append({
            "hash": run_hash,
            "eta": float(first["eta"]),
            "lam": float(first["lam"]),
            "seed": first.get("seed", pd.NA),
            "fit_epoch": float(at["epoch"]) if at is not None else float("nan"),
            "acc_at_fit": float(at["test_acc"]) if at is not None else float("nan"),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=["hash", "eta", "lam", "seed", "fit_epoch", "acc_at_fit"])


def loss_minimum(curves: pd.DataFrame, rise_tol: float = 0.05) -> pd.DataFrame:
    """Per run: where its training loss is lowest and whether it rises after that.

    A run's loss *rises* when its minimum is not its last finite measurement and its last
    finite value exceeds the minimum by more than ``rise_tol`` (relative).

    Args:
        curves: measurements (``hash``, ``lam``, ``epoch``, ``tau``, ``train_loss``).
        rise_tol: relative rise after the minimum that counts as rising.

    Returns:
        ``hash``, ``lam``, ``loss_min``, ``epoch_min``, ``tau_min`` (τ = η·λ·epochs of the
        minimum), ``loss_final``, ``interior`` (the minimum is not the last measurement) and
        ``rises`` (bool). Runs without a finite loss are left out.
    """
    rows = []
    for run_hash, curve in curves.groupby("hash", sort=False):
        row = _loss_minimum_row(curve.sort_values("epoch", kind="stable"), rise_tol)
        if row is not None:
            rows.append({"hash": run_hash, **row})
    return pd.DataFrame(rows, columns=[*MINIMUM_COLUMNS, "rises"])


def _loss_minimum_row(curve: pd.DataFrame, rise_tol: float) -> dict | None:
    """The :func:`loss_minimum` row of one run's curve (sorted by epoch), without ``hash``."""
    loss = curve["train_loss"].to_numpy(np.float64)
    ok = np.flatnonzero(np.isfinite(loss))
    if not len(ok):
        return None
    i = ok[np.argmin(loss[ok])]
    last = loss[ok[-1]]
    interior = bool(i < ok[-1])
    return {
        "lam": float(curve["lam"].iloc[0]),
        "loss_min": float(loss[i]),
        "epoch_min": float(curve["epoch"].iloc[i]),
        "tau_min": float(curve["tau"].iloc[i]),
        "loss_final": float(last),
        "interior": interior,
        "rises": bool(interior and last > loss[i] * (1 + rise_tol)),
    }


def eta_spread(acc: pd.DataFrame, column: str = "mean") -> dict[float, float]:
    """Per λ: max − min over η of ``column`` (accuracy fraction); λ with one η are left out.

    Args:
        acc: one row per (λ, η) with ``lam`` and ``column``.
        column: the accuracy column.
    """
    out = {}
    for lam, rows in acc.groupby("lam", sort=True):
        values = rows[column].to_numpy(np.float64)
        values = values[np.isfinite(values)]
        if len(values) >= 2:
            out[float(lam)] = float(values.max() - values.min())
    return out


def plot_catapult(
    acc: pd.DataFrame,
    lam0: pd.DataFrame,
    curves: pd.DataFrame,
    minima: pd.DataFrame,
    path: str | os.PathLike,
    *,
    title: str = "",
) -> Path:
    """(a) Best test accuracy vs η per λ, and λ = 0 stopped at training accuracy 1; (b) the
    training MSE vs τ with each run's minimum.

    Args:
        acc: one row per (λ > 0, η): ``lam``, ``eta``, ``mean`` (best test accuracy within the
            budget 1/(η·λ), mean over seeds).
        lam0: one row per η of the λ = 0 runs: ``eta``, ``acc_at_fit`` (test accuracy at the
            first measurement with training accuracy 1).
        curves: measurements of the λ > 0 runs (``tau``, ``train_loss``, ``lam``).
        minima: one row per run: ``tau_min`` and ``loss_min`` (the MSE minimum), ``rises``.
        path: the PNG to write.
        title: figure title.
    """
    fig, (ax_a, ax_b) = figure(2, size=(11.0, 4.4))
    colors = lam_colors([*acc["lam"], *([0.0] if len(lam0) else [])]) if len(acc) else {}
    _draw_acc_vs_eta(ax_a, acc, lam0, colors)
    _draw_mse(ax_b, curves, minima)
    return save_panels(fig, (ax_a, ax_b), path, title)


def _draw_acc_vs_eta(ax: Axes, acc: pd.DataFrame, lam0: pd.DataFrame, colors: Colors) -> None:
    """Best accuracy vs η, a line per λ > 0, and the λ = 0 accuracy at training accuracy 1."""
    ax.set_xscale("log")
    ax.set_xlabel("η")
    ax.set_ylabel("best test accuracy")
    for lam, rows in acc.groupby("lam") if len(acc) else ():
        rows = rows.sort_values("eta")
        ax.plot(rows["eta"], rows["mean"], "o-", ms=4, color=colors[float(lam)])
    extra = []
    if len(lam0):
        rows = lam0.sort_values("eta")
        ax.plot(rows["eta"], rows["acc_at_fit"], "s--", ms=5, color="k")
        extra.append(Line2D([], [], color="k", marker="s", ls="--", label="λ = 0 at train acc 1"))
    if not len(acc) and not len(lam0):
        say_empty(ax, "no finished runs")
    else:
        grid_ticks(ax, [*acc["eta"], *lam0["eta"]] if len(lam0) else acc["eta"])
    lam_legend(ax, {k: v for k, v in colors.items() if k > 0}, extra)


def _draw_mse(ax: Axes, curves: pd.DataFrame, minima: pd.DataFrame) -> None:
    """The training MSE vs τ, a line per run, each run's minimum circled."""
    curve_colors = lam_colors(curves["lam"]) if len(curves) else {}
    draw_curves(ax, curves, curve_colors, x="tau", y="train_loss")
    ax.set_yscale("log")
    ax.set_ylabel("training MSE (data term, no L2)")
    low = minima[minima["tau_min"] > 0] if len(minima) else minima
    if len(low):
        ax.plot(low["tau_min"], low["loss_min"], "o", ms=4, color="crimson", mfc="none",
                label="minimum of the training MSE")  # fmt: skip
        ax.legend(fontsize=7)


__all__ = ["acc_at_train_fit", "eta_spread", "loss_minimum", "plot_catapult"]
