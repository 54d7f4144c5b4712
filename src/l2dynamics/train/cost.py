"""The cost of a pool step, ``t(w)``, and where it comes from: the CPU's model or a measurement.

Two choices follow from ``t(w)``, the cost of one step of a pool of ``w`` lanes (``w = 1``: the
one-run program): the width of a pool (:func:`l2dynamics.sweep.plan.pool_lanes`) and whether a
pool hands its tail to the one-run program (:func:`l2dynamics.train.vector.hand_over_tail`).
Both read it from a :class:`StepCost`, made here and nowhere else:

- **CPU backend**: the model ``t(w) = w + LANE_OVERHEAD`` in units of one lane's compute, with
  constants measured once by ``benchmarks/vectorize.py`` (:data:`CPU_COST`). Deterministic on
  purpose: a run's float32 bits depend on its pool's width (vmap batches its matmuls, in
  another reduction order), so a width chosen from timings would make a CPU sweep's results
  depend on the machine's load while it planned.
- **Other backends** (GPU, TPU): measured (:func:`measure_cost`), in seconds per step: the
  group's program steps pools of 1, 8 and 64 lanes (at most the planner's cap) once per program
  in this process; every process measures for itself (nothing is kept across processes: a Ray
  worker, a new CLI run). There the width, and so a run's last float32 bits, may differ between
  two sweeps of the same file; a pool's checkpoint keeps its width, so a resumed pool does not.

``measure=True`` (:func:`step_cost`, ``Context(measure_cost=True)``) measures on the CPU too:
for tests, not for sweeps.
"""

from __future__ import annotations

import dataclasses
import math
import time
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from l2dynamics.config import TrainConfig
from l2dynamics.train import devices as D
from l2dynamics.train import step as S
from l2dynamics.train.run import Program, init_state

# The fixed part of a vmapped step on the CPU, in lanes' worth of compute: a round value between
# the measured ones (benchmarks/vectorize.py; smaller for larger models), not a fitted one.
LANE_OVERHEAD = 0.5
# Lane-steps a tail hand-over must save on the CPU to pay for what it compiles on first use (the
# lane extraction, the one-run step loop and measurement), about that compile time in steps of
# the benchmark grids' FCs (benchmarks/RESULTS.md); larger models compile in fewer of their
# steps, so the rule errs towards keeping the pool.
TAIL_MIN_SAVING = 2000.0
# Widths a measurement times (each at most the planner's cap), and how long each timing lasts.
MEASURE_WIDTHS = (1, 8, 64)
MEASURE_TARGET_S = 0.1
MAX_MEASURE_STEPS = 1000
MEASURE_BUDGET = 1_000_000  # Hyper.total_steps of the timed state (only the schedule reads it)


@dataclasses.dataclass(frozen=True)
class StepCost:
    """``t(w)``: the cost of one step of a pool of ``w`` lanes (``w = 1``: the one-run program).

    Attributes:
        points: (lanes, cost) pairs, widths increasing; ``t`` is piecewise linear through them
            and continues along the last segment past the last width (one point: constant).
        handover: what handing a pool's tail to the one-run program costs (its compilation),
            in the same unit; :func:`l2dynamics.train.vector.hand_over_tail` asks a hand-over
            to save at least this much.
        unit: ``"seconds"`` (measured: seconds per step) or ``"lanes"`` (the CPU model: one
            lane's compute per step).
        multiple: a pool of 2 or more lanes is padded to a multiple of this (the devices its
            lanes are sharded over, :func:`l2dynamics.train.devices.pool_width`); ``t`` counts
            the padded width.
        max_width: the widest pool that fitted in memory when measured (None: none failed).
    """

    points: tuple[tuple[int, float], ...]
    handover: float
    unit: str = "lanes"
    multiple: int = 1
    max_width: int | None = None

    @property
    def measured(self) -> bool:
        """Whether this cost was measured (else it is the CPU model)."""
        return self.unit == "seconds"

    def padded(self, lanes: int) -> int:
        """``lanes`` as the pool runs it: 2 or more rounded up to a multiple of ``multiple``."""
        return lanes if lanes < 2 else -(-lanes // self.multiple) * self.multiple

    def __call__(self, lanes: int) -> float:
        """Cost of one step of a pool of ``lanes`` lanes (padded), in :attr:`unit`."""
        w, pts = self.padded(lanes), self.points
        if len(pts) == 1 or w <= pts[0][0]:
            return pts[0][1]
        i = next((k for k in range(1, len(pts)) if w <= pts[k][0]), len(pts) - 1)
        (w0, t0), (w1, t1) = pts[i - 1], pts[i]
        return t0 + (w - w0) * (t1 - t0) / (w1 - w0)


# t(w) = w + LANE_OVERHEAD exactly (through (1, 1 + a) and (2, 2 + a), continued linearly);
# no padding counted, as before pools were sharded, so CPU plans stay as they were.
CPU_COST = StepCost(((1, 1 + LANE_OVERHEAD), (2, 2 + LANE_OVERHEAD)), TAIL_MIN_SAVING)


def measuring(measure: bool | None = None) -> bool:
    """Whether costs are measured: ``measure``, or by default on every backend but the CPU
    (see the module docstring for why not there)."""
    return jax.default_backend() != "cpu" if measure is None else measure


def measure_widths(cap: int) -> tuple[int, ...]:
    """The widths a measurement times: :data:`MEASURE_WIDTHS` below ``cap``, and ``cap``."""
    return tuple(sorted({w for w in MEASURE_WIDTHS if w < cap} | {max(1, min(cap, 64))}))


_CACHE: dict[int, tuple[weakref.ref, StepCost]] = {}


def step_cost(
    program: Program, cfg: TrainConfig, *, cap: int = 64, measure: bool | None = None
) -> StepCost:
    """``t(w)`` for pools of ``program`` (``cfg``: any run of its group): :data:`CPU_COST`
    unless :func:`measuring`, else :func:`measure_cost` up to ``cap`` lanes, once per program
    in this process (kept while the program lives; measured again when a wider cap is asked)."""
    if not measuring(measure):
        return CPU_COST
    key = id(program)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is program and _covers(hit[1], cap):
        return hit[1]
    cost = measure_cost(program, cfg, cap=cap)
    _CACHE[key] = (weakref.ref(program, lambda _: _CACHE.pop(key, None)), cost)
    return cost


def _covers(cost: StepCost, cap: int) -> bool:
    return cost.max_width is not None or cost.points[-1][0] >= min(cap, 64)


def measure_cost(program: Program, cfg: TrainConfig, *, cap: int = 64) -> StepCost:
    """Time ``program``'s step at the widths of :func:`measure_widths` (width 1: the one-run
    program; wider: the pool, sharded over the local devices as a pool would be), each as
    seconds per step in steady state; the hand-over's price is the one-run step loop's compile
    seconds (the hand-over also compiles a lane's extraction and the one-run measurement, but
    this measurement has already compiled the step loop: the estimate errs towards keeping the
    pool). A width that runs out of device memory ends the measurement (``max_width``)."""
    state = init_state(cfg, program)
    hyper = S.Hyper(jnp.float32(0.0), jnp.float32(cfg.lam), jnp.int32(MEASURE_BUDGET))  # η = 0:
    points, handover, max_width, multiple = [], 0.0, None, 1  # the state never diverges
    for w in measure_widths(cap):
        mesh = D.pool_mesh(w) if w > 1 and program.sharded_pool is not None else None
        width = D.pool_width(w, mesh)  # the pool's padded width: what a step of it costs
        if points and width <= points[-1][0]:
            continue
        try:
            if w == 1:
                per_step, handover = _time_one(program, state, hyper)
            else:
                per_step = _time_pool(program, state, hyper, mesh, width)
        except jax.errors.JaxRuntimeError as exc:
            if "RESOURCE_EXHAUSTED" not in str(exc) or not points:
                raise
            max_width = points[-1][0]
            break
        points.append((width, per_step))
        multiple = multiple if mesh is None else mesh.devices.size
    return StepCost(tuple(points), handover, "seconds", multiple, max_width)


def _time_one(program: Program, state: Any, hyper: S.Hyper) -> tuple[float, float]:
    """(seconds per step, compile seconds) of the one-run program."""
    one = jax.tree.map(jnp.copy, state)  # the step loop donates its state
    return _per_step(program.run_steps, program.data, one, hyper, jnp.int32)


def _time_pool(program: Program, state: Any, hyper: S.Hyper, mesh: Any, width: int) -> float:
    """Seconds per step of a pool of ``width`` lanes (split over ``mesh``'s devices, if any)."""
    ops = program.pool if mesh is None else program.sharded_pool
    stack = jax.tree.map(lambda x: jnp.stack([x] * width), (state, hyper))
    steps = partial(jnp.full, width, dtype=jnp.int32)
    return _per_step(ops.run_steps, ops.data, *stack, steps)[0]


def _per_step(
    run: Callable[..., Any], data: Any, state: Any, hyper: Any, steps: Callable[[int], Any]
) -> tuple[float, float]:
    """(seconds per step in steady state, compile seconds of the first call) of the step loop
    ``run(data, state, hyper, steps(k))``: a first call of one step (compiles), a second (its
    time sets how many steps fill :data:`MEASURE_TARGET_S`), then the timed call."""
    seconds = []
    for k in (1, 1, None):
        if k is None:
            k = max(1, min(MAX_MEASURE_STEPS, math.ceil(MEASURE_TARGET_S / max(seconds[1], 1e-9))))
        start = time.perf_counter()
        state = jax.block_until_ready(run(data, state, hyper, steps(k)))
        seconds.append((time.perf_counter() - start) / k)
    return seconds[2], max(0.0, seconds[0] - seconds[1])
