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

    Lanes of finished runs are dropped once at most half the lanes are still running: the
    live runs are gathered into a stack of the next power-of-two width (so a chunk compiles
    at most ``log2(slots) + 1`` widths, shared by every chunk of a sweep), which keeps a few
    long runs from paying for the lanes of the many short ones.

    Args:
        cfgs: the runs; they may differ in η, λ, seed, momentum and budget.
        ds: their data set; program: built by :func:`~l2dynamics.train.run.build_program`
            for any one of them.
        on_result: called as ``on_result(index, result)`` when run ``index`` finishes.
        on_measure: called as ``on_measure(step, active_runs)`` after each measurement.
        slots: the vmapped width (≥ len(cfgs), default len(cfgs)); the padding slots never
            step. Equal widths across the chunks of a sweep share their compilations.
    """
    start = time.perf_counter()
    cfgs = list(cfgs)
    real, width = len(cfgs), max(slots or len(cfgs), len(cfgs))
    batch, n = program.spec.batch_size, ds.n_train
    epochs = [budget_epochs(c) for c in cfgs]
    totals = np.array([total_steps(e, n, batch) for e in epochs], dtype=np.int64)
    own = [set(measure_steps(c, int(t)).tolist()) for c, t in zip(cfgs, totals, strict=True)]
    targets = np.array(sorted(set().union(*own)), dtype=np.int64)
    mtimes = [physical_times(c, int(t), batch, n) for c, t in zip(cfgs, totals, strict=True)]
    lane_run = np.where(np.arange(width) < real, np.arange(width), -1)  # −1: padding lane
    padded = [cfgs[r] if r >= 0 else cfgs[0] for r in lane_run]
    hyper = S.Hyper(
        jnp.asarray([c.eta for c in padded], jnp.float32),
        jnp.asarray([c.lam for c in padded], jnp.float32),
        jnp.asarray([totals[r] if r >= 0 else 0 for r in lane_run], jnp.int32),
    )
    data = program.data
    states = _initial_states(padded, program)
    eval_batch = min(cfgs[0].eval_batch_size, max(ds.n_train, ds.n_test))
    rows: list[list[dict[str, float]]] = [[] for _ in cfgs]
    active = np.ones(real, dtype=bool)
    done = np.zeros(real, dtype=np.int64)

    def finish(i: int, diverged: int | None) -> None:
        active[i] = False
        wall = time.perf_counter() - start
        result = make_result(
            cfgs[i], rows[i], int(totals[i]), epochs[i], diverged, wall, steps_done=int(done[i])
        )
        on_result(i, result)

    for target in targets:
        live = active & (target <= totals)
        lane_steps = np.array([target - done[r] if r >= 0 and live[r] else 0 for r in lane_run])
        if lane_steps.any():
            states = program.run_many(data, states, hyper, jnp.asarray(lane_steps, jnp.int32))
        step_now = np.asarray(states.step)
        bad = np.asarray(states.diverged_step)
        metrics = None
        for lane, i in enumerate(lane_run):
            if i < 0 or not live[i]:
                continue
            done[i] = step_now[lane]
            if bad[lane] >= 0:
                finish(i, int(bad[lane]))
                continue
            if int(target) not in own[i]:
                continue
            if metrics is None:
                metrics = jax.tree.map(
                    np.asarray, program.measure_many(data, states.params, eval_batch)
                )
            one = {k: v[lane] for k, v in metrics.items()}
            lam = float(states.autol2.lam[lane]) if cfgs[i].autol2 else cfgs[i].lam
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
        states, hyper, lane_run = _compact(states, hyper, lane_run, active)


def _compact(states: S.TrainState, hyper: S.Hyper, lane_run: np.ndarray, active: np.ndarray):
    """Gather the lanes of active runs into a narrower stack when at most half are active.

    The new width is the next power of two ≥ the active count; extra lanes repeat an active
    lane and are marked as padding (−1: they never step).
    """
    keep = [lane for lane, r in enumerate(lane_run) if r >= 0 and active[r]]
    if not keep or len(keep) > len(lane_run) // 2:
        return states, hyper, lane_run
    new_width = 1 << (len(keep) - 1).bit_length()
    idx = np.array(keep + [keep[0]] * (new_width - len(keep)))
    runs = np.concatenate([lane_run[keep], -np.ones(new_width - len(keep), dtype=np.int64)])
    take = jnp.asarray(idx)
    return jax.tree.map(lambda x: x[take], states), jax.tree.map(lambda x: x[take], hyper), runs
