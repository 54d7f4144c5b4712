"""Chunk planning: which runs of a sweep train together under ``vmap``.

Runs share a compiled program when everything but η, λ, seed and budget agrees (the *group
key*). Within a group, runs are sorted by budget and cut into chunks whose budgets differ by at
most ``spread`` (a finished run in a batched loop still costs its share of compute, so this
bounds the waste at ``1 − 1/spread``) and whose size fits the memory. Models larger than
``max_vectorized_params`` run one by one: on a CPU, vectorizing large models does not pay
(see ``benchmarks/vectorize.py``, which measured the threshold).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence

from l2dynamics.config import TrainConfig

# From benchmarks/vectorize.py on a 2-core CPU (see benchmarks/RESULTS-vectorize.md).
MAX_VECTORIZED_PARAMS = 2_000_000
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
    """Runs per chunk so that their states take at most ``share`` of the memory."""
    budget = (memory or memory_bytes()) * share
    return max(1, min(MAX_CHUNK, int(budget // max(1, n_params * BYTES_PER_PARAM))))


def plan_chunks(
    totals: Sequence[int],
    n_params: int,
    *,
    spread: float = 2.0,
    max_chunk: int | None = None,
    vectorize: bool | None = None,
) -> list[list[int]]:
    """Split run indices into chunks: sorted by budget ``totals`` (steps), each chunk's largest
    budget at most ``spread`` × its smallest, at most ``max_chunk`` runs.

    ``vectorize=None`` decides by model size (``n_params`` ≤ MAX_VECTORIZED_PARAMS).
    """
    if vectorize is None:
        vectorize = n_params <= MAX_VECTORIZED_PARAMS
    limit = 1 if not vectorize else (max_chunk or max_chunk_size(n_params))
    order = sorted(range(len(totals)), key=lambda i: totals[i])
    chunks: list[list[int]] = []
    for i in order:
        last = chunks[-1] if chunks else None
        if last and len(last) < limit and totals[i] <= spread * totals[last[0]]:
            last.append(i)
        else:
            chunks.append([i])
    return chunks
