"""Vectorized training: many runs of one architecture and data set in one compiled program.

Parameters, optimizer states and the hyperparameters (η₀, λ, budget) of R runs are stacked
along a leading axis and trained under ``jax.vmap``: one compilation for the whole group.
The group steps through the union of the runs' measurement schedules, and each run records
only at the steps of its own schedule, so a vectorized run measures exactly where it would
alone and differs from a one-by-one run only by float32 reduction order.

A run that reaches its budget or diverges stops updating (its step count is 0 in the batched
``while_loop``, which leaves its state unchanged) and is handed to ``on_result`` at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from l2dynamics.config import TrainConfig, budget_epochs
from l2dynamics.data import Dataset
from l2dynamics.train import step as S
from l2dynamics.train.run import (
    Program,
    RunResult,
    at_peak_stop,
    init_state,
    make_result,
    make_row,
    measure_steps,
    physical_times,
    total_steps,
)

ResultFn = Callable[[int, RunResult], None]


def stack_states(states: Sequence[S.TrainState]) -> S.TrainState:
    """Stack R train states along a new leading axis."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


def _initial_states(cfgs: Sequence[TrainConfig], program: Program) -> S.TrainState:
    """Stacked initial states (runs with the same seed get the same parameters)."""
    return stack_states([init_state(c, program) for c in cfgs])


def train_vectorized(
    cfgs: Sequence[TrainConfig],
    ds: Dataset,
    program: Program,
    *,
    on_result: ResultFn,
    on_measure: Callable[[int, int], None] | None = None,
    slots: int | None = None,
) -> None:
    """Train ``cfgs`` (same architecture, data, batch size and schedule kind) together.

    Args:
        cfgs: the runs; they may differ in η, λ, seed, momentum and budget.
        ds: their data set; program: built by :func:`~l2dynamics.train.run.build_program`
            for any one of them.
        on_result: called as ``on_result(index, result)`` when run ``index`` finishes.
        on_measure: called as ``on_measure(step, active_runs)`` after each measurement.
        slots: the vmapped width (≥ len(cfgs), default len(cfgs)); the padding slots never
            step. Equal widths across the chunks of a sweep mean one compilation.
    """
    start = time.perf_counter()
    real = len(cfgs)
    cfgs = list(cfgs) + [cfgs[0]] * ((slots or real) - real)  # padding slots never step
    batch, n = program.spec.batch_size, ds.n_train
    epochs = [budget_epochs(c) for c in cfgs]
    totals = np.array([total_steps(e, n, batch) for e in epochs], dtype=np.int64)
    totals[real:] = 0
    own = [set(measure_steps(c, int(t)).tolist()) for c, t in zip(cfgs, totals, strict=True)]
    targets = np.array(sorted(set().union(*own[:real])), dtype=np.int64)
    mtimes = [physical_times(c, int(t), batch, n) for c, t in zip(cfgs, totals, strict=True)]
    hyper = S.Hyper(
        jnp.asarray([c.eta for c in cfgs], jnp.float32),
        jnp.asarray([c.lam for c in cfgs], jnp.float32),
        jnp.asarray(totals, jnp.int32),
    )
    data = program.data
    run, measure = program.run_many, program.measure_many
    states = _initial_states(cfgs, program)
    eval_batch = min(cfgs[0].eval_batch_size, max(ds.n_train, ds.n_test))
    rows: list[list[dict[str, float]]] = [[] for _ in cfgs]
    active = np.arange(len(cfgs)) < real
    done = np.zeros(len(cfgs), dtype=np.int64)

    def finish(i: int, diverged: int | None) -> None:
        active[i] = False
        wall = time.perf_counter() - start
        result = make_result(
            cfgs[i], rows[i], int(totals[i]), epochs[i], diverged, wall, steps_done=int(done[i])
        )
        on_result(i, result)

    for target in targets:
        live = active & (target <= totals)
        n_steps = np.where(live, target - done, 0)
        if n_steps.any():
            states = run(data, states, hyper, jnp.asarray(n_steps, jnp.int32))
        step_now = np.asarray(states.step)
        bad = np.asarray(states.diverged_step)
        metrics = None
        for i in np.flatnonzero(live):
            done[i] = step_now[i]
            if bad[i] >= 0:
                finish(i, int(bad[i]))
                continue
            if int(target) not in own[i]:
                continue
            if metrics is None:
                metrics = jax.tree.map(np.asarray, measure(data, states.params, eval_batch))
            one = {k: v[i] for k, v in metrics.items()}
            lam = float(states.autol2.lam[i]) if cfgs[i].autol2 else cfgs[i].lam
            row = make_row(
                cfgs[i], one, int(target), batch, ds, mtimes[i], int(totals[i]), lam, rows[i]
            )
            rows[i].append(row)
            if not np.isfinite(row["train_loss"]):
                finish(i, int(target))
            elif target == totals[i] or at_peak_stop(cfgs[i], rows[i]):
                finish(i, None)
        if on_measure:
            on_measure(int(target), int(active.sum()))
