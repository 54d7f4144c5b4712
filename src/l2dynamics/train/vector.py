"""Vectorized training: many runs of one architecture and data set in one compiled program.

The runs train in a *pool* of lanes: parameters, optimizer states and hyperparameters (η₀, λ,
budget) of ``width`` runs are stacked along a leading axis and stepped under ``jax.vmap``.
Runs enter the pool longest budget first; when a run finishes (budget, divergence, or the
peak-aware stop) its lane takes the next waiting run at once. So the pool keeps one width
(one compilation of the vmapped step loop for a whole sweep group) and stays full until the
queue runs dry. Each lane keeps its own step counter, data order and measurement schedule: a
run measures exactly where it would alone and differs from a one-by-one run only by float32
reduction order. Measurements are taken lane by lane (one compiled program serves any lane),
so no lane pays for another's schedule.
"""

from __future__ import annotations

import collections
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


def _hyper(cfg: TrainConfig, total: int) -> S.Hyper:
    """One run's hyperparameters as scalars (the pool stacks them); ``total`` in steps."""
    return S.Hyper(jnp.float32(cfg.eta), jnp.float32(cfg.lam), jnp.int32(total))


class _Pool:
    """The host-side book of a pool: which run each lane holds (−1: none), and per run its
    budget (steps), measurement schedule (steps), next measurement, steps done and rows."""

    def __init__(self, cfgs: Sequence[TrainConfig], ds: Dataset, program: Program, width: int):
        batch, n = program.spec.batch_size, ds.n_train
        self.cfgs, self.batch = list(cfgs), batch
        self.epochs = [budget_epochs(c) for c in self.cfgs]
        self.totals = [total_steps(e, n, batch) for e in self.epochs]
        pairs = list(zip(self.cfgs, self.totals, strict=True))
        self.scheds = [measure_steps(c, t) for c, t in pairs]
        self.mtimes = [physical_times(c, t, batch, n) for c, t in pairs]
        self.next = [0] * len(self.cfgs)
        self.done = [0] * len(self.cfgs)
        self.rows: list[list[dict[str, float]]] = [[] for _ in self.cfgs]
        # longest budget first (ties in the given order), so the short runs fill the tail
        self.queue = collections.deque(sorted(range(len(self.cfgs)), key=lambda i: -self.totals[i]))
        self.lane_run = np.full(width, -1, dtype=np.int64)

    def due(self, i: int) -> int:
        """Run ``i``'s next measurement step."""
        return int(self.scheds[i][self.next[i]])

    def live(self) -> list[tuple[int, int]]:
        """(lane, run) of every lane that holds a run."""
        return [(lane, int(i)) for lane, i in enumerate(self.lane_run) if i >= 0]


def train_vectorized(
    cfgs: Sequence[TrainConfig],
    ds: Dataset,
    program: Program,
    *,
    on_result: ResultFn,
    on_measure: Callable[[int, int], None] | None = None,
    slots: int | None = None,
) -> None:
    """Train ``cfgs`` (same architecture, data, batch size and schedule kind) in one pool.

    Args:
        cfgs: the runs; they may differ in η, λ, seed, momentum and budget (but not in
            whether momentum is 0: plain SGD runs without a momentum buffer).
        ds: their data set; program: built by :func:`~l2dynamics.train.run.build_program`
            for any one of them.
        on_result: called as ``on_result(index, result)`` when run ``index`` finishes.
        on_measure: called as ``on_measure(step, active_runs)`` after each dispatch of steps,
            ``step`` being the largest step count among the runs in the pool.
        slots: the pool's width, its number of lanes (default: one per run). With fewer lanes
            than runs the pool refills; extra lanes stay empty and never step.
    """
    start = time.perf_counter()
    width = max(1, slots or len(cfgs))
    pool = _Pool(cfgs, ds, program, width)
    first = [pool.queue.popleft() for _ in range(min(width, len(pool.queue)))]
    if not first:
        return
    pool.lane_run[: len(first)] = first
    padded = first + [first[0]] * (width - len(first))
    states = stack_states([init_state(pool.cfgs[i], program) for i in padded])
    hyper = stack_states([_hyper(pool.cfgs[i], pool.totals[i]) for i in padded])
    eval_batch = min(pool.cfgs[0].eval_batch_size, max(ds.n_train, ds.n_test))

    def finish(i: int, diverged: int | None) -> None:
        wall = time.perf_counter() - start
        result = make_result(
            pool.cfgs[i],
            pool.rows[i],
            pool.totals[i],
            pool.epochs[i],
            diverged,
            wall,
            steps_done=pool.done[i],
        )
        on_result(i, result)

    def refill(lane: int) -> None:
        nonlocal states, hyper
        if not pool.queue:
            pool.lane_run[lane] = -1
            return
        j = pool.queue.popleft()
        one = (init_state(pool.cfgs[j], program), _hyper(pool.cfgs[j], pool.totals[j]))
        states, hyper = program.put_lane((states, hyper), jnp.int32(lane), one)
        pool.lane_run[lane] = j

    def measure(lane: int, i: int) -> bool:
        """Measure run ``i`` (in ``lane``) and hand it over if it has ended; True if it has."""
        cfg, step = pool.cfgs[i], pool.done[i]
        metrics = jax.device_get(
            program.measure_lane(program.data, states.params, jnp.int32(lane), eval_batch)
        )
        lam = float(states.autol2.lam[lane]) if cfg.autol2 else cfg.lam
        rows = pool.rows[i]
        rows.append(
            make_row(cfg, metrics, step, pool.batch, ds, pool.mtimes[i], pool.totals[i], lam, rows)
        )
        pool.next[i] += 1
        if not np.isfinite(rows[-1]["train_loss"]):
            finish(i, step)
        elif step == pool.totals[i] or at_peak_stop(cfg, rows):
            finish(i, None)
        else:
            return False
        return True

    while True:
        _measure_due(pool, measure, refill)
        live = pool.live()
        if not live:
            return
        gap = min(pool.due(i) - pool.done[i] for _, i in live)
        lane_steps = np.where(pool.lane_run >= 0, gap, 0)
        states = program.run_many(program.data, states, hyper, jnp.asarray(lane_steps, jnp.int32))
        step_now, bad = jax.device_get((states.step, states.diverged_step))
        for lane, i in live:
            pool.done[i] = int(step_now[lane])
            if bad[lane] >= 0:
                finish(i, int(bad[lane]))
                refill(lane)
        if on_measure:
            on_measure(max(pool.done[i] for _, i in live), len(live))


def _measure_due(
    pool: _Pool, measure: Callable[[int, int], bool], refill: Callable[[int], None]
) -> None:
    """Take every measurement due at the lanes' current steps; a lane whose run ends takes the
    next run, whose first measurement (step 0) is then due too."""
    busy = True
    while busy:
        busy = False
        for lane, i in pool.live():
            if pool.due(i) == pool.done[i] and measure(lane, i):
                refill(lane)
                busy = True
