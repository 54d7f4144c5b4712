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
# How the data loss and the L2 term are normalized (SPEC §1). "sm": the supplementary
# material's, CE/(2k) (MSE 1/(2k)) with (λ/2)·‖θ‖², the default; "script": the authors' released
# script's, CE/k (MSE unchanged: its 0.5·mean is already 1/(2k)) with λ·‖θ‖². For cross-entropy
# the script's (η, λ) trains as the SM's (2η, λ); for MSE as the SM's (η, 2λ).
CONVENTIONS = ("sm", "script")
# The factor of λ in the L2 gradient of each convention: ``(λ/2)‖θ‖²`` gives λθ, ``λ‖θ‖²`` 2λθ.
L2_FACTORS = {"sm": 1.0, "script": 2.0}
LR_SCHEDULES = ("constant", "step")
L2_MASKS = ("all", "weights")
# The optimizers (SPEC §6; :mod:`l2dynamics.optim` builds them): "sgd", the paper's SGD with
# coupled L2 (λθ enters the gradient before the momentum buffer), the default; "sgdw", SGD with
# decoupled weight decay θ ← θ − η·(v + λθ); "adam", Adam with coupled L2 (λθ enters the gradient
# before Adam's moments); "adamw", Adam with decoupled weight decay scaled by η, as optax.adamw
# and torch.optim.AdamW define it.
OPTIMIZERS = ("sgd", "sgdw", "adam", "adamw")
# The optimizers whose decay is decoupled from the loss: λ is not a coefficient of the loss, so
# the "script" convention (which doubles λ's factor in the gradient) has no meaning for them.
DECOUPLED = ("sgdw", "adamw")
# The options each optimizer takes besides η and λ; any other set to a value other than its
# field's default is an error that names it (validate).
OPTIMIZER_OPTIONS = {
    "sgd": ("momentum",),
    "sgdw": ("momentum",),
    "adam": ("beta1", "beta2", "eps"),
    "adamw": ("beta1", "beta2", "eps"),
}
# Adam's β₁, β₂, ε where the fields are unset (None): optax's and PyTorch's defaults.
ADAM_DEFAULTS = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}

MEASURE_KINDS = ("log", "every", "peak")
# AutoL2's presets: where λ starts when ``lam`` is not given (0), and the controller's rules.
# "default": the scale-aware start (:mod:`l2dynamics.autol2.start`) with SPEC §3's rules;
# "paper": the SM's Algorithm 1 as listed, λ₀ = PAPER_LAM0 and the best loss starting at 1;
# "authors-code": what the authors' script does, λ₀ = PAPER_LAM0, ties count as rises and the
# run starts inside a refractory period.
AUTOL2_PRESETS = ("default", "paper", "authors-code")
PAPER_LAM0 = 0.1
# What AutoL2 measures every period, at the parameters before that step's update: the step's
# own minibatch (SPEC §3 and the authors' script, which draws the minibatch that the update then
# trains on), a fixed random subset of ``autol2_measure_size`` training examples, or the whole
# training set (both without augmentation). Unset (None), the preset's: "subset" for "default",
# "minibatch" for "paper" and "authors-code".
AUTOL2_MEASURES = ("minibatch", "subset", "train")
# The version of the "default" preset's rules (start and measurement). It enters the hash of
# every run that uses that preset, so that a store never keeps a run trained under older rules
# as if it were current: 1, the reaction bound alone, minibatch measurements; 2, with the budget
# floor; 3, measuring a fixed subset of the training set (issue 17's validation).
AUTOL2_DEFAULT_RULES = 3
# The version of the peak-aware stop's rule (:func:`l2dynamics.train.stopping.passed_peak`); it
# enters the hash of every run with ``peak_stop`` set, for the same reason: 1, past the paper's
# t* alone (it stopped a run at step 1 whose accuracy at step 0 happened to be its best); 2, also
# past the near-peak interval of the toolkit's t* (:func:`l2dynamics.results.near_peak`); 3, and
# no peak within the first epoch (``stopping.MIN_PEAK_EPOCHS``: it stopped a CNN at step 3).
PEAK_STOP_RULES = 3
# The full test set of each data set (examples): the standard error of a test accuracy, and so
# the toolkit's t*, depends on it.
TEST_SET_SIZES = {"digits": 500, "mnist": 10_000, "cifar10": 10_000}
# The full training set of each (examples): the steps per epoch of a run without n_train, for
# the timescale in epochs (the digits: 1,797 images less the 500 test images).
TRAIN_SET_SIZES = {"digits": 1297, "mnist": 60_000, "cifar10": 50_000}

# Defaults of the command line that differ from the fields' below on purpose (`l2dyn train`
# reads them from here). The field's ``lam = 0.0`` (no L2) is the neutral value for library
# code; a command run without --lam trains with L2, at a large λ whose run peaks early
# (t* ≈ c/(η·λ)); with --autol2 and no --lam, AutoL2 starts where its preset says.
CLI_LAM = 0.01
# The field's ``budget_c = None`` means "no c-rule"; a command given no budget at all trains for
# Figure 2's budget of c/(η·λ) epochs with c = 2 instead of refusing to start.
CLI_BUDGET_C = 2.0

# Checkpoints of a sweep's runs in training (l2dyn sweep, sweep.runner.run_sweep): saved at a
# measurement point once this many seconds of wall time have passed since the last one. Not a
# field of TrainConfig: it changes no result (a resumed run ends bit for bit as uninterrupted),
# so it enters neither a run's hash nor its group. The value costs well under 2% of a sweep's
# wall time and bounds the work a kill loses to about a minute per pool
# (benchmarks/RESULTS-checkpoints.md).
CHECKPOINT_EVERY_S = 60.0

# predict-l2's calibration run (:mod:`l2dynamics.predict`; here so that the CLI can show them
# without importing JAX).
CAL_LAM = 0.01  # the authors' calibration λ (SGD, coupled or decoupled)
# Adam's η is ~100× smaller than SGD's, so λ = 0.01 would calibrate over ~10⁵ steps; Adam and
# AdamW calibrate at the λ whose decay rate per step is η·λ = 1e-3 instead: τ_iter = 1,000 steps,
# the timescale of the authors' calibration at SGD's usual η = 0.1 (calibration_lam).
CAL_ETA_LAM_ADAM = 1e-3
PEAK_STOP = 3.0  # stop at >= 3·t* once test accuracy is peak_drop below its best
MAX_C = 4.0  # cap: the calibration runs at most 4/(η·λ) epochs (τ = 4)


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


def test_set_size(data: DataConfig) -> int:
    """The number of test examples a run is measured on: ``n_test``, else the whole test set."""
    full = TEST_SET_SIZES[data.name]
    return full if data.n_test is None else min(int(data.n_test), full)


def train_set_size(data: DataConfig) -> int:
    """The number of training examples of a run: ``n_train``, else the whole training set."""
    full = TRAIN_SET_SIZES[data.name]
    return full if data.n_train is None else min(int(data.n_train), full)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """A registered model name and its options (see :func:`l2dynamics.models.build_model`)."""

    name: str = "fc"
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One L2-regularized training run.

    ``optimizer`` (:data:`OPTIMIZERS`) is ``"sgd"`` (coupled L2, heavy-ball ``momentum``; the
    paper's and the default), ``"sgdw"`` (decoupled weight decay, heavy-ball ``momentum``),
    ``"adam"`` (coupled L2) or ``"adamw"`` (decoupled weight decay scaled by η); the Adam ones
    take ``beta1``, ``beta2``, ``eps`` (None: :data:`ADAM_DEFAULTS`, optax's and PyTorch's
    0.9, 0.999, 1e-8). The timescale of the decay in steps and epochs:
    :func:`timescale_steps`, :func:`timescale_epochs`.

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

    ``autol2=True`` schedules λ with AutoL2 (SPEC §3): λ starts at λ₀, is divided by
    ``autol2_decay`` at each decay, with a refractory period of ``autol2_refractory/λ`` steps,
    measuring every ``autol2_period`` steps. λ₀ is ``lam`` when given (> 0); with ``lam = 0``
    it is ``3·autol2_lam_pred`` when that is given (the budget-aware start from a
    ``predict-l2`` calibration, :func:`l2dynamics.autol2.start.budget_lam0`), else the start of
    ``autol2_preset``: ``"default"``, the scale-aware start ``(1−μ)/(η·min(3·period/0.03, T))``
    for a budget of T steps (:func:`l2dynamics.autol2.start.step_scale_lam0`; half of it in the
    script convention, whose λ acts twice as fast); ``"paper"``, 0.1
    with the best loss starting at 1 (the SM's listing); ``"authors-code"``, 0.1 with the
    authors' script's rules. The controller's other rules, each the preset's when None:
    ``autol2_count_ties`` (a value equal to the best counts as a rise),
    ``autol2_start_refractory`` (start inside a refractory period ``r/λ₀``),
    ``autol2_initial_best_loss`` (+∞ by SPEC §3; the ``"paper"`` preset sets 1).
    ``autol2_measure`` is what the controller measures (:data:`AUTOL2_MEASURES`):
    ``"minibatch"``, ``"subset"`` (``autol2_measure_size`` examples, the whole set when it is
    smaller) or ``"train"``; None, the preset's (``"subset"`` for ``"default"``). A run
    measuring more than its minibatch trains alone in a sweep, not in a pool, where the
    measurement would be computed at every step.

    ``convention`` (:data:`CONVENTIONS`) is the normalization of the loss and the L2 term:
    ``"sm"`` (SPEC §1, the default) or ``"script"`` (the authors' released script).

    ``measure_layers`` (opt-in) adds to every measurement, per parameter tensor, its squared
    norm and the angle (radians) it turned by in the last step (the rotational equilibrium of
    SPEC §6; :func:`l2dynamics.train.step.layer_angles`). A static part of the compiled step:
    runs without it pay nothing.
    """

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: str = "xent"
    convention: str = "sm"
    eta: float = 0.1
    lam: float = 0.0
    momentum: float = 0.0
    optimizer: str = "sgd"
    beta1: float | None = None
    beta2: float | None = None
    eps: float | None = None
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
    autol2_preset: str = "default"
    autol2_count_ties: bool | None = None
    autol2_start_refractory: bool | None = None
    autol2_initial_best_loss: float | None = None
    autol2_measure: str | None = None
    autol2_measure_size: int = 1024
    autol2_lam_pred: float | None = None
    measure_layers: bool = False


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


def from_dict(cls: type, values: Mapping[str, Any], prefix: str = "", base: Any = None) -> Any:
    """Build the dataclass ``cls`` from a mapping, naming any unknown key or wrong type.

    Ints given for float fields become floats, lists given for tuple fields become tuples.

    Args:
        cls: the dataclass.
        values: field values; nested dataclasses as nested mappings.
        prefix: prepended to the key in messages (e.g. ``"data."``).
        base: an instance of ``cls`` whose values stand for the keys not given (default: the
            fields' defaults; then a field without a default is a required key).

    Raises:
        ConfigError: an unknown or missing key, or a value of the wrong type.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"unknown key '{prefix}{key}' (known: {', '.join(sorted(fields))})")
        kwargs[key] = _value(prefix + key, value, hints[key])
    if base is not None:
        return dataclasses.replace(base, **kwargs)
    missing = dataclasses.MISSING
    for name, field in fields.items():
        required = field.default is missing and field.default_factory is missing
        if required and name not in kwargs:
            raise ConfigError(f"missing key '{prefix}{name}'")
    return cls(**kwargs)


def _value(name: str, value: Any, hint: Any) -> Any:
    """``value`` checked against the type ``hint`` (ints widened to float, lists to tuples)."""
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name}: expected a table, got {value!r}")
        return from_dict(hint, value, prefix=f"{name}.")
    if typing.get_origin(hint) is tuple:
        return _tuple_value(name, value, typing.get_args(hint))
    _check_type(name, value, hint)
    if hint in (float, float | None) and isinstance(value, int):
        return float(value)
    return value


def _tuple_value(name: str, value: Any, kinds: tuple[Any, ...]) -> tuple[Any, ...]:
    """A list for a ``tuple[X, ...]`` (any length) or ``tuple[X, Y]`` (that length) field."""
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{name}: expected a list, got {value!r}")
    if len(kinds) == 2 and kinds[1] is Ellipsis:
        kinds = (kinds[0],) * len(value)
    if len(kinds) != len(value):
        raise ConfigError(f"{name}: expected {len(kinds)} values, got {value!r}")
    pairs = enumerate(zip(value, kinds, strict=True))
    return tuple(_value(f"{name}[{i}]", v, kind) for i, (v, kind) in pairs)


def field_default(cls: type, name: str) -> Any:
    """The default of field ``name`` of the dataclass ``cls``: where that default is written.

    Raises:
        KeyError: ``cls`` has no such field, or it has no plain default.
    """
    for field in dataclasses.fields(cls):
        if field.name == name and field.default is not dataclasses.MISSING:
            return field.default
    raise KeyError(f"{cls.__name__} has no field {name!r} with a plain default")


def _require(ok: bool, message: str, *fields: str) -> None:
    """Raise :class:`ConfigError` with ``message`` (naming ``fields``) unless ``ok``."""
    if not ok:
        raise ConfigError(message, *fields)


def _positive(name: str, value: float | None) -> None:
    if value is not None:
        _require(
            math.isfinite(value) and value > 0,
            f"{name} must be a finite number > 0 (got {value})",
            name,
        )


def validate(cfg: TrainConfig) -> TrainConfig:
    """Check ranges and choices; return ``cfg`` unchanged or raise :class:`ConfigError`.

    Each error names the fields at fault (:attr:`ConfigError.fields`), which the CLI and sweep
    files rename to the option or key the user typed.
    """
    _positive("eta", cfg.eta)
    _require(
        math.isfinite(cfg.lam) and cfg.lam >= 0,
        f"lam must be a finite number >= 0 (got {cfg.lam})",
        "lam",
    )
    _require(0 <= cfg.momentum < 1, f"momentum must be in [0, 1) (got {cfg.momentum})", "momentum")
    for name in ("budget_epochs", "budget_c", "max_epochs", "measure_resolution"):
        _positive(name, getattr(cfg, name))
    for name in ("batch_size", "measure_every", "eval_batch_size"):
        value = getattr(cfg, name)
        _require(value is None or value > 0, f"{name} must be > 0 (got {value})", name)
    choices = {
        "loss": LOSSES,
        "lr_schedule": LR_SCHEDULES,
        "l2_mask": L2_MASKS,
        "measure": MEASURE_KINDS,
        "autol2_preset": AUTOL2_PRESETS,
        "convention": CONVENTIONS,
        "optimizer": OPTIMIZERS,
    }
    for name, allowed in choices.items():
        value = getattr(cfg, name)
        _require(
            value in allowed, f"unknown {name} {value!r} (choose from {', '.join(allowed)})", name
        )
    _validate_optimizer(cfg)
    _validate_data(cfg.data)
    _require(cfg.seed >= 0, f"seed must be >= 0 (got {cfg.seed})", "seed")
    _require(
        cfg.peak_stop is None or (math.isfinite(cfg.peak_stop) and cfg.peak_stop > 1),
        f"peak_stop must be > 1 (got {cfg.peak_stop})",
        "peak_stop",
    )
    _require(
        0 < cfg.peak_drop < 1, f"peak_drop must be in (0, 1) (got {cfg.peak_drop})", "peak_drop"
    )
    if cfg.autol2:
        _validate_autol2(cfg)
    budget_epochs(cfg)
    return cfg


def _validate_optimizer(cfg: TrainConfig) -> None:
    """Adam's β in [0, 1) and ε > 0, only the options the optimizer takes
    (:data:`OPTIMIZER_OPTIONS`), and no "script" convention for decoupled decay."""
    for name in ("beta1", "beta2"):
        value = getattr(cfg, name)
        _require(value is None or 0 <= value < 1, f"{name} must be in [0, 1) (got {value})", name)
    _positive("eps", cfg.eps)
    takes = OPTIMIZER_OPTIONS[cfg.optimizer]
    for name in ("momentum", "beta1", "beta2", "eps"):
        given = getattr(cfg, name) != field_default(TrainConfig, name)
        _require(
            not given or name in takes,
            f"{name} is not an option of optimizer {cfg.optimizer!r} (it takes {', '.join(takes)})",
            name,
            *takes,
        )
    _require(
        cfg.optimizer not in DECOUPLED or cfg.convention == "sm",
        f"convention {cfg.convention!r} doubles the L2 term of the loss; optimizer "
        f"{cfg.optimizer!r} decays the weights outside the loss (use convention 'sm')",
        "convention",
    )


def _validate_data(d: DataConfig) -> None:
    for name in ("n_train", "n_test"):
        value = getattr(d, name)
        _require(
            value is None or value > 0, f"data.{name} must be > 0 (got {value})", f"data.{name}"
        )
    for name in ("subset_seed", "crop", "mixup_alpha"):
        value = getattr(d, name)
        _require(value >= 0, f"data.{name} must be >= 0 (got {value})", f"data.{name}")


def _validate_autol2(cfg: TrainConfig) -> None:
    _require(
        cfg.budget_c is None,
        "autol2: give the budget in epochs (budget_epochs), not budget_c: c/(eta*lam) has "
        "no fixed value when AutoL2 changes lam",
        "budget_epochs",
        "budget_c",
    )
    decay = cfg.autol2_decay
    _require(decay > 1, f"autol2_decay must be > 1 (got {decay})", "autol2_decay")
    _positive("autol2_refractory", cfg.autol2_refractory)
    period = cfg.autol2_period
    _require(period >= 1, f"autol2_period must be >= 1 (got {period})", "autol2_period")
    best = cfg.autol2_initial_best_loss
    _require(
        best is None or (not math.isnan(best) and best > 0),
        f"autol2_initial_best_loss must be > 0 (got {best})",
        "autol2_initial_best_loss",
    )
    measure = cfg.autol2_measure
    _require(
        measure is None or measure in AUTOL2_MEASURES,
        f"unknown autol2_measure {measure!r} (choose from {', '.join(AUTOL2_MEASURES)})",
        "autol2_measure",
    )
    size = cfg.autol2_measure_size
    _require(size >= 1, f"autol2_measure_size must be >= 1 (got {size})", "autol2_measure_size")
    pred = cfg.autol2_lam_pred
    if pred is not None:
        _positive("autol2_lam_pred", pred)
        _require(
            cfg.lam == 0,
            "autol2: give lam (the start) or autol2_lam_pred (a start 3x above it), not both",
            "lam",
            "autol2_lam_pred",
        )


def validate_for_data(cfg: TrainConfig, n_train: int, *, short_budget: bool = False) -> TrainConfig:
    """The rules that need the training set's size N (known once the data is loaded): a
    minibatch of at most N examples, and a budget of at least one step (``budget_epochs(cfg)·N/B
    >= 1``; a shorter budget trains one step, past its end, so its t* lies beyond its budget).
    ``short_budget=True`` allows the shorter budgets: the paper-scale grids of Figures 2, S1
    and S5 reach η·λ so large in a corner that c/(η·λ) epochs is under one step.

    Raises:
        ConfigError: naming ``batch_size`` and ``data.n_train``, or the budget's field.
    """
    batch = cfg.batch_size or n_train
    _require(
        batch <= n_train,
        f"batch_size {batch} is larger than the training set of {n_train} examples (data.n_train)",
        "batch_size",
        "data.n_train",
    )
    epochs = budget_epochs(cfg)
    steps = epochs * n_train / batch
    if round(steps, 9) < 1 and not short_budget:
        field, why = _budget_field(cfg)
        raise ConfigError(
            f"{field}: the budget of {epochs:.3g} epochs{why} is {steps:.3g} steps of "
            f"{batch} of {n_train} examples, shorter than one step",
            field,
        )
    return cfg


def _budget_field(cfg: TrainConfig) -> tuple[str, str]:
    """The field that sets ``cfg``'s budget, and how (for messages)."""
    if cfg.budget_epochs is not None:
        return "budget_epochs", ""
    if cfg.budget_c is None or cfg.lam == 0 or budget_epochs(cfg) == cfg.max_epochs:
        return "max_epochs", ""
    return "budget_c", f" (c/(η·λ) at η = {cfg.eta:g}, λ = {cfg.lam:g})"


def budget_epochs(cfg: TrainConfig) -> float:
    """The run's length in epochs: explicit, or ``c/(η·λ)`` capped by ``max_epochs``."""
    if cfg.budget_epochs is not None:
        _require(
            cfg.budget_c is None,
            "give budget_epochs or budget_c, not both",
            "budget_epochs",
            "budget_c",
        )
        return cfg.budget_epochs
    if cfg.budget_c is None:
        _require(
            cfg.max_epochs is not None,
            "no budget: give budget_epochs, budget_c or max_epochs",
            "budget_epochs",
            "budget_c",
            "max_epochs",
        )
        return cfg.max_epochs
    if cfg.lam == 0:
        _require(
            cfg.max_epochs is not None,
            "lam = 0 with budget_c: c/(eta*lam) is infinite, give max_epochs or budget_epochs",
            "budget_c",
            "max_epochs",
            "budget_epochs",
        )
        return cfg.max_epochs
    epochs = cfg.budget_c / (cfg.eta * cfg.lam)
    return min(epochs, cfg.max_epochs) if cfg.max_epochs is not None else epochs


def adam_options(cfg: TrainConfig) -> tuple[float, float, float]:
    """β₁, β₂, ε of ``cfg``'s Adam: each field, or :data:`ADAM_DEFAULTS` where it is None."""
    values = (cfg.beta1, cfg.beta2, cfg.eps)
    defaults = (ADAM_DEFAULTS[name] for name in ("beta1", "beta2", "eps"))
    return tuple(d if v is None else v for v, d in zip(values, defaults, strict=True))


def calibration_lam(optimizer: str, eta: float) -> float:
    """predict-l2's default calibration λ for ``optimizer`` at learning rate η (per step):
    :data:`CAL_LAM` for the SGDs, ``CAL_ETA_LAM_ADAM/η`` for Adam and AdamW."""
    if optimizer in ("adam", "adamw"):
        return CAL_ETA_LAM_ADAM / eta
    return CAL_LAM


def decay_rate_terms(cfg: TrainConfig) -> tuple[float, float]:
    """``(η_l2, μ)``: the decay of ``cfg`` multiplies θ by ``1 − η_l2·λ/(1−μ)`` per step
    (:func:`timescale_steps` says why, per optimizer): ``η_l2 = η·s`` with ``s`` the
    convention's :data:`L2_FACTORS` for the coupled optimizers and ``η`` for the decoupled ones;
    ``μ`` the heavy-ball momentum for coupled SGD (its buffer sums the L2 gradient too), else 0.
    AutoL2's scale-aware start uses the same terms (:mod:`l2dynamics.autol2.start`)."""
    if cfg.optimizer in DECOUPLED:
        return cfg.eta, 0.0
    momentum = cfg.momentum if cfg.optimizer == "sgd" else 0.0
    return cfg.eta * L2_FACTORS[cfg.convention], momentum


def timescale_steps(cfg: TrainConfig) -> float:
    """``τ_iter``: the timescale of ``cfg``'s weight decay, in steps (SPEC §6); ∞ for λ = 0.

    The decay multiplies θ by ``1 − r`` per step, ``τ_iter = 1/r``, with r:

    - ``sgdw``, ``adamw`` (decoupled, ``θ ← θ − η·(update + λθ)``): ``r = η·λ`` exactly, with or
      without momentum (the decay stays outside the buffer), so θ is an exponential moving
      average of the updates over ``1/(η·λ)`` steps;
    - ``sgd`` (coupled, ``s·λθ`` in the gradient, ``s`` = :data:`L2_FACTORS` of the convention):
      ``r = η·s·λ/(1−μ)``, the steady state of the heavy-ball buffer, which sums
      ``1/(1−μ)`` copies of each gradient (``η·s·λ`` for plain SGD);
    - ``adam`` (coupled): no exact timescale, since Adam divides ``s·λθ`` by the running
      ``√v̂ + ε`` of each coordinate, which changes with the gradients' scale and in time. We use
      the nominal ``r = η·s·λ``, the rate of a coordinate whose ``√v̂`` is 1 and the same formula
      as ``adamw``, so that the two lie on one axis; t* against it is a measurement, not a law.

    η is the base learning rate ``cfg.eta`` (a step schedule lowers it later) and λ the
    configured ``cfg.lam`` (AutoL2 lowers it from there).
    """
    if cfg.lam == 0:
        return math.inf
    eta_l2, momentum = decay_rate_terms(cfg)
    return (1.0 - momentum) / (eta_l2 * cfg.lam)


def timescale_epochs(cfg: TrainConfig) -> float:
    """``τ_epoch = τ_iter/M`` (:func:`timescale_steps`) with ``M = N/B`` steps per epoch, for
    ``N`` training examples (:func:`train_set_size`) in minibatches of ``B`` (full batch: M = 1)."""
    n = train_set_size(cfg.data)
    batch = min(cfg.batch_size or n, n)
    return timescale_steps(cfg) * batch / n
