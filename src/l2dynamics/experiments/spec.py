"""Declarative experiment files: one TOML file per paper figure, at paper and CPU scale.

An experiment file (``experiments/files/FIG.toml``) has:

- ``[experiment]``: ``figure`` (its name), ``title``, ``kind`` (the analysis that draws it:
  see :mod:`l2dynamics.experiments.sweep_figure`), ``shows`` (what the paper shows), and
  kind-specific settings (e.g. ``budgets`` for fixed-budget panels), with
  ``[experiment.cpu]`` / ``[experiment.paper]`` tables overriding them per scale.
- ``[sweep]``: a complete sweep (the tables of a sweep file: data, model, train, grid, budget)
  at the paper's scale: the paper-scale values are the defaults.
- ``[cpu]``: the overrides that make the CPU scale (deep-merged into ``[sweep]``; a nested
  table merges key by key, any other value replaces; a table naming another ``name`` than
  the one it overrides, another data set or model, replaces it whole).
- ``[[variants]]`` (optional): several sweeps in one figure, each with a ``label`` and
  overrides merged into the scale's sweep (e.g. σ_w values, or BatchNorm on/off); a variant
  may hold a ``cpu`` table of its own applied at CPU scale only.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from l2dynamics.errors import ConfigError
from l2dynamics.experiments import FIGURES, SWEEP_RUNNER
from l2dynamics.sweep.spec import Sweep, parse_sweep

FILES = "files"


@dataclass(frozen=True)
class Experiment:
    """A parsed experiment file: its header and the sweeps of one scale, by variant label."""

    figure: str
    title: str
    kind: str
    settings: dict[str, Any]
    sweeps: tuple[tuple[str, Sweep], ...]


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: tables merge key by key, every other value of ``over`` replaces. A table of
    ``over`` whose ``name`` differs from its base's replaces it whole: another model's options
    (a WRN's depth at paper scale) do not apply to the model the CPU scale names (a CNN)."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if (
            isinstance(value, Mapping)
            and isinstance(out.get(key), Mapping)
            and _same_name(out[key], value)
        ):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _same_name(base: Mapping[str, Any], over: Mapping[str, Any]) -> bool:
    return "name" not in over or over["name"] == base.get("name")


def experiment_names() -> list[str]:
    """The figures whose experiment file is a sweep figure's (not one naming its own runner)."""
    return sorted(name for name, run in FIGURES.items() if run == SWEEP_RUNNER)


def read_file(figure: str) -> dict[str, Any]:
    """The raw table of ``files/FIG.toml``."""
    path = resources.files("l2dynamics.experiments") / FILES / f"{figure}.toml"
    if not path.is_file():
        raise ConfigError(f"no experiment file for figure {figure!r}")
    return tomllib.loads(path.read_text())


def scale_sweeps(data: Mapping[str, Any], scale: str) -> list[tuple[str, dict[str, Any]]]:
    """The sweep tables of one scale, one per variant (label "" when there are none)."""
    base = dict(data["sweep"])
    if scale == "cpu":
        base = merge(base, data.get("cpu", {}))
    variants = data.get("variants") or [{"label": ""}]
    out = []
    for variant in variants:
        over = {k: v for k, v in variant.items() if k not in ("label", "cpu")}
        table = merge(base, over)
        if scale == "cpu":
            table = merge(table, variant.get("cpu", {}))
        label = str(variant.get("label", ""))
        table["name"] = f"{data['experiment']['figure']}-{scale}" + (f"-{label}" if label else "")
        out.append((label, table))
    return out


def load_experiment(
    figure: str, scale: str, data_dir: str | None = None, *, text: str | None = None
) -> Experiment:
    """Parse ``files/FIG.toml`` (or the TOML ``text``) at ``scale`` ('cpu' or 'paper'), with
    the user's data directory."""
    if scale not in ("cpu", "paper"):
        raise ConfigError(f"unknown scale {scale!r} (choose from cpu, paper)")
    data = read_file(figure) if text is None else tomllib.loads(text)
    head = dict(data.get("experiment", {}))
    for key in ("figure", "title", "kind"):
        if key not in head:
            raise ConfigError(f"experiment file {figure}: [experiment].{key} is required")
    sweeps = []
    for label, table in scale_sweeps(data, scale):
        if data_dir is not None:
            table = merge(table, {"data": {"data_dir": data_dir}})
        sweeps.append((label, parse_sweep(table, source=f"{figure}.toml ({scale})")))
    skip = ("figure", "title", "kind", "cpu", "paper")
    settings = merge({k: v for k, v in head.items() if k not in skip}, head.get(scale, {}))
    return Experiment(head["figure"], head["title"], head["kind"], settings, tuple(sweeps))


def file_path(figure: str) -> Path:
    """Where the experiment file of ``figure`` lives (for messages)."""
    return Path(str(resources.files("l2dynamics.experiments") / FILES / f"{figure}.toml"))
