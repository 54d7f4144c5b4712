"""Figures of a sweep: t* vs η·λ, best accuracy vs λ, curves vs time, λ(t) schedules.

Every ``plot_*`` function draws with matplotlib's object-oriented API on an Agg canvas (no
pyplot, no global backend change, safe off the main thread), writes a PNG at ``path``
(atomically) and returns ``path``. Each draws whatever the data hold: empty or all-NaN inputs
give a figure that says so instead of an error.

Units: t* in epochs; physical time ``time`` = η·epochs; normalized time ``tau`` =
τ = η·λ·epochs. λ is coloured on one log colormap (:func:`lam_colors`, λ = 0 black), so a λ has
the same colour in every panel. Log scales follow the paper: t* vs η·λ log-log, λ axes log,
curves against log time. λ = 0 has no place on a log axis: it is drawn at the left edge,
beyond a dotted line and labelled "λ = 0".
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from l2dynamics.analysis.fits import PowerFit, usable_for_fit
from l2dynamics.analysis.tables import best_acc_vs_lam
from l2dynamics.files import atomic_path

DPI = 150
# viridis without its palest end, so every λ stays visible on white.
LAM_CMAP = ListedColormap(colormaps["viridis"](np.linspace(0.0, 0.9, 256)), name="lam")
ZERO_COLOR = (0.0, 0.0, 0.0, 1.0)
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
MAX_LEGEND_LAMS = 8  # more distinct λ than this get a colorbar instead of legend entries
ZERO_OFFSET_DECADES = 0.6  # λ = 0 sits this many decades left of the smallest positive value

Colors = Mapping[float, tuple]


def lam_colors(lams: Sequence[float]) -> dict[float, tuple]:
    """One RGBA colour per distinct λ: a log colormap over the positive λ, λ = 0 black.

    Args:
        lams: L2 coefficients (repeats and NaN are ignored).

    Returns:
        ``{λ: (r, g, b, a)}``; positive λ are placed by log10 λ between the smallest (dark
        purple) and the largest (yellow-green); a single positive λ gets the middle colour.
    """
    values = sorted({float(v) for v in lams if np.isfinite(v)})
    norm = _lam_norm(values)
    return {v: (ZERO_COLOR if v <= 0 else tuple(LAM_CMAP(_unit(norm, v)))) for v in values}


def _lam_norm(values: Iterable[float]) -> LogNorm | None:
    positive = [v for v in values if v > 0]
    return LogNorm(min(positive), max(positive)) if positive else None


def _unit(norm: LogNorm, value: float) -> float:
    return 0.5 if norm.vmin == norm.vmax else float(norm(value))


def _color(colors: Colors, lam: float) -> tuple:
    """The colour of λ in ``colors`` (nearest key up to rounding; grey if absent)."""
    if lam in colors:
        return colors[lam]
    for key, value in colors.items():
        if math.isclose(key, lam, rel_tol=1e-9, abs_tol=0.0):
            return value
    return (0.5, 0.5, 0.5, 1.0)


# -- figure plumbing ------------------------------------------------------------------------


def _figure(ncols: int = 1, nrows: int = 1, *, size: tuple[float, float], sharex: bool = False):
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=sharex, squeeze=False)
    return fig, axes.ravel()


def wrap_title(title: str, width_in: float, fontsize: float = 12.0) -> str:
    """``title`` broken into lines that fit a figure ``width_in`` inches wide (≈0.55 em/char)."""
    chars = max(20, int(width_in * 72.0 / (0.55 * fontsize)))
    return textwrap.fill(title, chars)


def _save(fig: Figure, path: str | os.PathLike, title: str) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically (temporary file renamed into place)."""
    if title:
        fig.suptitle(wrap_title(title, fig.get_figwidth()))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return path


def _say_empty(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, what, transform=ax.transAxes, ha="center", va="center", color="0.4")


def _lam_key(fig: Figure, ax: Axes, colors: Colors, handles: list | None = None) -> None:
    """Say which colour is which λ: legend entries for few λ, a log colorbar for many."""
    handles = list(handles or [])
    positive = [v for v in colors if v > 0]
    zero = [v for v in colors if v <= 0]
    if len(positive) > MAX_LEGEND_LAMS:
        mappable = ScalarMappable(norm=_lam_norm(positive), cmap=LAM_CMAP)
        fig.colorbar(mappable, ax=ax, label="λ")
        positive = []
    for v in zero + positive:
        handles.append(Line2D([], [], color=_color(colors, v), marker="o", ls="", label=_lam(v)))
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="best")


def _lam(value: float) -> str:
    return f"λ = {value:g}"


def _zero_x(positive: np.ndarray) -> float:
    """Where λ = 0 is drawn on a log axis: left of the smallest positive value (1 if none)."""
    positive = positive[np.isfinite(positive) & (positive > 0)]
    return float(positive.min() / 10**ZERO_OFFSET_DECADES) if len(positive) else 1.0


def _mark_zero(ax: Axes, x0: float) -> None:
    """A dotted line right of x0 and a "λ = 0" label under it, at the left edge."""
    ax.axvline(x0 * 10 ** (ZERO_OFFSET_DECADES / 2), color="0.6", ls=":", lw=1)
    ax.annotate(
        "λ = 0",
        xy=(x0, 0),
        xycoords=("data", "axes fraction"),
        xytext=(0, 3),
        textcoords="offset points",
        ha="center",
        fontsize=7,
    )


# -- t* vs η·λ ------------------------------------------------------------------------------


def plot_tstar(
    table: pd.DataFrame, fit: PowerFit | None, path: str | os.PathLike, *, title: str = ""
) -> Path:
    """t* (epochs) vs η·λ on log-log axes, with the fitted power law.

    Args:
        table: a :func:`~l2dynamics.analysis.tables.run_table`.
        fit: the :func:`~l2dynamics.analysis.fits.fit_tstar` result, or None (no line).
        path: the PNG to write.
        title: figure title.

    Filled markers are the fitted runs; hollow ones were left out (λ = 0, diverged, never
    reached training accuracy 1, or peaked at the end of the budget). Error bars span the
    neighbouring measurements (the resolution of t*). λ = 0 runs sit at the left edge.
    """
    fig, (ax,) = _figure(size=(5.5, 4.2))
    colors = lam_colors(table["lam"]) if len(table) else {}
    draw_tstar(ax, table, fit, colors)
    _lam_key(fig, ax, colors, ax.get_legend_handles_labels()[0])
    return _save(fig, path, title)


def draw_tstar(ax: Axes, table: pd.DataFrame, fit: PowerFit | None, colors: Colors) -> None:
    """Draw t* vs η·λ into ``ax`` (see :func:`plot_tstar`)."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("η·λ")
    ax.set_ylabel("t* (epochs)")
    measured = table[np.isfinite(table["t_star_epochs"]) & (table["t_star_epochs"] > 0)]
    if measured.empty:
        _say_empty(ax, "no run with a measured t* > 0")
        return
    used = usable_for_fit(measured)
    positive = measured["lam"] > 0
    x0 = _zero_x(measured.loc[positive, "eta_lam"].to_numpy(np.float64))
    for (lam, keep), runs in measured.groupby([measured["lam"], used]):
        x = runs["eta_lam"].to_numpy(np.float64) if lam > 0 else np.full(len(runs), x0)
        _tstar_points(ax, x, runs, _color(colors, lam), filled=bool(keep))
    if (~positive).any():
        _mark_zero(ax, x0)
    if fit is not None:
        _fit_lines(ax, fit, measured.loc[used, "eta_lam"].to_numpy(np.float64))
    if (~used).any():
        ax.plot([], [], "o", color="0.4", mfc="none", label="hollow: left out of the fit")


def _tstar_points(ax: Axes, x: np.ndarray, runs: pd.DataFrame, color: tuple, filled: bool):
    t = runs["t_star_epochs"].to_numpy(np.float64)
    lo = np.nan_to_num(t - runs["t_star_lo"].to_numpy(np.float64), nan=0.0)
    hi = np.nan_to_num(runs["t_star_hi"].to_numpy(np.float64) - t, nan=0.0)
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


# -- best accuracy vs λ ---------------------------------------------------------------------


def plot_best_acc_vs_lam(
    table: pd.DataFrame,
    path: str | os.PathLike,
    *,
    budgets: Mapping[str, pd.DataFrame] | None = None,
    predicted: Mapping[str, float] | None = None,
    title: str = "",
) -> Path:
    """Best test accuracy vs λ (log x, λ = 0 at the left edge), one line per budget.

    Args:
        table: per-run table (:func:`~l2dynamics.analysis.tables.run_table`): each run's own
            budget, averaged over seeds, best η per λ.
        path: the PNG to write.
        budgets: more lines, ``{label: frame}``; a frame is either per run (e.g.
            :func:`~l2dynamics.analysis.tables.within_budget` at T epochs) or already per λ
            (:func:`~l2dynamics.analysis.tables.best_acc_vs_lam`, with a ``mean`` column).
        predicted: vertical markers ``{label: λ}`` (e.g. λ_pred = c/(η·T)); None/NaN skipped.
        title: figure title.
    """
    fig, (ax,) = _figure(size=(5.5, 4.2))
    draw_best_acc(ax, table, budgets=budgets, predicted=predicted)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    return _save(fig, path, title)


def draw_best_acc(
    ax: Axes,
    table: pd.DataFrame,
    *,
    budgets: Mapping[str, pd.DataFrame] | None = None,
    predicted: Mapping[str, float] | None = None,
) -> None:
    """Draw best test accuracy vs λ into ``ax`` (see :func:`plot_best_acc_vs_lam`)."""
    ax.set_xscale("log")
    ax.set_xlabel("λ")
    ax.set_ylabel("best test accuracy")
    ax.ticklabel_format(axis="y", useOffset=False)
    lines = {"best over η" if not budgets else "own budget": best_acc_vs_lam(table)}
    for label, frame in (budgets or {}).items():
        lines[label] = frame if "mean" in frame else best_acc_vs_lam(frame)
    lines = {k: v[np.isfinite(v["mean"].astype(float))] for k, v in lines.items()}
    all_lams = np.concatenate([v["lam"].to_numpy(np.float64) for v in lines.values()])
    if not len(all_lams):
        _say_empty(ax, "no finished runs")
    x0 = _zero_x(all_lams)
    for i, (label, acc) in enumerate(lines.items()):
        _acc_line(ax, acc, x0, f"C{i}", label)
    if (all_lams == 0).any():
        _mark_zero(ax, x0)
    _predicted_lines(ax, predicted or {})
    _lam_ticks(ax, all_lams[all_lams > 0])


def _lam_ticks(ax: Axes, lams: np.ndarray) -> None:
    """Label the λ of the grid itself when there are few; never label minor log ticks (they
    overlap when the axis spans about a decade)."""
    distinct = np.unique(lams)
    if 0 < len(distinct) <= MAX_LEGEND_LAMS:
        ax.set_xticks(distinct, labels=[f"{v:g}" for v in distinct])
    ax.xaxis.set_minor_formatter(NullFormatter())


def _acc_line(ax: Axes, acc: pd.DataFrame, x0: float, color: str, label: str) -> None:
    """One best-accuracy line over positive λ and, apart, its λ = 0 point."""
    err = np.nan_to_num(acc["std"].to_numpy(np.float64), nan=0.0)
    lam = acc["lam"].to_numpy(np.float64)
    mean = acc["mean"].to_numpy(np.float64)
    pos = lam > 0
    ax.errorbar(lam[pos], mean[pos], yerr=err[pos], fmt="o-", ms=4, color=color, label=label)
    if (~pos).any():
        ax.errorbar(np.full((~pos).sum(), x0), mean[~pos], yerr=err[~pos], fmt="s", color=color)


def _predicted_lines(ax: Axes, predicted: Mapping[str, float]) -> None:
    styles = ["--", "-.", ":", (0, (5, 1, 1, 1))]
    valid = [(k, v) for k, v in predicted.items() if v is not None and np.isfinite(v) and v > 0]
    for i, (label, lam) in enumerate(valid):
        ax.axvline(lam, color="0.25", ls=styles[i % len(styles)], lw=1,
                   label=f"{label}: λ = {lam:.3g}")  # fmt: skip


# -- curves ---------------------------------------------------------------------------------


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
    fig, (ax,) = _figure(size=(5.5, 4.2))
    colors = lam_colors(_run_lams(measurements))
    draw_curves(ax, measurements, colors, x=x, y=y)
    _lam_key(fig, ax, colors)
    return _save(fig, path, title)


def _run_lams(measurements: pd.DataFrame) -> pd.Series:
    """The configured λ of each measurement's run (``lam``, not the ``lam_now`` in force)."""
    return measurements["lam"] if len(measurements) else pd.Series(dtype=float)


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
            color = _color(colors, float(curve["lam"].iloc[0]))
            ax.plot(xs[keep], ys[keep], color=color, lw=1, alpha=0.8)
            drawn = True
    if not drawn:
        _say_empty(ax, "no curve points with x > 0")


# -- the Figure-2-style panels --------------------------------------------------------------


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
    fig, axes = _figure(3, size=(15.0, 4.4))
    colors = lam_colors([*table["lam"], *_run_lams(measurements)])
    draw_tstar(axes[0], table, fit, colors)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=7)
    draw_best_acc(axes[1], table)
    draw_curves(axes[2], measurements, colors, x="tau", y="test_acc")
    _lam_key(fig, axes[2], colors)
    for ax, letter in zip(axes, "abc", strict=True):
        ax.set_title(f"({letter})", loc="left", fontsize=10)
    return _save(fig, path, title)


# -- λ(t) schedules -------------------------------------------------------------------------


def plot_lambda_schedule(
    measurements: pd.DataFrame, path: str | os.PathLike, *, title: str = ""
) -> Path:
    """Accuracy (top) and λ(t) (bottom) against epochs, one colour per run.

    For AutoL2 vs fixed-λ comparisons (SPEC §3, Fig. 1c): test accuracy solid, training
    accuracy dashed; λ(t) is the measurements' ``lam_now`` column, the λ in force (log axis;
    symlog when some λ is 0). Runs are labelled by ``variant`` when present, else by their λ (marked
    "AutoL2" when λ changes during the run).

    Args:
        measurements: :func:`~l2dynamics.sweep.store.load_measurements` rows.
        path: the PNG to write.
        title: figure title.
    """
    fig, (top, bottom) = _figure(1, 2, size=(6.5, 6.0), sharex=True)
    top.set_ylabel("accuracy")
    bottom.set_ylabel("λ(t)")
    bottom.set_xlabel("epochs")
    groups = list(measurements.groupby("hash", sort=False)) if len(measurements) else []
    for i, (_, curve) in enumerate(groups):
        _schedule_run(top, bottom, curve.sort_values("epoch", kind="stable"), f"C{i % 10}")
    if not groups:
        _say_empty(top, "no measurements")
    _lam_axis_scale(bottom, measurements)
    kinds = [
        Line2D([], [], color="0.3", ls=s, label=n) for s, n in (("-", "test"), ("--", "train"))
    ]
    top.legend(handles=top.get_legend_handles_labels()[0] + kinds, fontsize=7)
    return _save(fig, path, title)


def _schedule_run(top: Axes, bottom: Axes, curve: pd.DataFrame, color: str) -> None:
    epoch = curve["epoch"].to_numpy(np.float64)
    top.plot(epoch, curve["test_acc"], color=color, lw=1.2, label=_run_label(curve))
    top.plot(epoch, curve["train_acc"], color=color, lw=0.8, ls="--")
    bottom.plot(epoch, curve["lam_now"], color=color, lw=1.2, drawstyle="steps-post")


def _run_label(curve: pd.DataFrame) -> str:
    """The run's λ (or "AutoL2, λ₀ = …"), after its variant's label when it has one."""
    lam = curve["lam_now"].to_numpy(np.float64)
    first = float(curve["lam"].iloc[0])
    varies = np.nanmax(lam) > np.nanmin(lam) if np.isfinite(lam).any() else False
    label = f"AutoL2, λ₀ = {first:g}" if varies else _lam(first)
    if "variant" in curve and isinstance(curve["variant"].iloc[0], str):
        return f"{curve['variant'].iloc[0]}: {label}"
    return label


def _lam_axis_scale(ax: Axes, measurements: pd.DataFrame) -> None:
    lam = measurements["lam_now"].to_numpy(np.float64) if len(measurements) else np.zeros(0)
    lam = lam[np.isfinite(lam)]
    if len(lam) and (lam > 0).all():
        ax.set_yscale("log")
    elif (lam > 0).any():
        ax.set_yscale("symlog", linthresh=float(lam[lam > 0].min()))


__all__ = [
    "X_LABELS",
    "Y_LABELS",
    "draw_best_acc",
    "draw_curves",
    "draw_tstar",
    "lam_colors",
    "plot_best_acc_vs_lam",
    "plot_curves",
    "plot_lambda_schedule",
    "plot_panels",
    "plot_tstar",
]
