"""One training run: configuration in, measured curve and summary out.

The host loop only dispatches: between two measurement steps it calls one jitted
``run_steps`` (many SGD steps in one dispatch), then one jitted ``measure``. Units in the
curve: ``step`` (SGD steps), ``epoch`` (= step·B/N), ``time`` (physical time η·epochs,
integrating the learning-rate schedule), ``tau`` (normalized time λ·time = η·λ·epochs).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import l2dynamics.autol2.controller as controller
from l2dynamics.autol2.options import AutoL2Options
from l2dynamics.config import TrainConfig, budget_epochs, validate
from l2dynamics.data import Dataset, load_dataset
from l2dynamics.files import atomic_path
from l2dynamics.losses import loss_fn, one_hot
from l2dynamics.models import build_model
from l2dynamics.optim import l2_mask, lr_factors_host, set_hyperparams, sgd_l2
from l2dynamics.results import CURVE_COLUMNS, first_peak
from l2dynamics.train import step as S
from l2dynamics.train.schedule import every_k, log_spaced, peak_window, relative_resolution
from l2dynamics.train.stopping import passed_peak

COLUMNS = CURVE_COLUMNS

ProgressFn = Callable[[int, int, dict[str, float]], None]


@dataclasses.dataclass
class RunResult:
    """The measured curve (``curve[column]`` is a 1-D array, one entry per measurement) and the
    run's summary. ``t_star_epochs`` is the epoch of the first measurement reaching the best test
    accuracy; ``t_star_resolution`` is the relative gap to the next measurement there."""

    config: TrainConfig
    status: str
    curve: dict[str, np.ndarray]
    best_test_acc: float
    t_star_epochs: float
    t_star_step: int
    t_star_resolution: float
    final_train_acc: float
    final_test_acc: float
    max_train_acc: float
    steps: int
    budget_epochs: float
    diverged_step: int | None
    wall_s: float
    stopped_at_peak: bool = False

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary (no curve)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out.pop("curve")
        out.pop("config")
        out["eta"], out["lam"] = self.config.eta, self.config.lam
        out["epochs"] = float(self.curve["epoch"][-1]) if len(self.curve["epoch"]) else 0.0
        return out

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the curve as CSV, atomically (a temporary file renamed into place)."""
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            for i in range(len(self.curve["step"])):
                writer.writerow([_fmt(self.curve[c][i]) for c in COLUMNS])


def _fmt(value: Any) -> str:
    return str(int(value)) if isinstance(value, np.integer) else repr(float(value))


def physical_times(cfg: TrainConfig, total_steps: int, batch: int, n: int) -> np.ndarray:
    """``time[s] = Σ_{s'<s} η_{s'}·B/N`` for s = 0…total_steps (η·epochs, schedule included)."""
    factors = lr_factors_host(cfg.lr_schedule, np.arange(total_steps), total_steps)
    per_step = factors * cfg.eta * batch / n
    return np.concatenate([[0.0], np.cumsum(per_step)])


def total_steps(epochs: float, n_train: int, batch: int) -> int:
    """Steps in a budget of ``epochs`` epochs: ``ceil(epochs·N/B)``, at least 1."""
    return max(1, math.ceil(round(epochs * n_train / batch, 9)))  # 400.00000000000006 → 400


def measure_steps(cfg: TrainConfig, total_steps: int) -> np.ndarray:
    """The configured measurement steps of a run of ``total_steps`` steps."""
    if cfg.measure == "every":
        return every_k(total_steps, cfg.measure_every)
    if cfg.measure == "peak":
        return peak_window(total_steps, cfg.measure_resolution)
    return log_spaced(total_steps, cfg.measure_resolution)


def eval_batch_size(cfg: TrainConfig, ds: Dataset) -> int:
    """Examples per evaluation chunk: ``cfg.eval_batch_size``, at most the larger data split."""
    return min(cfg.eval_batch_size, max(ds.n_train, ds.n_test))


def lam_now(cfg: TrainConfig, controller_lam: Any) -> float:
    """λ applied now: the AutoL2 controller's (``controller_lam``, a scalar array) or the
    configured fixed λ."""
    return float(controller_lam) if cfg.autol2 else cfg.lam


def device_data(ds: Dataset) -> S.DeviceData:
    """Put a data set on the device once, with one-hot float32 targets."""
    k = ds.num_classes
    return S.DeviceData(
        jnp.asarray(ds.x_train),
        one_hot(jnp.asarray(ds.y_train), k),
        jnp.asarray(ds.x_test),
        one_hot(jnp.asarray(ds.y_test), k),
    )


def load_data(cfg: TrainConfig) -> Dataset:
    """The data set a configuration names (subset, standardization and labels applied)."""
    d = cfg.data
    return load_dataset(
        d.name,
        data_dir=d.data_dir,
        n_train=d.n_train,
        n_test=d.n_test,
        seed=d.subset_seed,
        balanced=d.balanced,
        standardize=d.standardize,
        even_odd=d.even_odd,
    )


@dataclasses.dataclass(frozen=True)
class Program:
    """A compiled run program for one (model, data shapes, batch size): the jitted step
    loop, the measurement and the initial state builder; for a pool of runs stacked along a
    leading axis, the vmapped step loop (``run_many``), the measurement of one lane
    (``measure_lane``) and the replacement of one lane's state and hyperparameters
    (``put_lane``); the data already on the device; and whether the optimizer keeps a
    momentum buffer (``heavy_ball``: built for μ ≠ 0; plain SGD programs have none).
    Built once and reused, so that XLA compiles each function once per shape and the data
    cross to the device once per sweep, not once per run."""

    spec: S.StepSpec
    run_steps: Callable[..., S.TrainState]
    measure: Callable[..., dict[str, jax.Array]]
    init_params: Callable[[jax.Array], Any]
    init: Callable[..., S.TrainState]
    run_many: Callable[..., S.TrainState]
    measure_lane: Callable[..., dict[str, jax.Array]]
    put_lane: Callable[..., Any]
    data: S.DeviceData
    heavy_ball: bool


def build_program(cfg: TrainConfig, ds: Dataset) -> Program:
    """Model, optimizer and jitted functions for ``cfg`` on ``ds``."""
    model = build_model(cfg.model.name, ds.num_classes, **dict(cfg.model.options))
    batch = min(cfg.batch_size or ds.n_train, ds.n_train)
    heavy_ball = cfg.momentum != 0
    tx = sgd_l2(cfg.eta, cfg.lam, cfg.momentum, mask=l2_mask(cfg.l2_mask), heavy_ball=heavy_ball)
    d = cfg.data
    spec = S.StepSpec(
        model.apply,
        loss_fn(cfg.loss),
        tx,
        batch,
        ds.n_train,
        cfg.lr_schedule,
        d.flip,
        d.crop,
        d.mixup_alpha,
        autol2_options(cfg, lam0=AutoL2Options.lam0),
    )
    sample = jnp.zeros((1, *ds.x_train.shape[1:]), jnp.float32)
    run_one, run_many = _step_loops(spec, stepwise_dispatch(cfg.model.name))
    return Program(
        spec,
        run_one,
        jax.jit(partial(S.measure, spec), static_argnums=(2,)),
        lambda key: model.init(key, sample)["params"],
        _init_fn(model, tx, sample),
        run_many,
        jax.jit(partial(S.measure_lane, spec), static_argnums=(3,)),
        jax.jit(S.put_lane, donate_argnums=(0,)),
        device_data(ds),
        heavy_ball,
    )


CONV_MODELS = ("cnn", "wrn")


def stepwise_dispatch(model_name: str) -> bool:
    """Whether ``model_name`` trains one jitted step per dispatch rather than a jitted
    ``while_loop`` of steps: convolutional models on the CPU backend (see
    :func:`l2dynamics.train.step.stepwise`)."""
    return model_name in CONV_MODELS and jax.default_backend() == "cpu"


def _step_loops(spec: S.StepSpec, stepwise: bool) -> tuple[Callable, Callable]:
    """``run_steps`` for one run and for a vmapped stack: ``(data, state, hyper, n_steps)``."""
    if stepwise:
        one = jax.jit(partial(S.guarded_step, spec), donate_argnums=(1,))
        many = jax.vmap(partial(S.guarded_step, spec), in_axes=(None, 0, 0, 0))
        return S.stepwise(one), S.stepwise(jax.jit(many, donate_argnums=(1,)))
    return (
        jax.jit(partial(S.run_steps, spec), donate_argnums=(1,)),
        jax.jit(jax.vmap(partial(S.run_steps, spec), in_axes=(None, 0, 0, 0)), donate_argnums=(1,)),
    )


def autol2_options(cfg: TrainConfig, lam0: float | None = None) -> AutoL2Options | None:
    """The AutoL2 schedule of ``cfg`` (None for a fixed λ); λ₀ = ``lam0`` or ``cfg.lam``.

    The compiled step only uses the constants (decay, refractory, period); λ₀ enters through
    each run's initial controller state, so runs with different λ₀ share one program.
    """
    if not cfg.autol2:
        return None
    return AutoL2Options(
        lam0=cfg.lam if lam0 is None else lam0,
        decay=cfg.autol2_decay,
        refractory=cfg.autol2_refractory,
        period=cfg.autol2_period,
    )


def init_state(cfg: TrainConfig, program: Program) -> S.TrainState:
    """Initial parameters and optimizer state from ``cfg.seed`` (named streams: init, order);
    the parameters depend on the seed only, so runs with one seed share their initialization.
    The AutoL2 controller starts at λ₀ = ``cfg.lam`` (built on the host, as
    :func:`l2dynamics.autol2.controller.init` defines it)."""
    if cfg.momentum != 0 and not program.heavy_ball:
        raise ValueError(
            f"momentum {cfg.momentum} needs a program with a momentum buffer; this one was "
            "built for plain SGD (momentum 0)"
        )
    state = program.init(jax.random.key(cfg.seed), cfg.eta, cfg.lam, cfg.momentum)
    return state._replace(autol2=controller.init(autol2_options(cfg)))


def _init_fn(model, tx, sample: jax.Array) -> Callable[..., S.TrainState]:
    def init(seed_key, eta, lam, momentum) -> S.TrainState:
        init_key, order_key = jax.random.split(seed_key, 2)
        params = model.init(init_key, sample)["params"]
        opt_state = set_hyperparams(tx.init(params), learning_rate=eta, l2=lam, momentum=momentum)
        ctrl = controller.init(None)  # replaced by the run's own in init_state
        return S.TrainState(params, opt_state, jnp.int32(0), order_key, jnp.int32(-1), ctrl)

    return jax.jit(init)


def train(
    cfg: TrainConfig, *, dataset: Dataset | None = None, progress: ProgressFn | None = None
) -> RunResult:
    """Train one run to its budget (or divergence), measuring on the configured schedule.

    Args:
        cfg: the run; validated here (raises :class:`~l2dynamics.errors.ConfigError`).
        dataset: the data, if already loaded (else loaded from ``cfg.data``).
        progress: called after each measurement with (step, total_steps, row).
    """
    validate(cfg)
    ds = dataset if dataset is not None else load_data(cfg)
    program = build_program(cfg, ds)
    return run_program(cfg, ds, program, progress=progress)


def run_program(
    cfg: TrainConfig, ds: Dataset, program: Program, *, progress: ProgressFn | None = None
) -> RunResult:
    """Run ``cfg`` with an already built :class:`Program` (reuse it across (η, λ))."""
    start = time.perf_counter()
    batch = program.spec.batch_size
    epochs = budget_epochs(cfg)
    total = total_steps(epochs, ds.n_train, batch)
    mtimes = physical_times(cfg, total, batch, ds.n_train)
    data = program.data
    hyper = S.Hyper(jnp.float32(cfg.eta), jnp.float32(cfg.lam), jnp.int32(total))
    state = init_state(cfg, program)
    eval_batch = eval_batch_size(cfg, ds)
    rows: list[dict[str, float]] = []
    done, diverged = 0, None
    for target in measure_steps(cfg, total):
        if target > done:
            state = program.run_steps(data, state, hyper, jnp.int32(target - done))
            bad = int(state.diverged_step)
            if bad >= 0:
                diverged, done = bad, int(state.step)
                break
            done = int(target)
        metrics = program.measure(data, state.params, eval_batch)
        lam = lam_now(cfg, state.autol2.lam)
        row = make_row(cfg, metrics, done, batch, ds, mtimes, total, lam, rows)
        rows.append(row)
        if progress:
            progress(done, total, row)
        if not math.isfinite(row["train_loss"]):
            diverged = done
            break
        if at_peak_stop(cfg, rows):
            break
    wall = time.perf_counter() - start
    result = make_result(cfg, rows, total, epochs, diverged, wall, steps_done=done)
    return result


def at_peak_stop(cfg: TrainConfig, rows: list[dict[str, float]]) -> bool:
    """Whether ``cfg`` asks for the peak-aware stop and its measured ``rows`` call for it."""
    if cfg.peak_stop is None:
        return False
    epochs = [r["epoch"] for r in rows]
    return passed_peak(epochs, [r["test_acc"] for r in rows], cfg.peak_stop, cfg.peak_drop)


def make_row(cfg, metrics, step, batch, ds, mtimes, total, lam, rows) -> dict[str, float]:
    """One measurement row of the curve (see :data:`COLUMNS`) at ``step``.

    ``lam`` is λ now. With a fixed λ, τ = λ·time exactly; with AutoL2, τ = ∫λ dt accumulates
    from the previous row (``rows[-1]``), λ held at its value there over the interval (λ
    changes only at measurement periods, so τ can lag by at most one period per decay).
    """
    values = {k: float(v) for k, v in metrics.items()}
    eta = cfg.eta * float(lr_factors_host(cfg.lr_schedule, np.asarray(step), total))
    t = float(mtimes[step])
    if cfg.autol2 and rows:
        tau = rows[-1]["tau"] + (t - rows[-1]["time"]) * rows[-1]["lam_now"]
    else:
        tau = t * lam
    return {
        "step": step,
        "epoch": step * batch / ds.n_train,
        "time": t,
        "tau": tau,
        **values,
        "eta_now": eta,
        "lam_now": lam,
    }


def make_result(cfg, rows, total, epochs, diverged, wall, steps_done) -> RunResult:
    """The :class:`RunResult` of measured ``rows``: t* is the first maximum of test accuracy.

    A run that ends before its budget without diverging was stopped by the peak-aware stop.
    """
    curve = {
        c: np.asarray([r[c] for r in rows], dtype=np.int64 if c == "step" else np.float64)
        for c in COLUMNS
    }
    acc = curve["test_acc"]
    i = first_peak(acc)
    steps_arr = curve["step"]
    return RunResult(
        config=cfg,
        status="diverged" if diverged is not None else "done",
        curve=curve,
        best_test_acc=float(acc[i]) if i is not None else float("nan"),
        t_star_epochs=float(curve["epoch"][i]) if i is not None else float("nan"),
        t_star_step=int(steps_arr[i]) if i is not None else 0,
        t_star_resolution=relative_resolution(steps_arr, int(steps_arr[i]))
        if i is not None
        else 0.0,
        final_train_acc=float(curve["train_acc"][-1]) if len(acc) else float("nan"),
        final_test_acc=float(acc[-1]) if len(acc) else float("nan"),
        max_train_acc=float(np.max(curve["train_acc"])) if len(acc) else float("nan"),
        steps=int(steps_done),
        budget_epochs=float(epochs),
        diverged_step=diverged,
        wall_s=float(wall),
        stopped_at_peak=diverged is None and int(steps_done) < total,
    )
