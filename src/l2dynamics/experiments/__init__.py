"""The paper's experiments, one per figure, each at a paper scale and a CPU scale.

``FIGURES`` maps a figure name to the ``module:function`` of its runner (imported only when
that figure is run, so that ``l2dyn --help`` stays fast). Every figure has an experiment file in
``experiments/files``; it is a sweep figure (:mod:`l2dynamics.experiments.sweep_figure`) unless
its ``[experiment]`` table names a ``runner`` of its own (the theory of Figure 5). See
:mod:`l2dynamics.experiments.base` for the runner's contract.
"""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Callable
from importlib import resources
from typing import Any

from l2dynamics.errors import ConfigError
from l2dynamics.experiments.base import SCALES, ReproduceRequest

SWEEP_RUNNER = "l2dynamics.experiments.sweep_figure:run"


def _runners() -> dict[str, str]:
    """Each experiment file's runner by figure name: its ``[experiment] runner``, else the
    sweep runner (the files are read with tomllib, without the JAX-heavy spec module)."""
    folder = resources.files("l2dynamics.experiments") / "files"
    out = {}
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if path.name.endswith(".toml"):
            head = tomllib.loads(path.read_text()).get("experiment", {})
            out[path.name[:-5]] = head.get("runner", SWEEP_RUNNER)
    return out


FIGURES: dict[str, str] = _runners()


def runner(figure: str) -> Callable[[ReproduceRequest], dict[str, Any]]:
    """The runner of ``figure``; a ConfigError naming it when there is none."""
    if figure not in FIGURES:
        known = ", ".join(sorted(FIGURES))
        raise ConfigError(f"unknown figure {figure!r}; known: {known}")
    module, _, name = FIGURES[figure].partition(":")
    return getattr(importlib.import_module(module), name)


__all__ = ["FIGURES", "SCALES", "SWEEP_RUNNER", "ReproduceRequest", "runner"]
