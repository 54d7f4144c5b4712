"""The Ray executor: each chunk of a sweep becomes one Ray task.

Workers train a chunk exactly as the local executor does (vectorized or one by one) and return
its results; the driver alone writes the store, as results arrive. A task that raises or whose
worker dies is retried by Ray (``MAX_RETRIES`` times); after that its runs are marked failed.
Data files must be readable at the same path on every node (``data_dir``). Requires the
optional extra ``l2dynamics[ray]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from l2dynamics.errors import L2DynError
from l2dynamics.sweep.chunks import Chunk, Context, train_chunk
from l2dynamics.train.run import RunResult

MAX_RETRIES = 2
_WORKER_CONTEXT = None


def _import_ray():
    try:
        import ray
    except ImportError:
        raise L2DynError("--executor ray needs Ray: pip install 'l2dynamics[ray]'") from None
    return ray


def require_ray() -> None:
    """Raise :class:`L2DynError` unless Ray imports (checked before a sweep touches its store)."""
    _import_ray()


def train_chunk_task(chunk: Chunk) -> list[tuple[str, RunResult]]:
    """Body of a Ray task: train one chunk in this worker, reusing its compiled programs."""
    global _WORKER_CONTEXT
    if _WORKER_CONTEXT is None:
        _WORKER_CONTEXT = Context()
    results: list[tuple[str, RunResult]] = []
    train_chunk(chunk, _WORKER_CONTEXT, lambda h, r: results.append((h, r)))
    return results


def run_chunks_on_ray(
    chunks: Sequence[Chunk],
    address: str | None,
    on_result: Callable[[str, RunResult], None],
    on_failure: Callable[[str, str], None],
) -> None:
    """Submit every chunk as a task and record results as tasks finish."""
    ray = _import_ray()
    if not ray.is_initialized():
        ray.init(
            address=address, include_dashboard=False, log_to_driver=False, configure_logging=False
        )
    task = ray.remote(train_chunk_task).options(max_retries=MAX_RETRIES, retry_exceptions=True)
    pending = {task.remote(chunk): chunk for chunk in chunks}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        chunk = pending.pop(ready[0])
        try:
            results = ray.get(ready[0])
        except Exception as exc:  # the task failed on every try
            for h in chunk.hashes:
                on_failure(h, f"ray task failed: {type(exc).__name__}: {exc}")
            continue
        for run_hash, result in results:
            on_result(run_hash, result)
