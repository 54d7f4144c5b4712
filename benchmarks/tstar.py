"""The two t* estimators on the quickstart grid: seed agreement, fits, PyTorch agreement.

Trains the quickstart's grid (experiment file ``quickstart``, CPU scale: 4 η × 5 λ × 3 seeds,
FC on 256 digits, budget 2/(η·λ) epochs) three ways: the toolkit at full budget, the toolkit
with the quickstart's peak-aware stop, and the PyTorch loop of ``torch_baseline.py`` at full
budget from the toolkit's initial parameters (test accuracy every epoch, read on the toolkit's
measurement schedule). For the paper's t* (first maximum) and the toolkit's (centre of the
near-peak interval, :func:`l2dynamics.results.near_peak`) it reports:

- how well seeds agree on t*: the median over every (η, λ) and seed pair i < j of
  |t*_j − t*_i| / t*_i (:func:`l2dynamics.analysis.tstar.seed_agreement`);
- the fit t* = c/(η·λ)^b (each (η, λ) the median of its seeds, bootstrap over points and seeds),
  and for the paper's t* also the former fit (each run its own point);
- toolkit vs PyTorch, run by run: the paper's t* within the toolkit's measurement resolution;
  the toolkit's t* of the PyTorch curve inside the toolkit's near-peak interval;
- peak stop vs full budget: runs with the same t*.

Run: ``python benchmarks/tstar.py --out benchmarks/RESULTS-tstar.md`` (about 20 minutes on 2
cores; ``--stores DIR`` keeps the toolkit's stores and reuses them when rerun).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import perf_sweep as pw
from tstar_seeds import fit_line

import l2dynamics.train.run as run_mod
from l2dynamics.analysis.fits import ESTIMATORS
from l2dynamics.analysis.tables import run_table
from l2dynamics.analysis.tstar import seed_agreement
from l2dynamics.config import TrainConfig, budget_epochs, test_set_size
from l2dynamics.results import near_peak
from l2dynamics.sweep import Sweep, run_sweep
from l2dynamics.sweep.store import load_measurements, load_runs

NAMES = {"robust": "toolkit's t* (near-peak centre)", "paper": "paper's t* (first maximum)"}


def toolkit_table(runs: list[TrainConfig], store: Path) -> tuple[pd.DataFrame, float]:
    """The run table of ``runs`` trained into ``store`` (resumed if it exists) and the wall
    seconds of this call."""
    start = time.perf_counter()
    run_sweep(Sweep(store.stem, tuple(runs)), str(store))
    return run_table(load_runs(store), load_measurements(store)), time.perf_counter() - start


def torch_table(runs: list[TrainConfig]) -> tuple[pd.DataFrame, float]:
    """Both t* of the PyTorch loop's curves, read on the toolkit's measurement epochs."""
    start = time.perf_counter()
    base = pw.baseline_sweep(runs, pw.toolkit_inits(runs))
    ds = run_mod.load_data(runs[0])
    rows = []
    for cfg in runs:
        acc = np.asarray(base.results[pw.key(cfg)]["test_acc"])
        epochs = schedule_epochs(cfg, ds.n_train, len(acc))
        curve = acc[epochs - 1]
        near = near_peak(epochs, curve, test_set_size(cfg.data))
        rows.append(
            {
                "eta": cfg.eta,
                "lam": cfg.lam,
                "seed": cfg.seed,
                "t_star_epochs": float(epochs[int(np.argmax(curve))]),
                "t_star_robust": near.t_star if near else np.nan,
            }
        )
    return pd.DataFrame(rows), time.perf_counter() - start


def schedule_epochs(cfg: TrainConfig, n_train: int, n_epochs: int) -> np.ndarray:
    """The whole epochs ≥ 1 at which the toolkit measures ``cfg`` (full batch: epoch = step)."""
    steps = run_mod.measure_steps(
        cfg, run_mod.total_steps(budget_epochs(cfg), n_train, cfg.batch_size or n_train)
    )
    batch = min(cfg.batch_size or n_train, n_train)
    epochs = np.unique(np.floor(steps * batch / n_train).astype(int))
    return epochs[(epochs >= 1) & (epochs <= n_epochs)]


def vs_torch(tk: pd.DataFrame, th: pd.DataFrame) -> dict[str, Any]:
    """Per run: the paper's t* within resolution (±5% + 1 epoch) and the toolkit's t* of the
    PyTorch curve inside the toolkit's near-peak interval; fractions of runs."""
    m = tk.merge(th, on=["eta", "lam", "seed"], suffixes=("", "_torch"))
    paper = np.abs(m["t_star_epochs_torch"] - m["t_star_epochs"]) <= 0.05 * m["t_star_epochs"] + 1
    lo, hi = m["t_star_robust_lo"], m["t_star_robust_hi"]
    inside = (m["t_star_robust_torch"] >= lo) & (m["t_star_robust_torch"] <= hi)
    rel = np.abs(m["t_star_robust_torch"] - m["t_star_robust"]) / m["t_star_robust"]
    return {
        "n": len(m),
        "paper": float(paper.mean()),
        "robust": float(inside.mean()),
        "robust_rel_median": float(rel.median()),
        "rows": m.assign(paper_ok=paper, robust_ok=inside),
    }


def same_t(full: pd.DataFrame, stopped: pd.DataFrame, column: str) -> float:
    """The fraction of runs whose t* (``column``) is the same with the peak stop."""
    m = full.merge(stopped, on=["eta", "lam", "seed"], suffixes=("", "_stop"))
    return float(np.isclose(m[column], m[f"{column}_stop"], rtol=1e-12).mean())


def report(full, stopped, th, walls: dict[str, float]) -> str:
    """The markdown of the results."""
    torch = vs_torch(full, th)
    lines = [
        "# t*, two ways, on the quickstart grid",
        "",
        pw_machine(),
        "",
        "Rerun: `python benchmarks/tstar.py --out benchmarks/RESULTS-tstar.md` (this file was "
        "written by it). Grid: the quickstart's (4 η × 5 λ × 3 seeds, FC depth 3 width 128 on "
        "256 digits, 500 test images, budget 2/(η·λ) epochs). Wall: toolkit full budget "
        f"{walls['full']:.0f} s, peak stop {walls['stop']:.0f} s, PyTorch loop "
        f"{walls['torch']:.0f} s (0 s: reused from `--stores`).",
        "",
        "| | " + " | ".join(NAMES[e] for e in ESTIMATORS) + " |",
        "|---|---|---|",
    ]
    for label, table in (("full budget", full), ("peak stop 3", stopped)):
        agree = [seed_agreement(table, e) for e in ESTIMATORS]
        lines.append(
            f"| seeds: median \\|Δt*\\|/t* ({label}) | "
            + " | ".join(
                f"{a['median']:.3f} (p90 {a['p90']:.2f}, {a['n_pairs']} pairs)" for a in agree
            )  # fmt: skip
            + " |"
        )
        lines.append(
            f"| fit, seed medians ({label}) | "
            + " | ".join(fit_line(table, e) for e in ESTIMATORS)
            + " |"
        )
    lines.append(
        f"| fit, each run its own point (full budget) | {fit_line(full, 'robust', per_run=True)}"
        f" | {fit_line(full, 'paper', per_run=True)} |"
    )
    lines.append(
        "| toolkit vs PyTorch (full budget), runs agreeing | "
        f"{torch['robust']:.0%} (PyTorch's t* inside the toolkit's near-peak interval; median "
        f"\\|Δt*\\|/t* {torch['robust_rel_median']:.2f}) | {torch['paper']:.0%} (within ±5% + 1 "
        "epoch) |"
    )
    lines.append(
        "| peak stop vs full budget, runs with the same t* | "
        f"{same_t(full, stopped, 't_star_robust'):.0%} | "
        f"{same_t(full, stopped, 't_star_epochs'):.0%} |"
    )
    lines += ["", "## Run by run (full budget)", "", run_rows(torch["rows"])]
    return "\n".join(lines) + "\n"


def run_rows(m: pd.DataFrame) -> str:
    """A markdown table of both t* per run, toolkit and PyTorch."""
    head = (
        "| η | λ | seed | near-peak interval (ep) | t* toolkit | t* PyTorch | inside | "
        "first max toolkit | first max PyTorch |\n|---:|---:|---:|---|---:|---:|:-:|---:|---:|"
    )
    body = [
        f"| {r.eta:g} | {r.lam:g} | {r.seed} | [{r.t_star_robust_lo:.0f}, "
        f"{r.t_star_robust_hi:.0f}] | {r.t_star_robust:.0f} | {r.t_star_robust_torch:.0f} | "
        f"{'✓' if r.robust_ok else '✗'} | {r.t_star_epochs:.0f} | {r.t_star_epochs_torch:.0f} |"
        for r in m.sort_values(["eta", "lam", "seed"]).itertuples()
    ]
    return "\n".join([head, *body])


def pw_machine() -> str:
    """The machine, in the words of ``perf.py``."""
    import perf

    return perf.machine()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="markdown to write (default: stdout)")
    parser.add_argument("--stores", type=Path, help="keep (and reuse) the toolkit's stores here")
    args = parser.parse_args(argv)
    runs = pw.quickstart_runs()
    stop = next(c.peak_stop for c in runs if c.peak_stop)
    with tempfile.TemporaryDirectory() as tmp:
        where = args.stores or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        full, full_s = toolkit_table(pw.with_peak_stop(runs, None), where / "full.sqlite")
        stopped, stop_s = toolkit_table(pw.with_peak_stop(runs, stop), where / "stop.sqlite")
    th, torch_s = torch_table([dataclasses.replace(c, peak_stop=None) for c in runs])
    text = report(full, stopped, th, {"full": full_s, "stop": stop_s, "torch": torch_s})
    if args.out:
        args.out.write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main(sys.argv[1:])
