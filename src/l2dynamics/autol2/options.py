"""AutoL2 options: plain Python, no JAX, shared by the JAX controller and the PyTorch adapter.

Defaults are the paper's (SPEC §3): λ₀ = 0.1, decay ×1/10, refractory constant 0.1 (a
refractory period of ``0.1/λ`` steps after each decay), a measurement every 10 steps, best
loss starting at +∞ and best error at 1. The tools built on these options (the training loop,
the optax transform, the PyTorch adapter) start λ instead at the scale-aware λ₀ of
:mod:`l2dynamics.autol2.start` unless λ₀ is given.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from typing import Any

from l2dynamics.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class AutoL2Options:
    """The constants of an AutoL2 schedule (hashable: usable as a static ``jit`` argument).

    Attributes:
        lam0: starting λ, the coefficient of ``(λ/2)‖θ‖²`` (coupled L2).
        decay: factor λ is divided by at each decay (> 1).
        refractory: refractory constant ``r``: after a decay to λ, no further decay until
            ``step > decay_step + r/λ`` (steps).
        period: ``k``, steps between measurements (used by the optax transform and the
            PyTorch adapter; the controller itself is fed measurements).
        initial_best_loss: best loss before any measurement; +∞ (SPEC), or 1.0 as in the
            paper's listing (differs only while losses exceed 1).
        initial_best_error: best error before any measurement (errors are fractions in
            [0, 1]).
        count_ties: if True a value *equal* to the best counts as above it, as in the authors'
            code (``minloss <= loss``); SPEC §3 says "above", so the default is False. With
            ties counted, a training error stuck at 0 triggers a decay every refractory period.
        start_refractory: if True the schedule starts inside a refractory period,
            ``min_step = r/λ₀`` steps, as in the authors' code; SPEC §3 starts at 0 (default).
    """

    lam0: float = 0.1
    decay: float = 10.0
    refractory: float = 0.1
    period: int = 10
    initial_best_loss: float = math.inf
    initial_best_error: float = 1.0
    count_ties: bool = False
    start_refractory: bool = False

    def __post_init__(self) -> None:
        for name in ("lam0", "decay", "refractory", "initial_best_loss", "initial_best_error"):
            object.__setattr__(self, name, _as_float(name, getattr(self, name)))
        for name in ("count_ties", "start_refractory"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}: expected a bool, got {getattr(self, name)!r}")
        _check_ranges(self)


INT32_MAX = 2**31 - 1


def initial_refractory_steps(options: AutoL2Options) -> float:
    """``r/λ₀`` in steps, the refractory period that belongs to λ₀, as the float64 nearest to
    the exact ratio of the options' decimal values (``r=0.3, λ₀=0.1`` gives 3.0, where
    float64 division gives 2.9999999999999996)."""
    ratio = Fraction(repr(options.refractory)) / Fraction(repr(options.lam0))
    return float(ratio)


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    if math.isnan(value):
        raise ConfigError(f"{name}: must not be NaN")
    return float(value)


def _check_ranges(options: AutoL2Options) -> None:
    if not 0.0 < options.lam0 < math.inf:
        raise ConfigError(f"lam0: must be positive and finite, got {options.lam0}")
    if not 1.0 < options.decay < math.inf:
        raise ConfigError(f"decay: must be > 1 and finite, got {options.decay}")
    if not 0.0 <= options.refractory < math.inf:
        raise ConfigError(f"refractory: must be >= 0 and finite, got {options.refractory}")
    period = options.period
    if isinstance(period, bool) or not isinstance(period, int) or period < 1:
        raise ConfigError(f"period: must be an integer >= 1 (steps), got {period!r}")


def resolve_options(options: AutoL2Options | None = None, **overrides: Any) -> AutoL2Options:
    """``options`` (default :class:`AutoL2Options`) with fields replaced by ``overrides``.

    Raises:
        ConfigError: an unknown option name (the message lists the known ones) or a bad value.
    """
    base = AutoL2Options() if options is None else options
    known = {f.name for f in dataclasses.fields(AutoL2Options)}
    for key in overrides:
        if key not in known:
            raise ConfigError(f"unknown AutoL2 option {key!r} (known: {', '.join(sorted(known))})")
    return dataclasses.replace(base, **overrides)
