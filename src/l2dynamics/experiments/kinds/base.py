"""What a kind of sweep figure is, and the small helpers their summaries share.

A kind is a function ``kind(exp, runs, curves, out) -> Outcome`` (:data:`KindFn`): from the
store's runs and measurements DataFrames (:func:`~l2dynamics.sweep.store.load_runs` /
``load_measurements``, with a ``variant`` column) it computes the figure's numbers with
:mod:`l2dynamics.analysis`, draws its figures into ``out`` and returns them with the summary
values and tables that :func:`l2dynamics.experiments.sweep_figure.run_experiment` writes to
``summary.json``, CSV files and the report.

This module imports no topic module and no package ``__init__``, so every topic module can
import it without a cycle.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from l2dynamics.experiments.spec import Experiment


@dataclasses.dataclass
class Outcome:
    """What a figure's analysis produced: summary values, figures (caption, PNG), tables.

    Attributes:
        summary: JSON-ready values merged into ``summary.json`` (None, not NaN, when unknown).
        figures: ``(caption, PNG path)`` pairs, the main figure first.
        tables: ``{name: frame}``, each written as ``name.csv``.
        notes: sentences for the report and ``summary.json`` (runs left out and why).
    """

    summary: dict[str, Any]
    figures: list[tuple[str, Path]]
    tables: dict[str, pd.DataFrame]
    notes: list[str] = dataclasses.field(default_factory=list)


KindFn = Callable[[Experiment, pd.DataFrame, pd.DataFrame, Path], Outcome]


def finite(value: float | None) -> float | None:
    """``value`` or None when it is NaN/inf (JSON has no NaN)."""
    return float(value) if value is not None and math.isfinite(value) else None


def rounded(value: float | None, digits: int = 4) -> float | None:
    """``value`` rounded to ``digits`` decimals, or None when it is None, NaN or inf."""
    value = finite(value) if value is not None else None
    return None if value is None else round(value, digits)


def num_key(value: float) -> str:
    """A number as a compact summary key (``1e-05``, ``0.2``, ``100``)."""
    return f"{value:g}"


def slug(label: str) -> str:
    """``label`` as a file-name part: ASCII letters, digits, ``-_.``; ``"all"`` when empty."""
    keep = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-_." else "-" for ch in label)
    return "-".join(p for p in keep.split("-") if p) or "all"


def run_pairs(table: pd.DataFrame) -> str:
    """The (η, λ) of each row of a run table, for a note: ``"(η=0.1, λ=0.001), …"``."""
    return ", ".join(f"(η={e:g}, λ={lam:g})" for e, lam in zip(table.eta, table.lam, strict=True))


__all__ = ["KindFn", "Outcome", "finite", "num_key", "rounded", "run_pairs", "slug"]
