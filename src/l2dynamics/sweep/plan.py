"""Planning: which runs of a sweep train together under ``vmap``, and how wide.

Runs share a compiled program when everything but η, λ, seed and budget agrees (the *group
key*). A group trains in a pool of lanes that refills as runs finish (see
:mod:`l2dynamics.train.vector`); :func:`pool_lanes` sizes it so that the pool's makespan is
about the longest run, within memory and cache. Models larger than ``MAX_VECTORIZED_PARAMS``
run one by one: on a CPU, vectorizing large models does not pay (see
``benchmarks/vectorize.py``, which measured the threshold). For the Ray executor a group is
also cut into chunks (:func:`plan_chunks`), one task each.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import os
from collections.abc import Sequence

from l2dynamics.config import TrainConfig
from l2dynamics.train.vector import LANE_OVERHEAD

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


def max_chunk_size(n_params: int, *, memory: int | None = None, share: float = 0.25) -> int:
    """Runs per chunk: their states take at most ``share`` of the memory and their stacked
    parameters at most ``CHUNK_PARAM_BYTES`` (beyond it the batched step leaves the cache)."""
    budget = (memory or memory_bytes()) * share
    by_memory = int(budget // max(1, n_params * BYTES_PER_PARAM))
    by_cache = int(CHUNK_PARAM_BYTES // max(1, 4 * n_params))
    return max(1, min(MAX_CHUNK, by_memory, by_cache))


def lpt_makespan(totals: Sequence[int], lanes: int) -> int:
    """Steps until a pool of ``lanes`` lanes, filled longest run first and refilled as lanes
    free up, has trained runs of ``totals`` steps."""
    ends = [0] * lanes
    for total in sorted(totals, reverse=True):
        heapq.heapreplace(ends, ends[0] + total)
    return max(ends)


def pool_lanes(
    totals: Sequence[int], n_params: int, *, vectorize: bool | None = None, limit: int | None = None
) -> int:
    """Lanes of the pool for runs of ``totals`` steps: the number that minimizes the estimated
    time ``makespan(lanes) · (lanes + LANE_OVERHEAD)`` (a vmapped step costs about one lane's
    compute per lane plus a fixed part), at most ``limit`` (default :func:`max_chunk_size`)
    and the number of runs; 1 (one by one) when not vectorized. ``vectorize=None`` decides by
    model size."""
    if vectorize is None:
        vectorize = n_params <= MAX_VECTORIZED_PARAMS
    if not vectorize or not totals:
        return 1
    cap = min(limit or max_chunk_size(n_params), len(totals))
    return min(range(1, cap + 1), key=lambda w: lpt_makespan(totals, w) * (w + LANE_OVERHEAD))


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
    """
    if vectorize is None:
        vectorize = n_params <= MAX_VECTORIZED_PARAMS
    limit = 1 if not vectorize else (max_chunk or max_chunk_size(n_params))
    order = sorted(range(len(totals)), key=lambda i: totals[i])
    count = -(-len(order) // limit)  # as few chunks as the limit allows, of balanced sizes
    size = -(-len(order) // count) if order else 1
    return [order[i : i + size] for i in range(0, len(order), size)]
