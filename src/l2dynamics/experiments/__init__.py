"""The paper's experiments, one per figure, each at a paper scale and a CPU scale.

``FIGURES`` maps a figure name to the ``module:function`` of its runner (imported only when
that figure is run, so that ``l2dyn --help`` stays fast). Every experiment file in
``experiments/files`` is a sweep figure (:mod:`l2dynamics.experiments.sweep_figure`); the
figures that are not sweeps (the theory of Figure 5) have runners of their own. See
:mod:`l2dynamics.experiments.base` for the runner's contract.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib import resources
from typing import Any

from l2dynamics.errors import ConfigError
from l2dynamics.experiments.base import SCALES, ReproduceRequest


def _experiment_files() -> list[str]:
    """Names of the experiment files (read without importing the JAX-heavy spec module)."""
    folder = resources.files("l2dynamics.experiments") / "files"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


SWEEP_RUNNER = "l2dynamics.experiments.sweep_figure:run"
FIGURES: dict[str, str] = {
    **dict.fromkeys(_experiment_files(), SWEEP_RUNNER),
    "fig5": "l2dynamics.experiments.fig5:run",
}


def runner(figure: str) -> Callable[[ReproduceRequest], dict[str, Any]]:
    """The runner of ``figure``; a ConfigError naming it when there is none."""
    if figure not in FIGURES:
        known = ", ".join(sorted(FIGURES))
        raise ConfigError(f"unknown figure {figure!r}; known: {known}")
    module, _, name = FIGURES[figure].partition(":")
    return getattr(importlib.import_module(module), name)


__all__ = ["FIGURES", "SCALES", "ReproduceRequest", "runner"]
