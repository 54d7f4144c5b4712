"""How much of t*'s seed-to-seed spread is the initial network, on the quickstart grid.

Trains the quickstart's grid (experiment file ``quickstart``, CPU scale) at full budget for
many seeds into one store (resumed: runs already there are not retrained) and reports, for the
paper's t* (first maximum) and the toolkit's (near-peak centre):

- the median over every (η, λ) and seed pair i < j of |t*_j − t*_i| / t*_i, over all seeds and
  over consecutive groups of three seeds (the quickstart trains three);
- each seed's factor: the geometric mean over the (η, λ) points of its t* divided by the
  point's median over seeds. A seed is one initial network at every η and λ; a factor far
  from 1 at every point is that network's, which no estimator of one curve's peak removes;
- the same median once each seed's factor is divided out (what is left: the scatter of t*
  within a seed, which an estimator can reduce);
- the t* fit (seed medians, seeds drawn jointly in the bootstrap) per group of three seeds.

Run: ``python benchmarks/tstar_seeds.py --store STORE --seeds 0-12 --out FILE.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from l2dynamics.analysis.fits import ESTIMATORS, fit_tstar, t_star_column
from l2dynamics.analysis.tables import run_table
from l2dynamics.analysis.tstar import seed_agreement
from l2dynamics.experiments.spec import load_experiment
from l2dynamics.sweep import Sweep, run_sweep
from l2dynamics.sweep.store import load_measurements, load_runs

NAMES = {"robust": "toolkit's t* (near-peak centre)", "paper": "paper's t* (first maximum)"}


def seed_range(text: str) -> list[int]:
    """``"0-12"`` or ``"0,3,5"`` as a list of seeds."""
    if "-" in text:
        lo, hi = (int(v) for v in text.split("-"))
        return list(range(lo, hi + 1))
    return [int(v) for v in text.split(",")]


def train(store: Path, seeds: list[int]) -> pd.DataFrame:
    """The quickstart grid at full budget for ``seeds``, trained into ``store`` (resumed)."""
    base = load_experiment("quickstart", "cpu").sweeps[0][1].runs
    grid = {(c.eta, c.lam): c for c in base}
    runs = [dataclasses.replace(c, seed=s, peak_stop=None) for c in grid.values() for s in seeds]
    run_sweep(Sweep("quickstart-seeds", tuple(runs)), str(store))
    table = run_table(load_runs(store), load_measurements(store))
    return table[table["seed"].isin(seeds) & (table["lam"] > 0)].reset_index(drop=True)


def seed_factors(table: pd.DataFrame, column: str) -> pd.Series:
    """Each seed's factor: the geometric mean over points of t* / the point's median t*."""
    ok = table[np.isfinite(table[column]) & (table[column] > 0)]
    ratio = np.log(ok[column] / ok.groupby(["eta", "lam"])[column].transform("median"))
    return np.exp(ratio.groupby(ok["seed"]).mean())


def fit_line(table: pd.DataFrame, estimator: str, *, per_run: bool = False) -> str:
    """The t* fit of ``estimator`` as a table cell (each run its own point with ``per_run``)."""
    if per_run:  # distinct η per seed: every run is its own (η, λ) point, as before seeds
        table = table.assign(eta=table["eta"] * (1 + 1e-12 * table["seed"]), seed=0)
    try:
        f = fit_tstar(table, estimator=estimator)
    except ValueError as exc:
        return f"no fit: {exc}"
    return (
        f"slope {f.slope:.3f} [{f.slope_ci[0]:.3f}, {f.slope_ci[1]:.3f}] (width "
        f"{f.slope_ci[1] - f.slope_ci[0]:.2f}); c at slope −1 {f.c_fixed_slope:.3g} "
        f"[{f.c_fixed_slope_ci[0]:.3g}, {f.c_fixed_slope_ci[1]:.3g}]; {f.n_runs} runs at "
        f"{f.n_cells} points, {f.decades:.2f} decades"
    )


def report(table: pd.DataFrame, seeds: list[int], wall: float) -> str:
    """The markdown of the results."""
    lines = [
        "# t* between seeds: the initial network and the estimator",
        "",
        f"{time.strftime('%Y-%m-%d')}; the quickstart grid (4 η × 5 λ, FC on 256 digits, 500 "
        f"test images, budget 2/(η·λ) epochs, full budget), seeds {seeds[0]}–{seeds[-1]}, "
        f"{len(table)} runs with λ > 0 ({wall:.0f} s in this call; runs already in the store "
        "are not retrained). Rerun: `python benchmarks/tstar_seeds.py --store STORE --seeds "
        f"{seeds[0]}-{seeds[-1]} --out benchmarks/RESULTS-tstar-seeds.md`.",
        "",
        "| | " + " | ".join(NAMES[e] for e in ESTIMATORS) + " |",
        "|---|---|---|",
    ]
    factors = {e: seed_factors(table, t_star_column(e)) for e in ESTIMATORS}
    cells = [_agree(table, e) for e in ESTIMATORS]
    lines.append(f"| median \\|Δt*\\|/t*, all seed pairs | {' | '.join(cells)} |")
    flat = [_agree(_divided(table, e, factors[e]), e) for e in ESTIMATORS]
    lines.append(f"| the same, each seed's factor divided out | {' | '.join(flat)} |")
    spread = [
        f"{np.std(np.log(factors[e])):.2f} (factors {_range(factors[e])})" for e in ESTIMATORS
    ]
    lines.append(f"| sd of log(seed factor) | {' | '.join(spread)} |")
    for group in (seeds[i : i + 3] for i in range(0, len(seeds) - 2, 3)):
        sub = table[table["seed"].isin(group)]
        cells = [f"{_agree(sub, e)}; {fit_line(sub, e)}" for e in ESTIMATORS]
        lines.append(f"| seeds {group}: median \\|Δt*\\|/t*; fit | {' | '.join(cells)} |")
    lines += ["", "Seed factors (toolkit's t*, paper's t*):", ""]
    lines += [
        f"- seed {s}: {factors['robust'].get(s, np.nan):.2f}, {factors['paper'].get(s, np.nan):.2f}"
        for s in seeds
    ]
    return "\n".join(lines) + "\n"


def _agree(table: pd.DataFrame, estimator: str) -> str:
    a = seed_agreement(table, estimator)
    return "—" if a["median"] is None else f"{a['median']:.3f} ({a['n_pairs']} pairs)"


def _divided(table: pd.DataFrame, estimator: str, factors: pd.Series) -> pd.DataFrame:
    column = t_star_column(estimator)
    return table.assign(**{column: table[column] / table["seed"].map(factors)})


def _range(factors: pd.Series) -> str:
    return f"{factors.min():.2f}–{factors.max():.2f}"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, required=True, help="the store (resumed)")
    parser.add_argument("--seeds", default="0-12", help="seeds: 0-12 or 0,1,2 (default 0-12)")
    parser.add_argument("--out", type=Path, help="markdown to write (default: stdout)")
    args = parser.parse_args(argv)
    seeds = seed_range(args.seeds)
    start = time.perf_counter()
    table = train(args.store, seeds)
    text = report(table, seeds, time.perf_counter() - start)
    if args.out:
        args.out.write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main(sys.argv[1:])
