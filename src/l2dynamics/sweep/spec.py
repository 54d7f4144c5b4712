"""Sweep files: a declarative (η, λ, seed) grid over one data set and model.

A sweep file is TOML::

    name = "fc-digits"
    [data]                      # DataConfig fields
    name = "digits"
    n_train = 512
    [model]
    name = "fc"
    options = { depth = 3, width = 512 }
    [train]                     # any other TrainConfig field: loss, momentum, batch_size, ...
    measure_resolution = 0.05
    [grid]
    eta = [0.1, 0.5]                                   # a list, or
    lam = { log_min = 1e-4, log_max = 1e-2, num = 5, zero = true }   # log-spaced (+ λ = 0)
    seeds = [0]
    [budget]
    c = 2.0                     # c/(η·λ) epochs ...
    max_epochs = 10000          # ... capped here
    zero_lam_epochs = 2000      # the budget of λ = 0 runs, or
    # zero_lam_time = 1e6       # ... a physical time η·epochs: λ = 0 runs get 1e6/η epochs
    # or: epochs = 100          (one fixed budget for every run)

Every run with the same seed starts from the same initialization (as in the paper), because
the initialization depends on the seed only. Validation names the offending field and is
complete before anything is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from l2dynamics.config import (
    AUTOL2_DEFAULT_RULES,
    PEAK_STOP_RULES,
    DataConfig,
    ModelConfig,
    TrainConfig,
    from_dict,
    validate,
)
from l2dynamics.errors import ConfigError
from l2dynamics.models import build_model

SWEEP_KEYS = ("name", "data", "model", "train", "grid", "budget")
GRID_KEYS = ("eta", "lam", "seeds")
BUDGET_KEYS = ("c", "max_epochs", "zero_lam_epochs", "zero_lam_time", "epochs")
FIXED_PER_RUN = ("data", "model", "eta", "lam", "seed", "budget_epochs", "budget_c", "max_epochs")


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A validated sweep: its name, the source text and one :class:`TrainConfig` per run.

    ``sections`` is its identity in a store (:func:`sweep_sections`): the data, model, train
    and budget settings that every run shares; a store refuses to resume with other ones.
    ``names`` maps each configuration field to the key of the file that sets it, for messages.
    """

    name: str
    runs: tuple[TrainConfig, ...]
    source: str = ""
    sections: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    names: Mapping[str, str] = dataclasses.field(default_factory=dict)


# Fields added to TrainConfig after l2dynamics 0.1.0: a run's configuration (and so its hash)
# holds them only when they differ from their defaults, so that runs stored before they existed
# keep their hashes and a sweep resumes into an older store.
LATER_FIELDS = (
    "autol2_preset",
    "autol2_count_ties",
    "autol2_start_refractory",
    "autol2_initial_best_loss",
    "autol2_measure",
    "autol2_measure_size",
    "autol2_lam_pred",
    "convention",
    "optimizer",
    "beta1",
    "beta2",
    "eps",
    "measure_layers",
)


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    """A run's configuration as plain JSON-able data (:data:`LATER_FIELDS` only when set; an
    AutoL2 run of the "default" preset also names the version of that preset's rules,
    :data:`l2dynamics.config.AUTOL2_DEFAULT_RULES`, and a run with the peak-aware stop the
    version of its rule, :data:`l2dynamics.config.PEAK_STOP_RULES`, so that a change of either
    changes the hash)."""
    out = dataclasses.asdict(cfg)
    out["model"]["options"] = dict(cfg.model.options)
    defaults = TrainConfig()
    for name in LATER_FIELDS:
        if out[name] == getattr(defaults, name):
            del out[name]
    if cfg.autol2 and cfg.autol2_preset == "default":
        out["autol2_default_rules"] = AUTOL2_DEFAULT_RULES
    if cfg.peak_stop is not None:
        out["peak_stop_rules"] = PEAK_STOP_RULES
    return out


# Keys of :func:`config_dict` that name the version of a rule: in a run's hash (a run trained
# under older rules is not current), not in a sweep's identity (a store resumed after a rule
# changed keeps its sweep; its runs get new hashes, as after a change of grid).
RULE_VERSIONS = ("autol2_default_rules", "peak_stop_rules")


def run_hash(cfg: TrainConfig) -> str:
    """A stable identifier of a run: sha256 of its canonical JSON configuration (16 hex)."""
    text = json.dumps(config_dict(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# The sections of a sweep file that make its identity in a store: only [grid] (and the name)
# may change when a sweep resumes into the same store.
IDENTITY_SECTIONS = ("data", "model", "train", "budget")


def sweep_sections(base: TrainConfig, budget: Mapping[str, Any]) -> dict[str, Any]:
    """A sweep's identity: its data, model and train settings as the runs hold them (so that a
    value written twice ways, ``1`` or ``1.0``, or a default written out, is the same) and its
    ``[budget]`` table as written (its rules are not fields of a run)."""
    shared = config_dict(base)
    data, model = shared.pop("data"), shared.pop("model")
    train = {k: v for k, v in shared.items() if k not in FIXED_PER_RUN + RULE_VERSIONS}
    budget = {k: _plain_number(v) for k, v in budget.items()}
    return {"data": data, "model": model, "train": train, "budget": budget}


def section_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The keys where two identities (:func:`sweep_sections`) differ, dotted and sorted, each
    as ``key: old -> new`` (``(none)`` where one of them lacks it). Rule versions
    (:data:`RULE_VERSIONS`), which identities written before they were left out may hold, are
    not compared."""
    old, new = _without_rule_versions(old), _without_rule_versions(new)
    return [f"{k}: {_show(a)} -> {_show(b)}" for k, a, b in _differences(old, new, "")]


def _without_rule_versions(sections: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(sections)
    if isinstance(out.get("train"), Mapping):
        out["train"] = {k: v for k, v in out["train"].items() if k not in RULE_VERSIONS}
    return out


def _differences(old: Any, new: Any, prefix: str) -> list[tuple[str, Any, Any]]:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out = []
        for key in sorted(set(old) | set(new)):
            a, b = old.get(key, _MISSING), new.get(key, _MISSING)
            out += _differences(a, b, f"{prefix}{key}.")
        return out
    return [] if old == new else [(prefix.rstrip("."), old, new)]


_MISSING = object()


def _plain_number(value: Any) -> Any:
    """Ints as floats (``c = 2`` is ``c = 2.0``); anything else as it is."""
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _show(value: Any) -> str:
    return "(none)" if value is _MISSING else json.dumps(value, default=str)


def file_names(budget: Mapping[str, Any]) -> dict[str, str]:
    """The sweep file key that sets each configuration field (``budget_epochs`` ->
    ``budget.epochs``, ``momentum`` -> ``train.momentum``), for messages."""
    names = {f.name: f"train.{f.name}" for f in dataclasses.fields(TrainConfig)}
    names |= {f"data.{f.name}": f"data.{f.name}" for f in dataclasses.fields(DataConfig)}
    names |= {
        "eta": "grid.eta",
        "lam": "grid.lam",
        "seed": "grid.seeds",
        "budget_c": "budget.c",
        "max_epochs": "budget.max_epochs",
    }
    epochs_key = next(
        (k for k in ("epochs", "zero_lam_epochs", "zero_lam_time") if k in budget), "epochs"
    )
    names["budget_epochs"] = f"budget.{epochs_key}"
    return names


def _number(field: str, value: Any, *, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{field}: expected a number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{field}: must be {'>= 0' if allow_zero else '> 0'} (got {value})")
    return float(value)


def _axis(field: str, spec: Any, *, allow_zero: bool) -> list[float]:
    """A grid axis: a list of numbers, or ``{log_min, log_max, num[, zero]}``."""
    if isinstance(spec, list):
        values = [_number(f"{field}[{i}]", v, allow_zero=allow_zero) for i, v in enumerate(spec)]
    elif isinstance(spec, Mapping):
        unknown = set(spec) - {"log_min", "log_max", "num", "zero"}
        if unknown:
            raise ConfigError(f"unknown key '{field}.{sorted(unknown)[0]}'")
        lo = _number(f"{field}.log_min", spec.get("log_min"), allow_zero=False)
        hi = _number(f"{field}.log_max", spec.get("log_max"), allow_zero=False)
        num = spec.get("num")
        if isinstance(num, bool) or not isinstance(num, int) or num < 1:
            raise ConfigError(f"{field}.num: expected an integer >= 1, got {num!r}")
        if hi < lo:
            raise ConfigError(f"{field}.log_max must be >= {field}.log_min")
        values = [float(v) for v in np.geomspace(lo, hi, num)]
        if spec.get("zero", False):
            if not allow_zero:
                raise ConfigError(f"{field}.zero: 0 is not allowed for {field}")
            values = [0.0, *values]
    else:
        raise ConfigError(f"{field}: expected a list or a log-range table, got {spec!r}")
    if not values:
        raise ConfigError(f"{field}: empty grid")
    if len(set(values)) != len(values):
        raise ConfigError(f"{field}: repeated values")
    return values


def _seeds(spec: Any) -> list[int]:
    if not isinstance(spec, list) or not spec:
        raise ConfigError(f"grid.seeds: expected a non-empty list of integers, got {spec!r}")
    for i, s in enumerate(spec):
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ConfigError(f"grid.seeds[{i}]: expected an integer >= 0, got {s!r}")
    return list(spec)


def _check_keys(table: Mapping[str, Any], known: tuple[str, ...], prefix: str) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(f"unknown key '{prefix}{key}' (known: {', '.join(known)})")


def _budget(spec: Mapping[str, Any], lam: float, eta: float) -> dict[str, float | None]:
    """The TrainConfig budget fields of one run from the ``[budget]`` table."""
    if "epochs" in spec:
        return {"budget_epochs": _number("budget.epochs", spec["epochs"], allow_zero=False)}
    if "c" not in spec:
        raise ConfigError("budget: give 'c' (c/(eta*lam) epochs) or 'epochs'")
    if lam == 0:
        return {"budget_epochs": _zero_lam_epochs(spec, eta)}
    cap = spec.get("max_epochs")
    return {
        "budget_c": _number("budget.c", spec["c"], allow_zero=False),
        "max_epochs": None if cap is None else _number("budget.max_epochs", cap, allow_zero=False),
    }


def _zero_lam_epochs(spec: Mapping[str, Any], eta: float) -> float:
    """The budget (epochs) of a λ = 0 run: ``zero_lam_epochs``, or ``zero_lam_time``/η."""
    if "zero_lam_epochs" in spec:
        return _number("budget.zero_lam_epochs", spec["zero_lam_epochs"], allow_zero=False)
    if "zero_lam_time" in spec:
        epochs = _number("budget.zero_lam_time", spec["zero_lam_time"], allow_zero=False) / eta
        cap = spec.get("max_epochs")
        return (
            epochs
            if cap is None
            else min(epochs, _number("budget.max_epochs", cap, allow_zero=False))
        )
    raise ConfigError("budget.zero_lam_epochs: required when the grid has lam = 0")


def parse_sweep(data: Mapping[str, Any], source: str = "") -> Sweep:
    """Validate a sweep table and expand it into runs (η-major, then λ, then seed)."""
    _check_keys(data, SWEEP_KEYS, "")
    for key in ("grid", "budget"):
        if not isinstance(data.get(key), Mapping):
            raise ConfigError(f"{key}: a [{key}] table is required")
    _check_keys(data["grid"], GRID_KEYS, "grid.")
    _check_keys(data["budget"], BUDGET_KEYS, "budget.")
    train = data.get("train", {})
    for key in FIXED_PER_RUN:
        if key in train:
            raise ConfigError(f"train.{key}: set it in [data], [model], [grid] or [budget]")
    base = from_dict(
        TrainConfig, {"data": data.get("data", {}), "model": data.get("model", {}), **train}
    )
    build_model(base.model.name, 10, **dict(base.model.options))  # option names and ranges
    etas = _axis("grid.eta", data["grid"].get("eta"), allow_zero=False)
    lams = _axis("grid.lam", data["grid"].get("lam"), allow_zero=True)
    seeds = _seeds(data["grid"].get("seeds", [0]))
    names = file_names(data["budget"])
    runs = []
    for eta in etas:
        for lam in lams:
            for seed in seeds:
                cfg = dataclasses.replace(
                    base, eta=eta, lam=lam, seed=seed, **_budget(data["budget"], lam, eta)
                )
                try:
                    runs.append(validate(cfg))
                except ConfigError as exc:
                    raise exc.renamed(names) from None
    name = data.get("name", "sweep")
    if not isinstance(name, str):
        raise ConfigError(f"name: expected a string, got {name!r}")
    sections = sweep_sections(base, data["budget"])
    return Sweep(name, tuple(runs), source, sections, names)


def combine_sweeps(name: str, parts: Sequence[tuple[str, Sweep]]) -> Sweep:
    """One sweep owning a store that several sweeps (``(label, sweep)``: an experiment's
    variants) train into: all their runs, and as identity each part's sections by label."""
    runs = tuple(c for _, part in parts for c in part.runs)
    sections = {label: dict(part.sections) for label, part in parts}
    names = dict(parts[0][1].names) if parts else {}
    source = "\n".join(part.source for _, part in parts)
    return Sweep(name, runs, source, sections, names)


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file (TOML)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"sweep file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"sweep file {path}: not valid TOML ({exc})") from None
    return parse_sweep(data, text)


__all__ = [
    "DataConfig",
    "ModelConfig",
    "Sweep",
    "combine_sweeps",
    "config_dict",
    "load_sweep",
    "parse_sweep",
    "run_hash",
    "section_changes",
    "sweep_sections",
]
