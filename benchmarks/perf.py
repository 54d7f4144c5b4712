"""The performance suite: one entry point, one table, ``benchmarks/RESULTS.md``.

Sections (all measured in this one invocation, side by side):

- **limit**: the machine's float32 matrix-multiply rate (XLA and PyTorch/MKL, n×n GEMMs);
- **step**: achieved FLOP/s of one training step (FLOPs counted analytically) over that limit,
  for the paper's FC (784-2048-2048-2048-10, batch 512), the CNN at a CPU width and a narrow
  WRN, in the toolkit and in PyTorch;
- **sweep**: wall time of the quickstart grid and of a 32-run FC grid on 512 MNIST samples in
  the toolkit (every run to its budget, and with the peak-aware stop) against the PyTorch
  user's loop (``torch_baseline.py``), with run-by-run agreement of t* and best accuracy;
- **overheads**: the share of a toolkit sweep's wall time in measurement, compilation (and
  the count of compilations) and host↔device copies, and the vmapped slots' utilization.

Every figure is printed with the 1-minute load average when it was taken (the machine is
shared: figures taken at load ≥ 2 on 2 cores are not representative).

    python benchmarks/perf.py                      # everything (about an hour on 2 idle cores)
    python benchmarks/perf.py --quick              # smoke pass: short runs only (minutes)
    python benchmarks/perf.py --only step          # one section: step | sweep | overheads
    python benchmarks/perf.py --render             # rewrite RESULTS.md from RESULTS.json
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import flax
import jax
import numpy as np
import optax
import perf_step as ps
import perf_sweep as pw
import torch

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = str(HERE.parent.parent / "shared" / "data")
QUIET_LOAD = 1.5


@dataclasses.dataclass
class Row:
    """One figure of the table: section, what, value (with unit), comparison, target, load."""

    section: str
    what: str
    value: str
    compare: str = ""
    target: str = ""
    load: float = dataclasses.field(default_factory=lambda: os.getloadavg()[0])


@dataclasses.dataclass
class Report:
    """The table rows, the detail blocks (markdown) and the targets (name, held?, evidence)."""

    rows: list[Row] = dataclasses.field(default_factory=list)
    details: list[str] = dataclasses.field(default_factory=list)
    targets: list[tuple[str, bool, str]] = dataclasses.field(default_factory=list)

    def add(self, *args: Any, **kwargs: Any) -> None:
        row = Row(*args, **kwargs)
        self.rows.append(row)
        print(
            f"  {row.section:<9} {row.what:<52} {row.value:>16} {row.compare:<34} "
            f"{row.target:<14} load {row.load:.2f}",
            flush=True,
        )

    def target(self, name: str, held: bool, evidence: str) -> None:
        self.targets.append((name, held, evidence))


def wait_for_quiet(max_wait_s: float) -> float:
    """Wait (polling every 20 s, at most ``max_wait_s``) for a 1-minute load below 1.5."""
    deadline = time.monotonic() + max_wait_s
    while os.getloadavg()[0] >= QUIET_LOAD and time.monotonic() < deadline:
        time.sleep(20)
    return os.getloadavg()[0]


def gf(flops_per_s: float) -> str:
    return f"{flops_per_s / 1e9:.1f} GFLOP/s"


# --------------------------------------------------------------------------- limit and step


def bench_limit(rep: Report, quick: bool) -> float:
    """The float32 GEMM rate of this machine (the best over sizes and libraries), FLOP/s."""
    sizes = (512, 1024) if quick else (512, 1024, 2048)
    rates = ps.gemm_rates(sizes, reps=3 if quick else 10)
    for lib, by_size in rates.items():
        for n, r in by_size.items():
            rep.add("limit", f"{lib} fp32 GEMM {n}x{n}", gf(r))
    limit = max(r for by_size in rates.values() for r in by_size.values())
    rep.add("limit", "matmul limit (best of the above)", gf(limit))
    return limit


def bench_steps(rep: Report, limit: float, args: argparse.Namespace) -> None:
    """Step efficiency of each case: toolkit loop, one dispatch per step, PyTorch."""
    n, reps = (2, 1) if args.quick else (5, 3)
    for i, case in enumerate(ps.step_cases(args.data_dir)):
        # conv nets train one dispatch per step on CPU (their while_loop is 5-36x slower;
        # see the notes), so all cases time n steps, best of reps; quick: FC only
        loop_steps = 0 if i == 0 or not args.quick else None
        out = ps.bench_case(case, n, reps, loop_steps)
        report_case(rep, case.name, out, limit, first=i == 0)


def report_case(rep: Report, name: str, out: dict[str, Any], limit: float, first: bool) -> None:
    """Rows for one step case (the FC carries the targets)."""
    total = out["total"]
    rep.add(
        "step",
        f"{name}: FLOPs/step (analytic; XLA)",
        f"{total / 1e9:.2f} GFLOP",
        f"XLA {out['xla_flops'] / 1e9:.2f} GFLOP, {out['params']:,} params",
    )
    for label, key in (
        ("toolkit run_steps", "jax_s"),
        ("one jit dispatch/step", "single_s"),
        ("PyTorch", "torch_s"),
    ):
        rate = total / out[key]
        target = "≥ 85%" if first and key == "jax_s" else ""
        rep.add(
            "step",
            f"{name}: {label}",
            f"{out[key] * 1e3:.1f} ms",
            f"{gf(rate)} = {rate / limit:.0%} of limit",
            target,
        )
    rep.add(
        "step",
        f"{name}: its GEMMs/convs alone (XLA)",
        f"{out['gemm_s'] * 1e3:.1f} ms",
        f"{gf(out['gemm_flops'] / out['gemm_s'])} = "
        f"{out['gemm_flops'] / out['gemm_s'] / limit:.0%} of limit",
    )
    convs = out["convs"]
    if convs["while_loop"][0]:
        rep.add(
            "step",
            f"{name}: convs off XLA's fast path",
            f"while: {convs['while_loop'][1]}/{convs['while_loop'][0]}",
            f"single step: {convs['single'][1]}/{convs['single'][0]}",
        )
    if first:
        eff = total / out["jax_s"] / limit
        rep.target(
            "FC step ≥ 85% of the matmul limit",
            eff >= 0.85,
            f"{eff:.0%} (GEMMs alone: {out['gemm_flops'] / out['gemm_s'] / limit:.0%})",
        )
        rep.target(
            "FC step faster than PyTorch",
            out["jax_s"] < out["torch_s"],
            f"{out['torch_s'] / out['jax_s']:.2f}× ({out['jax_s'] * 1e3:.0f} vs "
            f"{out['torch_s'] * 1e3:.0f} ms)",
        )


# --------------------------------------------------------------------------- sweeps


def grids(args: argparse.Namespace) -> list[tuple[str, list]]:
    """(name, runs) of the two benchmarked grids (short-budget subsets with ``--quick``)."""
    qs, mn = pw.quickstart_runs(), pw.mnist_runs(args.data_dir)
    if args.quick:
        qs, mn = pw.subset(qs, 250), pw.subset(mn, 100)
    return [("quickstart", qs), ("mnist-fc-32", mn)]


def bench_sweeps(rep: Report, args: argparse.Namespace, baseline: bool) -> None:
    """Each grid: toolkit (full budget), toolkit (peak stop), PyTorch baseline; overheads."""
    for name, runs in grids(args):
        stop = next((c.peak_stop for c in runs if c.peak_stop), 3.0)
        wait_for_quiet(args.wait)
        full = pw.toolkit_sweep(pw.with_peak_stop(runs, None), f"{name}-full")
        floor = pw.measurement_floor(runs, max(full.probe.widths, default=1))
        report_overheads(rep, f"{name} (full budget)", full, floor)
        if not baseline:
            continue
        wait_for_quiet(args.wait)
        stopped = pw.toolkit_sweep(pw.with_peak_stop(runs, stop), f"{name}-stop")
        report_overheads(rep, f"{name} (peak stop)", stopped)
        inits = None if args.torch_init else pw.toolkit_inits(runs)
        wait_for_quiet(args.wait)
        torch_run = pw.baseline_sweep(runs, inits)
        report_sweep(rep, name, len(runs), full, stopped, torch_run, stop)


def report_sweep(rep: Report, name: str, n: int, full, stopped, base, stop: float) -> None:
    """Rows, agreement tables and targets of one grid."""
    same = pw.compare(full, stopped)
    vs_full, vs_stop = pw.compare(full, base), pw.compare(stopped, base)
    rep.add(
        "sweep",
        f"{name} ({n} runs): PyTorch loop",
        f"{base.wall_s:.1f} s",
        f"load {base.load[0]:.2f}→{base.load[1]:.2f}",
        load=base.load[1],
    )
    for label, run, agree in (
        ("toolkit, full budget", full, vs_full),
        (f"toolkit, peak stop {stop:g}", stopped, vs_stop),
    ):
        rep.add(
            "sweep",
            f"{name}: {label}",
            f"{run.wall_s:.1f} s",
            f"{base.wall_s / run.wall_s:.2f}× faster; agree {agree['frac_both']:.0%}",
            "≥ 2×" if "full" in label else "≥ 4×",
            load=run.load[1],  # the load when this sweep ended
        )
    used = stopped.probe.slot_steps[0] / max(full.probe.slot_steps[0], 1)
    rep.add(
        "sweep",
        f"{name}: peak stop, run-steps left of the full budget",
        f"{used:.0%}",
        f"ceiling {base.wall_s / (full.wall_s * used):.2f}× if wall fell with run-steps; "
        f"budget/t* median {budget_over_t_star(full):.1f}",
    )
    rep.add(
        "sweep",
        f"{name}: peak stop vs full budget (toolkit)",
        f"{same['frac_both']:.0%}",
        "runs with equal t* and best acc",
        "≥ 95%",
    )
    spread = pw.seed_spread(full)
    if spread:
        rep.add(
            "sweep",
            f"{name}: seed 0 vs seed 1 (toolkit, reference)",
            f"{spread['frac_both']:.0%}",
            f"median abs(Δt*)/t* {spread['dt_median']:.2f}",
        )
    rep.details.append(agreement_block(name, vs_full, same, spread))
    speed_full, speed_stop = base.wall_s / full.wall_s, base.wall_s / stopped.wall_s
    rep.target(
        f"{name}: ≥ 2× faster than PyTorch at equal results",
        speed_full >= 2 and vs_full["frac_both"] >= 0.95,
        f"{speed_full:.2f}×, agreement "
        f"{vs_full['frac_both']:.0%} (t* {vs_full['frac_t']:.0%}, acc "
        f"{vs_full['frac_acc']:.0%})",
    )
    rep.target(
        f"{name}: ≥ 4× with the peak stop, same t*/acc in ≥ 95%",
        speed_stop >= 4 and same["frac_both"] >= 0.95,
        f"{speed_stop:.2f}×; same as full budget in "
        f"{same['frac_both']:.0%}, agrees with PyTorch in {vs_stop['frac_both']:.0%}",
    )


def budget_over_t_star(run) -> float:
    """The median over the runs that did not diverge of budget/t* (both in epochs, t* taken as
    at least 1 epoch): how far past its peak a run's budget reaches, which bounds what any stop
    after the peak can save."""
    done = [r for r in run.results.values() if r["status"] == "done"]
    return float(np.median([r["budget_epochs"] / max(r["t_star_epochs"], 1.0) for r in done]))


def report_overheads(rep: Report, name: str, run, floor: tuple[float, float] | None = None) -> None:
    """Shares of the wall time, compilation counts and slot utilization of a toolkit sweep;
    with ``floor`` (:func:`perf_sweep.measurement_floor`: ms of the test-set pass and of a
    lane measurement), the measurement share the sweep would have if each measurement cost
    only its test-set forward pass."""
    p, wall = run.probe, run.wall_s
    parts = {k: p.seconds[k] for k in ("train", "measure", "refill", "compile", "h2d", "d2h")}
    parts["other (host, store)"] = wall - sum(parts.values())
    rep.add(
        "overheads",
        f"{name}: wall",
        f"{wall:.1f} s",
        ", ".join(f"{k} {v / wall:.0%}" for k, v in parts.items()),
    )
    rep.add(
        "overheads",
        f"{name}: measurement share",
        f"{parts['measure'] / wall:.1%}",
        f"{p.counts['measure']} calls",
        "≤ 10%",
    )
    if floor is not None:
        test_ms, lane_ms = floor
        least = parts["measure"] * test_ms / lane_ms
        rep.add(
            "overheads",
            f"{name}: measurement floor (test-set forward only)",
            f"{least / (wall - parts['measure'] + least):.1%}",
            f"test set {test_ms:.2f} ms of a lane measurement's {lane_ms:.2f} ms (timed "
            f"alternately): {least:.1f} s of {parts['measure']:.1f} s measured",
        )
    main = {k: p.compiles[k] for k in pw.MAIN_PROGRAMS}
    rep.add(
        "overheads",
        f"{name}: compilations (1 program group)",
        f"{sum(p.compiles.values())} in all",
        ", ".join(f"{k} {v}" for k, v in main.items())
        + f"; vmapped widths {sorted(p.widths, reverse=True)}",
        "1 per program",
    )
    rep.add(
        "overheads",
        f"{name}: compile share",
        f"{parts['compile'] / wall:.1%}",
        f"{parts['compile']:.1f} s",
    )
    rep.add(
        "overheads",
        f"{name}: host↔device copies",
        f"{(parts['h2d'] + parts['d2h']) / wall:.1%}",
        f"{p.counts['h2d']} up, {p.counts['d2h']} down",
    )
    useful, executed = p.slot_steps
    rep.add(
        "overheads",
        f"{name}: lane utilization",
        f"{useful / max(executed, 1):.0%}",
        f"{useful:,} run-steps used of {executed:,} stepped"
        + (f" ({p.alone_steps:,} of them one run at a time)" if p.alone_steps else ""),
    )
    if "full" in name:
        rep.target(
            f"{name.split()[0]}: measurement ≤ 10% of wall",
            parts["measure"] <= 0.1 * wall,
            f"{parts['measure'] / wall:.1%}",
        )
        rep.target(
            f"{name.split()[0]}: one compilation per program",
            all(v == 1 for v in main.values()),
            ", ".join(f"{k} ×{v}" for k, v in main.items()),
        )


def agreement_block(name: str, vs_base: dict, same: dict, spread: dict | None) -> str:
    """Markdown: the run-by-run comparison of toolkit (full budget) and PyTorch."""
    lines = [
        f"### {name}: toolkit (full budget) vs PyTorch, run by run",
        "",
        "| η | λ | seed | t* toolkit (ep) | resolution | t* torch (ep) | Δt*/t* | "
        "best acc toolkit | best acc torch | Δacc (pts) | t* ok | acc ok | "
        "torch on toolkit schedule: t*, acc |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|:-:|---|",
    ]
    for r in vs_base["rows"]:
        lines.append(
            f"| {r['eta']:g} | {r['lam']:g} | {r['seed']} | {r['t_ref']:g} | "
            f"{r['res']:.3f} | {r['t_other']:g} | {r['dt']:+.2f} | "
            f"{r['acc_ref']:.3f} | {r['acc_other']:.3f} | {100 * r['da']:+.1f} | "
            f"{'✓' if r['ok_t'] else '✗'} | {'✓' if r['ok_acc'] else '✗'} | "
            + (f"{r['t_sched']:g}, {r['acc_sched']:.3f} |" if r["t_sched"] else "— |")
        )
    lines += [
        "",
        summary_line("toolkit vs PyTorch", vs_base),
        summary_line("toolkit peak stop vs full budget", same),
    ]
    if "sched_t" in vs_base:
        lines.append(
            f"- the PyTorch curve read only at the toolkit's measurement epochs: t* "
            f"identical in {vs_base['sched_t']:.0%} of runs, best acc within 0.3 pts "
            f"in {vs_base['sched_acc']:.0%}"
        )
    if spread:
        lines.append(summary_line("toolkit seed 1 vs seed 0 (independent inits)", spread))
    return "\n".join(lines)


def summary_line(label: str, s: dict) -> str:
    return (
        f"- {label}: {s['n']} runs; t* agrees in {s['frac_t']:.0%}, best acc in "
        f"{s['frac_acc']:.0%}, both in {s['frac_both']:.0%}; |Δt*|/t* median "
        f"{s['dt_median']:.2f}, 90th pct {s['dt_p90']:.2f}; |Δacc| median "
        f"{100 * s['da_median']:.1f} pts, max {100 * s['da_max']:.1f} pts"
    )


# --------------------------------------------------------------------------- output


def machine() -> str:
    """One paragraph: CPU, cores, memory, library versions, date, load."""
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next(
        (x.split(":", 1)[1].strip() for x in lines if x.startswith("model name")),
        platform.processor(),
    )
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, no accelerator "
        f"({jax.devices()[0].platform}); Python {platform.python_version()}, jax "
        f"{jax.__version__}, flax {flax.__version__}, optax {optax.__version__}, numpy "
        f"{np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads); "
        f"{datetime.date.today().isoformat()}"
    )


def table(rows: list[Row]) -> str:
    """The rows as a markdown table."""
    out = [
        "| section | figure | value | comparison | target | load |",
        "|---|---|---:|---|---|---:|",
    ]
    out += [
        f"| {r.section} | {r.what} | {r.value} | {r.compare} | {r.target} | {r.load:.2f} |"
        for r in rows
    ]
    return "\n".join(out)


def save_json(rep: Report, path: Path, argv: list[str]) -> None:
    """The raw figures of this invocation (rerender RESULTS.md from them with ``--render``)."""
    raw = {
        "machine": machine(),
        "argv": argv,
        "rows": [dataclasses.asdict(r) for r in rep.rows],
        "details": rep.details,
        "targets": rep.targets,
    }
    path.write_text(json.dumps(raw, indent=1, ensure_ascii=False) + "\n")


def load_json(path: Path) -> tuple[Report, str, list[str]]:
    """(report, machine line, argv) saved by :func:`save_json`."""
    raw = json.loads(path.read_text())
    rep = Report(
        [Row(**r) for r in raw["rows"]], raw["details"], [tuple(t) for t in raw["targets"]]
    )
    return rep, raw["machine"], raw["argv"]


def write_results(rep: Report, path: Path, argv: list[str], notes: str, where: str) -> None:
    """Write RESULTS.md: machine, how to rerun, the table, the targets, details, notes."""
    targets = [
        f"- {'✅ holds' if ok else '❌ not reached'}: {name} ({ev})" for name, ok, ev in rep.targets
    ]
    text = "\n\n".join(
        [
            "# Performance suite: results",
            where,
            "Rerun: `"
            + " ".join(["python benchmarks/perf.py", *argv])
            + "` (this file was written "
            "by that command; `--help` lists the options). Load = 1-minute load average when the "
            "figure was taken; it counts the benchmark's own threads (about 1-2 while "
            "it computes), so on 2 cores a load well above 2 means other work was competing.",
            "## Table",
            table(rep.rows),
            "## Targets",
            "\n".join(targets) or "(none measured)",
            *rep.details,
            notes,
        ]
    )
    path.write_text(text + "\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke pass: short runs only")
    parser.add_argument("--only", choices=("step", "sweep", "overheads"))
    parser.add_argument("--data-dir", default=os.environ.get("L2DYN_DATA", DEFAULT_DATA))
    parser.add_argument(
        "--torch-init",
        action="store_true",
        help="baseline uses torch's own init (default: the toolkit's, per seed)",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=300.0,
        help=f"seconds to wait for load < {QUIET_LOAD} before each timed part",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results file (default benchmarks/RESULTS.md; quick: none)",
    )
    parser.add_argument(
        "--notes",
        type=Path,
        default=HERE / "RESULTS-notes.md",
        help="markdown appended to the results (the closing note)",
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help="measure nothing: rewrite RESULTS.md from RESULTS.json and --notes",
    )
    return parser.parse_args(argv)


def render(args: argparse.Namespace) -> None:
    """Rewrite the results file from the saved figures and the notes."""
    rep, where, argv = load_json(HERE / "RESULTS.json")
    notes = args.notes.read_text() if args.notes.exists() else ""
    write_results(rep, args.out or HERE / "RESULTS.md", argv, notes, where)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.render:
        return render(args)
    rep = Report()
    print(machine(), flush=True)
    if args.only in (None, "step"):
        wait_for_quiet(args.wait)
        bench_steps(rep, bench_limit(rep, args.quick), args)
    if args.only in (None, "sweep", "overheads"):
        bench_sweeps(rep, args, baseline=args.only != "overheads")
    print("\n".join(f"{'HOLDS' if ok else 'NOT REACHED'}: {n} ({e})" for n, ok, e in rep.targets))
    out = args.out or (None if args.quick else HERE / "RESULTS.md")
    if out:
        notes = args.notes.read_text() if args.notes.exists() else ""
        save_json(rep, out.with_suffix(".json"), argv)
        write_results(rep, out, argv, notes, machine())
        print(f"wrote {out} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main(sys.argv[1:])
