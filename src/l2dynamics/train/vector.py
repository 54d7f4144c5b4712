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

A vmapped step computes every lane, held or not. Once the queue is dry and at most half the
lanes hold runs, the pool may hand its last runs to the one-run program, one after the other
(its *tail*): that costs one more compilation per program and pays where runs end at
unforeseen steps (the peak-aware stop), which leaves a few long runs alone in a wide pool. The
cost model is the CPU's (a lane costs about its own compute); on accelerators, where extra
lanes cost little, pools keep their tails.
"""

from __future__ import annotations

import collections
import math
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
    eval_batch_size,
    init_state,
    lam_now,
    make_result,
    make_row,
    measure_steps,
    physical_times,
    total_steps,
)

ResultFn = Callable[[int, RunResult], None]

# The fixed part of a vmapped step, in lanes' worth of compute: benchmarks/vectorize.py measured
# a 1.53× gain for 8 lanes of a 13k-parameter FC, i.e. 8·(a + 1)/(a + 8) = 1.53, a ≈ 0.65, and
# less gain for larger models (smaller a). 0.5 is a round value between, not a fitted one.
LANE_OVERHEAD = 0.5
# Lane-steps a tail hand-over must save to pay for what it compiles on first use (the lane
# extraction, the one-run step loop and measurement): measured 0.7-1.1 s on a 2-core CPU for
# the benchmark grids' FCs, about 1,700 lane-steps of the quickstart's (0.65 ms each); larger
# models compile in fewer of their steps, so the rule errs towards keeping the pool.
TAIL_MIN_SAVING = 2000.0


def tail_saving(remaining: Sequence[int], width: int) -> float:
    """Lane-steps saved by training runs with ``remaining`` steps to their budgets one after the
    other instead of in a pool of ``width`` lanes: the pool pays ``width + a`` per step for the
    longest, one by one pays ``1 + a`` per step for each (``a``: :data:`LANE_OVERHEAD`)."""
    if not remaining:
        return 0.0
    return max(remaining) * (width + LANE_OVERHEAD) - sum(remaining) * (1 + LANE_OVERHEAD)


def hand_over_tail(remaining: Sequence[int], width: int, queued: int, min_saving: float) -> bool:
    """Whether a pool of ``width`` lanes with ``queued`` runs waiting and live runs with
    ``remaining`` steps to their budgets should hand them to the one-run program: the queue is
    dry, at most half the lanes hold runs, and that saves at least ``min_saving`` lane-steps
    (estimated from the budgets: the peak-aware stop may end runs earlier, which can make the
    real saving smaller or larger)."""
    return (
        queued == 0
        and 0 < 2 * len(remaining) <= width
        and tail_saving(remaining, width) >= min_saving
    )


_take_lane = jax.jit(S.lane)  # one dispatch for a whole lane (eager indexing: one per leaf)


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
    tail_min_saving: float | None = None,
) -> None:
    """Train ``cfgs`` (same architecture, data, batch size and schedule kind) in one pool.

    Args:
        cfgs: the runs; they may differ in η, λ, seed, momentum and budget (but not in
            whether momentum is 0: plain SGD runs without a momentum buffer).
        ds: their data set; program: built by :func:`~l2dynamics.train.run.build_program`
            for any one of them.
        on_result: called as ``on_result(index, result)`` when run ``index`` finishes.
        on_measure: called as ``on_measure(step, active_runs)`` after each dispatch of steps,
            ``step`` being the largest step count among the runs in the pool (in its tail:
            among the runs not yet finished).
        slots: the pool's width, its number of lanes (default: one per run). With fewer lanes
            than runs the pool refills; extra lanes stay empty and never step.
        tail_min_saving: lane-steps a hand-over of the pool's tail to the one-run program
            must save (:func:`hand_over_tail`); ``math.inf``: never hand over. Default:
            :data:`TAIL_MIN_SAVING` on the CPU backend, never elsewhere.
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
    eval_batch = eval_batch_size(pool.cfgs[0], ds)
    min_saving = tail_min_saving
    if min_saving is None:
        min_saving = TAIL_MIN_SAVING if jax.default_backend() == "cpu" else math.inf

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

    def record(i: int, metrics: dict[str, float], lam: float) -> bool:
        """Add run ``i``'s measurement at its current step and hand the run over if it has
        ended; True if it has. ``lam``: λ now (the controller's, with AutoL2)."""
        cfg, step, rows = pool.cfgs[i], pool.done[i], pool.rows[i]
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

    def measure(lane: int, i: int) -> bool:
        """Measure run ``i`` in ``lane``; True if the run has ended (see ``record``)."""
        metrics = jax.device_get(
            program.measure_lane(program.data, states.params, jnp.int32(lane), eval_batch)
        )
        return record(i, metrics, lam_now(pool.cfgs[i], states.autol2.lam[lane]))

    def alone(i: int, state: S.TrainState, hyp: S.Hyper, left: list[int]) -> None:
        """Train run ``i`` to its end with the one-run program (``left``: the tail's runs not
        yet finished, ``i`` among them)."""
        while True:
            gap = jnp.int32(pool.due(i) - pool.done[i])
            state = program.run_steps(program.data, state, hyp, gap)
            step, bad = jax.device_get((state.step, state.diverged_step))
            pool.done[i] = int(step)
            if on_measure:
                on_measure(max(pool.done[j] for j in left), len(left))
            if bad >= 0:
                finish(i, int(bad))
                return
            metrics = jax.device_get(program.measure(program.data, state.params, eval_batch))
            if record(i, metrics, lam_now(pool.cfgs[i], state.autol2.lam)):
                return

    while True:
        _measure_due(pool, measure, refill)
        live = pool.live()
        if not live:
            return
        remaining = [pool.totals[i] - pool.done[i] for _, i in live]
        if hand_over_tail(remaining, width, len(pool.queue), min_saving):
            for k, (lane, i) in enumerate(live):
                state, hyp = _take_lane((states, hyper), jnp.int32(lane))
                alone(i, state, hyp, [j for _, j in live[k:]])
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
