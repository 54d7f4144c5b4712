"""Paper-scale check on one accelerator: each figure against the device's measured matmul limit.

Rows, each with its own time limit (``--max-seconds ROW=S``; a row stops its timing loop, pool
or sweep at the limit and says so), and the results file rewritten after every row, so a kill
still leaves the rows done (the row in progress reads "running"):

1. ``matmul``: the f32 ``n×n @ n×n`` rate of a jitted ``jnp.dot`` at JAX's default precision
   (the toolkit trains at it) and at ``precision=HIGHEST``, after a warm-up call (its time is
   the compile time), median of repeated calls; the configured
   ``jax_default_matmul_precision`` and whether the default rounds operands (TF32 on an NVIDIA
   GPU), from the error of each product against a float64 product on the host.
2. ``fc``: one training step of Figure 2's FC (784-2048×3-10, batch 512 on 512 MNIST samples),
   through the toolkit's program (``train.run.build_program``, its jitted step loop), and its
   FLOP/s against row 1. FLOPs are counted from the shapes (``flops.py``: 2 per multiply-add,
   backward twice the forward less the first layer's input gradient, the update per parameter;
   elementwise work not counted), XLA's ``cost_analysis`` beside it.
3. ``pool``: the λ > 0 runs of Figure 2's paper grid (17 η × 15 λ of
   ``experiments/files/fig2.toml``; λ = 0 trains 10⁶/η epochs) in a pool of vmapped lanes (the
   toolkit's ``Pool`` and its vmapped step loop) at growing widths up to all 255 runs, as far as
   the time limit and memory allow: lane-steps per second, and what the whole grid would cost
   at that rate; then ``train_vectorized`` on the widest of them (at most 64 lanes) with budgets
   capped at 100 steps, measured as the sweep measures: runs per second.
4. ``wrn`` and ``cnn``: a step of WRN-28-10 at batch 1024 (Figure 2d–f's paper settings:
   BatchNorm in groups of 128, the authors' convention) and of the paper's CNN (300 channels,
   batch 128; Figure 3a–c without, 3d–f with BatchNorm), on CIFAR-10 shapes, against row 1.
   Out of memory, the batch halves (and the row says so).
5. ``fig2``: a slice of ``l2dyn reproduce fig2 --scale paper``: a few (η, λ) of the paper's
   grid (defaults: η ≈ 0.66, 2.3 × λ ≈ 3e-4, 1e-3, 3e-3, budgets 2/(η·λ) epochs, 0.3k–10k
   steps) trained by the toolkit's sweep (``sweep.run_sweep``) into a store (``--store-dir``,
   else a temporary one), with
   their t* (``analysis.tables.run_table``) and, from 3 points on, the fit t* = c/(η·λ)^b.

Data: MNIST and CIFAR-10 from ``--data-dir`` (default ``$L2DYN_DATA``, else ``.device-data``
when it exists); without them the timing rows run on random arrays of the same shapes (said in
the file) and the fig2 row, which needs MNIST, is skipped. ``../shared`` does not travel to the
device machine: ``benchmarks/device_data.py`` copies what is needed into ``.device-data/``
(git-ignored, about 20 MiB: all of MNIST, 2048 + 1000 CIFAR-10 images) to be carried.

On this workplace's device machine (one H200; its own python3 has JAX with CUDA, flax, optax,
pandas, scipy and scikit-learn; nothing is installed), with ``carry`` ``[".device-data"]`` and
``timeout_s`` 570; the results come back under ``$OUT`` (the store of the fig2 slice and the
log beside them), to be copied to ``benchmarks/RESULTS-gpu.md``::

    python benchmarks/device_data.py --from ../shared/data --to .device-data   # here, once
    set -o pipefail; PYTHONUNBUFFERED=1 PYTHONPATH=src python3 benchmarks/device_check.py \
        --data-dir .device-data --out $OUT/RESULTS-gpu.md --store-dir $OUT \
        2>&1 | tee $OUT/device_check.log

Anywhere else JAX sees a GPU: ``PYTHONPATH=src python benchmarks/device_check.py --data-dir
DIR`` writes ``benchmarks/RESULTS-gpu.md``.

Sizing (estimated, not measured: no GPU had been lent to the project when this was written; it
has run only on the CPU here, in reduced mode). Counted from the shapes, a step costs 0.029
TFLOP (FC), 32.2 TFLOP (WRN-28-10, batch 1024) and 0.81 TFLOP (CNN, batch 128). At an H200's
datasheet rates (dense TF32 about 495 TFLOP/s, f32 about 67) and 30–50% of them, an FC step
takes 0.1–1 ms, a WRN step 0.15–1 s, a CNN step 5–30 ms; the fig2 slice trains 17.6k FC steps
and takes 734 measurements of 10,512 images; XLA's compiles on a GPU were taken as 5–20 s for
the FC and CNN, 30–60 s for the WRN. Hence about matmul 12 s, fc 20, pool 75, wrn 75, cnn 40,
fig2 50 (4.5 minutes), under limits of 30, 30, 90, 110, 60 and 120 s (7.3 minutes; a compile
cannot be cut short, so a row can overrun its limit by its compile time).

Reduced mode (``--reduced``, alias ``--smoke``): the same rows at tiny sizes (FC width 64,
WRN-10-1, CNN 8 channels, 2 lanes, one fig2 point with a 28-step budget), a CPU smoke test
(``tests/test_benchmarks_device_check.py`` runs it); its numbers mean nothing, and without
``--out`` it writes into the system's temporary folder, not into the repository.

    python benchmarks/device_check.py [--reduced] [--data-dir DIR] [--out FILE] [--store-dir DIR]
        [--only ROW ...] [--max-seconds ROW=S ...] [--fig2-eta ETA ...] [--fig2-lam LAM ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flops import step_flops, xla_step_flops

from l2dynamics import files
from l2dynamics.analysis.fits import fit_tstar
from l2dynamics.analysis.tables import run_table
from l2dynamics.config import TEST_SET_SIZES, TrainConfig, budget_epochs
from l2dynamics.data import Dataset
from l2dynamics.data.datasets import NUM_CLASSES, load_dataset
from l2dynamics.errors import DataError
from l2dynamics.experiments.spec import merge, read_file, scale_sweeps
from l2dynamics.progress import Update
from l2dynamics.sweep import Sweep, run_sweep
from l2dynamics.sweep.spec import parse_sweep
from l2dynamics.sweep.store import load_measurements, load_runs
from l2dynamics.train import step as S
from l2dynamics.train.book import total_steps
from l2dynamics.train.run import build_program, init_state, load_data
from l2dynamics.train.vector import Pool, train_vectorized

ROWS = ("matmul", "fc", "pool", "wrn", "cnn", "fig2")
DEVICE_COMMAND = (
    "set -o pipefail; PYTHONUNBUFFERED=1 PYTHONPATH=src python3 benchmarks/device_check.py "
    "--data-dir .device-data --out $OUT/RESULTS-gpu.md --store-dir $OUT "
    "2>&1 | tee $OUT/device_check.log"
)
CARRY = '[".device-data"]'
IMAGE_SHAPES = {"mnist": (28, 28, 1), "cifar10": (32, 32, 3)}
POOL_BOOK_STEPS = 10_000  # budget cap of the lanes whose stepping is timed
TF32_REL_ERR = 1e-5  # f32 products err ~1e-7 relative; TF32's 10-bit mantissa ~1e-4


def one_run_setup(cfg: Any, ds: Any) -> tuple[Any, Any, S.Hyper, float]:
    """The program, initial state and hyperparameters of one run of ``cfg`` on ``ds``, and the
    seconds that building the program and the state took (the jitted init compiles then)."""
    t0 = time.perf_counter()
    program = build_program(cfg, ds)
    state = init_state(cfg, program)
    setup_s = time.perf_counter() - t0
    return (
        program,
        state,
        S.Hyper(jnp.float32(cfg.eta), jnp.float32(cfg.lam), jnp.int32(10**6)),
        setup_s,
    )


@dataclasses.dataclass(frozen=True)
class Scale:
    """The sizes of one mode: paper (an accelerator) or reduced (a CPU smoke test)."""

    name: str
    matmul_n: int
    check_n: int  # the precision check's size (a float64 product on the host)
    fig2: dict[str, Any]  # overrides of fig2.toml's paper sweep (fc, pool and fig2 rows)
    pool_widths: tuple[int, ...]
    pool_runs_max: int  # lanes (= runs) of the runs-per-second pool, at most
    pool_run_steps: int  # budget cap of each run there, in steps
    wrn: dict[str, Any]  # overrides of fig2def.toml's paper sweep
    cnn: dict[str, Any]  # overrides of fig3abc.toml / fig3def.toml's paper sweeps
    fig2_eta: tuple[float, ...]
    fig2_lam: tuple[float, ...]
    max_seconds: dict[str, float]
    call_s: float  # seconds of one timed call of a step loop (steps per call chosen to fit)
    timing_s: float  # seconds of timed calls per measurement, at most (the rows' limits too)


PAPER = Scale(
    name="paper",
    matmul_n=8192,
    check_n=1024,
    fig2={},
    pool_widths=(1, 4, 16, 64, 255),
    pool_runs_max=64,
    pool_run_steps=100,
    wrn={"train": {"batch_size": 1024}},
    cnn={"train": {"batch_size": 128}},
    fig2_eta=(0.66, 2.3),
    fig2_lam=(3e-4, 1e-3, 3e-3),
    # estimated on an H200 (no GPU lent yet): matmul 12 s, fc 20, pool 75, wrn 75, cnn 40,
    # fig2 50; the limits leave room for slower compiles
    max_seconds={"matmul": 30, "fc": 30, "pool": 90, "wrn": 110, "cnn": 60, "fig2": 120},
    call_s=0.3,
    timing_s=8.0,
)
REDUCED = Scale(
    name="reduced",
    matmul_n=256,
    check_n=128,
    fig2={"model": {"options": {"width": 64}}, "data": {"n_test": 500}},
    pool_widths=(1, 2),
    pool_runs_max=2,
    pool_run_steps=5,
    wrn={
        "model": {"options": {"depth": 10, "width": 1, "bn_group": 0}},
        "train": {"batch_size": 32},
    },
    cnn={"model": {"options": {"channels": 8, "dense": 64}}, "train": {"batch_size": 16}},
    fig2_eta=(2.3,),
    fig2_lam=(0.03,),
    max_seconds={"matmul": 5, "fc": 6, "pool": 10, "wrn": 8, "cnn": 10, "fig2": 20},
    call_s=0.05,
    timing_s=0.2,
)


class OutOfTime(BaseException):
    """A row's time limit reached inside the toolkit's loops (a BaseException, as Ctrl-C is, so
    that the sweep runner requeues its runs and re-raises instead of marking them failed)."""


@dataclasses.dataclass
class Deadline:
    """A row's time limit."""

    seconds: float
    start: float = dataclasses.field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()

    def guard(self, _update: Update | None = None) -> None:
        """A progress function that stops the toolkit's loop at the limit."""
        if self.left() <= 0:
            raise OutOfTime


@dataclasses.dataclass
class Entry:
    """One line of the summary table."""

    row: str
    label: str
    value: float | None = None
    unit: str = ""
    vs_limit: str = ""
    compile_s: float | None = None
    notes: str = ""


@dataclasses.dataclass
class Report:
    """What the results file says: the environment, the summary and each row's details."""

    out: Path
    header: list[str]
    howto: list[str]
    notes: list[str] = dataclasses.field(default_factory=list)
    entries: list[Entry] = dataclasses.field(default_factory=list)
    sections: dict[str, str] = dataclasses.field(default_factory=dict)
    status: dict[str, str] = dataclasses.field(default_factory=dict)
    wall: dict[str, float] = dataclasses.field(default_factory=dict)

    def write(self) -> None:
        lines = [*self.header, *self.notes, "", *self.howto, "", "## Summary", ""]
        lines += [
            "| row | measured | value | unit | against the limit | compile s | row s | notes |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in ROWS:
            if row not in self.status:
                continue
            entries = [e for e in self.entries if e.row == row]
            wall = _fmt(self.wall.get(row))
            if not entries:
                lines.append(f"| {row} | {self.status[row]} | — |  |  |  | {wall} |  |")
            for e in entries:
                lines.append(
                    f"| {row} | {e.label} | {_fmt(e.value)} | {e.unit} | {e.vs_limit} | "
                    f"{_fmt(e.compile_s)} | {wall} | {e.notes} |"
                )
        for row in ROWS:
            if row in self.sections:
                lines += ["", self.sections[row]]
        self.out.parent.mkdir(parents=True, exist_ok=True)
        files.write_text(self.out, "\n".join(lines) + "\n")


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.{digits}g}"


def version(dist: str) -> str:
    try:
        return dist_version(dist)
    except PackageNotFoundError:
        return "?"


def count_flops(program, params: Any, x: jax.Array) -> dict[str, float]:
    """:func:`flops.step_flops`, or NaNs (said on stderr) where this JAX cannot trace it, so
    that the row still gives its step time."""
    try:
        return step_flops(program, params, x)
    except Exception as exc:
        log(f"FLOPs not counted: {exc!r}")
        keys = ("forward", "backward", "update", "total", "params")
        return dict.fromkeys(keys, math.nan)


def log(message: str) -> None:
    print(f"[device_check {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def is_oom(exc: BaseException) -> bool:
    text = str(exc)
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


def timed_calls(fn: Callable[[], Any], budget_s: float, min_reps: int = 3, max_reps: int = 20):
    """Wall seconds of repeated calls of ``fn`` (each blocks until its result is ready): at
    least ``min_reps``, then until ``budget_s`` has passed or ``max_reps`` calls."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_reps and (
        len(times) < min_reps or time.perf_counter() - start < budget_s
    ):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


# --------------------------------------------------------------------------- configurations


def paper_sweep(figure: str, overrides: dict[str, Any], data_dir: str | None) -> Sweep:
    """The paper-scale sweep of experiment file ``figure`` with ``overrides`` merged into its
    tables (the toolkit's experiment files: the paper's numbers are written there once)."""
    _, table = scale_sweeps(read_file(figure), "paper")[0]
    table = merge(table, overrides)
    if data_dir is not None:
        table = merge(table, {"data": {"data_dir": data_dir}})
    return parse_sweep(table, source=f"{figure}.toml (paper), device check")


def first_with_l2(sweep: Sweep) -> TrainConfig:
    return next(c for c in sweep.runs if c.lam > 0)


def synthetic(cfg: TrainConfig) -> Dataset:
    """Random images and labels of the shapes ``cfg``'s data set would have."""
    d = cfg.data
    n_train = d.n_train or 1024
    n_test = d.n_test or TEST_SET_SIZES[d.name]
    rng = np.random.default_rng(0)
    shape = IMAGE_SHAPES[d.name]
    return Dataset(
        d.name,
        rng.standard_normal((n_train, *shape), dtype=np.float32),
        rng.integers(0, NUM_CLASSES, n_train).astype(np.int32),
        rng.standard_normal((n_test, *shape), dtype=np.float32),
        rng.integers(0, NUM_CLASSES, n_test).astype(np.int32),
        NUM_CLASSES,
    )


# --------------------------------------------------------------------------- the check


class Check:
    def __init__(self, args: argparse.Namespace, scale: Scale, report: Report) -> None:
        self.args, self.scale, self.report = args, scale, report
        self.data_dir: str | None = args.data_dir
        self.limit: dict[str, float] = {}  # FLOP/s: "default", "highest"
        self._data: dict[Any, tuple[Dataset, str]] = {}

    # ---- helpers

    def dataset(self, cfg: TrainConfig) -> tuple[Dataset, str]:
        """``cfg``'s data set and where it came from; random arrays of its shapes without it."""
        if cfg.data not in self._data:
            try:
                ds, source = load_data(cfg), f"{cfg.data.name} from {cfg.data.data_dir}"
            except DataError as exc:
                ds, source = synthetic(cfg), f"synthetic {cfg.data.name} shapes ({exc})"
                log(f"no {cfg.data.name}: {exc}; random arrays of its shapes instead")
                self.report.notes.append(
                    f"- **no {cfg.data.name} data**: its rows timed random arrays of its shapes "
                    f"(timing only; {exc})"
                )
            self._data[cfg.data] = (ds, source)
        return self._data[cfg.data]

    def against(self, flops_per_s: float) -> str:
        """``flops_per_s`` as TFLOP/s and as a share of the measured limits."""
        if not self.limit:
            return f"{flops_per_s / 1e12:.3g} TFLOP/s (no limit measured: matmul row not run)"
        out = f"{flops_per_s / 1e12:.3g} TFLOP/s = {100 * flops_per_s / self.limit['default']:.3g}%"
        return out + f" (HIGHEST: {100 * flops_per_s / self.limit['highest']:.3g}%)"

    def time_steps(self, program, state, hyper, budget_s: float, lanes: int | None = None):
        """Seconds per step of ``program``'s jitted step loop (``run_steps``; for a pool of
        ``lanes`` lanes its vmapped one), after a 1-step warm-up call whose time less a steady
        1-step call is the compile time; ``n`` steps per call so that a call takes about
        ``scale.call_s``. Steps are counted from the state (a diverged lane stops stepping; a
        pool steps while any lane does)."""
        run = program.run_steps if lanes is None else program.pool.run_steps
        holder = [state]

        def call(n: int) -> int:
            before = np.max(jax.device_get(holder[0].step))
            steps = jnp.int32(n) if lanes is None else jnp.full((lanes,), n, jnp.int32)
            holder[0] = jax.block_until_ready(run(program.data, holder[0], hyper, steps))
            return int(np.max(jax.device_get(holder[0].step)) - before)

        t0 = time.perf_counter()
        call(1)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        call(1)
        one = time.perf_counter() - t0
        n = int(min(500, max(1, math.ceil(self.scale.call_s / max(one, 1e-6)))))
        done: list[int] = []
        budget_s = min(budget_s, self.scale.timing_s)
        times = timed_calls(lambda: done.append(call(n)), budget_s, min_reps=2, max_reps=10)
        per_step = [t / max(d, 1) for t, d in zip(times, done, strict=True)]
        return {
            "compile_s": max(0.0, first - one),
            "first_s": first,
            "steps_per_call": n,
            "calls": len(times),
            "step_s": statistics.median(per_step),
            "step_s_min": min(per_step),
            "steps_done": done,
            "state": holder[0],
        }

    def run_row(self, row: str, fn: Callable[[Deadline], None]) -> None:
        seconds = self.args.max_seconds.get(row, self.scale.max_seconds[row])
        log(f"{row}: start (limit {seconds:.0f} s)")
        self.report.status[row] = "running (not finished: killed or timed out?)"
        self.report.write()
        deadline = Deadline(seconds)
        try:
            fn(deadline)
            self.report.status[row] = "done"
        except OutOfTime:
            self.report.status[row] = "stopped at its time limit"
        except Exception as exc:  # a row's failure is reported, the next rows still run
            self.report.status[row] = f"failed: {type(exc).__name__}: {exc}"
            self.report.sections.setdefault(row, f"### {row}\n\nfailed: `{exc!r}`"[:2000])
            log(f"{row}: FAILED {exc!r}")
        self.report.wall[row] = deadline.elapsed()
        self.report.write()
        log(f"{row}: {self.report.status[row]} in {deadline.elapsed():.1f} s")

    # ---- row 1

    def matmul(self, deadline: Deadline) -> None:
        n = self.scale.matmul_n
        ka, kb = jax.random.split(jax.random.key(0))
        a = jax.random.normal(ka, (n, n), jnp.float32)
        b = jax.random.normal(kb, (n, n), jnp.float32)
        precisions = {"default": None, "highest": jax.lax.Precision.HIGHEST}
        lines, rates, errors = [], {}, {}
        m = self.scale.check_n
        x = np.random.default_rng(1).standard_normal((m, m)).astype(np.float32)
        y = np.random.default_rng(2).standard_normal((m, m)).astype(np.float32)
        ref = x.astype(np.float64) @ y.astype(np.float64)
        for name, precision in precisions.items():
            mm = jax.jit(partial(jnp.dot, precision=precision))
            t0 = time.perf_counter()
            mm(a, b).block_until_ready()
            compile_s = time.perf_counter() - t0
            budget = min(self.scale.timing_s, max(0.2, deadline.left() / 3))
            times = timed_calls(lambda mm=mm: mm(a, b).block_until_ready(), budget, 3, 50)
            rates[name] = 2 * n**3 / statistics.median(times)
            got = np.asarray(mm(jnp.asarray(x), jnp.asarray(y)), np.float64)
            errors[name] = float(np.linalg.norm(got - ref) / np.linalg.norm(ref))
            label = "precision=HIGHEST" if precision else "default precision"
            self.report.entries.append(
                Entry(
                    "matmul",
                    f"f32 {n}×{n} matmul, {label}",
                    rates[name] / 1e12,
                    "TFLOP/s",
                    "the limit" if name == "default" else "",
                    compile_s,
                    f"median of {len(times)}; rel. error vs float64 {errors[name]:.1e}",
                )
            )
            lines.append(
                f"| {label} | {1e3 * statistics.median(times):.4g} | {1e3 * min(times):.4g} | "
                f"{rates[name] / 1e12:.4g} | {len(times)} | {compile_s:.3g} | {errors[name]:.2e} |"
            )
        self.limit = dict(rates)
        entry = self.report.entries[-1]
        entry.vs_limit = f"{100 * rates['highest'] / rates['default']:.3g}% of default"
        tf32 = errors["default"] > TF32_REL_ERR and errors["default"] > 10 * errors["highest"]
        config = jax.config.jax_default_matmul_precision
        verdict = (
            "**yes**: the default rounds f32 operands (TF32 on an NVIDIA GPU), so the toolkit's "
            "f32 steps run at the TF32 limit"
            if tf32
            else "**no**: the default computes in full f32"
        )
        self.report.sections["matmul"] = "\n".join(
            [
                "### 1. matmul limit",
                "",
                f"`jnp.dot` of two random f32 {n}×{n} matrices, jitted; FLOPs 2n³ = "
                f"{2 * n**3 / 1e12:.4g} TFLOP per product; the first call (compile) excluded.",
                f"`jax_default_matmul_precision` = `{config}` (None: XLA's default); "
                f"`NVIDIA_TF32_OVERRIDE` = `{os.environ.get('NVIDIA_TF32_OVERRIDE')}`. "
                f"Relative error of a {m}×{m} product against float64: default "
                f"{errors['default']:.2e}, HIGHEST {errors['highest']:.2e}. Reduced precision "
                f"(TF32) in effect by default: {verdict}. The rows below take the "
                "default-precision rate as the limit and give the HIGHEST share beside it.",
                "",
                "| precision | median ms | min ms | TFLOP/s | calls | compile s | rel. error |",
                "|---|---|---|---|---|---|---|",
                *lines,
            ]
        )

    # ---- row 2

    def fc(self, deadline: Deadline) -> None:
        sweep = paper_sweep("fig2", self.scale.fig2, self.data_dir)
        cfg = first_with_l2(sweep)
        ds, source = self.dataset(cfg)
        program, state, hyper, setup_s = one_run_setup(cfg, ds)
        x = program.data.x_train[: program.spec.batch_size]
        flops = count_flops(program, state.params, x)
        t = self.time_steps(program, state, hyper, max(1.0, deadline.left() - 5))
        xla = xla_step_flops(program, t["state"], hyper) if deadline.left() > 0 else math.nan
        rate = flops["total"] / t["step_s"]
        opts = cfg.model.options
        name = f"FC 784-{opts['width']}x{opts['depth']}-10, batch {program.spec.batch_size}"
        self.report.entries.append(
            Entry("fc", f"{name}: step", 1e3 * t["step_s"], "ms", self.against(rate),
                  t["compile_s"], f"{flops['total'] / 1e9:.4g} GFLOP/step; {short(source)}")
        )  # fmt: skip
        self.report.sections["fc"] = "\n".join(
            [
                f"### 2. {name} (Figure 2's network)",
                "",
                f"Data: {source}, {ds.n_train} training images. The toolkit's jitted step loop "
                f"(`Program.run_steps`, {t['steps_per_call']} steps per call, {t['calls']} "
                f"calls); first call {t['first_s']:.3g} s; program and initial state built (the "
                f"jitted init compiled) in {setup_s:.3g} s.",
                "",
                "| | value |",
                "|---|---|",
                f"| step, median | {1e3 * t['step_s']:.4g} ms |",
                f"| step, best call | {1e3 * t['step_s_min']:.4g} ms |",
                f"| parameters | {flops['params']:,} |",
                f"| FLOPs/step counted (fwd + bwd + update) | {flops['forward'] / 1e9:.4g} + "
                f"{flops['backward'] / 1e9:.4g} + {flops['update'] / 1e9:.4g} = "
                f"{flops['total'] / 1e9:.4g} G |",
                f"| XLA cost_analysis of one step | {_fmt(xla / 1e9)} G |",
                f"| achieved | {self.against(rate)} |",
            ]
        )

    # ---- row 3

    def pool(self, deadline: Deadline) -> None:
        sweep = paper_sweep("fig2", self.scale.fig2, self.data_dir)
        grid = [c for c in sweep.runs if c.lam > 0]  # λ = 0: 10⁶/η epochs, out of reach
        ds, source = self.dataset(grid[0])
        max_steps = max(total_steps(budget_epochs(c), 1, 1) for c in grid)  # a step an epoch
        max_zero = max(total_steps(budget_epochs(c), 1, 1) for c in sweep.runs)
        program = build_program(grid[0], ds)
        one = init_state(grid[0], program)
        x = program.data.x_train[: program.spec.batch_size]
        lane_flops = count_flops(program, one.params, x)["total"]
        del one
        rows, best, stop = [], None, ""
        widths = sorted({min(w, len(grid)) for w in self.scale.pool_widths})
        widths_end = deadline.elapsed() + 0.6 * deadline.left()  # then: train_vectorized
        for width in widths:
            left = widths_end - deadline.elapsed()
            if best is not None and left < 1.5 * best["first_s"] + 2:
                stop = f"width {width} not tried: {left:.0f} s left of the widths' share"
                break
            try:
                # budgets capped: a run's book holds arrays as long as its budget in steps
                # (up to 8·10⁷ steps in this grid), and stepping does not depend on them
                pool = Pool(capped(spread(grid, width), POOL_BOOK_STEPS, ds, program),
                            ds, program, width, lambda i, r: None, None)  # fmt: skip
                pool.fill()
                states, hypers = pool.states, pool.hypers
                del pool
                budget = max(0.5, left / (2 * (len(widths) - len(rows))))
                t = self.time_steps(program, states, hypers, budget, lanes=width)
            except Exception as exc:
                if not is_oom(exc):
                    raise
                stop = f"width {width}: out of device memory"
                break
            finally:
                states = hypers = None
            row = {k: v for k, v in t.items() if k != "state"}
            row |= {"width": width, "lane_steps_s": width / t["step_s"]}
            rows.append(row)
            best = row
            del t
            log(f"pool: {width} lanes, {row['lane_steps_s']:.4g} lane-steps/s")
        if best is None:
            raise RuntimeError(f"no pool width ran: {stop}")
        fitted = ", ".join(str(r["width"]) for r in rows)
        self.report.entries.append(
            Entry("pool", f"Figure 2 grid, pool of {best['width']} lanes: stepping",
                  best["lane_steps_s"], "lane-steps/s",
                  self.against(best["lane_steps_s"] * lane_flops), best["compile_s"],
                  f"widths {fitted}" + (f"; {stop}" if stop else ""))
        )  # fmt: skip
        table = [
            f"| {r['width']} | {r['compile_s']:.3g} | {r['steps_per_call']} | "
            f"{1e3 * r['step_s']:.4g} | {r['lane_steps_s']:.4g} | "
            f"{self.against(r['lane_steps_s'] * lane_flops)} |"
            for r in rows
        ]
        section = [
            "### 3. Figure 2's grid in a pool",
            "",
            f"The λ > 0 runs of the paper grid of `fig2.toml` ({len(grid)} runs: 17 η × 15 λ); "
            "a pool of W lanes holds W runs spread over them (the toolkit's `Pool`, its vmapped "
            f"step loop). Data: {source}. FLOPs per lane-step {lane_flops / 1e9:.4g} G (row 2's "
            f"count). The timed lanes' budgets are capped at {POOL_BOOK_STEPS:,} steps: a run's "
            "`RunBook` holds host arrays as long as its budget in steps (`physical_times`), and "
            f"this grid's budgets reach {max_steps:,} steps (λ = 0: {max_zero:,}). {stop}",
            "",
            "| lanes | compile s | steps/call | ms/step (all lanes) | lane-steps/s | achieved |",
            "|---|---|---|---|---|---|",
            *table,
        ]
        section += self.pool_runs(deadline, grid, ds, program, best["width"])
        section += grid_cost(list(sweep.runs), ds, program, best["lane_steps_s"])
        self.report.sections["pool"] = "\n".join(section)

    def pool_runs(self, deadline, grid, ds, program, widest: int) -> list[str]:
        """Runs per second of ``train_vectorized`` (measurements included) on a spread of
        the grid, budgets capped; a 1-step pool first compiles what stepping did not."""
        width = min(widest, self.scale.pool_runs_max)
        cap = self.scale.pool_run_steps
        ended: list[Any] = []
        t0 = time.perf_counter()
        warm = capped(spread(grid, width), 1, ds, program)
        train_vectorized(warm, ds, program, on_result=lambda i, r: None, lanes=width)
        warm_s = time.perf_counter() - t0
        cfgs = capped(spread(grid, width), cap, ds, program)
        t0 = time.perf_counter()
        note = ""
        try:
            train_vectorized(cfgs, ds, program, on_result=lambda i, r: ended.append(r),
                             progress=deadline.guard, lanes=width)  # fmt: skip
        except OutOfTime:
            note = " (stopped at the row's time limit)"
        wall = time.perf_counter() - t0
        steps = sum(int(r.steps) for r in ended)
        runs_s = len(ended) / wall
        self.report.entries.append(
            Entry("pool", f"train_vectorized, {width} lanes, ≤ {cap} steps/run", runs_s,
                  "runs/s", f"{steps / wall:.4g} run-steps/s with measurements", warm_s,
                  f"{len(ended)} of {width} runs ended{note}")
        )  # fmt: skip
        return [
            "",
            f"`train_vectorized` on {width} runs of the grid (spread), each capped at {cap} "
            f"steps, measured on the toolkit's log schedule over {ds.n_test} test and "
            f"{ds.n_train} training images as the sweep does: {len(ended)} runs ended in "
            f"{wall:.3g} s{note} = {runs_s:.4g} runs/s, {steps} run-steps = "
            f"{steps / wall:.4g} run-steps/s; a 1-step pool before it (compiling the "
            f"measurement and lane updates) took {warm_s:.3g} s.",
        ]

    # ---- row 4

    def conv_step(self, deadline: Deadline, row: str, figure: str, label: str) -> None:
        """One conv model's step time against the limit, halving the batch out of memory."""
        over = self.scale.wrn if row == "wrn" else self.scale.cnn
        batch = over["train"]["batch_size"]
        while True:
            sized = merge(over, {"train": {"batch_size": batch}, "data": {"n_train": batch}})
            sweep = paper_sweep(figure, merge(sized, {"data": {"n_test": 256}}), self.data_dir)
            cfg = first_with_l2(sweep)
            try:
                self._conv_step(deadline, row, cfg, label, over["train"]["batch_size"])
                return
            except Exception as exc:
                if not is_oom(exc) or batch <= 8:
                    raise
                log(f"{row}: batch {batch} out of device memory; halving")
                batch //= 2

    def _conv_step(self, deadline, row, cfg: TrainConfig, label: str, wanted: int) -> None:
        o = cfg.model.options
        if row == "wrn":
            name = f"WRN-{o['depth']}-{o['width']} ({label})"
        else:
            bn = "with" if o.get("batch_norm") else "no"
            name = f"CNN {o['channels']} channels, {bn} BatchNorm ({label})"
        ds, source = self.dataset(cfg)
        program, state, hyper, setup_s = one_run_setup(cfg, ds)
        batch = program.spec.batch_size
        flops = count_flops(program, state.params, program.data.x_train[:batch])
        t = self.time_steps(program, state, hyper, max(0.5, deadline.left() / 3))
        rate = flops["total"] / t["step_s"]
        opts = ", ".join(f"{k}={v}" for k, v in cfg.model.options.items())
        small = "" if batch == wanted else f" (batch {wanted} ran out of device memory)"
        self.report.entries.append(
            Entry(row, f"{name}, batch {batch}: step", 1e3 * t["step_s"], "ms",
                  self.against(rate), t["compile_s"],
                  f"{flops['total'] / 1e12:.4g} TFLOP/step{small}; {short(source)}")
        )  # fmt: skip
        text = (
            f"- **{name}** ({cfg.model.name}: {opts}; batch {batch}{small}; convention "
            f"{cfg.convention}): {1e3 * t['step_s']:.4g} ms/step median "
            f"({1e3 * t['step_s_min']:.4g} best call; {t['steps_per_call']} steps × "
            f"{t['calls']} calls), compile {t['compile_s']:.3g} s (program and initial state "
            f"{setup_s:.3g} s before it); {flops['params']:,} "
            f"parameters, {flops['total'] / 1e9:.4g} GFLOP/step counted "
            f"(BatchNorm, pooling and activations not counted); achieved {self.against(rate)}. "
            f"Data: {source}."
        )
        heads = {"wrn": "### 4a. WRN step", "cnn": "### 4b. CNN steps"}
        section = self.report.sections.get(row, heads[row] + " (CIFAR-10 shapes)\n")
        self.report.sections[row] = section + "\n" + text

    def wrn(self, deadline: Deadline) -> None:
        self.conv_step(deadline, "wrn", "fig2def", "Figure 2d–f")

    def cnn(self, deadline: Deadline) -> None:
        half = Deadline(deadline.left() / 2)
        self.conv_step(half, "cnn", "fig3abc", "Figure 3a–c")
        self.conv_step(deadline, "cnn", "fig3def", "Figure 3d–f")

    # ---- row 5

    def fig2(self, deadline: Deadline) -> None:
        full = paper_sweep("fig2", self.scale.fig2, self.data_dir)
        etas = nearest(
            sorted({c.eta for c in full.runs}), self.args.fig2_eta or self.scale.fig2_eta
        )
        lams = nearest(
            sorted({c.lam for c in full.runs}), self.args.fig2_lam or self.scale.fig2_lam
        )
        grid = {"grid": {"eta": etas, "lam": lams, "seeds": [0]}}
        sweep = paper_sweep("fig2", merge(self.scale.fig2, grid), self.data_dir)
        head = [
            "### 5. A slice of `reproduce fig2 --scale paper`",
            "",
            f"η ∈ {{{', '.join(f'{e:.4g}' for e in etas)}}} × λ ∈ "
            f"{{{', '.join(f'{lam:.4g}' for lam in lams)}}} of the paper's grid, seed 0, budget "
            "2/(η·λ) epochs (one step per epoch: batch 512 of 512 images), trained by "
            "`sweep.run_sweep` as `reproduce` does (short budgets allowed) into a temporary "
            "store; t* from `analysis.tables.run_table`.",
        ]
        try:
            load_dataset("mnist", data_dir=self.data_dir, n_train=1)
        except DataError as exc:
            self.report.entries.append(
                Entry("fig2", "skipped: needs MNIST", None, "", "", None, str(exc)[:120])
            )
            self.report.sections["fig2"] = "\n".join([*head, "", f"**Skipped**: {exc}"])
            return
        steps = sum(total_steps(budget_epochs(c), 1, 1) for c in sweep.runs)  # a step an epoch
        log(f"fig2: {len(sweep.runs)} runs, {steps} steps in all")
        stopped = ""
        with tempfile.TemporaryDirectory(prefix="device-check-fig2-") as tmp:
            store = Path(self.args.store_dir or tmp) / "fig2-slice.sqlite"
            store.parent.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            try:
                run_sweep(sweep, str(store), progress=deadline.guard, short_budgets=True)
            except OutOfTime:
                stopped = "stopped at the row's time limit; "
            wall = time.perf_counter() - t0
            runs = load_runs(store)
            table = run_table(runs, load_measurements(store))
        walls = dict(zip(runs["hash"], runs["wall_s"], strict=True))
        lines = [
            "| η | λ | η·λ | budget steps | status | best test acc | max train acc | "
            "t* (paper) | t* (toolkit) | t*·η·λ | run wall s |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in table.itertuples():
            budget = total_steps(r.budget_epochs, 1, 1)
            lines.append(
                f"| {r.eta:.4g} | {r.lam:.4g} | {r.eta_lam:.3g} | {budget} | "
                f"{r.status} | {r.best_test_acc:.4f} | {r.max_train_acc:.4f} | "
                f"{r.t_star_epochs:.4g} | {r.t_star_robust:.4g} | "
                f"{r.t_star_robust * r.eta_lam:.3g} | {_fmt(walls.get(r.hash))} |"
            )
        c = table["t_star_robust"] * table["eta_lam"]
        c_value = float(np.median(c)) if len(table) else None
        try:
            fit = fit_tstar(table, n_boot=500)
            fit_text = (
                f"fit over {fit.n_runs} runs, {fit.decades:.2g} decades: slope {fit.slope:.3g} "
                f"[{fit.slope_ci[0]:.3g}, {fit.slope_ci[1]:.3g}], c (slope −1) "
                f"{fit.c_fixed_slope:.3g}"
            )
        except ValueError as exc:
            fit_text = f"no fit: {exc}"
        self.report.entries.append(
            Entry("fig2", "Figure 2 slice: median t*·η·λ (toolkit's t*)", c_value, "τ",
                  f"{len(table)} of {len(sweep.runs)} runs in {wall:.3g} s", None,
                  f"{stopped}{fit_text}")
        )  # fmt: skip
        self.report.sections["fig2"] = "\n".join(
            [*head, "", f"{stopped}{len(table)} runs finished in {wall:.3g} s "
             f"(compile included); {fit_text}.", "", *lines]
        )  # fmt: skip


def capped(cfgs: list[TrainConfig], steps: int, ds: Dataset, program) -> list[TrainConfig]:
    """``cfgs`` with budgets of at most ``steps`` steps."""
    per_epoch = ds.n_train / program.spec.batch_size
    return [
        dataclasses.replace(
            c, budget_epochs=min(budget_epochs(c), steps / per_epoch), budget_c=None
        )
        for c in cfgs
    ]


def short(source: str) -> str:
    """A data source in a few words (the details stay in the row's section)."""
    return "synthetic data" if source.startswith("synthetic") else "real data"


def spread(grid: list[TrainConfig], width: int) -> list[TrainConfig]:
    """``width`` runs spread evenly over ``grid`` (η-major order), so η and λ both vary."""
    idx = np.unique(np.linspace(0, len(grid) - 1, width).round().astype(int))
    return [grid[i] for i in idx]


def nearest(values: set[float], wanted: tuple[float, ...] | list[float]) -> list[float]:
    """The grid ``values`` nearest (in log) to each ``wanted`` value, without repeats."""
    pos = [v for v in values if v > 0]
    picked = {min(pos, key=lambda v: abs(math.log(v / w))) for w in wanted}
    return sorted(picked)


def grid_cost(grid: list[TrainConfig], ds: Dataset, program, lane_steps_s: float) -> list[str]:
    """What the whole paper grid costs at the measured stepping rate (measurements aside)."""
    batch = program.spec.batch_size
    steps = [(c.lam, total_steps(budget_epochs(c), ds.n_train, batch)) for c in grid]
    l2 = sum(s for lam, s in steps if lam > 0)
    zero = sum(s for lam, s in steps if lam == 0)
    return [
        "",
        f"The whole grid at that stepping rate (measurements not counted): the λ > 0 runs "
        f"need {l2:,} run-steps = {l2 / lane_steps_s / 3600:.3g} device-hours; the λ = 0 "
        f"runs (10⁶/η epochs) {zero:,} run-steps = {zero / lane_steps_s / 3600:.3g} h.",
    ]


def environment(args: argparse.Namespace, scale: Scale) -> tuple[list[str], list[str]]:
    """The header (mode, device, versions) and how to run the check on the device machine."""
    dev = jax.devices()[0]
    stats = {}
    try:
        stats = dev.memory_stats() or {}
    except Exception:  # not every backend has memory stats
        stats = {}
    mem = stats.get("bytes_limit")
    data = args.data_dir or "none given"
    return [
        "# Device check: paper-scale steps against the device's matmul limit",
        "",
        f"Made by `benchmarks/device_check.py` ({scale.name} mode) on {time.strftime('%Y-%m-%d')}"
        f" with `{' '.join(shlex.quote(a) for a in ['benchmarks/device_check.py', *args.argv])}`."
        + (
            " Reduced mode: tiny sizes, a smoke test; its numbers say nothing of the paper's scale."
            if scale.name == "reduced"
            else ""
        ),
        "",
        f"- backend **{jax.default_backend()}**, device **{dev.device_kind}** "
        f"({jax.device_count()} device(s)"
        + (f", {mem / 2**30:.1f} GiB usable" if mem else "")
        + f"); host {platform.node() or '?'} {platform.machine()}, {os.cpu_count()} CPUs",
        f"- jax {jax.__version__}, jaxlib {version('jaxlib')}, flax {version('flax')}, "
        f"optax {version('optax')}, numpy {np.__version__}, python {platform.python_version()}",
        f"- data directory: {data}; XLA_FLAGS = `{os.environ.get('XLA_FLAGS', '')}`",
    ], [
        f"To run on the device machine (one H200; the rows' limits sum to "
        f"{sum(PAPER.max_seconds.values()) / 60:.1f} minutes, JAX's start and data aside):",
        "",
        "    python benchmarks/device_data.py --from ../shared/data --to .device-data  # here",
        f"    {DEVICE_COMMAND}",
        "",
        f"with carry {CARRY} and timeout_s 570; copy `$OUT/RESULTS-gpu.md` back to "
        "`benchmarks/RESULTS-gpu.md`.",
    ]


def parse_limits(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        row, _, seconds = item.partition("=")
        if row not in ROWS or not seconds:
            raise SystemExit(f"--max-seconds {item!r}: expected ROW=SECONDS, ROW in {ROWS}")
        out[row] = float(seconds)
    return out


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", default=None, help="results file (default benchmarks/RESULTS-gpu.md; reduced: tmp)"
    )
    parser.add_argument("--data-dir", default=None, help="MNIST / CIFAR-10 folder")
    parser.add_argument("--reduced", "--smoke", action="store_true", help="tiny sizes (CPU)")
    parser.add_argument("--only", nargs="+", choices=ROWS, default=list(ROWS))
    parser.add_argument("--max-seconds", nargs="+", default=[], metavar="ROW=S")
    parser.add_argument("--fig2-eta", type=float, nargs="+", default=None)
    parser.add_argument("--fig2-lam", type=float, nargs="+", default=None)
    parser.add_argument("--store-dir", default=None, help="keep the fig2 slice's store here")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.max_seconds = parse_limits(args.max_seconds)
    if args.data_dir is None:
        env = os.environ.get("L2DYN_DATA")
        args.data_dir = env or (".device-data" if Path(".device-data").is_dir() else None)
    scale = REDUCED if args.reduced else PAPER
    if args.out is None:
        tmp = Path(tempfile.gettempdir()) / "RESULTS-gpu-reduced.md"
        args.out = str(tmp) if args.reduced else "benchmarks/RESULTS-gpu.md"
    start = time.perf_counter()
    report = Report(Path(args.out), *environment(args, scale))
    check = Check(args, scale, report)
    for row in ROWS:
        if row in args.only:
            check.run_row(row, getattr(check, row))
    total = time.perf_counter() - start
    report.notes.append(f"- total wall time {total:.1f} s (JAX start and data loading included)")
    report.write()
    log(f"wrote {args.out} ({total:.1f} s)")
    return report.out


if __name__ == "__main__":
    main()
