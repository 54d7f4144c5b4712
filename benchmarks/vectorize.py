"""Vectorized (vmap) vs one-by-one training of the same grid, FC widths × number of runs.

Each grid is R runs of an FC (depth 3) on digits (512 training samples, batch 128) with
η ∈ [0.1, 1] and λ ∈ [1e-3, 1e-2] spread over the grid, every run trained for the same number
of steps and measured on the default log schedule. Both modes compile once per grid (included
in the time: a sweep pays it too). Prints the table of wall times and ratios, and the planner's
plan (chunks × vmapped width, or one by one) with its own time: "vs best" near 1 means the
planner picked the faster way.

    python benchmarks/vectorize.py [--steps 300] [--widths 64 256 1024] [--runs 8 32]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import jax
import numpy as np

from l2dynamics.config import DataConfig, ModelConfig, TrainConfig
from l2dynamics.models import count_params
from l2dynamics.sweep.plan import MAX_VECTORIZED_PARAMS, plan_chunks
from l2dynamics.train.run import build_program, load_data, run_program
from l2dynamics.train.vector import train_vectorized


def grid(width: int, runs: int, steps: int) -> list[TrainConfig]:
    """R configurations sharing one program, differing in η and λ."""
    base = TrainConfig(
        data=DataConfig("digits", n_train=512),
        model=ModelConfig("fc", {"depth": 3, "width": width}),
        batch_size=128,
        budget_epochs=steps * 128 / 512,
    )
    etas = np.geomspace(0.1, 1.0, runs)
    lams = np.geomspace(1e-3, 1e-2, runs)[::-1]
    return [
        dataclasses.replace(base, eta=float(e), lam=float(lam))
        for e, lam in zip(etas, lams, strict=True)
    ]


def time_one_by_one(cfgs: list[TrainConfig]) -> float:
    ds = load_data(cfgs[0])
    start = time.perf_counter()
    program = build_program(cfgs[0], ds)
    for cfg in cfgs:
        run_program(cfg, ds, program)
    return time.perf_counter() - start


def time_vectorized(cfgs: list[TrainConfig]) -> float:
    ds = load_data(cfgs[0])
    start = time.perf_counter()
    train_vectorized(cfgs, ds, build_program(cfgs[0], ds), on_result=lambda i, r: None)
    return time.perf_counter() - start


def time_planned(cfgs: list[TrainConfig], params: int) -> tuple[float, str]:
    """Train as the sweep planner would: its chunks, padded to one width, or one by one."""
    ds = load_data(cfgs[0])
    start = time.perf_counter()
    program = build_program(cfgs[0], ds)
    chunks = plan_chunks([1] * len(cfgs), params)
    slots = max(len(c) for c in chunks)
    for chunk in chunks:
        if slots == 1:
            run_program(cfgs[chunk[0]], ds, program)
        else:
            train_vectorized(
                [cfgs[i] for i in chunk], ds, program, on_result=lambda i, r: None, slots=slots
            )
    plan = "1-by-1" if slots == 1 else f"{len(chunks)}x{slots}"
    return time.perf_counter() - start, plan


def n_params(cfg: TrainConfig) -> int:
    ds = load_data(cfg)
    program = build_program(cfg, ds)
    return count_params(jax.eval_shape(program.init_params, jax.random.key(0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--runs", type=int, nargs="+", default=[8, 32])
    args = parser.parse_args()
    print(f"jax {jax.__version__}, devices {jax.devices()}, {args.steps} steps per run")
    print(
        f"{'width':>6} {'params':>9} {'runs':>5} {'one-by-one s':>13} {'vmap s':>8} "
        f"{'speed-up':>9} {'planner':>8} {'planned s':>10} {'vs best':>8}"
    )
    for width in args.widths:
        params = n_params(grid(width, 1, args.steps)[0])
        for runs in args.runs:
            cfgs = grid(width, runs, args.steps)
            t_one, t_vec = time_one_by_one(cfgs), time_vectorized(cfgs)
            t_plan, plan = time_planned(cfgs, params)
            print(
                f"{width:>6} {params:>9} {runs:>5} {t_one:>13.1f} {t_vec:>8.1f} "
                f"{t_one / t_vec:>8.2f}x {plan:>8} {t_plan:>10.1f} "
                f"{t_plan / min(t_one, t_vec):>7.2f}x",
                flush=True,
            )
    print(f"planner threshold: vectorize when params <= {MAX_VECTORIZED_PARAMS:,}")


if __name__ == "__main__":
    main()
