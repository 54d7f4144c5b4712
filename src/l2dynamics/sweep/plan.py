"""Chunk planning: which runs of a sweep train together under ``vmap``.

Runs share a compiled program when everything but η, λ, seed and budget agrees (the *group
key*). Within a group, runs are sorted by budget and cut into equal chunks whose size fits the
memory and the cache (a finished run in a batched loop still costs its share of compute, so
runs of similar budget go together; equal chunks mean one compilation per group). Models larger than
``max_vectorized_params`` run one by one: on a CPU, vectorizing large models does not pay
(see ``benchmarks/vectorize.py``, which measured the threshold).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence

from l2dynamics.config import TrainConfig

# From benchmarks/vectorize.py on a 2-core CPU (numbers in benchmarks/RESULTS-vectorize.md):
# vmap paid 1.5x for 8 runs of 13k parameters and 1.35x for 8 runs of 150k, lost (0.72x) for
# 32 runs of 150k, whose stacked parameters (19 MB) no longer fit in cache, and gained nothing
# (1.03x) for 8 runs of 2.2M. So: vectorize models up to MAX_VECTORIZED_PARAMS, with chunks
# whose stacked float32 parameters stay under CHUNK_PARAM_BYTES.
MAX_VECTORIZED_PARAMS = 500_000
CHUNK_PARAM_BYTES = 4 << 20
MAX_CHUNK = 64
BYTES_PER_PARAM = 4 * 5  # float32 params, grads, momentum buffer, updates and a spare copy


def group_key(cfg: TrainConfig) -> str:
    """Everything that fixes the compiled program: data, model, loss, batch, schedule kind."""
    fixed = dataclasses.asdict(
        dataclasses.replace(
            cfg,
            eta=0.0,
            lam=0.0,
            seed=0,
            momentum=0.0,
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
