"""The paper's experiments, one per figure, each at a paper scale and a CPU scale.

``FIGURES`` maps a figure name to the ``module:function`` of its runner (imported only when
that figure is run, so that ``l2dyn --help`` stays fast). See :mod:`l2dynamics.experiments.base`
for the runner's contract.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from l2dynamics.errors import ConfigError
from l2dynamics.experiments.base import SCALES, ReproduceRequest

FIGURES: dict[str, str] = {
    "fig5": "l2dynamics.experiments.fig5:run",
    "quickstart": "l2dynamics.experiments.sweep_figure:run",
    "fig2": "l2dynamics.experiments.sweep_figure:run",
}


def runner(figure: str) -> Callable[[ReproduceRequest], dict[str, Any]]:
    """The runner of ``figure``; a ConfigError naming it when there is none."""
    if figure not in FIGURES:
        known = ", ".join(sorted(FIGURES))
        raise ConfigError(f"unknown figure {figure!r}; known: {known}")
    module, _, name = FIGURES[figure].partition(":")
    return getattr(importlib.import_module(module), name)


__all__ = ["FIGURES", "SCALES", "ReproduceRequest", "runner"]
