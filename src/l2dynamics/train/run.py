"""One training run: configuration in, measured curve and summary out.

The host loop only dispatches: between two measurement steps it calls one jitted ``run_steps``
(many SGD steps in one dispatch), then one jitted ``measure``; the run's
:class:`~l2dynamics.train.book.RunBook` decides when to measure, turns measurements into curve
rows and says when the run has ended. A pool of runs (:mod:`l2dynamics.train.vector`) keeps one
book per run in the same way.

Words for the nested levels of batching, used throughout the package:

- **program**: the compiled functions shared by every run of one *group* (same model, data
  shapes, batch size, optimizer with its β₁, β₂, ε, and whether there is a momentum buffer;
  :func:`build_program`);
- **pool**: runs of one group trained together under ``jax.vmap`` in a fixed number of
  **lanes** (a finished run's lane takes the next run);
- **tail**: a pool's last runs, handed to the one-run program one after the other;
- **chunk** (in :mod:`l2dynamics.sweep`): the runs one executor task trains (a pool, or runs
  one by one).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

import l2dynamics.autol2.controller as controller
from l2dynamics.autol2.options import AutoL2Options
from l2dynamics.autol2.start import budget_lam0, preset
from l2dynamics.config import (
    TrainConfig,
    budget_epochs,
    decay_rate_terms,
    validate,
    validate_for_data,
)
from l2dynamics.data import Dataset, load_dataset
from l2dynamics.losses import l2_scale, loss_fn, one_hot
from l2dynamics.models import build_model
from l2dynamics.optim import run_optimizer, set_hyperparams
from l2dynamics.progress import ProgressFn, Update
from l2dynamics.train import devices as D
from l2dynamics.train import step as S
from l2dynamics.train.book import (
    RunBook,
    RunResult,
    measure_steps,
    physical_times,
    result_of,
    total_steps,
)
from l2dynamics.train.checkpoint import (
    Checkpointer,
    CheckpointMismatchError,
    Snapshot,
    host_leaves,
    restore_run,
    run_snapshot,
)

__all__ = [
    "PoolOps",
    "Program",
    "RunBook",
    "RunResult",
    "autol2_measure",
    "build_program",
    "controller_options",
    "device_data",
    "eval_batch_size",
    "init_state",
    "lam_in_force",
    "load_data",
    "measure_steps",
    "measured_update",
    "physical_times",
    "result_of",
    "run_hyper",
    "run_program",
    "step_loops",
    "stepwise_dispatch",
    "total_steps",
    "train",
    "train_with_book",
]


def eval_batch_size(cfg: TrainConfig, ds: Dataset) -> int:
    """Examples per evaluation chunk: ``cfg.eval_batch_size``, at most the larger data split."""
    return min(cfg.eval_batch_size, max(ds.n_train, ds.n_test))


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
class PoolOps:
    """The jitted functions of a pool, whose lanes hold runs stacked along a leading axis:
    ``run_steps(data, states, hypers, n_steps)`` steps every lane its own ``n_steps[lane]``
    (vmapped), ``measure(data, params, lane, eval_batch, angles)`` measures one lane, ``put(stacks,
    lane, one)`` replaces a lane's state and hyperparameters, ``take(stacks, lane)`` copies
    one out (for the tail, placed where the one-run program runs); ``data``: the data set
    where these functions read it (replicated on every device when the lanes are sharded,
    :mod:`l2dynamics.train.devices`)."""

    run_steps: Callable[..., S.TrainState]
    measure: Callable[..., dict[str, jax.Array]]
    put: Callable[..., Any]
    take: Callable[..., Any]
    data: S.DeviceData


@dataclasses.dataclass(frozen=True)
class Program:
    """The compiled program of one group of runs (model, data shapes, batch size, optimizer):
    the step spec, the data on the device, whether an SGD keeps a momentum buffer
    (``heavy_ball``: built for μ ≠ 0; plain SGD programs and the Adams have none), the initial
    state builders, one run's jitted step loop ``run_steps(data, state, hyper, n_steps)`` and
    measurement ``measure(data, params, eval_batch, angles)`` (``angles``: the state's, None
    unless the program measures layers; data-parallel over the local devices
    when ``data_parallel`` > 1, :func:`l2dynamics.train.devices.data_parallel_mesh`), and the
    same for a pool (``pool``; ``sharded_pool``: its lanes split over the local devices, None
    on one device).

    Built once and reused, so that XLA compiles each function once per shape and the data
    cross to the device once per sweep, not once per run."""

    spec: S.StepSpec
    data: S.DeviceData
    heavy_ball: bool
    init_params: Callable[[jax.Array], Any]
    init: Callable[..., S.TrainState]
    run_steps: Callable[..., S.TrainState]
    measure: Callable[..., dict[str, jax.Array]]
    pool: PoolOps
    sharded_pool: PoolOps | None = None
    data_parallel: int = 1


def build_program(cfg: TrainConfig, ds: Dataset, *, data_parallel: bool | None = None) -> Program:
    """Model, optimizer and jitted functions for ``cfg`` on ``ds``.

    ``data_parallel``: whether one run splits its minibatches over the local devices (True:
    raises :class:`~l2dynamics.errors.ConfigError` unless their count divides the batch; None:
    when it does; the rule: :func:`l2dynamics.train.devices.data_parallel_devices`). On one
    device it changes nothing."""
    model = build_model(cfg.model.name, ds.num_classes, **dict(cfg.model.options))
    heavy_ball = cfg.momentum != 0  # only the SGDs take μ (config.OPTIMIZER_OPTIONS)
    tx = run_optimizer(cfg, heavy_ball=heavy_ball)
    spec = _step_spec(cfg, ds, model, tx)
    sample = jnp.zeros((1, *ds.x_train.shape[1:]), jnp.float32)
    stepwise = stepwise_dispatch(cfg.model.name)
    data = single = device_data(ds)
    run_one, run_many = step_loops(spec, stepwise)
    measure = jax.jit(partial(S.measure, spec), static_argnums=(2,))
    mesh, dp_mesh = D.local_mesh(), D.data_parallel_mesh(spec.batch_size, data_parallel)
    shared = None if mesh is None else jax.device_put(single, D.replicated(mesh))
    sharded = None
    if mesh is not None:
        run_at = D.first_device() if dp_mesh is None else D.replicated(mesh)
        sharded = _sharded_pool_ops(spec, stepwise, mesh, run_at, shared)
    if dp_mesh is not None:
        run_one, measure = _data_parallel_ops(spec, stepwise, dp_mesh)
        data = shared
    return Program(
        spec,
        data,
        heavy_ball,
        lambda key: model.init(key, sample)["params"],
        _init_fn(model, tx, sample, measure_layers=spec.measure_layers),
        run_one,
        measure,
        PoolOps(
            run_many,
            jax.jit(partial(S.measure_lane, spec), static_argnums=(3,)),
            jax.jit(S.put_lane, donate_argnums=(0,)),
            jax.jit(S.lane),  # one dispatch for a whole lane (eager indexing: one per leaf)
            single,
        ),
        sharded,
        1 if dp_mesh is None else dp_mesh.devices.size,
    )


def _step_spec(cfg: TrainConfig, ds: Dataset, model: Any, tx: Any) -> S.StepSpec:
    d = cfg.data
    return S.StepSpec(
        apply=model.apply,
        loss=loss_fn(cfg.loss, cfg.convention),
        tx=tx,
        batch_size=min(cfg.batch_size or ds.n_train, ds.n_train),
        n_train=ds.n_train,
        lr_schedule=cfg.lr_schedule,
        flip=d.flip,
        crop=d.crop,
        mixup_alpha=d.mixup_alpha,
        l2_scale=l2_scale(cfg.convention),
        controller=controller_options(cfg, lam0=AutoL2Options.lam0),
        measure_source=autol2_measure(cfg),
        measure_size=cfg.autol2_measure_size,
        eval_batch=eval_batch_size(cfg, ds),
        measure_layers=cfg.measure_layers,
    )


def _data_parallel_ops(spec: S.StepSpec, stepwise: bool, mesh: Any) -> tuple[Callable, Callable]:
    """One run's ``run_steps`` and ``measure`` with its state replicated over ``mesh`` and each
    minibatch split over it along its examples (the measurement, in chunks, runs on every
    device alike)."""
    rep = D.replicated(mesh)
    split = dataclasses.replace(spec, batch_sharding=D.lane_sharding(mesh))
    run = D.placed(_loop(split, stepwise, lanes=False, out=rep), (rep, rep, rep))
    measure = D.placed(jax.jit(partial(S.measure, spec), static_argnums=(2,)), (rep, rep))
    return run, measure


def _sharded_pool_ops(
    spec: S.StepSpec, stepwise: bool, mesh: Any, run_at: Any, data: S.DeviceData
) -> PoolOps:
    """A pool's functions with its lanes split over ``mesh`` (data replicated); a lane copied
    out for the tail is put at ``run_at``, where the one-run program runs."""
    rep, lanes = D.replicated(mesh), D.lane_sharding(mesh)
    return PoolOps(
        D.placed(_loop(spec, stepwise, lanes=True, out=lanes), (rep, lanes, lanes)),
        D.placed(jax.jit(partial(S.measure_lane, spec), static_argnums=(3,)), (rep, lanes)),
        D.placed(jax.jit(S.put_lane, donate_argnums=(0,), out_shardings=lanes), (lanes, None, rep)),
        D.placed(jax.jit(S.lane, out_shardings=run_at), (lanes,)),
        data,
    )


CONV_MODELS = ("cnn", "wrn")


def stepwise_dispatch(model_name: str) -> bool:
    """Whether ``model_name`` trains one jitted step per dispatch rather than a jitted
    ``while_loop`` of steps: convolutional models on the CPU backend (see
    :func:`l2dynamics.train.step.stepwise`)."""
    return model_name in CONV_MODELS and jax.default_backend() == "cpu"


def step_loops(spec: S.StepSpec, stepwise: bool) -> tuple[Callable, Callable]:
    """``run_steps`` for one run and for a vmapped stack: ``(data, state, hyper, n_steps)``."""
    return _loop(spec, stepwise, lanes=False), _loop(spec, stepwise, lanes=True)


def _loop(spec: S.StepSpec, stepwise: bool, *, lanes: bool, out: Any = None) -> Callable:
    """One run's jitted step loop (``lanes``: vmapped over a leading lane axis), stepwise or a
    ``while_loop`` (:func:`stepwise_dispatch`); ``out``: where its state stays on several
    devices (None: where it came from)."""
    kw = {} if out is None else {"out_shardings": out}
    if stepwise:
        step = partial(S.guarded_step, spec)
        step = jax.vmap(step, in_axes=(None, 0, 0, 0)) if lanes else step
        return S.stepwise(jax.jit(step, donate_argnums=(1,), **kw))
    loop = partial(S.run_steps, spec)
    loop = jax.vmap(loop, in_axes=(None, 0, 0, 0)) if lanes else loop
    return jax.jit(loop, donate_argnums=(1,), **kw)


def controller_options(
    cfg: TrainConfig, lam0: float | None = None, budget_steps: int | None = None
) -> AutoL2Options | None:
    """The AutoL2 schedule of ``cfg`` (None for a fixed λ). λ₀ = ``lam0`` if given, else
    ``cfg.lam`` if > 0, else ``3·cfg.autol2_lam_pred`` if given
    (:func:`l2dynamics.autol2.start.budget_lam0`), else the start of ``cfg.autol2_preset`` for a
    budget of ``budget_steps`` steps (:func:`l2dynamics.autol2.start.preset`; in the script
    convention the scale-aware start is half the SM's, as its λ acts twice as fast); each rule
    the config leaves unset (None) is the preset's.

    The compiled step only uses the constants (decay, period, count_ties); λ₀ enters through
    each run's initial controller state, so runs with different λ₀ share one program.
    """
    if not cfg.autol2:
        return None
    # The start is set by the rate at which the decay acts per step (the optimizer's timescale):
    # in the script convention the same λ acts twice as fast (λ·‖θ‖²); the heavy-ball buffer
    # multiplies coupled SGD's rate by 1/(1−μ); a decoupled decay acts at η·λ with any momentum.
    eta_l2, momentum = decay_rate_terms(cfg)
    rules = preset(
        cfg.autol2_preset, eta_l2, momentum, cfg.autol2_period, budget_steps=budget_steps
    )
    if lam0 is None and cfg.lam > 0:
        lam0 = cfg.lam
    if lam0 is None and cfg.autol2_lam_pred is not None:
        lam0 = budget_lam0(cfg.autol2_lam_pred)
    return AutoL2Options(
        lam0=rules.lam0 if lam0 is None else lam0,
        decay=cfg.autol2_decay,
        refractory=cfg.autol2_refractory,
        period=cfg.autol2_period,
        initial_best_loss=_given(cfg.autol2_initial_best_loss, rules.initial_best_loss),
        count_ties=_given(cfg.autol2_count_ties, rules.count_ties),
        start_refractory=_given(cfg.autol2_start_refractory, rules.start_refractory),
    )


def autol2_measure(cfg: TrainConfig) -> str:
    """What the AutoL2 controller of ``cfg`` measures: ``cfg.autol2_measure``, else its
    preset's (:data:`l2dynamics.config.AUTOL2_MEASURES`); ``"minibatch"`` without AutoL2."""
    if not cfg.autol2:
        return "minibatch"
    if cfg.autol2_measure is not None:
        return cfg.autol2_measure
    return preset(cfg.autol2_preset, cfg.eta, cfg.momentum, cfg.autol2_period).measure


def _given(value: Any, preset_value: Any) -> Any:
    return preset_value if value is None else value


def init_state(cfg: TrainConfig, program: Program) -> S.TrainState:
    """Initial parameters and optimizer state from ``cfg.seed`` (named streams: init, order);
    the parameters depend on the seed only, so runs with one seed share their initialization.
    The AutoL2 controller starts at λ₀ of :func:`controller_options` (built on the host, as
    :func:`l2dynamics.autol2.controller.init` defines it)."""
    if cfg.momentum != 0 and not program.heavy_ball:
        raise ValueError(
            f"momentum {cfg.momentum} needs a program with a momentum buffer; this one was "
            "built for plain SGD (momentum 0)"
        )
    state = program.init(jax.random.key(cfg.seed), cfg.eta, cfg.lam, cfg.momentum)
    spec = program.spec
    budget = total_steps(budget_epochs(cfg), spec.n_train, spec.batch_size)
    return state._replace(controller=controller.init(controller_options(cfg, budget_steps=budget)))


def _init_fn(
    model, tx, sample: jax.Array, *, measure_layers: bool = False
) -> Callable[..., S.TrainState]:
    def init(seed_key, eta, lam, momentum) -> S.TrainState:
        init_key, order_key = jax.random.split(seed_key, 2)
        params = model.init(init_key, sample)["params"]
        opt_state = tx.init(params)
        hyper = {"learning_rate": eta, "l2": lam}
        if "momentum" in opt_state.hyperparams:  # the SGDs' μ; the Adams have none
            hyper["momentum"] = momentum
        opt_state = set_hyperparams(opt_state, **hyper)
        ctrl = controller.init(None)  # replaced by the run's own in init_state
        angles = S.initial_angles(params) if measure_layers else None
        return S.TrainState(params, opt_state, jnp.int32(0), order_key, jnp.int32(-1), ctrl, angles)

    return jax.jit(init)


def train(
    cfg: TrainConfig,
    *,
    dataset: Dataset | None = None,
    progress: ProgressFn | None = None,
    data_parallel: bool | None = None,
) -> RunResult:
    """Train one run to its budget (or divergence), measuring on the configured schedule.

    Args:
        cfg: the run; validated here, and against its data
            (:func:`~l2dynamics.config.validate_for_data`; raises
            :class:`~l2dynamics.errors.ConfigError`).
        dataset: the data, if already loaded (else loaded from ``cfg.data``).
        progress: called after each measurement with an :class:`~l2dynamics.progress.Update`
            of task ``"train"`` in steps (status: epoch, train and test accuracy).
        data_parallel: whether to split its minibatches over the local devices
            (:func:`build_program`; default: when there are several and they divide the batch).
    """
    validate(cfg)
    ds = dataset if dataset is not None else load_data(cfg)
    validate_for_data(cfg, ds.n_train)
    program = build_program(cfg, ds, data_parallel=data_parallel)
    return run_program(cfg, ds, program, progress=progress)


def run_program(
    cfg: TrainConfig,
    ds: Dataset,
    program: Program,
    *,
    progress: ProgressFn | None = None,
    checkpointer: Checkpointer | None = None,
    resume: Snapshot | None = None,
) -> RunResult:
    """Run ``cfg`` with an already built :class:`Program` (reuse it across (η, λ)).

    ``checkpointer``: leaves the run's checkpoint (mode ``"one"``) when due; ``resume``: such a
    checkpoint of this run to continue from (the result is then bit for bit that of the run
    uninterrupted). Raises :class:`~l2dynamics.train.checkpoint.CheckpointMismatchError` when
    ``resume`` does not fit the run.
    """
    book = RunBook(cfg, ds.n_train, program.spec.batch_size, ds.n_test)
    state = init_state(cfg, program)
    if resume is not None:
        if resume.mode != "one":
            raise CheckpointMismatchError(f"a checkpoint of mode {resume.mode!r}, not of one run")
        state = restore_run(book, state, resume, 0)
    save = None
    if checkpointer is not None:

        def save(s: S.TrainState) -> None:
            if checkpointer.due():
                checkpointer.write(run_snapshot("one", {0: (book, host_leaves(s))}))

    train_with_book(book, state, run_hyper(book), program, ds, progress=progress, checkpoint=save)
    return book.result()


def train_with_book(
    book: RunBook,
    state: S.TrainState,
    hyper: S.Hyper,
    program: Program,
    ds: Dataset,
    *,
    progress: ProgressFn | None = None,
    checkpoint: Callable[[S.TrainState], None] | None = None,
) -> S.TrainState:
    """Train one run from ``state`` with the one-run program until its ``book`` says it has
    ended; returns the last state. ``progress`` gets an update after each measurement;
    ``checkpoint(state)`` is called after each measurement that does not end the run (a
    measurement point, where it may save a checkpoint)."""
    eval_batch = eval_batch_size(book.cfg, ds)
    while True:
        if book.gap() > 0:
            state = program.run_steps(program.data, state, hyper, jnp.int32(book.gap()))
            if book.trained(*jax.device_get((state.step, state.diverged_step))):
                return state
        measured = program.measure(program.data, state.params, eval_batch, state.angles)
        metrics = jax.device_get(measured)
        row = book.record(metrics, lam_in_force(book.cfg, state.controller))
        if progress is not None:
            progress(measured_update(book, row))
        if book.ended:
            return state
        if checkpoint is not None:
            checkpoint(state)


def measured_update(book: RunBook, row: dict[str, float]) -> Update:
    """The progress update of a run after the measurement ``row``."""
    status = f"epoch {row['epoch']:.4g}  train {row['train_acc']:.3f}  test {row['test_acc']:.3f}"
    return Update("train", book.done, book.total, "steps", status)


def run_hyper(book: RunBook) -> S.Hyper:
    """One run's run-time hyperparameters as device scalars (a pool stacks them)."""
    cfg = book.cfg
    return S.Hyper(jnp.float32(cfg.eta), jnp.float32(cfg.lam), jnp.int32(book.total))


def lam_in_force(cfg: TrainConfig, controller: Any, lane: int | None = None) -> float:
    """λ applied now: the AutoL2 controller's (``controller.lam``; in a pool, of ``lane``) when
    ``cfg`` schedules λ, else the configured fixed λ (the device step makes the same choice).
    A fixed-λ run reads nothing from the device."""
    if not cfg.autol2:
        return cfg.lam
    return float(controller.lam if lane is None else controller.lam[lane])
