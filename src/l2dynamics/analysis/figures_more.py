"""Figures of the further sweep kinds: fixed budgets, time to fit, MSE/catapult, curves, σ_w.

Same conventions as :mod:`l2dynamics.analysis.figures` (and its colours: one log colormap over
λ from :func:`~l2dynamics.analysis.figures.lam_colors`, λ = 0 black): every ``plot_*`` draws
on an Agg canvas with matplotlib's object-oriented API, writes a PNG at ``path`` atomically and
returns ``path``; empty inputs give a figure that says so. Units: epochs; physical time
η·epochs; normalized time τ = η·λ·epochs; budgets T in epochs. λ and η axes are logarithmic,
as in the paper; λ = 0 has no place on a log axis and sits at the left edge, past a dotted
line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from l2dynamics.analysis.figures import (
    X_LABELS,
    Y_LABELS,
    _mark_zero,
    _save,
    _say_empty,
    _zero_x,
    draw_curves,
    lam_colors,
)

DPI = 150
# Budgets T and other non-λ sequences get their own colormap, so they are never read as a λ.
SEQ_CMAP = ListedColormap(colormaps["plasma"](np.linspace(0.0, 0.85, 256)), name="seq")
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1)), (0, (1, 1)))
MAX_LEGEND = 8


# -- plumbing -------------------------------------------------------------------------------


def _figure(ncols: int = 1, nrows: int = 1, *, size: tuple[float, float]) -> tuple[Figure, list]:
    fig = Figure(figsize=size, layout="constrained")
    return fig, list(fig.subplots(nrows, ncols, squeeze=False).ravel())


def save_png(fig: Figure, path: str | os.PathLike, title: str = "") -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically, its title wrapped to the figure's width."""
    return _save(fig, path, title)


def seq_colors(values: Sequence[float]) -> dict[float, tuple]:
    """One RGBA colour per distinct positive value (budgets T, η, σ_w) on a log colormap."""
    distinct = sorted({float(v) for v in values if np.isfinite(v) and v > 0})
    if not distinct:
        return {}
    norm = LogNorm(distinct[0], distinct[-1])
    return {v: tuple(SEQ_CMAP(0.5 if norm.vmin == norm.vmax else float(norm(v)))) for v in distinct}


def _lam_axis(ax: Axes, lams: np.ndarray) -> float:
    """Log λ axis; returns where λ = 0 is drawn (and marks it when the data have λ = 0)."""
    ax.set_xscale("log")
    ax.set_xlabel("λ")
    ax.xaxis.set_minor_formatter(NullFormatter())
    x0 = _zero_x(lams)
    if (lams == 0).any():
        _mark_zero(ax, x0)
    _grid_ticks(ax, lams)
    return x0


def _placed(lams: np.ndarray, x0: float) -> np.ndarray:
    return np.where(lams > 0, lams, x0)


def lam_legend(ax: Axes, colors: Mapping[float, tuple], extra: Sequence = ()) -> None:
    """Legend of λ colours (the first :data:`MAX_LEGEND`) plus ``extra`` handles."""
    handles = list(extra)
    for lam in list(colors)[:MAX_LEGEND]:
        handles.append(Line2D([], [], color=colors[lam], marker="o", ls="", label=f"λ = {lam:g}"))
    if len(colors) > MAX_LEGEND:
        handles.append(Line2D([], [], ls="", label=f"… {len(colors) - MAX_LEGEND} more λ"))
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="best")


def _grid_ticks(ax: Axes, values, axis: str = "x") -> None:
    """Label a log axis at the grid's own values when there are few, never at minor ticks
    (their labels overlap when the axis spans about a decade)."""
    distinct = np.unique(np.asarray(values, np.float64))
    distinct = distinct[np.isfinite(distinct) & (distinct > 0)]
    target = ax.xaxis if axis == "x" else ax.yaxis
    if 0 < len(distinct) <= MAX_LEGEND:
        setter = ax.set_xticks if axis == "x" else ax.set_yticks
        setter(distinct, labels=[f"{v:g}" for v in distinct])
    target.set_minor_formatter(NullFormatter())


def _interp_log(xs: np.ndarray, ys: np.ndarray, x: float) -> float:
    """``ys`` at ``x`` by linear interpolation in log x (NaN outside the range)."""
    ok = np.isfinite(ys) & (xs > 0)
    if not ok.any() or not np.isfinite(x) or x <= 0:
        return float("nan")
    lx, y = np.log(xs[ok]), ys[ok]
    order = np.argsort(lx)
    lx, y = lx[order], y[order]
    if np.log(x) < lx[0] or np.log(x) > lx[-1]:
        return float("nan")
    return float(np.interp(np.log(x), lx, y))


# -- fixed budgets (Figures 1b, 4, S3, S4) --------------------------------------------------


def plot_fixed_budget(
    acc: pd.DataFrame,
    optimal: pd.DataFrame,
    path: str | os.PathLike,
    *,
    title: str = "",
) -> Path:
    """(a) Best test accuracy vs λ, one line per budget T; (b) the optimal λ vs T.

    Args:
        acc: one row per (T, λ): ``budget_T`` (epochs), ``lam``, ``mean``, ``std`` (best test
            accuracy within T, best η, averaged over seeds).
        optimal: one row per T: ``budget_T``, ``best_lam`` (the grid's best λ at T),
            ``lam_pred`` = c/(η·T) and ``lam_pred_2c`` = 2c/(η·T) (NaN when unknown).
        path: the PNG to write.
        title: figure title.

    On (a) the predicted λ of each budget is marked on that budget's line: a filled triangle
    for c/(η·T), a hollow one for 2c/(η·T) (accuracy read off the line, log-interpolated).
    On (b) the grid's optimum is a dot per T; the predictions are lines ∝ 1/T.
    """
    fig, (ax_a, ax_b) = _figure(2, size=(11.0, 4.4))
    colors = seq_colors(acc["budget_T"]) if len(acc) else {}
    _draw_budget_lines(ax_a, acc, optimal, colors)
    _draw_optimal_lam(ax_b, optimal, colors)
    for ax, letter in zip((ax_a, ax_b), "ab", strict=True):
        ax.set_title(f"({letter})", loc="left", fontsize=10)
    return save_png(fig, path, title)


def _draw_budget_lines(ax: Axes, acc: pd.DataFrame, optimal: pd.DataFrame, colors) -> None:
    ax.set_ylabel("best test accuracy within T")
    lams = acc["lam"].to_numpy(np.float64) if len(acc) else np.zeros(0)
    x0 = _lam_axis(ax, lams)
    if not len(acc):
        _say_empty(ax, "no run covers any budget")
        return
    pred = optimal.set_index("budget_T") if len(optimal) else pd.DataFrame()
    for budget, rows in acc.groupby("budget_T", sort=True):
        rows = rows.sort_values("lam")
        lam, mean = rows["lam"].to_numpy(np.float64), rows["mean"].to_numpy(np.float64)
        err = np.nan_to_num(rows["std"].to_numpy(np.float64), nan=0.0)
        color = colors.get(float(budget), "0.5")
        ax.errorbar(_placed(lam, x0), mean, yerr=err, fmt="o-", ms=3.5, color=color,
                    label=f"T = {budget:g} epochs")  # fmt: skip
        if budget in pred.index:
            for column, face in (("lam_pred", color), ("lam_pred_2c", "none")):
                at = float(pred.loc[budget, column])
                y = _interp_log(lam, mean, at)
                if np.isfinite(y):
                    ax.plot(at, y, marker="v", ms=8, color=color, mfc=face, ls="")
    marks = [
        Line2D([], [], marker="v", color="0.3", ls="", label="λ_pred = c/(η·T)"),
        Line2D([], [], marker="v", color="0.3", mfc="none", ls="", label="2c/(η·T)"),
    ]
    ax.legend(handles=ax.get_legend_handles_labels()[0] + marks, fontsize=7, loc="best")


def _draw_optimal_lam(ax: Axes, optimal: pd.DataFrame, colors) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("budget T (epochs)")
    ax.set_ylabel("optimal λ")
    ok = (
        optimal[np.isfinite(optimal["best_lam"]) & (optimal["best_lam"] > 0)]
        if len(optimal)
        else optimal
    )
    if not len(ok):
        _say_empty(ax, "no optimal λ > 0")
        return
    for t, lam in zip(ok["budget_T"], ok["best_lam"], strict=True):
        ax.plot(t, lam, "o", ms=7, color=colors.get(float(t), "0.5"))
    ax.plot([], [], "o", color="0.4", label="best λ of the grid")
    ts = np.geomspace(ok["budget_T"].min(), ok["budget_T"].max(), 50)
    for column, style, label in (("lam_pred", "-", "c/(η·T)"), ("lam_pred_2c", "--", "2c/(η·T)")):
        pred = ok[column].to_numpy(np.float64) * ok["budget_T"].to_numpy(np.float64)
        if np.isfinite(pred).any():  # λ_pred·T is the constant c/η
            k = float(np.nanmean(pred))
            ax.plot(ts, k / ts, color="crimson", ls=style, lw=1.3, label=f"{label} = {k:.3g}/T")
    ax.legend(fontsize=7)


def plot_acc_vs_lam_variants(
    lines: Mapping[str, pd.DataFrame], path: str | os.PathLike, *, title: str = ""
) -> Path:
    """Test accuracy vs λ, one colour per variant (e.g. "T = 200" and "T = 0.1/λ", Fig. 1a).

    Args:
        lines: ``{label: frame}``; a frame has one row per λ with ``lam``, ``mean`` and ``std``
            of the best test accuracy (solid) and, optionally, ``final`` (the final test
            accuracy, dashed).
        path: the PNG to write.
        title: figure title.
    """
    fig, (ax,) = _figure(size=(6.0, 4.4))
    ax.set_ylabel("test accuracy")
    frames = {k: v for k, v in lines.items() if len(v)}
    lams = np.concatenate([v["lam"].to_numpy(np.float64) for v in frames.values()] or [[]])
    x0 = _lam_axis(ax, lams)
    for i, (label, frame) in enumerate(frames.items()):
        frame = frame.sort_values("lam")
        x = _placed(frame["lam"].to_numpy(np.float64), x0)
        err = np.nan_to_num(frame["std"].to_numpy(np.float64), nan=0.0)
        ax.errorbar(x, frame["mean"], yerr=err, fmt="o-", ms=4, color=f"C{i}",
                    label=f"{label}: best")  # fmt: skip
        if "final" in frame:
            ax.plot(x, frame["final"], "s--", ms=3, color=f"C{i}", lw=1, label=f"{label}: final")
    if not frames:
        _say_empty(ax, "no finished runs")
    else:
        ax.legend(fontsize=7)
    return save_png(fig, path, title)


# -- time to training accuracy 1 (Figure S1) ------------------------------------------------


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
    fig, (ax_a, ax_b) = _figure(2, size=(11.0, 4.4))
    hit = table[np.isfinite(table["epochs_to_train_acc_1"])] if len(table) else table
    colors = lam_colors(hit["lam"]) if len(hit) else {}
    _draw_fit_vs_eta(ax_a, hit, fit, colors)
    lam_legend(ax_a, colors, ax_a.get_legend_handles_labels()[0])
    _draw_fit_vs_lam(ax_b, hit)
    for ax, letter in zip((ax_a, ax_b), "ab", strict=True):
        ax.set_title(f"({letter})", loc="left", fontsize=10)
    return save_png(fig, path, title)


def _draw_fit_vs_eta(ax: Axes, hit: pd.DataFrame, fit, colors) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("η")
    ax.set_ylabel("epochs to training accuracy 1")
    if not len(hit):
        _say_empty(ax, "no run reached training accuracy 1")
        return
    for lam, rows in hit.groupby("lam"):
        ax.plot(rows["eta"], rows["epochs_to_train_acc_1"], "o", ms=5, color=colors[float(lam)],
                alpha=0.85)  # fmt: skip
    _grid_ticks(ax, hit["eta"])
    if fit is not None and np.isfinite(fit.get("slope_eta", np.nan)):
        etas = np.geomspace(hit["eta"].min(), hit["eta"].max(), 50)
        lam_ref = float(fit.get("lam_ref", np.nan))
        lam_term = fit["slope_lam"] * np.log(lam_ref) if np.isfinite(lam_ref) else 0.0
        t = np.exp(fit["intercept"] + fit["slope_eta"] * np.log(etas) + lam_term)
        ax.plot(etas, t, color="crimson", lw=1.3,
                label=f"fit: t ∝ η^{fit['slope_eta']:.2f} λ^{fit['slope_lam']:.2f}")  # fmt: skip


def _draw_fit_vs_lam(ax: Axes, hit: pd.DataFrame) -> None:
    ax.set_yscale("log")
    ax.set_ylabel("epochs to training accuracy 1")
    lams = hit["lam"].to_numpy(np.float64) if len(hit) else np.zeros(0)
    x0 = _lam_axis(ax, lams)
    if not len(hit):
        _say_empty(ax, "no run reached training accuracy 1")
        return
    colors = seq_colors(hit["eta"])
    for eta, rows in hit.groupby("eta"):
        rows = rows.groupby("lam")["epochs_to_train_acc_1"].median().sort_index()
        x = _placed(rows.index.to_numpy(np.float64), x0)
        ax.plot(x, rows.to_numpy(), "o-", ms=4, color=colors[float(eta)], label=f"η = {eta:g}")
    _grid_ticks(ax, lams)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))


# -- MSE and the catapult (Figure S5) -------------------------------------------------------


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
    fig, (ax_a, ax_b) = _figure(2, size=(11.0, 4.4))
    colors = lam_colors([*acc["lam"], *([0.0] if len(lam0) else [])]) if len(acc) else {}
    ax_a.set_xscale("log")
    ax_a.set_xlabel("η")
    ax_a.set_ylabel("best test accuracy")
    for lam, rows in acc.groupby("lam") if len(acc) else ():
        rows = rows.sort_values("eta")
        ax_a.plot(rows["eta"], rows["mean"], "o-", ms=4, color=colors[float(lam)])
    extra = []
    if len(lam0):
        rows = lam0.sort_values("eta")
        ax_a.plot(rows["eta"], rows["acc_at_fit"], "s--", ms=5, color="k")
        extra.append(Line2D([], [], color="k", marker="s", ls="--", label="λ = 0 at train acc 1"))
    if not len(acc) and not len(lam0):
        _say_empty(ax_a, "no finished runs")
    else:
        _grid_ticks(ax_a, [*acc["eta"], *lam0["eta"]] if len(lam0) else acc["eta"])
    lam_legend(ax_a, {k: v for k, v in colors.items() if k > 0}, extra)
    curve_colors = lam_colors(curves["lam"]) if len(curves) else {}
    draw_curves(ax_b, curves, curve_colors, x="tau", y="train_loss")
    ax_b.set_yscale("log")
    ax_b.set_ylabel("training MSE (data term, no L2)")
    low = minima[minima["tau_min"] > 0] if len(minima) else minima
    if len(low):
        ax_b.plot(low["tau_min"], low["loss_min"], "o", ms=4, color="crimson", mfc="none",
                  label="minimum of the training MSE")  # fmt: skip
        ax_b.legend(fontsize=7)
    for ax, letter in zip((ax_a, ax_b), "ab", strict=True):
        ax.set_title(f"({letter})", loc="left", fontsize=10)
    return save_png(fig, path, title)


# -- curves vs epochs and vs τ (Figure S6) --------------------------------------------------

CURVE_PANELS = ("test_acc", "train_acc", "train_loss")


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
    fig, axes = _figure(3, 2, size=(14.0, 7.6))
    colors = lam_colors(measurements["lam"]) if len(measurements) else {}
    for row, x in enumerate(("epoch", "tau")):
        for col, y in enumerate(CURVE_PANELS):
            ax = axes[row * 3 + col]
            draw_curves(ax, measurements, colors, x=x, y=y)
            if y == "train_loss":
                ax.set_yscale("log")
    lam_legend(axes[2], colors)
    return save_png(fig, path, title)


# -- σ_w (Figure S12) -----------------------------------------------------------------------


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
    fig, axes = _figure(3, size=(16.0, 4.6))
    values = acc.drop_duplicates("variant").set_index("variant")["value"] if len(acc) else {}
    vcolors = seq_colors(list(values.values) if len(values) else [])
    _draw_variant_acc(axes[0], acc, vcolors)
    _draw_variant_curves(axes[1], curves, vcolors)
    _draw_spread(axes[2], spread)
    for ax, letter in zip(axes, "abc", strict=True):
        ax.set_title(f"({letter})", loc="left", fontsize=10)
    return save_png(fig, path, title)


def _variant_color(vcolors, value: float, i: int):
    return vcolors.get(float(value), f"C{i % 10}") if np.isfinite(value) else f"C{i % 10}"


def _draw_variant_acc(ax: Axes, acc: pd.DataFrame, vcolors) -> None:
    ax.set_ylabel("best test accuracy")
    lams = acc["lam"].to_numpy(np.float64) if len(acc) else np.zeros(0)
    x0 = _lam_axis(ax, lams)
    if not len(acc):
        _say_empty(ax, "no finished runs")
        return
    for i, (variant, rows) in enumerate(acc.groupby("variant", sort=False)):
        rows = rows.sort_values("lam")
        err = np.nan_to_num(rows["std"].to_numpy(np.float64), nan=0.0)
        color = _variant_color(vcolors, float(rows["value"].iloc[0]), i)
        ax.errorbar(_placed(rows["lam"].to_numpy(np.float64), x0), rows["mean"], yerr=err,
                    fmt="o-", ms=4, color=color, label=str(variant))  # fmt: skip
    ax.legend(fontsize=7)


def _draw_variant_curves(ax: Axes, curves: pd.DataFrame, vcolors) -> None:
    ax.set_xscale("log")
    ax.set_xlabel(X_LABELS["tau"])
    ax.set_ylabel(Y_LABELS["test_acc"])
    if not len(curves):
        _say_empty(ax, "no measurements")
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
        _say_empty(ax, "fewer than 2 variants share a λ")
        return
    colors = lam_colors(spread["lam"])
    for lam, rows in spread.groupby("lam"):
        ax.plot(rows["tau"], rows["spread"], color=colors[float(lam)], lw=1.3)
    lam_legend(ax, colors)


__all__ = [
    "CURVE_PANELS",
    "lam_legend",
    "plot_acc_vs_lam_variants",
    "plot_catapult",
    "plot_curve_grid",
    "plot_fixed_budget",
    "plot_time_to_fit",
    "plot_variant_spread",
    "save_png",
    "seq_colors",
]
