"""The Ray executor: each chunk of a sweep becomes one Ray task.

Workers train a chunk exactly as the local executor does (vectorized or one by one) and return
its results; the driver alone writes the store, as results arrive. A task that raises or whose
worker dies is retried by Ray (``MAX_RETRIES`` times); after that its runs are marked failed.
Data files must be readable at the same path on every node (``data_dir``). Requires the
optional extra ``l2dynamics[ray]``.

What a task asks for is decided once, by :func:`task_options`, from the cluster's resources
after ``ray.init``: on a cluster with GPUs, ``GPUS_PER_TASK`` GPU (one pool per device at a
time) and ``CPUS_PER_TASK`` CPU; on one without, the CPU only. ``gpus_per_task`` overrides the
GPUs (0: CPU tasks on a GPU cluster; a fraction: several pools share a GPU; a whole number above
1: a task sees several). Ray sets ``CUDA_VISIBLE_DEVICES`` of a GPU task's worker to its GPUs,
and each GPU task gets a fresh worker (``max_calls=1``; a reused one would keep the GPU its JAX
started on), so the worker's JAX, whose backend starts inside the task, sees exactly its GPUs
(as its devices 0, 1, ...). A task without a GPU trains on the CPU (``JAX_PLATFORMS=cpu``): Ray
leaves ``CUDA_VISIBLE_DEVICES`` alone for tasks that ask for no GPU, and their JAX would
otherwise take every GPU of its node.

The driver plans the chunks by the static rule (:func:`l2dynamics.sweep.plan.plan_chunks`, the
CPU's cost model): its JAX is on the CPU, where a measured step cost would time the wrong
device. A task on a GPU measures its own (:mod:`l2dynamics.train.cost`, up to its chunk's
width, in its worker) for its pool's tail hand-over.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from l2dynamics.errors import L2DynError
from l2dynamics.sweep.chunks import Chunk, Context, train_chunk
from l2dynamics.train.run import RunResult

MAX_RETRIES = 2
# How long a cluster address may take to accept a TCP connection (seconds; check_address)
ADDRESS_TIMEOUT_S = 5.0
CPUS_PER_TASK = 1
GPUS_PER_TASK = 1  # on a cluster with GPUs; see task_options
# JAX's default share of a GPU's memory (XLA_PYTHON_CLIENT_MEM_FRACTION), split between the
# tasks that share one GPU
JAX_GPU_MEM_FRACTION = 0.75
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


def check_gpus_per_task(gpus: float | None) -> None:
    """Refuse a GPU request Ray cannot schedule: below 0, or a fraction above 1."""
    if gpus is not None and (gpus < 0 or (gpus > 1 and gpus != int(gpus))):
        raise L2DynError(
            f"--gpus-per-task {gpus:g}: give 0 (CPU tasks), a fraction of one GPU (several "
            "tasks share it) or a whole number of GPUs"
        )


def task_options(cluster: Mapping[str, float], gpus_per_task: float | None = None) -> dict:
    """The Ray options of every chunk's task: its CPUs and GPUs, a fresh worker per GPU task,
    and its workers' environment (see the module docstring).

    Args:
        cluster: the cluster's resources (``ray.cluster_resources()``), e.g. ``{"CPU": 16,
            "GPU": 4}``.
        gpus_per_task: the GPUs a task asks for; None: ``GPUS_PER_TASK`` when the cluster has
            GPUs, else 0.

    Raises:
        L2DynError: a request Ray cannot schedule, or more GPUs than the cluster has.
    """
    check_gpus_per_task(gpus_per_task)
    have = float(cluster.get("GPU", 0))
    gpus = gpus_per_task if gpus_per_task is not None else (GPUS_PER_TASK if have else 0)
    if gpus > have:
        raise L2DynError(
            f"each task asks for {gpus:g} GPUs (--gpus-per-task) but the Ray cluster has "
            f"{have:g}; start its nodes with `ray start ... --num-gpus N`"
        )
    env = {}
    if gpus == 0:
        env["JAX_PLATFORMS"] = "cpu"
    elif gpus < 1:  # several tasks share one GPU: each preallocates its share only
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{JAX_GPU_MEM_FRACTION * gpus:.4f}"
    options: dict[str, Any] = {"num_cpus": CPUS_PER_TASK, "num_gpus": gpus}
    if gpus:
        options["max_calls"] = 1  # Ray's default for GPU tasks, said: see the module docstring
    if env:
        options["runtime_env"] = {"env_vars": env}
    return options


def train_chunk_task(chunk: Chunk) -> list[tuple[str, RunResult]]:
    """Body of a Ray task: train one chunk in this worker, reusing its compiled programs."""
    global _WORKER_CONTEXT
    if _WORKER_CONTEXT is None:
        _WORKER_CONTEXT = Context()
    results: list[tuple[str, RunResult]] = []
    train_chunk(chunk, _WORKER_CONTEXT, lambda h, r: results.append((h, r)))
    return results


def connect(address: str | None, gpus_per_task: float | None = None) -> dict:
    """Join the Ray cluster at ``address`` (None: start a local one) unless this process has
    joined one, and return what each task will ask of it (:func:`task_options`).

    Raises:
        L2DynError: Ray is missing, or the cluster cannot give a task ``gpus_per_task`` GPUs.
    """
    ray = _import_ray()
    if not ray.is_initialized():
        check_address(address)
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        except (ConnectionError, ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise L2DynError(
                f"--address {address}: cannot join a Ray cluster there ({first})"
            ) from None
    return task_options(ray.cluster_resources(), gpus_per_task)


def check_address(address: str | None, timeout_s: float = ADDRESS_TIMEOUT_S) -> None:
    """Raise :class:`L2DynError` unless a cluster address ``HOST:PORT`` (or ``ray://HOST:PORT``)
    accepts a TCP connection within ``timeout_s`` seconds. Why: Ray retries an address where
    nothing listens for minutes before it fails. ``None`` (a local cluster) and Ray's own words
    (``auto``, ``local``) are left to Ray."""
    if address is None or address in ("auto", "local"):
        return
    where = address.removeprefix("ray://")
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        raise L2DynError(f"--address {address}: not HOST:PORT (e.g. 10.0.0.1:6379) or 'auto'")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise L2DynError(f"--address {address}: no Ray cluster answers there ({reason})") from None


def run_chunks_on_ray(
    chunks: Sequence[Chunk],
    options: Mapping[str, Any],
    on_result: Callable[[str, RunResult], None],
    on_failure: Callable[[str, str], None],
) -> None:
    """Submit every chunk as a task asking for ``options`` (from :func:`connect`) and record
    results as tasks finish, in this process; a task that failed on every try marks its runs
    failed."""
    ray = _import_ray()
    # in ray.remote, not .options(): max_calls takes effect only there
    task = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=True, **options)(train_chunk_task)
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
