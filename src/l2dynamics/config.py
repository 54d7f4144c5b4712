"""Frozen, validated configurations for one training run.

Every number of a run lives here. :func:`from_dict` builds a config from plain data (a CLI, a
sweep file) and rejects unknown keys and wrong types with a :class:`ConfigError` that names the
field; :func:`validate` checks ranges. Units: η per step, λ the coefficient of ``(λ/2)‖θ‖²``,
budgets in epochs, measurement periods in steps.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

from l2dynamics.errors import ConfigError

# The choices of the string-valued fields (the modules that implement them import these, so
# that configs stay importable without JAX, e.g. by the PyTorch adapter).
LOSSES = ("xent", "mse")
LR_SCHEDULES = ("constant", "step")
L2_MASKS = ("all", "weights")

MEASURE_KINDS = ("log", "every", "peak")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which data, which subset, and the augmentation applied to training batches."""

    name: str = "digits"
    data_dir: str | None = None
    n_train: int | None = None
    n_test: int | None = None
    subset_seed: int = 0
    balanced: bool = False
    standardize: bool = True
    even_odd: bool = False
    flip: bool = False
    crop: int = 0
    mixup_alpha: float = 0.0


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """A registered model name and its options (see :func:`l2dynamics.models.build_model`)."""

    name: str = "fc"
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One L2-regularized SGD run.

    The budget is ``budget_epochs`` if given, else ``budget_c/(η·λ)`` epochs, capped by
    ``max_epochs`` (required when λ = 0 and no ``budget_epochs`` is given).
    ``batch_size=None`` means full batch. ``measure="log"`` places measurements so that
    consecutive ones differ by at most a factor ``1 + measure_resolution`` in steps (after the
    first ``1/measure_resolution`` steps, which are all measured); ``"peak"`` does so only from
    1% of the budget on, where the peak is expected, and with 25% gaps before (fewer
    measurements for long runs; see :func:`l2dynamics.train.schedule.peak_window`);
    ``"every"`` measures every ``measure_every`` steps.

    ``peak_stop`` (opt-in) ends a run early once it has clearly passed its peak: at a
    measurement whose epoch is at least ``peak_stop`` × the epoch of the best test accuracy so
    far, with test accuracy at least ``peak_drop`` (a fraction, 0.01 = 1 point) below that best
    (see :func:`l2dynamics.train.stopping.passed_peak`).

    ``autol2=True`` schedules λ with AutoL2 (SPEC §3): ``lam`` is then the starting λ₀ (the
    paper's 0.1), divided by ``autol2_decay`` at each decay, with a refractory period of
    ``autol2_refractory/λ`` steps, measuring every ``autol2_period`` steps.
    """

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: str = "xent"
    eta: float = 0.1
    lam: float = 0.0
    momentum: float = 0.0
    lr_schedule: str = "constant"
    l2_mask: str = "all"
    batch_size: int | None = None
    budget_epochs: float | None = None
    budget_c: float | None = None
    max_epochs: float | None = None
    measure: str = "log"
    measure_every: int = 10
    measure_resolution: float = 0.05
    eval_batch_size: int = 1000
    seed: int = 0
    peak_stop: float | None = None
    peak_drop: float = 0.01
    autol2: bool = False
    autol2_decay: float = 10.0
    autol2_refractory: float = 0.1
    autol2_period: int = 10


def _check_type(name: str, value: Any, annotation: Any) -> None:
    hint = typing.get_origin(annotation)
    allowed = (
        typing.get_args(annotation) if hint in (typing.Union, types.UnionType) else (annotation,)
    )
    for kind in allowed:
        if kind is type(None) and value is None:
            return
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            return
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return
        if kind in (str, bool) and isinstance(value, kind):
            return
        if typing.get_origin(kind) is Mapping and isinstance(value, Mapping):
            return
    names = " or ".join(getattr(k, "__name__", str(k)) for k in allowed)
    raise ConfigError(f"{name}: expected {names}, got {value!r}")


def from_dict(cls: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    """Build the dataclass ``cls`` from a mapping, naming any unknown key or wrong type."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"unknown key '{prefix}{key}' (known: {', '.join(sorted(fields))})")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{prefix}{key}: expected a table, got {value!r}")
            value = from_dict(hint, value, prefix=f"{prefix}{key}.")
        else:
            _check_type(prefix + key, value, hint)
            if hint in (float, float | None) and isinstance(value, int):
                value = float(value)
        kwargs[key] = value
    return cls(**kwargs)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _positive(name: str, value: float | None) -> None:
    if value is not None:
        _require(math.isfinite(value) and value > 0, f"{name} must be > 0 (got {value})")


def validate(cfg: TrainConfig) -> TrainConfig:
    """Check ranges and choices; return ``cfg`` unchanged or raise :class:`ConfigError`."""
    _positive("eta", cfg.eta)
    _require(math.isfinite(cfg.lam) and cfg.lam >= 0, f"lam must be >= 0 (got {cfg.lam})")
    _require(0 <= cfg.momentum < 1, f"momentum must be in [0, 1) (got {cfg.momentum})")
    for name in ("budget_epochs", "budget_c", "max_epochs", "measure_resolution"):
        _positive(name, getattr(cfg, name))
    for name in ("batch_size", "measure_every", "eval_batch_size"):
        value = getattr(cfg, name)
        _require(value is None or value > 0, f"{name} must be > 0 (got {value})")
    choices = {
        "loss": LOSSES,
        "lr_schedule": LR_SCHEDULES,
        "l2_mask": L2_MASKS,
        "measure": MEASURE_KINDS,
    }
    for name, allowed in choices.items():
        value = getattr(cfg, name)
        _require(value in allowed, f"unknown {name} {value!r} (choose from {', '.join(allowed)})")
    for name in ("n_train", "n_test"):
        value = getattr(cfg.data, name)
        _require(value is None or value > 0, f"data.{name} must be > 0 (got {value})")
    _require(
        cfg.data.subset_seed >= 0, f"data.subset_seed must be >= 0 (got {cfg.data.subset_seed})"
    )
    _require(cfg.seed >= 0, f"seed must be >= 0 (got {cfg.seed})")
    _require(cfg.data.crop >= 0, f"data.crop must be >= 0 (got {cfg.data.crop})")
    _require(
        cfg.data.mixup_alpha >= 0, f"data.mixup_alpha must be >= 0 (got {cfg.data.mixup_alpha})"
    )
    _require(
        cfg.peak_stop is None or (math.isfinite(cfg.peak_stop) and cfg.peak_stop > 1),
        f"peak_stop must be > 1 (got {cfg.peak_stop})",
    )
    _require(0 < cfg.peak_drop < 1, f"peak_drop must be in (0, 1) (got {cfg.peak_drop})")
    if cfg.autol2:
        _require(cfg.lam > 0, f"lam (AutoL2's starting λ) must be > 0 (got {cfg.lam})")
        _require(cfg.autol2_decay > 1, f"autol2_decay must be > 1 (got {cfg.autol2_decay})")
        _positive("autol2_refractory", cfg.autol2_refractory)
        _require(cfg.autol2_period >= 1, f"autol2_period must be >= 1 (got {cfg.autol2_period})")
    budget_epochs(cfg)
    return cfg


def budget_epochs(cfg: TrainConfig) -> float:
    """The run's length in epochs: explicit, or ``c/(η·λ)`` capped by ``max_epochs``."""
    if cfg.budget_epochs is not None:
        _require(cfg.budget_c is None, "give budget_epochs or budget_c, not both")
        return cfg.budget_epochs
    if cfg.budget_c is None:
        _require(
            cfg.max_epochs is not None, "no budget: give budget_epochs, budget_c or max_epochs"
        )
        return cfg.max_epochs
    if cfg.lam == 0:
        _require(
            cfg.max_epochs is not None,
            "lam = 0 with budget_c: c/(eta*lam) is infinite, give max_epochs or budget_epochs",
        )
        return cfg.max_epochs
    epochs = cfg.budget_c / (cfg.eta * cfg.lam)
    return min(epochs, cfg.max_epochs) if cfg.max_epochs is not None else epochs
