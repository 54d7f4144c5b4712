"""Planning: which runs of a sweep train together under ``vmap``, and how wide.

Runs share a compiled program when everything but η, λ, seed and budget agrees (the *group
key*). A group trains in a pool of lanes that refills as runs finish (see
:mod:`l2dynamics.train.vector`); :func:`pool_lanes` sizes it to the least estimated time, the
pool's makespan in steps times ``t(w)``, the cost of a step of ``w`` lanes
(:mod:`l2dynamics.train.cost`: the CPU's model, or measured on other backends), within memory
(and, on the CPU, cache). On the CPU, models larger than ``MAX_VECTORIZED_PARAMS`` run one by
one: vectorizing large models does not pay there (``benchmarks/vectorize.py`` measured the
threshold); with a measured cost the measurement decides. For the Ray executor a group is
also cut into chunks (:func:`plan_chunks`), one task each, by the static rule (the driver that
plans keeps its JAX on the CPU, so it cannot measure a GPU worker's step).
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import os
from collections.abc import Sequence

import jax

from l2dynamics.config import TrainConfig
from l2dynamics.train.cost import CPU_COST, StepCost

# Measured by benchmarks/vectorize.py (RESULTS-vectorize.md): vmap pays for small models while the
# stacked parameters stay in cache, and stops paying for models of millions of parameters. So:
# vectorize models up to MAX_VECTORIZED_PARAMS, with chunks whose stacked float32 parameters stay
# under CHUNK_PARAM_BYTES.
MAX_VECTORIZED_PARAMS = 500_000
CHUNK_PARAM_BYTES = 4 << 20
MAX_CHUNK = 64
BYTES_PER_PARAM = 4 * 5  # float32 params, grads, momentum buffer, updates and a spare copy


def group_key(cfg: TrainConfig) -> str:
    """Everything that fixes the compiled program: data, model, loss, batch, schedule kind,
    the optimizer with Adam's β₁, β₂, ε (constants of the program), and whether there is a
    momentum buffer (μ ≠ 0; its value is a run-time array)."""
    fixed = dataclasses.asdict(
        dataclasses.replace(
            cfg,
            eta=0.0,
            lam=0.0,
            seed=0,
            momentum=float(cfg.momentum != 0),
            budget_epochs=None,
            budget_c=None,
            max_epochs=None,
        )
    )
    fixed["model"]["options"] = dict(cfg.model.options)
    return json.dumps(fixed, sort_keys=True)


def memory_bytes() -> int:
    """Physical memory of this machine in bytes (a conservative 8 GiB if unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def device_memory_bytes() -> int:
    """Memory of the first local device in bytes (what JAX may allocate there), or the
    machine's (:func:`memory_bytes`) where JAX does not say (the CPU)."""
    stats = jax.local_devices()[0].memory_stats() or {}
    return int(stats.get("bytes_limit", 0)) or memory_bytes()


def max_chunk_size(
    n_params: int, *, memory: int | None = None, share: float = 0.25, cache: bool = True
) -> int:
    """Runs per chunk: their states take at most ``share`` of the memory and, with ``cache``
    (the CPU's rule), their stacked parameters at most ``CHUNK_PARAM_BYTES`` (beyond it the
    batched step leaves the cache)."""
    budget = (memory or memory_bytes()) * share
    by_memory = int(budget // max(1, n_params * BYTES_PER_PARAM))
    by_cache = int(CHUNK_PARAM_BYTES // max(1, 4 * n_params)) if cache else MAX_CHUNK
    return max(1, min(MAX_CHUNK, by_memory, by_cache))


def lane_limit(n_params: int, measured: bool) -> int:
    """The widest pool for a model of ``n_params`` parameters: :func:`max_chunk_size` (memory
    and cache) for the CPU model; for a measured cost, the device's memory alone (the cache
    rule is the CPU's; what does not fit shows in the measurement, ``StepCost.max_width``)."""
    if not measured:
        return max_chunk_size(n_params)
    return max_chunk_size(n_params, memory=device_memory_bytes(), cache=False)


def lpt_makespan(totals: Sequence[int], lanes: int) -> int:
    """Steps until a pool of ``lanes`` lanes, filled longest run first and refilled as lanes
    free up, has trained runs of ``totals`` steps."""
    ends = [0] * lanes
    for total in sorted(totals, reverse=True):
        heapq.heapreplace(ends, ends[0] + total)
    return max(ends)


def pool_lanes(
    totals: Sequence[int],
    n_params: int,
    *,
    vectorize: bool | None = None,
    limit: int | None = None,
    cost: StepCost = CPU_COST,
) -> int:
    """Lanes of the pool for runs of ``totals`` steps: the number that minimizes the estimated
    time ``makespan(lanes) · t(lanes)`` (``t = cost``, per step; the CPU model: ``lanes +
    LANE_OVERHEAD``, a lane's compute per lane plus a fixed part), at most ``limit`` (default
    :func:`lane_limit`), the widest that fitted when ``cost`` was measured and the number of
    runs; 1 (one by one) when not vectorized. ``vectorize=None`` decides by model size
    (``MAX_VECTORIZED_PARAMS``) for the CPU model and leaves it to a measured cost."""
    if vectorize is None:
        vectorize = cost.measured or n_params <= MAX_VECTORIZED_PARAMS
    if not vectorize or not totals:
        return 1
    cap = min(limit or lane_limit(n_params, cost.measured), len(totals))
    cap = min(cap, cost.max_width or cap)
    return min(range(1, cap + 1), key=lambda w: lpt_makespan(totals, w) * cost(w))


def plan_chunks(
    totals: Sequence[int],
    n_params: int,
    *,
    max_chunk: int | None = None,
    vectorize: bool | None = None,
) -> list[list[int]]:
    """Split run indices into chunks of at most ``max_chunk`` runs, in order of budget
    ``totals`` (steps), so that each chunk holds runs of similar length.

    Chunks are as few as ``max_chunk`` allows and balanced in size; the last one is later
    padded to the size of the others, so the group compiles one vmapped program;
    ``vectorize=None`` decides by model size (``n_params`` ≤ MAX_VECTORIZED_PARAMS).

    The static rule (the CPU's memory and cache, no measured cost): it cuts a group into Ray
    tasks, planned by a driver whose JAX stays on the CPU (``cli._ray_driver``), where a
    measurement would time the wrong device; each task measures its own backend for its tail.
    """
    if vectorize is None:
        vectorize = n_params <= MAX_VECTORIZED_PARAMS
    limit = 1 if not vectorize else (max_chunk or max_chunk_size(n_params))
    order = sorted(range(len(totals)), key=lambda i: totals[i])
    count = -(-len(order) // limit)  # as few chunks as the limit allows, of balanced sizes
    size = -(-len(order) // count) if order else 1
    return [order[i : i + size] for i in range(0, len(order), size)]
