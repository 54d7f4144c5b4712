"""AutoL2 (SPEC §3): an automatic schedule for the L2 coefficient λ.

- :mod:`~l2dynamics.autol2.options`: :class:`AutoL2Options` (plain Python).
- :mod:`~l2dynamics.autol2.start`: where λ starts: the scale-aware default and the
  budget-aware start (plain Python).
- :mod:`~l2dynamics.autol2.controller`: the state machine in JAX (``init``, ``update``,
  ``replay``), jittable and vmappable.
- :mod:`~l2dynamics.autol2.transform`: the optax transformation :func:`autol2`.
- :mod:`~l2dynamics.autol2.pure`: the same state machine in plain Python, for the PyTorch
  adapter :mod:`l2dynamics.torch`.

The JAX parts are imported on first use (PEP 562), so that ``l2dynamics.torch`` can use the
options and the plain-Python controller without importing JAX.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from l2dynamics.autol2.options import AutoL2Options, initial_refractory_steps, resolve_options
from l2dynamics.autol2.start import budget_lam0, step_scale_lam0

if TYPE_CHECKING:
    from l2dynamics.autol2.controller import AutoL2State, init, replay, update
    from l2dynamics.autol2.transform import (
        AutoL2TransformState,
        autol2,
        autol2_lam,
        find_autol2_state,
    )

_LAZY = {
    "AutoL2State": "controller",
    "init": "controller",
    "update": "controller",
    "replay": "controller",
    "AutoL2TransformState": "transform",
    "autol2": "transform",
    "autol2_lam": "transform",
    "find_autol2_state": "transform",
}

__all__ = [
    "AutoL2Options",
    "AutoL2State",
    "AutoL2TransformState",
    "autol2",
    "autol2_lam",
    "budget_lam0",
    "find_autol2_state",
    "init",
    "initial_refractory_steps",
    "replay",
    "resolve_options",
    "step_scale_lam0",
    "update",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
