"""The ``l2dyn`` command line: parse → config → library call → print/save.

Bad input of any kind (an unknown option value, a missing file, an out-of-range number) ends
with one line ``l2dyn: error: …`` on standard error and exit code 2, before anything is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shlex
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from l2dynamics.config import (
    ADAM_DEFAULTS,
    AUTOL2_MEASURES,
    AUTOL2_PRESETS,
    CAL_ETA_LAM_ADAM,
    CAL_LAM,
    CHECKPOINT_EVERY_S,
    CLI_BUDGET_C,
    CLI_LAM,
    CONVENTIONS,
    MAX_C,
    OPTIMIZERS,
    PEAK_STOP,
    DataConfig,
    ModelConfig,
    TrainConfig,
    field_default,
    validate,
)
from l2dynamics.errors import ConfigError, L2DynError
from l2dynamics.files import check_dir_target, check_file_target
from l2dynamics.progress import LineProgress, ProgressFn, Update, count_text, status_text

err = Console(stderr=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="l2dynamics")
def app() -> None:
    """l2dynamics: training dynamics of deep networks under L2 regularization."""


def _model_options(**given: Any) -> dict[str, Any]:
    """Only the model options the user actually gave (the model's defaults stand otherwise)."""
    return {k: v for k, v in given.items() if v is not None}


def _check_out(out: Path | None) -> None:
    if out is not None:
        check_file_target(out, "--out")


def _options(specs: list[tuple]) -> Any:
    """Apply a list of ``(flags, kwargs)`` click options to a command, in order."""

    def decorate(fn):
        for flags, kwargs in reversed(specs):
            fn = click.option(*flags, **kwargs)(fn)
        return fn

    return decorate


# The options that set a config field, by parameter name, and that field: each takes its
# default from the field (every default is written once, in config.py) and train_config copies
# its value across. --lam and --budget-c have defaults of their own (config.CLI_LAM, ...).
DATA_FIELDS = {
    "data": "name",
    "data_dir": "data_dir",
    "n_train": "n_train",
    "n_test": "n_test",
    "subset_seed": "subset_seed",
    "balanced": "balanced",
    "standardize": "standardize",
    "even_odd": "even_odd",
    "flip": "flip",
    "crop": "crop",
    "mixup": "mixup_alpha",
}
TRAIN_FIELDS = {
    "loss": "loss",
    "convention": "convention",
    "eta": "eta",
    "momentum": "momentum",
    "optimizer": "optimizer",
    "beta1": "beta1",
    "beta2": "beta2",
    "eps": "eps",
    "lr_schedule": "lr_schedule",
    "l2_mask": "l2_mask",
    "batch_size": "batch_size",
    "epochs": "budget_epochs",
    "max_epochs": "max_epochs",
    "measure": "measure",
    "measure_every": "measure_every",
    "measure_resolution": "measure_resolution",
    "eval_batch_size": "eval_batch_size",
    "seed": "seed",
    "autol2": "autol2",
    "autol2_decay": "autol2_decay",
    "autol2_refractory": "autol2_refractory",
    "autol2_period": "autol2_period",
    "autol2_preset": "autol2_preset",
    "autol2_count_ties": "autol2_count_ties",
    "autol2_start_refractory": "autol2_start_refractory",
    "autol2_initial_best_loss": "autol2_initial_best_loss",
    "autol2_measure": "autol2_measure",
    "autol2_measure_size": "autol2_measure_size",
    "autol2_lam_pred": "autol2_lam_pred",
    "peak_stop": "peak_stop",
    "peak_drop": "peak_drop",
    "measure_layers": "measure_layers",
}


def _option_of(parameter: str) -> str:
    return "--" + parameter.replace("_", "-")


# The option that sets each configuration field (`budget_epochs` -> `--epochs`), so that an
# error found by config.validate names what the user typed (ConfigError.renamed, in main).
CLI_NAMES = (
    {f"data.{field}": _option_of(option) for option, field in DATA_FIELDS.items()}
    | {field: _option_of(option) for option, field in TRAIN_FIELDS.items()}
    | {"lam": "--lam", "budget_c": "--budget-c"}
)


def _param_name(flags: tuple[str, ...]) -> str:
    return click.Option(list(flags)).name


def _field_defaults(cls: type, fields: dict[str, str], specs: list[tuple]) -> list[tuple]:
    """``specs`` with each option named in ``fields`` given the default of its field of ``cls``."""
    out = []
    for flags, kwargs in specs:
        name = _param_name(flags)
        if name in fields:
            kwargs = kwargs | {"default": field_default(cls, fields[name])}
        out.append((flags, kwargs))
    return out


# --data and --model list the names of l2dynamics.data.DATASETS and l2dynamics.models.MODELS:
# importing those registries imports JAX, and `l2dyn --help` stays fast (a test checks them).
DATA_OPTIONS = _field_defaults(
    DataConfig,
    DATA_FIELDS,
    [
        (
            ("--data",),
            dict(
                type=click.Choice(["digits", "mnist", "cifar10"]),
                show_default=True,
                help="Data set; digits is embedded (no download).",
            ),
        ),
        (
            ("--data-dir",),
            dict(help="Directory of MNIST IDX / CIFAR-10 files (default: $L2DYN_DATA)."),
        ),
        (("--n-train",), dict(type=int, help="Training-subset size (default: all).")),
        (("--n-test",), dict(type=int, help="Test-subset size (default: all).")),
        (
            ("--subset-seed",),
            dict(type=int, show_default=True, help="Seed of the subset draw."),
        ),
        (("--balanced",), dict(is_flag=True, help="Class-balanced training subset.")),
        (
            ("--standardize/--no-standardize",),
            dict(show_default=True, help="Per-channel standardization."),
        ),
        (("--even-odd",), dict(is_flag=True, help="Binary labels: even (0) vs odd (1) class.")),
        (("--flip",), dict(is_flag=True, help="Random horizontal flips.")),
        (
            ("--crop",),
            dict(
                type=int,
                show_default=True,
                help="Random crops from an image zero-padded by this many pixels.",
            ),
        ),
        (("--mixup",), dict(type=float, show_default=True, help="Mixup α (0 = off).")),
    ],
)

# The default of each model option, by model, as --help shows it: the models' own field defaults
# (l2dynamics.models.registry.model_defaults; not imported here, so that the command line starts
# without JAX; tests/test_cli.py checks that the two agree).
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "depth": {"fc": 3, "wrn": 28},
    "width": {"fc": 2048, "wrn": 10},
    "channels": {"cnn": 300},
    "dense": {"cnn": 500},
    "batch_norm": {"cnn": False},
    "bn_group": {"cnn": 0, "wrn": 0},
    "use_bias": {"fc": True, "cnn": True, "wrn": True},
    "activation": {"fc": "relu", "cnn": "relu"},
    "sigma_w": {"fc": math.sqrt(2.0), "cnn": math.sqrt(2.0), "wrn": 1.0},
    "sigma_b": {"fc": 0.0, "cnn": 0.0, "wrn": 0.0},
    "pool_window": {"cnn": 2},
    "pool_stride": {"cnn": 2},
}


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return "√2" if value == math.sqrt(2.0) else f"{value:g}"
    return str(value)


def _model_help(text: str, field: str) -> str:
    """``text`` and the option's default for each model that has it (``MODEL_DEFAULTS``)."""
    per_model = MODEL_DEFAULTS[field]
    if len(set(map(_shown, per_model.values()))) == 1:  # one value: the text names the models
        return f"{text}  [default: {_shown(next(iter(per_model.values())))}]"
    return f"{text}  [default: " + ", ".join(f"{m} {_shown(v)}" for m, v in per_model.items()) + "]"


MODEL_OPTIONS = [
    (
        ("--model",),
        dict(
            type=click.Choice(["fc", "cnn", "wrn"]),
            default=field_default(ModelConfig, "name"),
            show_default=True,
            help="Network.",
        ),
    ),
    (
        ("--depth",),
        dict(
            type=int,
            default=None,
            help=_model_help("FC hidden layers / WRN depth (6n+4).", "depth"),
        ),
    ),
    (
        ("--width",),
        dict(type=int, default=None, help=_model_help("FC width / WRN width factor.", "width")),
    ),
    (("--channels",), dict(type=int, default=None, help=_model_help("CNN channels.", "channels"))),
    (
        ("--dense",),
        dict(
            type=int,
            default=None,
            help=_model_help("CNN width of the hidden Dense layer.", "dense"),
        ),
    ),
    (
        ("--batch-norm/--no-batch-norm",),
        dict(default=None, help=_model_help("CNN BatchNorm.", "batch_norm")),
    ),
    (
        ("--bn-group",),
        dict(
            type=int,
            default=None,
            help=_model_help(
                "BatchNorm statistics per group of this many examples, as on data-parallel "
                "devices (CNN with BatchNorm, WRN; 0 = the whole batch).",
                "bn_group",
            ),
        ),
    ),
    (("--bias/--no-bias",), dict(default=None, help=_model_help("Bias parameters.", "use_bias"))),
    (
        ("--activation",),
        dict(default=None, help=_model_help("relu, tanh, erf, gelu or linear.", "activation")),
    ),
    (
        ("--sigma-w",),
        dict(
            type=float,
            default=None,
            help=_model_help("Weight init scale σ_w: W ~ N(0, σ_w²/fan_in).", "sigma_w"),
        ),
    ),
    (
        ("--sigma-b",),
        dict(type=float, default=None, help=_model_help("Bias init scale σ_b.", "sigma_b")),
    ),
    (
        ("--pool-window",),
        dict(type=int, default=None, help=_model_help("CNN max-pool window.", "pool_window")),
    ),
    (
        ("--pool-stride",),
        dict(type=int, default=None, help=_model_help("CNN max-pool stride.", "pool_stride")),
    ),
]

RUN_OPTIONS = _field_defaults(
    TrainConfig,
    TRAIN_FIELDS,
    [
        (
            ("--loss",),
            dict(show_default=True, help="xent (normalized cross-entropy) or mse."),
        ),
        (
            ("--convention",),
            dict(
                type=click.Choice(CONVENTIONS),
                show_default=True,
                help="Normalization: sm, CE/(2k) with (λ/2)‖θ‖² (SPEC §1); script, the authors' "
                "script's CE/k with λ‖θ‖² (for xent its (η, λ) is sm's (2η, λ)).",
            ),
        ),
        (
            ("--eta",),
            dict(type=float, show_default=True, help="Learning rate η (per step)."),
        ),
        (
            ("--lam",),
            dict(
                type=float,
                default=None,
                help=f"L2 coefficient λ of (λ/2)‖θ‖² (default {CLI_LAM:g}); with --autol2, the "
                "starting λ₀ (default: where --autol2-preset starts).",
            ),
        ),
        (
            ("--momentum",),
            dict(
                type=float,
                show_default=True,
                help="Heavy-ball momentum of sgd and sgdw (0 = plain SGD).",
            ),
        ),
        (
            ("--optimizer",),
            dict(
                type=click.Choice(OPTIMIZERS),
                show_default=True,
                help="sgd (coupled L2, the paper's), sgdw (decoupled weight decay "
                "θ ← θ − η·(v + λθ)), adam (coupled L2) or adamw (decoupled, as optax and "
                "PyTorch).",
            ),
        ),
        (
            ("--beta1",),
            dict(
                type=float,
                help=f"Adam's β₁ (adam, adamw; default {ADAM_DEFAULTS['beta1']:g}).",
            ),
        ),
        (
            ("--beta2",),
            dict(
                type=float,
                help=f"Adam's β₂ (adam, adamw; default {ADAM_DEFAULTS['beta2']:g}).",
            ),
        ),
        (
            ("--eps",),
            dict(type=float, help=f"Adam's ε (adam, adamw; default {ADAM_DEFAULTS['eps']:g})."),
        ),
        (
            ("--lr-schedule",),
            dict(
                show_default=True,
                help="constant, or step (×0.2 at 30%, 60%, 90% of the budget).",
            ),
        ),
        (
            ("--l2-mask",),
            dict(show_default=True, help="L2 on all parameters, or on weights only."),
        ),
        (("--batch-size",), dict(type=int, help="Minibatch size (default: full batch).")),
        (("--epochs",), dict(type=float, help="Budget in epochs.")),
        (
            ("--budget-c",),
            dict(
                type=float,
                default=None,
                help="Budget of c/(η·λ) epochs (default when no budget is given: "
                f"c = {CLI_BUDGET_C:g}).",
            ),
        ),
        (("--max-epochs",), dict(type=float, help="Cap on the budget, in epochs.")),
        (
            ("--measure",),
            dict(
                show_default=True,
                help="Measurement schedule: log (log-spaced), peak (log-spaced, dense only from 1% "
                "of the budget on) or every.",
            ),
        ),
        (
            ("--measure-every",),
            dict(
                type=int,
                show_default=True,
                help="Steps between measurements (--measure every).",
            ),
        ),
        (
            ("--measure-resolution",),
            dict(
                type=float,
                show_default=True,
                help="Largest relative gap between measurements (--measure log or peak).",
            ),
        ),
        (
            ("--measure-layers",),
            dict(
                is_flag=True,
                help="Also measure, per parameter tensor, ‖θ_l‖² and the angle it turned by in "
                "the last step (rotational equilibrium of BatchNorm layers; off by default); "
                "with --out, written beside the curve as STEM_layers.csv.",
            ),
        ),
        (
            ("--eval-batch-size",),
            dict(type=int, show_default=True, help="Evaluation chunk size."),
        ),
        (
            ("--seed",),
            dict(type=int, show_default=True, help="Seed of initialization and batch order."),
        ),
        (
            ("--autol2",),
            dict(
                is_flag=True,
                help="Schedule λ with AutoL2 (from --lam, else from its preset's start; needs "
                "--epochs).",
            ),
        ),
        (
            ("--autol2-preset",),
            dict(
                type=click.Choice(AUTOL2_PRESETS),
                show_default=True,
                help="AutoL2's start and rules without --lam: default, λ₀ = (1−μ)/(η·n) with "
                "n = min(100·period, budget in steps): L2's time scale is the budget, or so short "
                "that L2 alone shrinks θ by at most 3% before the first possible decay; paper, "
                "λ₀ = 0.1 and the best loss starting at 1 (the SM's Algorithm 1); authors-code, "
                "λ₀ = 0.1 with the authors' script's rules (ties count, refractory from step 0).",
            ),
        ),
        (
            ("--autol2-count-ties/--no-autol2-count-ties",),
            dict(
                help="AutoL2: a value equal to the best counts as a rise (default: the "
                "preset's; authors-code counts them)."
            ),
        ),
        (
            ("--autol2-start-refractory/--no-autol2-start-refractory",),
            dict(
                help="AutoL2: start inside a refractory period of refractory/λ₀ steps "
                "(default: the preset's; authors-code does)."
            ),
        ),
        (
            ("--autol2-measure",),
            dict(
                type=click.Choice(AUTOL2_MEASURES),
                show_default=True,
                help="What AutoL2 measures: the step's minibatch, a fixed subset of "
                "--autol2-measure-size training examples, or the whole training set (default: "
                "the preset's; subset for default, minibatch for paper and authors-code).",
            ),
        ),
        (
            ("--autol2-measure-size",),
            dict(type=int, show_default=True, help="AutoL2: examples in the measured subset."),
        ),
        (
            ("--autol2-lam-pred",),
            dict(
                type=float,
                help="AutoL2's budget-aware start: λ₀ = 3 × this λ, the λ that predict-l2 "
                "predicts for the same --epochs (instead of --lam).",
            ),
        ),
        (
            ("--autol2-initial-best-loss",),
            dict(
                type=float,
                help="AutoL2: the best loss before any measurement (default: the preset's, "
                "+∞ or 1 for paper).",
            ),
        ),
        (
            ("--autol2-decay",),
            dict(type=float, show_default=True, help="AutoL2: λ ← λ/decay."),
        ),
        (
            ("--autol2-refractory",),
            dict(
                type=float,
                show_default=True,
                help="AutoL2: no new decay for refractory/λ steps after one.",
            ),
        ),
        (
            ("--autol2-period",),
            dict(type=int, show_default=True, help="AutoL2: steps between measurements."),
        ),
        (
            ("--peak-stop",),
            dict(
                type=float,
                help="Stop once the run is at >= this many times t* (epochs) and its test accuracy "
                "is --peak-drop below its best (opt-in; e.g. 2).",
            ),
        ),
        (
            ("--peak-drop",),
            dict(
                type=float,
                show_default=True,
                help="Accuracy drop (fraction) that marks a passed peak.",
            ),
        ),
    ],
)


def train_config(o: dict[str, Any]) -> TrainConfig:
    """The :class:`TrainConfig` that the parsed ``l2dyn train`` options describe.

    Args:
        o: every option of ``l2dyn train`` by parameter name, as click parsed it.

    Raises:
        L2DynError: --autol2 without --epochs.
    """
    budget_c = o["budget_c"]
    if o["autol2"] and o["epochs"] is None:
        raise L2DynError("--autol2: give the budget with --epochs (λ changes during the run)")
    if o["epochs"] is None and budget_c is None and o["max_epochs"] is None:
        budget_c = CLI_BUDGET_C
    if o["autol2"] and o["lam"] is not None and not o["lam"] > 0:
        raise L2DynError(
            f"--lam (AutoL2's λ₀) must be > 0 (got {o['lam']:g}); leave it out for the start "
            "of --autol2-preset"
        )
    lam = o["lam"] if o["lam"] is not None else (0.0 if o["autol2"] else CLI_LAM)
    options = _model_options(
        depth=o["depth"],
        width=o["width"],
        channels=o["channels"],
        dense=o["dense"],
        batch_norm=o["batch_norm"],
        bn_group=o["bn_group"],
        use_bias=o["bias"],
        activation=o["activation"],
        sigma_w=o["sigma_w"],
        sigma_b=o["sigma_b"],
        pool_window=o["pool_window"],
        pool_stride=o["pool_stride"],
    )
    return TrainConfig(
        data=DataConfig(**{field: o[option] for option, field in DATA_FIELDS.items()}),
        model=ModelConfig(o["model"], options),
        lam=lam,
        budget_c=budget_c,
        **{field: o[option] for option, field in TRAIN_FIELDS.items()},
    )


@app.command()
@_options(DATA_OPTIONS + MODEL_OPTIONS + RUN_OPTIONS)
@click.option("--json", "json_out", is_flag=True, help="Print one JSON summary on stdout.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the measured curve as CSV here.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(json_out: bool, out: Path | None, quiet: bool, **o: Any) -> None:
    """Train one network with L2 regularization (SGD by default; --optimizer for weight decay
    and Adam); measure its curve, best test accuracy and t* (the epoch of the best test
    accuracy)."""
    from l2dynamics.train import train as run_train
    from l2dynamics.train.book import layers_csv_path

    _check_out(out)
    cfg = validate(train_config(o))
    if cfg.measure_layers:
        if out is None:
            raise L2DynError("--measure-layers needs --out: the layer rows go to STEM_layers.csv")
        check_file_target(layers_csv_path(out), "--out")
    with _progress(quiet) as bar:
        result = run_train(cfg, progress=_bars(bar))
    summary = result.summary()
    if out is not None:
        result.to_csv(out)
        if result.layers is not None:
            summary["layers_csv"] = str(result.layers_csv(out))
    _print_summary(summary, json_out, out)


def _pick(specs: list[tuple], drop: tuple[str, ...], **over: dict[str, Any]) -> list[tuple]:
    """``specs`` without the options whose first flag is in ``drop``, with some kwargs
    replaced: ``over`` maps an option's name (``budget_c`` for ``--budget-c``) to new kwargs."""
    out = []
    for flags, kwargs in specs:
        if flags[0] in drop:
            continue
        out.append((flags, kwargs | over.get(_param_name(flags), {})))
    return out


def _defaults(specs: list[tuple], drop: tuple[str, ...]) -> dict[str, Any]:
    """The default values of the dropped options, by parameter name."""
    dropped = [(f, kw) for f, kw in specs if f[0] in drop]
    return {(o := click.Option(list(f), **kw)).name: o.default for f, kw in dropped}


# The Ray executor's --gpus-per-task, one option for `sweep` and `reproduce`.
_GPUS_PER_TASK = click.option(
    "--gpus-per-task",
    type=click.FloatRange(min=0),
    default=None,
    help="GPUs each Ray task asks for (--executor ray; default: 1 on a cluster with GPUs, "
    "else 0; a fraction lets tasks share a GPU).",
)


# predict-l2 calibrates at one λ with a constant η: no budget, schedule or AutoL2 options.
_PREDICT_DROP = (
    "--epochs",
    "--measure-layers",
    "--lr-schedule",
    "--autol2",
    "--autol2-decay",
    "--autol2-refractory",
    "--autol2-period",
    "--autol2-preset",
    "--autol2-count-ties/--no-autol2-count-ties",
    "--autol2-start-refractory/--no-autol2-start-refractory",
    "--autol2-initial-best-loss",
    "--autol2-measure",
    "--autol2-measure-size",
    "--autol2-lam-pred",
)
PREDICT_RUN_OPTIONS = _pick(
    RUN_OPTIONS,
    _PREDICT_DROP,
    lam=dict(
        default=None,
        help=f"The calibration run's λ (large: short run). Default: {CAL_LAM:g} for sgd and "
        f"sgdw; {CAL_ETA_LAM_ADAM:g}/η for adam and adamw (decay timescale 1/(η·λ) = "
        f"{1 / CAL_ETA_LAM_ADAM:g} steps).",
    ),
    eta=dict(help="Learning rate η (per step), of the calibration and the planned run."),
    budget_c=dict(
        default=MAX_C,
        show_default=True,
        help="Cap of the calibration: c/(η·λ) epochs (τ units).",
    ),
    max_epochs=dict(help="A further cap on the calibration, in epochs."),
    peak_stop=dict(
        default=PEAK_STOP,
        show_default=True,
        help="The calibration stops at >= this many times t* (epochs) once its test accuracy "
        "is --peak-drop below its best.",
    ),
)
# With --sweep, the sweep file sets everything but these.
_SWEEP_OVERRIDES = ("eta", "lam", "budget_c", "max_epochs", "peak_stop", "peak_drop", "seed")


@app.command("predict-l2")
@click.option(
    "--budget-epochs",
    type=float,
    required=True,
    help="The planned training budget T, in epochs.",
)
@click.option(
    "--sweep",
    "sweep_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Take data, model and [train] settings from this sweep file (η from --eta, or the "
    "file's only η).",
)
@_options(DATA_OPTIONS + MODEL_OPTIONS + PREDICT_RUN_OPTIONS)
@click.option("--json", "json_out", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def predict_l2(
    budget_epochs: float, sweep_file: Path | None, json_out: bool, quiet: bool, **o: Any
) -> None:
    """Predict the L2 coefficient for a budget of T epochs from one calibration run.

    The calibration trains at a large λ (--lam; default 0.01 for SGD, 1e-3/η for Adam and
    AdamW) with the chosen --optimizer until its test accuracy has clearly passed its peak at t*
    epochs, measures c = t*·η·λ (dimensionless, normalized time τ; t* ≈ c/(η·λ) at any η) and
    t* in units of the optimizer's decay timescale, and prints λ_pred = c/(η·T) and the
    2c/(η·T) variant for the given η, with the calibration's cost as a fraction of T."""
    from l2dynamics.predict import predict_l2 as run_predict

    checks = {
        "--budget-epochs": budget_epochs,
        "--lam (the calibration λ)": o["lam"],
        "--budget-c": o["budget_c"],
        "--max-epochs": o["max_epochs"],
    }
    for flag, value in checks.items():
        if value is not None and not (math.isfinite(value) and value > 0):
            raise L2DynError(f"{flag} must be a finite number > 0 (got {value:g})")
    base = _predict_base(sweep_file, o)
    with _progress(quiet) as bar:
        pred = run_predict(
            base,
            budget_epochs,
            lam=o["lam"],
            peak_stop=o["peak_stop"],
            max_c=o["budget_c"],
            max_epochs=o["max_epochs"],
            progress=_bars(bar, rename={"train": "calibrate"}),
        )
    for note in pred.notes:
        err.print(f"l2dyn: warning: {note}", markup=False, highlight=False, soft_wrap=True)
    if json_out:
        sys.stdout.write(json.dumps(pred.to_dict()) + "\n")
    else:
        sys.stdout.write(_prediction_text(pred))


def _predict_base(sweep_file: Path | None, o: dict[str, Any]) -> TrainConfig:
    """The setup predict-l2 calibrates: from the options, or from a sweep file's first run."""
    budget = {"epochs": 1.0, "budget_c": None, "max_epochs": None}  # the calibration's own later
    o = _defaults(RUN_OPTIONS, _PREDICT_DROP) | o | budget
    if sweep_file is None:
        return validate(train_config(o))
    from l2dynamics.sweep.spec import load_sweep

    ctx = click.get_current_context()
    for name in o:
        given = name in ctx.params and ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
        if given and name not in _SWEEP_OVERRIDES:
            flag = "--" + name.replace("_", "-")
            raise L2DynError(f"{flag}: set it in the sweep file, not with --sweep")
    sweep = load_sweep(sweep_file)
    etas = sorted({c.eta for c in sweep.runs})
    eta_given = ctx.get_parameter_source("eta") is ParameterSource.COMMANDLINE
    if not eta_given and len(etas) > 1:
        listed = ", ".join(f"{e:g}" for e in etas)
        raise L2DynError(f"--sweep: {sweep_file} has several η ({listed}): choose one with --eta")
    eta = o["eta"] if eta_given else etas[0]
    seed = o["seed"] if ctx.get_parameter_source("seed") is ParameterSource.COMMANDLINE else None
    run = sweep.runs[0]
    return validate(
        dataclasses.replace(
            run,
            eta=eta,
            seed=run.seed if seed is None else seed,
            peak_drop=o["peak_drop"],
        )
    )


def _prediction_text(p: Any) -> str:
    """A :class:`~l2dynamics.predict.Prediction` as a few aligned lines."""
    res = f"±{100 * p.t_star_resolution:.1f}%"
    how = "stopped past its peak" if p.peak_passed else "hit its cap before passing its peak"
    near = "near-peak interval: accuracy within the test set's noise of its best"
    lines = [
        f"calibration       {p.optimizer}, λ = {p.cal_lam:g}, η = {p.cal_eta:g}: "
        f"{p.cal_epochs:.6g} epochs "
        f"({how}), {p.wall_s:.1f} s",
        f"t* (epochs)       {p.t_star_epochs:.6g}   ({near}: {_interval(p.t_star_interval)})",
        f"t* first maximum  {p.t_star_first_max:.6g}   (the paper's t*; {res})",
        f"best test acc     {p.best_test_acc:.4f}   (max train acc {p.max_train_acc:.4f})",
        f"c = t*·η·λ        {p.c:.4g}   (dimensionless, τ units; {_interval(p.c_interval)}; "
        f"{p.c_first_max:.4g} from the first maximum)",
        f"c_paper = t*·λ    {p.c_paper:.4g}   (the paper's c, at η = {p.cal_eta:g} only)",
        f"t*/τ_epoch        {p.c_tau_epoch:.4g}   (t* in units of {p.optimizer}'s decay "
        f"timescale; τ_epoch at λ_pred: {p.tau_epoch_pred:.4g} epochs)",
        f"budget T          {p.budget_epochs:g} epochs at η = {p.eta:g}",
        f"λ_pred = c/(η·T)  {p.lam_pred:.4g}   (over the near-peak interval: "
        f"{_interval(p.lam_pred_interval)})",
        f"λ_pred = 2c/(η·T) {p.lam_pred_2c:.4g}",
        f"cost              {p.cal_epochs:.6g} epochs = {100 * p.cost_fraction:.3g}% of T",
    ]
    return "\n".join(lines) + "\n"


def _store_option(help_text: str) -> Any:
    """The ``--store PATH`` option shared by sweep, status and export."""
    return click.option(
        "--store", "store_path", type=click.Path(path_type=Path), required=True, help=help_text
    )


def _bars(bar: Progress | LineProgress, rename: dict[str, str] | None = None) -> ProgressFn:
    """A :data:`~l2dynamics.progress.ProgressFn` that shows each task as a bar of ``bar``
    (added when its first update comes; ``rename`` maps a task to the name shown)."""
    tasks: dict[str, Any] = {}

    def show(u: Update) -> None:
        if u.task not in tasks:
            name = (rename or {}).get(u.task, u.task)
            tasks[u.task] = bar.add_task(name, total=None, status="", unit=u.unit)
        bar.update(tasks[u.task], completed=u.done, total=u.total, status=status_text(u))

    return show


def _ray_driver(executor: str) -> None:
    """With ``--executor ray`` this process only plans the chunks and writes the store: keep its
    JAX on the CPU (unless ``JAX_PLATFORMS`` says otherwise), or on a GPU node it would take
    most of every GPU's memory (JAX preallocates) from the tasks there. Before JAX is imported
    only: it reads the variable once."""
    if executor == "ray" and "jax" not in sys.modules:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")


def _note(line: str) -> None:
    err.print(f"l2dyn: note: {line}", markup=False, highlight=False, soft_wrap=True)


def _leave(code: int) -> None:
    """Exit at once with ``code`` (output flushed; the store is closed by now): after a signal
    has interrupted an XLA computation, the interpreter's teardown can crash in XLA's threads
    (measured: one SIGTERM in two ended in SIGSEGV after the resume line was printed)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@contextlib.contextmanager
def _stopped_by_signal(resume: str) -> Iterator[None]:
    """Turn SIGTERM into the KeyboardInterrupt of Ctrl-C while a sweep trains, so that both
    stop it the same way (its running runs back to queued, in the runner); then say how to
    resume (the command ``resume``) and exit 130 (Ctrl-C) or 143 (SIGTERM), as a shell does."""
    received: list[int] = []

    def on_term(signum: int, _frame: Any) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread (an embedding program): its handlers stand
        previous = None
    try:
        yield
    except KeyboardInterrupt:
        name = "SIGTERM" if received else "Ctrl-C"
        err.print(
            f"l2dyn: stopped by {name}; finished runs are kept in the store. Resume with: {resume}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        _leave(143 if received else 130)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@app.command()
@click.argument("sweep_file", type=click.Path(path_type=Path))
@_store_option("SQLite run store (created, or resumed when it exists).")
@click.option(
    "--vectorize/--one-by-one",
    default=None,
    help="Force vectorized or one-by-one training (default: decided by model size).",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Train here, or as Ray tasks (pip install l2dynamics[ray]).",
)
@click.option("--address", default=None, help="Ray cluster address (default: a local cluster).")
@_GPUS_PER_TASK
@click.option(
    "--checkpoint-every",
    "checkpoint_every_s",
    type=click.FloatRange(min=0),
    default=CHECKPOINT_EVERY_S,
    show_default=True,
    help="Seconds of wall time between checkpoints of the runs in training, taken at "
    "measurement points (0: at every one; inf: none). A resumed sweep continues its runs from "
    "them, with the results of an uninterrupted sweep. Local executor only.",
)
@click.option("--quiet", is_flag=True, help="No progress display.")
def sweep(
    sweep_file: Path,
    store_path: Path,
    vectorize: bool | None,
    executor: str,
    address: str | None,
    gpus_per_task: float | None,
    checkpoint_every_s: float,
    quiet: bool,
) -> None:
    """Train every run of SWEEP_FILE (TOML) into the store; resumes an interrupted sweep."""
    _ray_driver(executor)
    from l2dynamics.sweep.runner import run_sweep
    from l2dynamics.sweep.spec import load_sweep

    spec = load_sweep(sweep_file)
    check_file_target(store_path, "--store")
    again = ["l2dyn", "sweep", str(sweep_file), "--store", str(store_path)]
    if executor != "local":
        again += ["--executor", executor] + (["--address", address] if address else [])
        again += ["--gpus-per-task", f"{gpus_per_task:g}"] if gpus_per_task is not None else []
    with _progress(quiet) as bar, _stopped_by_signal(shlex.join(again)):
        report = run_sweep(
            spec,
            str(store_path),
            vectorize=vectorize,
            progress=_bars(bar),
            executor=executor,
            address=address,
            gpus_per_task=gpus_per_task,
            notify=_note,
            checkpoint_every_s=checkpoint_every_s,
        )
    sys.stdout.write(
        f"{report.total} runs: {report.skipped} already done, {report.done} done, "
        f"{report.diverged} diverged, {report.failed} failed in {report.wall_s:.1f} s\n"
    )
    if report.failed:
        raise SystemExit(1)


@app.command()
@_store_option("SQLite run store.")
@click.option("--json", "json_out", is_flag=True, help="Print one JSON object.")
@click.option("--current", is_flag=True, help="Only the runs of the sweep file registered last.")
def status(store_path: Path, json_out: bool, current: bool) -> None:
    """Summarize a store: runs by status (interrupted: their sweep is gone), the best runs."""
    from l2dynamics.sweep.status import store_status

    state = store_status(store_path, current=current)
    if json_out:
        sys.stdout.write(json.dumps(state.to_dict()) + "\n")
    else:
        sys.stdout.write("\n".join(state.lines()) + "\n")


@app.command("export")
@_store_option("SQLite run store.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "parquet"]),
    default=None,
    help="Output format (default: from the --out suffix, .parquet or .csv; csv otherwise).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help=(
        "Runs table file; measurements go to <stem>_measurements.<ext> beside it, per-layer "
        "measurements (measure_layers) to <stem>_layers.<ext>: always written, with the columns "
        "and no rows when no run measured its layers, so every export gives the same three files."
    ),
)
@click.option(
    "--current",
    is_flag=True,
    help="Only the runs of the sweep file registered last (and their measurements and layers).",
)
def export_cmd(store_path: Path, fmt: str | None, out: Path, current: bool) -> None:
    """Export a store's runs, measurements and per-layer measurements as CSV or Parquet."""
    from l2dynamics.sweep.store import export, export_format, layers_path, measurements_path

    fmt = export_format(out, fmt)
    measured, layers = measurements_path(out, fmt), layers_path(out, fmt)
    _check_out(out)
    check_file_target(measured, "--out (its measurements file)")
    check_file_target(layers, "--out (its layers file)")
    export(store_path, out, fmt, current=current)
    sys.stdout.write(f"wrote {out}, {measured} and {layers}\n")


@app.command()
@_store_option("SQLite run store (any sweep's).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Output directory (created; default: STORE_report beside the store, e.g. "
    "runs_report/ for runs.sqlite).",
)
@click.option(
    "--all",
    "every_run",
    is_flag=True,
    help="Every run in the store (default: the grid of the sweep file registered last).",
)
@click.option("--json", "json_out", is_flag=True, help="Print summary.json on stdout.")
def report(store_path: Path, out_dir: Path | None, every_run: bool, json_out: bool) -> None:
    """Analyse a store's finished runs and write figures, CSV tables, summary.json and a
    self-contained report.html. The analysis is chosen from the runs and named in the report:
    the rotational equilibrium of BatchNorm-fed kernels when fixed-λ runs measured their layers
    (measure_layers); else the t* law (t* vs η·λ, best accuracy vs λ, curves vs τ) for a
    fixed-λ (η, λ) grid, AutoL2 against the fixed λ when the store holds both, else the
    curves."""
    from l2dynamics.experiments.store_report import write_store_report

    summary = write_store_report(store_path, out_dir, every_run)
    if json_out:
        sys.stdout.write(json.dumps(summary) + "\n")
        return
    lines = [f"{summary['title']}: {summary['n_runs']} runs ({summary['kind']} analysis)"]
    lines += _findings(summary)
    lines.append(f"report: {summary['report']}   summary: {summary['summary_json']}")
    sys.stdout.write("\n".join(lines) + "\n")


def _figures_epilog() -> str:
    """The figures ``reproduce`` knows, for its help text."""
    from l2dynamics.experiments import FIGURES

    return "Figures: " + ", ".join(sorted(FIGURES)) + "."


@app.command(epilog=_figures_epilog())
@click.argument("figure")
@click.option(
    "--scale",
    type=click.Choice(["cpu", "paper"]),
    default="cpu",
    show_default=True,
    help="cpu: reduced setup sized for 2 cores; paper: the paper's setup.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Output directory (created; default: ./reproduce-FIGURE-SCALE).",
)
@click.option("--data-dir", default=None, help="MNIST / CIFAR-10 directory ($L2DYN_DATA).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local")
@click.option("--address", default=None, help="Ray cluster address (--executor ray).")
@_GPUS_PER_TASK
@click.option("--json", "json_out", is_flag=True, help="Print summary.json on stdout.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def reproduce(
    figure: str,
    scale: str,
    out_dir: Path | None,
    data_dir: str | None,
    executor: str,
    address: str | None,
    gpus_per_task: float | None,
    json_out: bool,
    quiet: bool,
) -> None:
    """Reproduce one figure of the paper: run its experiment (resumable), write FIGURE.png,
    the CSV numbers behind it, summary.json and a self-contained report.html, and print its
    findings."""
    _ray_driver(executor)
    from l2dynamics.experiments import ReproduceRequest, runner
    from l2dynamics.sweep.runner import check_executor

    run = runner(figure)
    check_executor(executor, gpus_per_task)  # before the output directory exists
    out_dir = out_dir if out_dir is not None else Path(f"reproduce-{figure}-{scale}")
    check_dir_target(out_dir, "--out")
    out_dir.mkdir(exist_ok=True)
    with _progress(quiet) as bar:
        request = ReproduceRequest(
            figure, scale, out_dir, data_dir, executor, address, gpus_per_task, _bars(bar)
        )
        summary = run(request)
    if json_out:
        sys.stdout.write(json.dumps(summary) + "\n")
        return
    head = str(summary.get("title", figure))
    if "n_runs" in summary:  # fig5 (theory) trains no runs
        head += f": {summary['n_runs']} runs"
    lines = [head, *_findings(summary)]
    lines.append(f"wrote {out_dir}/ (summary.json, report.html, {figure}.png)")
    sys.stdout.write("\n".join(lines) + "\n")


@app.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("quickstart"),
    show_default=True,
    help="Output directory (created; rerun to resume).",
)
@click.option("--json", "json_out", is_flag=True, help="Print summary.json on stdout.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def quickstart(out_dir: Path, json_out: bool, quiet: bool) -> None:
    """The main job: Figure 2's FC experiment on the embedded digits data at CPU scale.

    Trains an (η, λ) grid, fits t* = c/(η·λ)^b, shows best test accuracy vs λ, predicts λ for a
    budget, and writes report.html and summary.json into --out."""
    from l2dynamics.experiments import ReproduceRequest, runner

    check_dir_target(out_dir, "--out")
    out_dir.mkdir(exist_ok=True)
    with _progress(quiet) as bar:
        request = ReproduceRequest("quickstart", "cpu", out_dir, progress=_bars(bar))
        summary = runner("quickstart")(request)
    if json_out:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        sys.stdout.write(_quickstart_text(summary))


def _interval(ci: list[float] | None) -> str:
    return f"[{ci[0]:.3g}, {ci[1]:.3g}]" if ci else "n/a"


def _quickstart_text(s: dict[str, Any]) -> str:
    """The quickstart's findings as a few lines of text."""
    lines = [f"{s['title']}: {s['n_runs']} runs in {s['wall_s']:.0f} s", *_findings(s)]
    best = "  ".join(f"λ={k}: {v:.3f}" for k, v in s["best_acc_by_lam"].items())
    lines.append(f"best test accuracy (max over η): {best}")
    if s.get("lam_pred") is not None:
        lines.append(
            f"predicted λ for a budget of {s['predict_budget_epochs']:g} epochs at "
            f"η = {s['predict_eta']:g}: {s['lam_pred']:.3g} (c/T), {s['lam_pred_2c']:.3g} (2c/T)"
        )
    lines.append(f"report: {s['report']}   summary: {s['summary_json']}")
    return "\n".join(lines) + "\n"


def _findings(s: dict[str, Any]) -> list[str]:
    """A summary's findings as lines, in the report's words (``summary_text.headline``: the t*
    fits, default estimator then the paper's, or the rotational equilibrium), how far seeds put
    t*, the notes."""
    from l2dynamics.analysis.summary_text import ESTIMATOR_SHORT, agreement_text, headline

    lines = headline(s)
    for key, agree in (s.get("seed_agreement") or {}).items():
        if agree.get("n_pairs"):
            name = ESTIMATOR_SHORT.get(key, key)
            lines.append(f"a second seed moves t* ({name}) by {agreement_text(agree)}")
    return lines + [f"note: {n}" for n in s.get("notes", [])]


def _progress(quiet: bool) -> Progress | LineProgress:
    """A live bar on a terminal; timestamped lines when standard error is a file or a pipe."""
    if not quiet and not err.is_terminal:
        return LineProgress(sys.stderr)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        _CountColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=err,
        disable=quiet,
        transient=False,
    )


class _CountColumn(ProgressColumn):
    """``done/total unit`` as the plain lines write it (:func:`l2dynamics.progress.count_text`)."""

    def render(self, task: Task) -> Text:
        return Text(count_text(task.completed, task.total, task.fields.get("unit", "")))


def _print_summary(summary: dict[str, Any], as_json: bool, out: Path | None) -> None:
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
        return
    lines = [
        f"status          {summary['status']}"
        + (f" at step {summary['diverged_step']}" if summary["diverged_step"] is not None else ""),
        f"best test acc   {summary['best_test_acc']:.4f}",
        f"t* (epochs)     {summary['t_star_robust_epochs']:.6g}   (near-peak interval "
        f"[{summary['t_star_robust_lo']:.6g}, {summary['t_star_robust_hi']:.6g}]"
        + ("" if summary["t_star_robust_closed"] else ", still open at the end of the run")
        + ")",
        f"t*·η·λ          {summary['t_star_robust_epochs'] * summary['eta'] * summary['lam']:.4g}",
        f"first maximum   {summary['t_star_epochs']:.6g} epochs"
        f"   (the paper's t*; ±{100 * summary['t_star_resolution']:.1f}%)",
        f"final train acc {summary['final_train_acc']:.4f}",
        f"steps           {summary['steps']}"
        f"  ({summary['epochs']:.6g} epochs of {summary['budget_epochs']:.6g})",
        f"wall time       {summary['wall_s']:.1f} s",
    ]
    if out is not None:
        lines.append(f"curve           {out}")
    if "layers_csv" in summary:
        lines.append(f"layers          {summary['layers_csv']}")
    sys.stdout.write("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; user errors become one line and exit code 2."""
    try:
        app.main(args=argv, prog_name="l2dyn", standalone_mode=False)
    except L2DynError as exc:
        if isinstance(exc, ConfigError):
            exc = exc.renamed(CLI_NAMES)
        err.print(f"l2dyn: error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise SystemExit(2) from None
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except click.ClickException as exc:
        err.print(
            f"l2dyn: error: {exc.format_message()}", markup=False, highlight=False, soft_wrap=True
        )
        raise SystemExit(2) from None
    except click.exceptions.Abort:
        err.print("l2dyn: aborted", markup=False)
        raise SystemExit(130) from None
