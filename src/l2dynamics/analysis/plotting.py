"""Plotting machinery shared by every analysis figure: canvas, PNG files, colours, λ axes, keys.

The topic modules (:mod:`.tstar`, :mod:`.budgets`, :mod:`.fit_time`, :mod:`.catapult`,
:mod:`.curves`, :mod:`.autol2_vs_fixed`) draw their figures with these functions, so that every
figure follows the same conventions:

- matplotlib's object-oriented API on an Agg canvas (:func:`figure`: no pyplot, no global
  backend change, safe off the main thread); every ``plot_*`` writes a PNG at ``path``
  atomically (:func:`save_png`) and returns ``path``, and draws whatever the data hold: empty
  or all-NaN inputs give a figure that says so (:func:`say_empty`) instead of an error.
- λ is coloured on one log colormap (:func:`lam_colors`, λ = 0 black), so a λ has the same
  colour in every panel; other sequences (budgets T, η, σ_w) get another colormap
  (:func:`seq_colors`), so they are never read as a λ.
- λ and η axes are logarithmic, as in the paper. λ = 0 has no place on a log axis: it is drawn
  at the left edge (:func:`zero_x`), beyond a dotted line labelled "λ = 0" (:func:`mark_zero`).
"""

from __future__ import annotations

import math
import os
import string
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

from l2dynamics.files import atomic_path

DPI = 150
# viridis without its palest end, so every λ stays visible on white.
LAM_CMAP = ListedColormap(colormaps["viridis"](np.linspace(0.0, 0.9, 256)), name="lam")
ZERO_COLOR = (0.0, 0.0, 0.0, 1.0)
# Budgets T and other non-λ sequences get their own colormap, so they are never read as a λ.
SEQ_CMAP = ListedColormap(colormaps["plasma"](np.linspace(0.0, 0.85, 256)), name="seq")
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1)), (0, (1, 1)))
# At most this many values get their own legend entry or tick label; more would overlap, so
# they get a colorbar (:func:`lam_key`), a "… N more" entry (:func:`lam_legend`) or no labels.
MAX_LEGEND = 8
ZERO_OFFSET_DECADES = 0.6  # λ = 0 sits this many decades left of the smallest positive value

Colors = Mapping[float, tuple]


# -- colours --------------------------------------------------------------------------------


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


def seq_colors(values: Sequence[float]) -> dict[float, tuple]:
    """One RGBA colour per distinct positive value (budgets T, η, σ_w) on a log colormap."""
    distinct = sorted({float(v) for v in values if np.isfinite(v) and v > 0})
    if not distinct:
        return {}
    norm = LogNorm(distinct[0], distinct[-1])
    return {v: tuple(SEQ_CMAP(_unit(norm, v))) for v in distinct}


def color_of(colors: Colors, lam: float) -> tuple:
    """The colour of λ in ``colors`` (nearest key up to rounding; grey if absent)."""
    if lam in colors:
        return colors[lam]
    for key, value in colors.items():
        if math.isclose(key, lam, rel_tol=1e-9, abs_tol=0.0):
            return value
    return (0.5, 0.5, 0.5, 1.0)


# -- figures and files ----------------------------------------------------------------------


def figure(
    ncols: int = 1, nrows: int = 1, *, size: tuple[float, float], sharex: bool = False
) -> tuple[Figure, list[Axes]]:
    """A constrained-layout Agg figure of ``size`` inches and its axes, row by row."""
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=sharex, squeeze=False)
    return fig, list(axes.ravel())


def wrap_title(title: str, width_in: float, fontsize: float = 12.0) -> str:
    """``title`` broken into lines that fit a figure ``width_in`` inches wide (≈0.55 em/char)."""
    chars = max(20, int(width_in * 72.0 / (0.55 * fontsize)))
    return textwrap.fill(title, chars)


def save_png(fig: Figure, path: str | os.PathLike, title: str = "") -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically, its title wrapped to the figure's width."""
    if title:
        fig.suptitle(wrap_title(title, fig.get_figwidth()))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return path


def say_empty(ax: Axes, what: str) -> None:
    """Write ``what`` in grey in the middle of an axes that has nothing to show."""
    ax.text(0.5, 0.5, what, transform=ax.transAxes, ha="center", va="center", color="0.4")


def label_panels(axes: Sequence[Axes]) -> None:
    """Title the panels "(a)", "(b)", … at their top left, as the paper's figures."""
    for ax, letter in zip(axes, string.ascii_lowercase, strict=False):
        ax.set_title(f"({letter})", loc="left", fontsize=10)


def save_panels(fig: Figure, axes: Sequence[Axes], path: str | os.PathLike, title: str) -> Path:
    """:func:`label_panels` then :func:`save_png`: the end of every multi-panel figure."""
    label_panels(axes)
    return save_png(fig, path, title)


def lam_panel(ax: Axes, frame: pd.DataFrame, *, ylabel: str, empty: str) -> float | None:
    """Start a panel of values against λ (one per row of ``frame``, column ``lam``).

    Sets the y label and a log λ axis (:func:`lam_axis`). Returns where λ = 0 is drawn, or
    None after writing ``empty`` on the panel when ``frame`` has no rows.
    """
    ax.set_ylabel(ylabel)
    lams = frame["lam"].to_numpy(np.float64) if len(frame) else np.zeros(0)
    x0 = lam_axis(ax, lams)
    if not len(frame):
        say_empty(ax, empty)
        return None
    return x0


# -- λ keys ---------------------------------------------------------------------------------


def lam_label(value: float) -> str:
    """``"λ = value"`` in the compact form used by every legend."""
    return f"λ = {value:g}"


def lam_key(fig: Figure, ax: Axes, colors: Colors, handles: list | None = None) -> None:
    """Say which colour is which λ: legend entries for few λ, a log colorbar for many.

    λ = 0 keeps a legend entry either way; ``handles`` are listed first.
    """
    handles = list(handles or [])
    positive = [v for v in colors if v > 0]
    zero = [v for v in colors if v <= 0]
    if len(positive) > MAX_LEGEND:
        mappable = ScalarMappable(norm=_lam_norm(positive), cmap=LAM_CMAP)
        fig.colorbar(mappable, ax=ax, label="λ")
        positive = []
    for v in zero + positive:
        handles.append(
            Line2D([], [], color=color_of(colors, v), marker="o", ls="", label=lam_label(v))
        )
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="best")


def lam_legend(ax: Axes, colors: Colors, extra: Sequence = ()) -> None:
    """Legend of ``extra`` handles, then the first :data:`MAX_LEGEND` λ colours (no colorbar:
    for panels that share a figure with another key), then "… N more λ"."""
    handles = list(extra)
    for lam in list(colors)[:MAX_LEGEND]:
        handles.append(Line2D([], [], color=colors[lam], marker="o", ls="", label=lam_label(lam)))
    if len(colors) > MAX_LEGEND:
        handles.append(Line2D([], [], ls="", label=f"… {len(colors) - MAX_LEGEND} more λ"))
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="best")


# -- log axes and λ = 0 ---------------------------------------------------------------------


def zero_x(positive: np.ndarray) -> float:
    """Where λ = 0 is drawn on a log axis: left of the smallest positive value (1 if none)."""
    positive = positive[np.isfinite(positive) & (positive > 0)]
    return float(positive.min() / 10**ZERO_OFFSET_DECADES) if len(positive) else 1.0


def mark_zero(ax: Axes, x0: float) -> None:
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


def placed(lams: np.ndarray, x0: float) -> np.ndarray:
    """Where each λ is drawn on a log λ axis: λ itself, or ``x0`` (:func:`zero_x`) for λ = 0."""
    return np.where(lams > 0, lams, x0)


def grid_ticks(ax: Axes, values: Iterable[float], axis: str = "x") -> None:
    """Label a log axis at the grid's own values when there are few, never at minor ticks
    (their labels overlap when the axis spans about a decade)."""
    distinct = np.unique(np.asarray(values, np.float64))
    distinct = distinct[np.isfinite(distinct) & (distinct > 0)]
    target = ax.xaxis if axis == "x" else ax.yaxis
    if 0 < len(distinct) <= MAX_LEGEND:
        setter = ax.set_xticks if axis == "x" else ax.set_yticks
        setter(distinct, labels=[f"{v:g}" for v in distinct])
    target.set_minor_formatter(NullFormatter())


def lam_axis(ax: Axes, lams: np.ndarray) -> float:
    """Make ``ax``'s x axis a log λ axis; returns where λ = 0 is drawn (marked when the data
    have λ = 0)."""
    ax.set_xscale("log")
    ax.set_xlabel("λ")
    ax.xaxis.set_minor_formatter(NullFormatter())
    x0 = zero_x(lams)
    if (lams == 0).any():
        mark_zero(ax, x0)
    grid_ticks(ax, lams)
    return x0


__all__ = [
    "DPI",
    "LAM_CMAP",
    "LINESTYLES",
    "MAX_LEGEND",
    "SEQ_CMAP",
    "ZERO_COLOR",
    "Colors",
    "color_of",
    "figure",
    "grid_ticks",
    "label_panels",
    "lam_axis",
    "lam_colors",
    "lam_key",
    "lam_label",
    "lam_legend",
    "lam_panel",
    "mark_zero",
    "placed",
    "save_panels",
    "save_png",
    "say_empty",
    "seq_colors",
    "wrap_title",
    "zero_x",
]
