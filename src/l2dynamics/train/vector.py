"""Vectorized training: many runs of one group in one compiled program.

The runs train in a *pool* of lanes (see :mod:`l2dynamics.train.run` for the words):
parameters, optimizer states and hyperparameters (η₀, λ, budget) of as many runs as there are
lanes are stacked along a leading axis and stepped under ``jax.vmap``. Runs enter the pool
longest budget first; when a run ends (budget, divergence, or the peak-aware stop) its lane
takes the next waiting run at once, so the pool keeps one number of lanes (one compilation of
the vmapped step loop for a whole group) and stays full until the queue runs dry. Each run keeps
its own :class:`~l2dynamics.train.book.RunBook` (step counter, measurement schedule, rows), as
a run trained alone does, so it measures exactly where it would alone and differs from a
one-by-one run only by float32 reduction order. Measurements are taken lane by lane (one
compiled program serves any lane), so no lane pays for another's schedule.

A vmapped step computes every lane, held or not. Once the queue is dry and at most half the
lanes hold runs, the pool may hand its last runs (its *tail*) to the one-run program, one after
the other: that costs one more compilation per program and pays where runs end at unforeseen
steps (the peak-aware stop). Whether it pays follows from the cost of a pool step of ``w``
lanes, ``t(w)`` (:mod:`l2dynamics.train.cost`): on the CPU its model (a lane costs about its own
compute), elsewhere measured, where extra lanes cost little until the device is busy, so pools
keep their tails unless they are that wide.

With several local devices a pool's lanes are split over them (one program; the stacked arrays
placed with a ``NamedSharding``, :mod:`l2dynamics.train.devices`), its width padded to a
multiple of their count with empty lanes; the tail rule above then counts the padded width.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from l2dynamics.config import TrainConfig
from l2dynamics.data import Dataset
from l2dynamics.progress import ProgressFn, Update
from l2dynamics.train import devices as D
from l2dynamics.train.book import RunBook, RunResult
from l2dynamics.train.checkpoint import (
    Checkpointer,
    CheckpointMismatchError,
    Snapshot,
    host_leaves,
    restore_run,
    run_snapshot,
)
from l2dynamics.train.cost import CPU_COST, StepCost, step_cost
from l2dynamics.train.run import (
    Program,
    eval_batch_size,
    init_state,
    lam_in_force,
    run_hyper,
    train_with_book,
)

ResultFn = Callable[[int, RunResult], None]


def tail_saving(remaining: Sequence[int], lanes: int, cost: StepCost = CPU_COST) -> float:
    """What training runs with ``remaining`` steps to their budgets one after the other saves
    over keeping them in a pool of ``lanes`` lanes, in ``cost``'s unit (the CPU model:
    lane-steps; measured: seconds): the pool pays ``t(lanes)`` per step for the longest, one by
    one pays ``t(1)`` per step for each (on the CPU, ``lanes + a`` and ``1 + a``, ``a``:
    :data:`~l2dynamics.train.cost.LANE_OVERHEAD`)."""
    if not remaining:
        return 0.0
    return max(remaining) * cost(lanes) - sum(remaining) * cost(1)


def hand_over_tail(
    remaining: Sequence[int],
    lanes: int,
    queued: int,
    min_saving: float,
    cost: StepCost = CPU_COST,
) -> bool:
    """Whether a pool of ``lanes`` lanes with ``queued`` runs waiting and live runs with
    ``remaining`` steps to their budgets should hand them to the one-run program: the queue is
    dry, at most half the lanes hold runs, and that saves at least ``min_saving`` in ``cost``'s
    unit (:func:`tail_saving`; estimated from the budgets: the peak-aware stop may end runs
    earlier, which can make the real saving smaller or larger)."""
    return (
        queued == 0
        and 0 < 2 * len(remaining) <= lanes
        and tail_saving(remaining, lanes, cost) >= min_saving
    )


def stack_states(states: Sequence[Any]) -> Any:
    """Stack R pytrees (train states, hyperparameters) along a new leading axis."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


class Pool:
    """A pool's host side: one :class:`RunBook` per run, the runs waiting, which run each lane
    holds (−1: none), and the stacked device states and hyperparameters of the lanes.

    Args:
        cfgs, ds, program: the runs, their data and their group's program.
        lanes: the number of lanes (padded to a multiple of the local devices when they
            are sharded over them, :func:`l2dynamics.train.devices.pool_width`).
        on_result: called as ``on_result(index, result)`` when run ``index`` ends.
        progress: told after each dispatch the steps trained by the runs in the lanes (their
            sum) and how many there are.
        shard: whether the lanes are split over the local devices
            (:func:`l2dynamics.train.devices.pool_mesh`; None: its default).
    """

    def __init__(
        self,
        cfgs: Sequence[TrainConfig],
        ds: Dataset,
        program: Program,
        lanes: int,
        on_result: ResultFn,
        progress: ProgressFn | None,
        shard: bool | None = None,
    ) -> None:
        batch = program.spec.batch_size
        self.books = [RunBook(c, ds.n_train, batch, ds.n_test) for c in cfgs]
        self.mesh = D.pool_mesh(lanes, shard) if program.sharded_pool is not None else None
        self.ops = program.pool if self.mesh is None else program.sharded_pool
        self.ds, self.program, self.lanes = ds, program, D.pool_width(lanes, self.mesh)
        self.on_result, self.progress = on_result, progress
        self.eval_batch = eval_batch_size(cfgs[0], ds) if cfgs else 0
        # longest budget first (ties in the given order), so the short runs fill the tail
        order = sorted(range(len(cfgs)), key=lambda i: -self.books[i].total)
        self.queue = collections.deque(order)
        self.lane_run = np.full(self.lanes, -1, dtype=np.int64)
        self.states: Any = None
        self.hypers: Any = None

    def fill(self) -> bool:
        """Put the first runs into the lanes (empty lanes hold a copy of the first run and never
        step); False when there is no run."""
        first = [self.queue.popleft() for _ in range(min(self.lanes, len(self.queue)))]
        if not first:
            return False
        self.lane_run[: len(first)] = first
        for i in first:
            self.books[i].start_clock()
        self._stack({i: init_state(self.books[i].cfg, self.program) for i in first})
        return True

    def _stack(self, states: dict[int, Any]) -> None:
        """Stack the lanes' states (run index → state; empty lanes copy the first lane's)."""
        live = [int(i) for i in self.lane_run if i >= 0]
        order = [int(i) if i >= 0 else live[0] for i in self.lane_run]
        self.states = stack_states([states[i] for i in order])
        self.hypers = stack_states([run_hyper(self.books[i]) for i in order])
        if self.mesh is not None:  # placed once; the pool's functions keep them there
            where = D.lane_sharding(self.mesh)
            self.states, self.hypers = jax.device_put((self.states, self.hypers), where)

    def snapshot(self) -> Snapshot:
        """The pool's checkpoint: its width, lanes, queue and every live run (one transfer)."""
        leaves = host_leaves(self.states)
        runs = {i: (self.books[i], [x[lane] for x in leaves]) for lane, i in self.live()}
        lane_run = [int(i) for i in self.lane_run]
        return run_snapshot("pool", runs, lanes=self.lanes, lane_run=lane_run, queue=[*self.queue])

    def restore(self, snap: Snapshot) -> None:
        """Continue from a pool checkpoint :meth:`snapshot` of the same runs."""
        if snap.mode != "pool" or len(snap.lane_run) != snap.lanes:
            raise CheckpointMismatchError(f"not a pool checkpoint (mode {snap.mode!r})")
        if not set(snap.states) <= set(range(len(self.books))):
            raise CheckpointMismatchError("a pool checkpoint of other runs")
        self.lanes, self.queue = D.pool_width(snap.lanes, self.mesh), collections.deque(snap.queue)
        self.lane_run = np.full(self.lanes, -1, dtype=np.int64)
        self.lane_run[: snap.lanes] = snap.lane_run
        self._stack({i: self._restored(snap, i) for _, i in self.live()})

    def _restored(self, snap: Snapshot, i: int) -> Any:
        return restore_run(self.books[i], init_state(self.books[i].cfg, self.program), snap, i)

    def live(self) -> list[tuple[int, int]]:
        """(lane, run) of every lane that holds a run."""
        return [(lane, int(i)) for lane, i in enumerate(self.lane_run) if i >= 0]

    def remaining(self) -> list[int]:
        """Steps left to their budgets of the runs in the lanes."""
        return [self.books[i].total - self.books[i].done for _, i in self.live()]

    def finish(self, i: int) -> None:
        """Hand run ``i``'s result over."""
        self.on_result(i, self.books[i].result())

    def refill(self, lane: int) -> None:
        """Give ``lane`` the next waiting run, or leave it empty when none waits."""
        if not self.queue:
            self.lane_run[lane] = -1
            return
        j = self.queue.popleft()
        self.books[j].start_clock()  # its wall_s counts from here, not from the pool's start
        one = (init_state(self.books[j].cfg, self.program), run_hyper(self.books[j]))
        put = self.ops.put
        self.states, self.hypers = put((self.states, self.hypers), jnp.int32(lane), one)
        self.lane_run[lane] = j

    def measure(self, lane: int, i: int) -> bool:
        """Measure run ``i`` in ``lane`` into its book; True if the run has thereby ended."""
        metrics = self.ops.measure(
            self.ops.data, self.states.params, jnp.int32(lane), self.eval_batch, self.states.angles
        )
        book = self.books[i]
        book.record(jax.device_get(metrics), lam_in_force(book.cfg, self.states.controller, lane))
        return book.ended

    def measure_due(self) -> None:
        """Take every measurement due at the lanes' current steps; a lane whose run ends takes
        the next run, whose first measurement (step 0) is then due too."""
        busy = True
        while busy:
            busy = False
            for lane, i in self.live():
                if self.books[i].gap() == 0 and self.measure(lane, i):
                    self.finish(i)
                    self.refill(lane)
                    busy = True

    def step(self) -> None:
        """One dispatch: every lane that holds a run trains to its run's next measurement or
        the nearest of them all, whichever comes first; diverged runs end and are replaced."""
        live = self.live()
        gap = min(self.books[i].gap() for _, i in live)
        lane_steps = np.where(self.lane_run >= 0, gap, 0)
        n_steps = jnp.asarray(lane_steps, jnp.int32)
        self.states = self.ops.run_steps(self.ops.data, self.states, self.hypers, n_steps)
        step_now, bad = jax.device_get((self.states.step, self.states.diverged_step))
        for lane, i in live:
            if self.books[i].trained(step_now[lane], bad[lane]):
                self.finish(i)
                self.refill(lane)
        self._report([self.books[i] for _, i in self.live()])  # the lanes' runs after refills

    def tail(self) -> list[tuple[int, Any]]:
        """The runs in the lanes, in lane order, each with its state copied out of the pool."""
        take = self.ops.take
        return [(i, take(self.states, jnp.int32(lane))) for lane, i in self.live()]

    def restore_tail(self, snap: Snapshot) -> list[tuple[int, Any]]:
        """The tail of a tail checkpoint: its runs still to train, each with its state."""
        if snap.mode != "tail" or set(snap.queue) != set(snap.states):
            raise CheckpointMismatchError(f"not a tail checkpoint (mode {snap.mode!r})")
        return [(i, self._restored(snap, i)) for i in snap.queue]

    def train_tail(self, tail: list[tuple[int, Any]], checkpointer: Checkpointer | None) -> None:
        """Train the ``tail`` runs to their ends with the one-run program, one after the other;
        a checkpoint holds the run in training and the states of the runs after it."""
        for k, (i, state) in enumerate(tail):
            left = [self.books[j] for j, _ in tail[k:]]
            save = None
            if checkpointer is not None:
                save = partial(self._save_tail, checkpointer, i, tail[k + 1 :])
            train_with_book(self.books[i], state, run_hyper(self.books[i]), self.program, self.ds,
                            progress=lambda _, left=left: self._report(left),
                            checkpoint=save)  # fmt: skip
            self.finish(i)
        self.lane_run[:] = -1

    def _save_tail(self, checkpointer: Checkpointer, i: int, later: list, state: Any) -> None:
        if checkpointer.due():
            runs = {i: (self.books[i], host_leaves(state))}
            runs |= {j: (self.books[j], host_leaves(s)) for j, s in later}
            queue = [i, *(j for j, _ in later)]
            checkpointer.write(run_snapshot("tail", runs, queue=queue))

    def _report(self, books: Sequence[RunBook]) -> None:
        if self.progress is not None:
            steps = sum(b.done for b in books)  # run-steps, so a sweep's count adds them up
            self.progress(Update("pool", steps, None, "run-steps", f"{len(books)} runs active"))


def train_vectorized(
    cfgs: Sequence[TrainConfig],
    ds: Dataset,
    program: Program,
    *,
    on_result: ResultFn,
    progress: ProgressFn | None = None,
    lanes: int | None = None,
    tail_min_saving: float | None = None,
    checkpointer: Checkpointer | None = None,
    resume: Snapshot | None = None,
    shard: bool | None = None,
    cost: StepCost | None = None,
) -> None:
    """Train ``cfgs`` (same architecture, data, batch size and schedule kind) in one pool.

    Args:
        cfgs: the runs; they may differ in η, λ, seed, momentum and budget (but not in
            whether momentum is 0: plain SGD runs without a momentum buffer).
        ds: their data set; program: built by :func:`~l2dynamics.train.run.build_program`
            for any one of them.
        on_result: called as ``on_result(index, result)`` when run ``index`` ends.
        progress: gets an :class:`~l2dynamics.progress.Update` of task ``"pool"`` after each
            dispatch of steps: the steps trained by the runs in the lanes, summed (in its tail:
            by the runs not yet finished) and, as status, how many runs that is.
        lanes: the pool's number of lanes (default: one per run). With fewer lanes than runs
            the pool refills; extra lanes stay empty and never step.
        tail_min_saving: what a hand-over of the pool's tail to the one-run program must
            save (:func:`hand_over_tail`), in ``cost``'s unit; ``math.inf``: never hand over.
            Default: ``cost.handover`` (the CPU model's
            :data:`~l2dynamics.train.cost.TAIL_MIN_SAVING` lane-steps; measured: the one-run
            step loop's compile seconds).
        checkpointer: saves the whole pool (mode ``"pool"`` or ``"tail"``) at measurement
            points when due (:mod:`l2dynamics.train.checkpoint`).
        resume: such a checkpoint of the same ``cfgs`` (same order) to continue from; every
            run then ends bit for bit as in the pool uninterrupted (runs that ended after the
            checkpoint are trained again and reported again). Raises
            :class:`~l2dynamics.train.checkpoint.CheckpointMismatchError` when it does not fit.
        shard: whether the lanes are split over the local devices (one program; the width
            padded to a multiple of their count). Default
            (:func:`l2dynamics.train.devices.pool_mesh`): when there are several and at least
            two lanes, unless :data:`l2dynamics.train.devices.SHARD_POOLS` is False.
        cost: ``t(w)``, the cost of a pool step of ``w`` lanes, for the tail rule (default:
            :func:`l2dynamics.train.cost.step_cost` of ``program``: the CPU model on the CPU
            backend, else measured once per program, up to this pool's width).
    """
    width = max(1, lanes or len(cfgs))
    pool = Pool(cfgs, ds, program, width, on_result, progress, shard)
    if resume is not None and resume.mode == "tail":
        pool.train_tail(pool.restore_tail(resume), checkpointer)
        return
    if cost is None:  # measured (off the CPU) before the pool's states take device memory
        cost = step_cost(program, cfgs[0], cap=width) if cfgs else CPU_COST
    if resume is not None:
        pool.restore(resume)
    elif not pool.fill():
        return
    min_saving = cost.handover if tail_min_saving is None else tail_min_saving
    # A new pool saves its start at once: resumed without a checkpoint, it would be planned
    # anew from the runs left, maybe in another width, and round them differently.
    first = checkpointer is not None and resume is None and math.isfinite(checkpointer.every_s)
    while True:
        pool.measure_due()
        if not pool.live():
            return
        if checkpointer is not None and (first or checkpointer.due()):
            checkpointer.write(pool.snapshot())
            first = False
        if hand_over_tail(pool.remaining(), pool.lanes, len(pool.queue), min_saving, cost):
            pool.train_tail(pool.tail(), checkpointer)
            return
        pool.step()
