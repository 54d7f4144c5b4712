"""Sweep throughput and overheads: the toolkit's ``run_sweep`` against the PyTorch baseline.

The toolkit's sweep runs instrumented (nothing in the library changes): a listener on JAX's
own compile events (``jax.monitoring``: tracing, lowering and XLA compilation, with the
function name) counts compilations and their seconds; the program's jitted training and
measurement functions are wrapped to time each call to completion (compile time inside a call
is subtracted); host↔device copies are timed where the sweep makes them (the data upload, and
the ``np.asarray``/``jnp.asarray`` calls of the vectorized loop). The rest of the wall time is
host bookkeeping (initial states, curves, the SQLite store). Times in seconds.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import numpy as np
import torch_baseline as tb
from jax import monitoring

import l2dynamics.sweep.chunks as chunks
import l2dynamics.train.run as run_mod
import l2dynamics.train.vector as vector
from l2dynamics.config import DataConfig, ModelConfig, TrainConfig, budget_epochs
from l2dynamics.experiments.spec import load_experiment
from l2dynamics.sweep import Sweep, run_sweep
from l2dynamics.sweep.spec import run_hash
from l2dynamics.sweep.store import RunStore
from l2dynamics.train import step as S

COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
MAIN_PROGRAMS = ("jit(run_steps)", "jit(measure_lane)", "jit(put_lane)", "jit(init)")


class Probe:
    """Accumulates seconds and counts by category while installed (see module docstring)."""

    def __init__(self) -> None:
        self.seconds: collections.Counter[str] = collections.Counter()
        self.counts: collections.Counter[str] = collections.Counter()
        self.compiles: collections.Counter[str] = collections.Counter()
        self.slot_steps = [0, 0]  # [useful run-steps, executed run-steps (width × longest)]
        self.widths: set[int] = set()  # vmapped widths the training loop ran at
        self.alone_steps = 0  # steps dispatched for one run at a time (outside a vmapped pool)
        self.active = False

    def on_event(self, event: str, seconds: float, **kwargs: Any) -> None:
        """JAX monitoring listener: compile phases, and XLA compilations by function name."""
        if not self.active or event not in COMPILE_EVENTS:
            return
        self.seconds["compile"] += seconds
        if event == COMPILE_EVENTS[-1]:
            self.compiles[str(kwargs.get("fun_name"))] += 1

    def timed(self, kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` wrapped to run to completion and book its seconds (minus compiles) to ``kind``."""

        def wrapper(*args: Any) -> Any:
            compiled = self.seconds["compile"]
            start = time.perf_counter()
            out = jax.block_until_ready(fn(*args))
            spent = time.perf_counter() - start - (self.seconds["compile"] - compiled)
            self.seconds[kind] += spent
            self.counts[kind] += 1
            if kind == "train":
                self._count_steps(np.asarray(args[-1]))
            return out

        return wrapper

    def _count_steps(self, n: np.ndarray) -> None:
        """Book a dispatch of ``n`` steps per lane (a scalar: one run at a time, as in a
        pool's tail or a one-by-one chunk)."""
        self.slot_steps[0] += int(n.sum())
        self.slot_steps[1] += int(n.max()) * n.size
        if n.ndim:
            self.widths.add(n.size)
        else:
            self.alone_steps += int(n)


class _TimedNumpy:
    """Stands in for a module's ``np``/``jnp``: ``asarray`` across host and device is timed."""

    def __init__(self, module: Any, probe: Probe, kind: str, crossing: Callable[[Any], bool]):
        self._module, self._probe, self._kind, self._crossing = module, probe, kind, crossing

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def asarray(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._crossing(x):
            return self._module.asarray(x, *args, **kwargs)
        start = time.perf_counter()
        out = jax.block_until_ready(self._module.asarray(x, *args, **kwargs))
        self._probe.seconds[self._kind] += time.perf_counter() - start
        self._probe.counts[self._kind] += 1
        return out


def _instrumented_build(probe: Probe, build: Callable[..., Any]) -> Callable[..., Any]:
    def build_program(cfg: TrainConfig, ds: Any) -> Any:
        program = build(cfg, ds)
        pool = dataclasses.replace(
            program.pool,
            run_steps=probe.timed("train", program.pool.run_steps),
            measure=probe.timed("measure", program.pool.measure),
            put=probe.timed("refill", program.pool.put),
        )
        return dataclasses.replace(
            program,
            run_steps=probe.timed("train", program.run_steps),
            measure=probe.timed("measure", program.measure),
            pool=pool,
        )

    return build_program


@contextlib.contextmanager
def instrumented(probe: Probe) -> Iterator[Probe]:
    """Patch the sweep's program builder, data upload and the vectorized loop's copies."""
    saved = (chunks.build_program, run_mod.device_data, vector.np, vector.jnp)
    chunks.build_program = _instrumented_build(probe, saved[0])
    run_mod.device_data = probe.timed("h2d", saved[1])
    vector.np = _TimedNumpy(np, probe, "d2h", lambda x: isinstance(x, jax.Array))
    vector.jnp = _TimedNumpy(saved[3], probe, "h2d", lambda x: not isinstance(x, jax.Array))
    probe.active = True
    try:
        yield probe
    finally:
        probe.active = False
        chunks.build_program, run_mod.device_data, vector.np, vector.jnp = saved


_PROBES: list[Probe] = []


def _listener(event: str, seconds: float, **kwargs: Any) -> None:
    for probe in _PROBES:
        probe.on_event(event, seconds, **kwargs)


monitoring.register_event_duration_secs_listener(_listener)


# --------------------------------------------------------------------------- the grids


def quickstart_runs() -> list[TrainConfig]:
    """The quickstart grid (experiment file ``quickstart``, CPU scale): 40 runs on digits."""
    return list(load_experiment("quickstart", "cpu").sweeps[0][1].runs)


def mnist_runs(data_dir: str) -> list[TrainConfig]:
    """32 runs of the FC (depth 3, width 128, σ_w = √2) on 512 MNIST samples (test subset of
    2000, as the CPU scale of figure 2), full batch, budget 2/(η·λ) epochs, η ∈ {0.5, 1, 2, 4}
    × λ ∈ {5e-4 … 6.4e-2} (8 values, ×2): η·λ from 2.5e-4 to 0.256, budgets 8 to 8000 epochs."""
    base = TrainConfig(
        data=DataConfig("mnist", data_dir=data_dir, n_train=512, n_test=2000),
        model=ModelConfig("fc", {"depth": 3, "width": 128, "sigma_w": 2**0.5}),
        batch_size=512,
        budget_c=2.0,
        measure_resolution=0.05,
        peak_stop=3.0,
    )
    return [
        dataclasses.replace(base, eta=eta, lam=5e-4 * 2**i)
        for eta in (0.5, 1.0, 2.0, 4.0)
        for i in range(8)
    ]


def subset(runs: Sequence[TrainConfig], max_epochs: float) -> list[TrainConfig]:
    """The runs whose budget is at most ``max_epochs`` (the ``--quick`` pass)."""
    return [c for c in runs if budget_epochs(c) <= max_epochs]


def with_peak_stop(runs: Sequence[TrainConfig], factor: float | None) -> list[TrainConfig]:
    """The same runs with the peak-aware stop at ``factor`` (None: every run to its budget)."""
    return [dataclasses.replace(c, peak_stop=factor) for c in runs]


# --------------------------------------------------------------------------- running


def key(cfg: TrainConfig) -> tuple[float, float, int]:
    """A run's identity within a grid: (η, λ, seed)."""
    return (cfg.eta, cfg.lam, cfg.seed)


@dataclasses.dataclass
class SweepRun:
    """One timed sweep: wall seconds, per-run summaries by :func:`key`, the probe (toolkit
    only) and the load average (1 min) before and after."""

    wall_s: float
    results: dict[tuple, dict[str, Any]]
    probe: Probe | None
    load: tuple[float, float]


def toolkit_sweep(runs: Sequence[TrainConfig], name: str) -> SweepRun:
    """``run_sweep`` of ``runs`` into a fresh store, instrumented, timed end to end."""
    probe = Probe()
    _PROBES.append(probe)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp, instrumented(probe):
        start = time.perf_counter()
        run_sweep(Sweep(name, tuple(runs)), os.path.join(tmp, "sweep.db"))
        wall = time.perf_counter() - start
        with RunStore(os.path.join(tmp, "sweep.db")) as store:
            records = {r.hash: r for r in store.runs()}
    _PROBES.remove(probe)
    results = {
        key(c): dict(records[run_hash(c)].summary, status=records[run_hash(c)].status) for c in runs
    }
    return SweepRun(wall, results, probe, (load0, os.getloadavg()[0]))


def on_schedule(cfg: TrainConfig, n_train: int, acc: np.ndarray) -> tuple[float, float]:
    """(t* in epochs, best accuracy) of a per-epoch accuracy curve read only at the epochs
    the toolkit measures (its log schedule), to compare at equal resolution (full batch)."""
    steps = run_mod.measure_steps(
        cfg, run_mod.total_steps(budget_epochs(cfg), n_train, cfg.batch_size or n_train)
    )
    batch = min(cfg.batch_size or n_train, n_train)
    epochs = np.unique(np.floor(steps * batch / n_train).astype(int))
    epochs = epochs[(epochs >= 1) & (epochs <= len(acc))]
    best = int(np.argmax(acc[epochs - 1]))
    return float(epochs[best]), float(acc[epochs[best] - 1])


def baseline_sweep(runs: Sequence[TrainConfig], inits: dict[int, Any] | None) -> SweepRun:
    """The PyTorch loop over ``runs`` (data loading included), each to its full budget;
    ``inits`` maps a seed to the toolkit's initial parameters (None: torch's own init)."""
    load0 = os.getloadavg()[0]
    start = time.perf_counter()
    ds = run_mod.load_data(runs[0])
    data = tb.tensors(ds, runs[0].model.name)
    results = {}
    for cfg in runs:
        r = tb.train(cfg, ds, data, init=None if inits is None else inits[cfg.seed])
        results[key(cfg)] = dataclasses.asdict(r)
        if len(r.test_acc):
            t, a = on_schedule(cfg, ds.n_train, r.test_acc)
            results[key(cfg)].update(t_star_sched=t, best_acc_sched=a)
    return SweepRun(time.perf_counter() - start, results, None, (load0, os.getloadavg()[0]))


def toolkit_inits(runs: Sequence[TrainConfig]) -> dict[int, Any]:
    """The toolkit's initial parameters of each seed in ``runs`` (host numpy pytrees)."""
    cfg = runs[0]
    program = run_mod.build_program(cfg, run_mod.load_data(cfg))
    seeds = sorted({c.seed for c in runs})
    return {
        s: jax.tree.map(
            np.asarray, run_mod.init_state(dataclasses.replace(cfg, seed=s), program).params
        )
        for s in seeds
    }


def measurement_floor(
    runs: Sequence[TrainConfig], width: int, rounds: int = 7, calls: int = 40
) -> tuple[float, float]:
    """Milliseconds of (the test-set forward pass of one pool lane, the pool's whole lane
    measurement), timed in alternation on a stack of ``width`` lanes: the medians over
    ``rounds`` rounds of the mean of ``calls`` calls each, every call run to completion and its
    scalars fetched. Alternating keeps the two on the same footing when the machine's speed
    drifts (on a shared 2-core machine it does, by up to half).

    The test-set pass is the least a measurement can cost (t* is read from test accuracy, over
    the whole test set, in the toolkit's evaluation chunks); the lane measurement adds the
    training-set pass and ‖θ‖². Their ratio scales a sweep's measured measurement time to its
    floor."""
    cfg = runs[0]
    ds = run_mod.load_data(cfg)
    program = run_mod.build_program(cfg, ds)
    lanes = [runs[i % len(runs)] for i in range(width)]
    stack = vector.stack_states([run_mod.init_state(c, program) for c in lanes])
    eval_batch = run_mod.eval_batch_size(cfg, ds)
    spec = program.spec

    def forward(data: S.DeviceData, params: Any, index: jax.Array) -> tuple[jax.Array, jax.Array]:
        one = jax.lax.optimization_barrier(S.lane(params, index))
        return S.evaluate(spec.apply, spec.loss, one, data.x_test, data.y_test, eval_batch)

    test_pass = jax.jit(forward)  # the data as an argument, as the sweep's measurement takes them
    index = jax.numpy.int32(0)
    fns = (
        lambda: test_pass(program.data, stack.params, index),
        lambda: program.pool.measure(program.data, stack.params, index, eval_batch),
    )
    times: list[list[float]] = [[], []]
    for fn in fns:
        jax.device_get(fn())  # compile
    for _ in range(rounds):
        for k, fn in enumerate(fns):
            start = time.perf_counter()
            for _ in range(calls):
                jax.device_get(fn())
            times[k].append((time.perf_counter() - start) / calls)
    return 1e3 * float(np.median(times[0])), 1e3 * float(np.median(times[1]))


# --------------------------------------------------------------------------- comparing


def t_star_agrees(t_ref: float, res: float, t_other: float) -> bool:
    """Whether ``t_other`` lies within the toolkit's resolution of ``t_ref`` (both in epochs):
    ``|Δt*| ≤ res·t_ref + 1`` (``res``: the relative gap to the next measurement)."""
    return abs(t_other - t_ref) <= res * t_ref + 1.0


def compare(ref: SweepRun, other: SweepRun, acc_tol: float = 0.003) -> dict[str, Any]:
    """Per-run agreement of ``other`` with ``ref`` (toolkit): t* within resolution, best
    accuracy within ``acc_tol``; returns the rows and the summary fractions/quantiles."""
    rows = []
    for k, r in ref.results.items():
        o = other.results[k]
        dt = (o["t_star_epochs"] - r["t_star_epochs"]) / max(r["t_star_epochs"], 1.0)
        da = o["best_test_acc"] - r["best_test_acc"]
        ok_t = t_star_agrees(r["t_star_epochs"], r["t_star_resolution"], o["t_star_epochs"])
        rows.append(
            {
                "eta": k[0],
                "lam": k[1],
                "seed": k[2],
                "t_ref": r["t_star_epochs"],
                "res": r["t_star_resolution"],
                "t_other": o["t_star_epochs"],
                "dt": dt,
                "acc_ref": r["best_test_acc"],
                "acc_other": o["best_test_acc"],
                "da": da,
                "ok_t": ok_t,
                "ok_acc": abs(da) <= acc_tol + 1e-6,
                "t_sched": o.get("t_star_sched"),
                "acc_sched": o.get("best_acc_sched"),
            }
        )
    return {"rows": rows, **agreement_summary(rows)}


def agreement_summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Fractions of runs agreeing (t*, accuracy, both) and quantiles of |Δt*|/t*, |Δacc|."""
    dt = np.abs([r["dt"] for r in rows])
    da = np.abs([r["da"] for r in rows])
    return {
        "n": len(rows),
        "frac_t": float(np.mean([r["ok_t"] for r in rows])),
        "frac_acc": float(np.mean([r["ok_acc"] for r in rows])),
        "frac_both": float(np.mean([r["ok_t"] and r["ok_acc"] for r in rows])),
        "dt_median": float(np.median(dt)),
        "dt_p90": float(np.quantile(dt, 0.9)),
        "da_median": float(np.median(da)),
        "da_max": float(np.max(da)),
        **same_schedule(rows),
    }


def same_schedule(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Fractions of runs whose baseline t* and best accuracy, read on the toolkit's own
    schedule, equal the toolkit's exactly (t*) and within 0.3 points (accuracy)."""
    rows = [r for r in rows if r.get("t_sched") is not None]
    if not rows:
        return {}
    return {
        "sched_t": float(np.mean([r["t_sched"] == r["t_ref"] for r in rows])),
        "sched_acc": float(
            np.mean([abs(r["acc_sched"] - r["acc_ref"]) <= 0.003 + 1e-6 for r in rows])
        ),
    }


def seed_spread(run: SweepRun) -> dict[str, float] | None:
    """The toolkit's own seed-to-seed differences (seed 1 vs seed 0 at equal η, λ): what an
    independent initialization does to t* and best accuracy. None with a single seed."""
    pairs = [(r, run.results.get((k[0], k[1], 1))) for k, r in run.results.items() if k[2] == 0]
    pairs = [(a, b) for a, b in pairs if b is not None]
    if not pairs:
        return None
    rows = [
        {
            "dt": (b["t_star_epochs"] - a["t_star_epochs"]) / max(a["t_star_epochs"], 1.0),
            "da": b["best_test_acc"] - a["best_test_acc"],
            "ok_t": t_star_agrees(a["t_star_epochs"], a["t_star_resolution"], b["t_star_epochs"]),
            "ok_acc": abs(b["best_test_acc"] - a["best_test_acc"]) <= 0.003 + 1e-6,
        }
        for a, b in pairs
    ]
    return agreement_summary(rows)
