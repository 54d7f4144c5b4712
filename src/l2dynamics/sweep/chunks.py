"""Chunks of a sweep: the runs one executor task trains, and how a task trains them.

Both executors (local, in this process, and Ray, in workers) train a chunk with
:func:`train_chunk`; a :class:`Context` caches each data set and compiled program of the
process that trains, so a worker that receives several chunks of one group compiles once.
See :mod:`l2dynamics.train.run` for the words group, pool, lanes and tail.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from functools import partial

import jax

from l2dynamics.config import DataConfig, TrainConfig, budget_epochs
from l2dynamics.data import Dataset
from l2dynamics.models import count_params
from l2dynamics.progress import ProgressFn
from l2dynamics.sweep.plan import group_key, lane_limit, plan_chunks, pool_lanes
from l2dynamics.sweep.store import RunStore, pool_key
from l2dynamics.train.checkpoint import (
    Checkpointer,
    CheckpointMismatchError,
    Snapshot,
    from_bytes,
    to_bytes,
)
from l2dynamics.train.cost import CPU_COST, StepCost, measuring, step_cost
from l2dynamics.train.run import (
    Program,
    RunResult,
    autol2_measure,
    build_program,
    load_data,
    run_program,
    stepwise_dispatch,
    total_steps,
)
from l2dynamics.train.vector import train_vectorized


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Runs that one task trains (in a pool of ``lanes`` lanes, or one by one when 1), with
    their store hashes."""

    hashes: tuple[str, ...]
    cfgs: tuple[TrainConfig, ...]
    lanes: int = 1


class Context:
    """Per-process caches: each data set loaded once, each group's program compiled once (and
    its step cost measured once, where costs are measured).

    ``measure_cost``: whether pool widths and tail hand-overs follow a measured step cost
    (:func:`l2dynamics.train.cost.measuring`; None: on every backend but the CPU; True on the
    CPU is for tests, as it makes results depend on the machine's load)."""

    def __init__(self, measure_cost: bool | None = None) -> None:
        self.data: dict[DataConfig, Dataset] = {}
        self.programs: dict[str, Program] = {}
        self.measure_cost = measure_cost

    def dataset(self, cfg: TrainConfig) -> Dataset:
        """The (cached) data set of ``cfg``."""
        if cfg.data not in self.data:
            self.data[cfg.data] = load_data(cfg)
        return self.data[cfg.data]

    def program(self, cfg: TrainConfig) -> Program:
        """The (cached) program of ``cfg``'s group."""
        key = group_key(cfg)
        if key not in self.programs:
            self.programs[key] = build_program(cfg, self.dataset(cfg))
        return self.programs[key]

    def cost(self, cfg: TrainConfig, cap: int = 64) -> StepCost:
        """``t(w)`` of ``cfg``'s group for pools of up to ``cap`` lanes
        (:func:`l2dynamics.train.cost.step_cost`: measured once per program, or the CPU's
        model)."""
        return step_cost(self.program(cfg), cfg, cap=cap, measure=self.measure_cost)

    def steps(self, cfg: TrainConfig) -> int:
        """The budget of ``cfg`` in steps."""
        batch = self.program(cfg).spec.batch_size
        return total_steps(budget_epochs(cfg), self.dataset(cfg).n_train, batch)


def plan(
    todo: Sequence[tuple[str, TrainConfig]],
    ctx: Context,
    vectorize: bool | None,
    *,
    split: bool = False,
) -> list[Chunk]:
    """Group runs by program; each group is one pool of :func:`pool_lanes` lanes (``split``:
    cut into chunks of similar budgets, one Ray task each, all with that many lanes). Runs
    trained one by one are a chunk each. Widths follow ``ctx``'s step cost (measured once per
    group off the CPU), except for Ray (``split``): its driver's JAX is on the CPU, so its
    chunks keep the static rule (:data:`l2dynamics.train.cost.CPU_COST`)."""
    groups: dict[str, list[tuple[str, TrainConfig]]] = {}
    for item in todo:
        groups.setdefault(group_key(item[1]), []).append(item)
    chunks = []
    for items in groups.values():
        cfg0 = items[0][1]
        n_params = count_params(jax.eval_shape(ctx.program(cfg0).init_params, jax.random.key(0)))
        totals = [ctx.steps(c) for _, c in items]
        vec = vectorize
        if vec is None and stepwise_dispatch(cfg0.model.name):
            vec = False  # vmapped convolutions on XLA:CPU cost more than runs one by one
        if autol2_measure(cfg0) != "minibatch":
            vec = False  # lanes at different steps: vmap would measure at every step
        cost = CPU_COST
        if not split and vec is not False and len(items) > 1 and measuring(ctx.measure_cost):
            cost = ctx.cost(cfg0, min(lane_limit(n_params, measured=True), len(totals)))
        lanes = pool_lanes(totals, n_params, vectorize=vec, cost=cost)
        if split or lanes == 1:  # one by one: a chunk per run, shortest first
            cut = plan_chunks(totals, n_params, vectorize=lanes > 1)
        else:
            cut = [range(len(items))]
        for idx in cut:
            hashes, cfgs = tuple(items[i][0] for i in idx), tuple(items[i][1] for i in idx)
            chunks.append(Chunk(hashes, cfgs, lanes))
    return chunks


@dataclasses.dataclass(frozen=True)
class Checkpoints:
    """Where a chunk keeps its runs' checkpoints (the sweep's store, written by the process that
    trains: the local executor) and how often, in seconds of wall time
    (:data:`l2dynamics.config.CHECKPOINT_EVERY_S`)."""

    store: RunStore
    every_s: float

    def checkpointer(self, key: str, hashes: Sequence[str]) -> Checkpointer:
        """The checkpointer of the run or pool ``key`` holding the runs ``hashes``."""
        return Checkpointer(partial(self._save, key, tuple(hashes)), self.every_s)

    def _save(self, key: str, hashes: tuple[str, ...], snapshot: Snapshot) -> None:
        self.store.save_checkpoint(key, hashes, to_bytes(snapshot))

    def resume(self, key: str) -> Snapshot | None:
        """The checkpoint kept under ``key``, if any is there and readable (else dropped)."""
        blob = self.store.checkpoint(key)
        if blob is None:
            return None
        try:
            return from_bytes(blob)
        except CheckpointMismatchError:
            self.store.delete_checkpoint(key)
            return None


def train_chunk(
    chunk: Chunk,
    ctx: Context,
    on_result: Callable[[str, RunResult], None],
    progress: ProgressFn | None = None,
    checkpoints: Checkpoints | None = None,
) -> None:
    """Train one chunk: in a pool of ``chunk.lanes`` lanes, or run by run when it is 1.
    ``progress`` gets the runs' or the pool's updates. With ``checkpoints``, each run (or the
    pool, whole) resumes from its checkpoint when there is one and leaves checkpoints; a
    checkpoint that does not fit is dropped and its runs start afresh."""
    cfg0 = chunk.cfgs[0]
    ds, program = ctx.dataset(cfg0), ctx.program(cfg0)
    if chunk.lanes == 1:
        for run_hash, cfg in zip(chunk.hashes, chunk.cfgs, strict=True):
            train = partial(run_program, cfg, ds, program, progress=progress)
            on_result(run_hash, _resuming(train, checkpoints, run_hash, [run_hash]))
        return
    train = partial(
        train_vectorized,
        chunk.cfgs,
        ds,
        program,
        on_result=lambda i, r: on_result(chunk.hashes[i], r),
        progress=progress,
        lanes=chunk.lanes,
        cost=ctx.cost(cfg0, chunk.lanes),
    )
    key = pool_key(chunk.hashes)
    _resuming(train, checkpoints, key, chunk.hashes)
    if checkpoints is not None:
        checkpoints.store.delete_checkpoint(key)


def _resuming(train: Callable, checkpoints: Checkpoints | None, key: str, hashes: Sequence[str]):
    """``train()`` with the checkpointer of ``key``, resuming from its checkpoint if one fits
    (else from the start)."""
    if checkpoints is None:
        return train()
    snapshot = checkpoints.resume(key)
    checkpointer = checkpoints.checkpointer(key, hashes)
    if snapshot is not None:
        try:
            return train(checkpointer=checkpointer, resume=snapshot)
        except CheckpointMismatchError:
            checkpoints.store.delete_checkpoint(key)
    return train(checkpointer=checkpointer)
