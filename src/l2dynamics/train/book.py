"""The host-side book of one run: its budget, measurement schedule, rows, t* and stopping.

Every run keeps one :class:`RunBook`, whether it trains alone (:func:`l2dynamics.train.run.
run_program`) or in a lane of a pool (:mod:`l2dynamics.train.vector`): the book says how many
steps to train before the next measurement, turns a measurement into a curve row, decides when
the run has ended (its budget, divergence, or the peak-aware stop) and builds its
:class:`RunResult`. The device code never sees it.

Units in the curve: ``step`` (SGD steps), ``epoch`` (= step·B/N), ``time`` (physical time
η·epochs, integrating the learning-rate schedule), ``tau`` (normalized time λ·time =
η·λ·epochs), ``eta_now``/``lam_now`` (the η and λ in force at that step).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from l2dynamics.config import TrainConfig, budget_epochs
from l2dynamics.files import atomic_path
from l2dynamics.models.registry import scale_invariant_params
from l2dynamics.optim import cumulative_lr_factor, eta_now
from l2dynamics.results import CURVE_COLUMNS, LAYER_COLUMNS, first_peak, near_peak
from l2dynamics.train.schedule import every_k, log_spaced, peak_window, relative_resolution
from l2dynamics.train.stopping import passed_peak


@dataclasses.dataclass
class RunResult:
    """The measured curve (``curve[column]`` is a 1-D array, one entry per measurement) and the
    run's summary. ``t_star_epochs`` is the paper's t*, the epoch of the first measurement
    reaching the best test accuracy; ``t_star_resolution`` is the relative gap to the next
    measurement there. ``t_star_robust_epochs`` is the toolkit's t*, the centre of the near-peak
    interval [``t_star_robust_lo``, ``t_star_robust_hi``] (epochs; :func:`~l2dynamics.results.
    near_peak`), ``t_star_robust_closed`` whether the curve was measured past that interval.

    ``layers`` (runs with ``measure_layers``; else None): one entry per parameter tensor and
    measurement, as columns of equal length (:data:`LAYER_COLUMNS`): ``step``, ``layer`` (its
    name, ``"conv_0/kernel"``), ``norm_sq`` (‖θ_l‖²), ``angle`` (radians it turned by in the
    step before ``step``; NaN at step 0) and ``scale_invariant`` (a kernel followed by a
    BatchNorm, :func:`l2dynamics.models.scale_invariant_params`)."""

    config: TrainConfig
    status: str
    curve: dict[str, np.ndarray]
    best_test_acc: float
    t_star_epochs: float
    t_star_step: int
    t_star_resolution: float
    final_train_acc: float
    final_test_acc: float
    max_train_acc: float
    steps: int
    budget_epochs: float
    diverged_step: int | None
    wall_s: float
    stopped_at_peak: bool = False
    t_star_robust_epochs: float = float("nan")
    t_star_robust_lo: float = float("nan")
    t_star_robust_hi: float = float("nan")
    t_star_robust_closed: bool = False
    layers: dict[str, np.ndarray] | None = None

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary (no curve)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out.pop("curve")
        out.pop("config")
        out.pop("layers")
        out["eta"], out["lam"] = self.config.eta, self.config.lam
        out["epochs"] = float(self.curve["epoch"][-1]) if len(self.curve["epoch"]) else 0.0
        if self.config.autol2 and len(self.curve["lam_now"]):  # λ₀ may be the preset's (lam 0)
            out["lam_start"] = float(self.curve["lam_now"][0])
            out["lam_final"] = float(self.curve["lam_now"][-1])
        return out

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the curve as CSV, atomically (a temporary file renamed into place)."""
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(CURVE_COLUMNS)
            for i in range(len(self.curve["step"])):
                writer.writerow([_fmt(self.curve[c][i]) for c in CURVE_COLUMNS])

    def layers_csv(self, curve_path: str | os.PathLike) -> Path:
        """Write the per-layer measurements (:data:`LAYER_COLUMNS`) as CSV beside the curve
        written to ``curve_path`` (``curve.csv`` → ``curve_layers.csv``), atomically; return
        the path. Raises ValueError for a run without them."""
        if self.layers is None:
            raise ValueError("this run did not measure layers (measure_layers)")
        path = layers_csv_path(curve_path)
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(LAYER_COLUMNS)
            for i in range(len(self.layers["step"])):
                writer.writerow([_cell(self.layers[c][i]) for c in LAYER_COLUMNS])
        return path


def layer_columns(cfg: TrainConfig, layer_rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """:data:`LAYER_COLUMNS` of ``layer_rows`` (one per measurement: ``step`` and the
    ``norm_sq``/``angle`` of each tensor by name), tensors in name order within a step."""
    invariant = scale_invariant_params(cfg.model.name, **dict(cfg.model.options))
    cells = [(r["step"], name, r["norm_sq"][name], r["angle"][name])
             for r in layer_rows for name in sorted(r["norm_sq"])]  # fmt: skip
    step, layer, norm_sq, angle = (list(c) for c in zip(*cells, strict=True)) if cells else [[]] * 4
    flags = [n in invariant for n in layer]
    dtypes = (np.int64, object, np.float64, np.float64, bool)
    values = (step, layer, norm_sq, angle, flags)
    return {
        c: np.asarray(v, dtype=t) for c, v, t in zip(LAYER_COLUMNS, values, dtypes, strict=True)
    }


def _cell(value: Any) -> str:
    if isinstance(value, str | np.bool_ | bool):
        return str(bool(value)) if not isinstance(value, str) else value
    return _fmt(value)


def _fmt(value: Any) -> str:
    return str(int(value)) if isinstance(value, np.integer) else repr(float(value))


def total_steps(epochs: float, n_train: int, batch: int) -> int:
    """Steps in a budget of ``epochs`` epochs: ``ceil(epochs·N/B)``, at least 1."""
    return max(1, math.ceil(round(epochs * n_train / batch, 9)))  # 400.00000000000006 → 400


def measure_steps(cfg: TrainConfig, total_steps: int) -> np.ndarray:
    """The configured measurement steps of a run of ``total_steps`` steps."""
    if cfg.measure == "every":
        return every_k(total_steps, cfg.measure_every)
    if cfg.measure == "peak":
        return peak_window(total_steps, cfg.measure_resolution)
    return log_spaced(total_steps, cfg.measure_resolution)


def layers_csv_path(curve_path: str | os.PathLike) -> Path:
    """Where a run's per-layer CSV goes beside its curve: ``curve.csv`` → ``curve_layers.csv``."""
    return Path(curve_path).with_name(f"{Path(curve_path).stem}_layers.csv")


def physical_times(cfg: TrainConfig, steps: Any, total_steps: int, batch: int, n: int) -> Any:
    """``time[s] = Σ_{s'<s} η_{s'}·B/N`` at each step ``s`` of ``steps`` (η·epochs, schedule
    included) in a run of ``total_steps`` steps; computed only where asked, never for the whole
    budget (the paper's λ = 0 runs have 4·10⁸ steps)."""
    factor = cumulative_lr_factor(cfg.lr_schedule, steps, total_steps)
    return factor * cfg.eta * batch / n


class RunBook:
    """The bookkeeping of one run on the host, from its first step to its result.

    Args:
        cfg: the run (validated).
        n_train: training examples N; batch: the minibatch size B actually used; n_test: test
            examples (the standard error of a test accuracy, for the toolkit's t*).

    ``wall_s`` is the run's own elapsed time, from its start to its result: the book's clock
    starts when it is made, and a pool, which makes the books of all its runs at once, starts
    each run's clock again when the run enters a lane (:meth:`start_clock`). A pooled run's
    time therefore includes its lane-mates' share of the device (they train together), but not
    the time it waited for a lane.
    """

    def __init__(self, cfg: TrainConfig, n_train: int, batch: int, n_test: int) -> None:
        self.cfg, self.batch, self.n_train, self.n_test = cfg, batch, n_train, n_test
        self.epochs = budget_epochs(cfg)
        self.total = total_steps(self.epochs, n_train, batch)
        self.schedule = measure_steps(cfg, self.total)
        self.rows: list[dict[str, float]] = []
        self.layer_rows: list[dict[str, Any]] = []  # with measure_layers: one per row
        self.done = 0  # steps trained
        self.diverged: int | None = None  # the first step whose minibatch loss was not finite
        self.ended = False
        self._start = time.perf_counter()

    def start_clock(self) -> None:
        """Start the run's wall clock now (a pooled run, as it enters its lane)."""
        self._start = time.perf_counter()

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the book (JSON-able): the rows so far, the steps trained,
        the divergence step and the wall time so far (s). The rest (budget, schedule, the next
        measurement's index = the number of rows, the peak-aware stop's inputs) follows from
        the configuration and the rows. With ``measure_layers``, also the per-layer rows."""
        wall = time.perf_counter() - self._start
        out = {"rows": self.rows, "done": self.done, "diverged": self.diverged, "wall_s": wall}
        return out | ({"layers": self.layer_rows} if self.cfg.measure_layers else {})

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state` of the same run (its clock resumes at its wall time)."""
        self.rows = [dict(r) for r in state["rows"]]
        self.layer_rows = [dict(r) for r in state.get("layers", [])]
        self.done, self.diverged = int(state["done"]), state["diverged"]
        self._start = time.perf_counter() - float(state["wall_s"])

    def gap(self) -> int:
        """Steps to train before the next measurement is due (0: measure now)."""
        return int(self.schedule[len(self.rows)]) - self.done

    def trained(self, step: int, diverged_step: int) -> bool:
        """Record that the run's state is at ``step`` with the device's divergence flag
        (``diverged_step`` ≥ 0: the first step with a non-finite minibatch loss); True if the
        run has thereby ended (diverged)."""
        self.done = int(step)
        if diverged_step >= 0:
            self.diverged, self.ended = int(diverged_step), True
        return self.ended

    def record(self, metrics: Mapping[str, Any], lam: float) -> dict[str, float]:
        """Add the measurement ``metrics`` taken at the current step as a curve row, with ``lam``
        the λ in force (AutoL2's or the fixed one); mark the run ended when the row is not
        finite (divergence), ends the budget, or calls for the peak-aware stop. ``metrics``'s
        ``"layers"`` (runs with ``measure_layers``) become a per-layer row."""
        layers = metrics.get("layers")
        if layers is not None:
            metrics = {k: v for k, v in metrics.items() if k != "layers"}
            self.layer_rows.append({
                "step": self.done,
                **{part: {n: float(v) for n, v in layers[part].items()} for part in layers},
            })  # fmt: skip
        row = self._row(metrics, lam)
        self.rows.append(row)
        if not math.isfinite(row["train_loss"]):
            self.diverged, self.ended = self.done, True
        elif self.done >= self.total or self._passed_peak():
            self.ended = True
        return row

    def _row(self, metrics: Mapping[str, Any], lam: float) -> dict[str, float]:
        """One row of the curve (see :data:`CURVE_COLUMNS`) at the current step.

        With a fixed λ, τ = λ·time exactly; with AutoL2, τ = ∫λ dt accumulates from the previous
        row, λ held at its value there over the interval (λ changes only at measurement
        periods, so τ can lag by at most one period per decay).
        """
        step = self.done
        t = float(physical_times(self.cfg, step, self.total, self.batch, self.n_train))
        if self.cfg.autol2 and self.rows:
            last = self.rows[-1]
            tau = last["tau"] + (t - last["time"]) * last["lam_now"]
        else:
            tau = t * lam
        return {
            "step": step,
            "epoch": step * self.batch / self.n_train,
            "time": t,
            "tau": tau,
            **{k: float(v) for k, v in metrics.items()},
            "eta_now": float(eta_now(self.cfg.lr_schedule, self.cfg.eta, step, self.total, xp=np)),
            "lam_now": lam,
        }

    def _passed_peak(self) -> bool:
        """Whether the run asks for the peak-aware stop and its rows call for it."""
        if self.cfg.peak_stop is None:
            return False
        epochs, acc = [r["epoch"] for r in self.rows], [r["test_acc"] for r in self.rows]
        return passed_peak(epochs, acc, self.cfg.peak_stop, self.cfg.peak_drop, self.n_test)

    def result(self) -> RunResult:
        """The run's :class:`RunResult`; t* is the first maximum of test accuracy
        (:func:`~l2dynamics.results.first_peak`). A run that ends before its budget without
        diverging was stopped by the peak-aware stop."""
        result = result_of(self.cfg, self.rows, self.total, self.epochs, self.diverged,
                           time.perf_counter() - self._start, self.done, self.n_test)  # fmt: skip
        if self.cfg.measure_layers:
            result.layers = layer_columns(self.cfg, self.layer_rows)
        return result


def result_of(
    cfg: TrainConfig,
    rows: list[dict[str, float]],
    total: int,
    epochs: float,
    diverged: int | None,
    wall: float,
    steps_done: int,
    n_test: int,
) -> RunResult:
    """The :class:`RunResult` of measured curve ``rows`` (budget ``total`` steps = ``epochs``
    epochs; ``diverged``: the first non-finite step or None; ``wall`` in seconds; ``n_test``
    test examples)."""
    curve = {
        c: np.asarray([r[c] for r in rows], dtype=np.int64 if c == "step" else np.float64)
        for c in CURVE_COLUMNS
    }
    acc, steps = curve["test_acc"], curve["step"]
    i = first_peak(acc)
    nan, measured = float("nan"), len(acc) > 0
    peak = near_peak(curve["epoch"], acc, n_test)
    return RunResult(
        config=cfg,
        status="diverged" if diverged is not None else "done",
        curve=curve,
        best_test_acc=float(acc[i]) if i is not None else nan,
        t_star_epochs=float(curve["epoch"][i]) if i is not None else nan,
        t_star_step=int(steps[i]) if i is not None else 0,
        t_star_resolution=relative_resolution(steps, int(steps[i])) if i is not None else 0.0,
        final_train_acc=float(curve["train_acc"][-1]) if measured else nan,
        final_test_acc=float(acc[-1]) if measured else nan,
        max_train_acc=float(np.max(curve["train_acc"])) if measured else nan,
        steps=int(steps_done),
        budget_epochs=float(epochs),
        diverged_step=diverged,
        wall_s=float(wall),
        stopped_at_peak=diverged is None and int(steps_done) < total,
        t_star_robust_epochs=peak.t_star if peak else nan,
        t_star_robust_lo=peak.lo if peak else nan,
        t_star_robust_hi=peak.hi if peak else nan,
        t_star_robust_closed=bool(peak and peak.closed),
    )
