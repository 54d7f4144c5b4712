"""Vectorized (vmap) vs one-by-one training of the same grid, FC widths × number of runs.

Each grid is R runs of an FC (depth 3) on digits (512 training samples, batch 128) with
η ∈ [0.1, 1] and λ ∈ [1e-3, 1e-2] spread over the grid, every run trained for the same number
of steps and measured on the default log schedule. Each mode runs twice on one compiled
program; the table gives the second (steady-state) time, as every chunk after the first of a
sweep runs, and the compilation time apart (paid once per sweep and architecture).
Prints the table of wall times and ratios, and the planner's
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


def one_by_one(cfgs: list[TrainConfig], ds, program) -> None:
    for cfg in cfgs:
        run_program(cfg, ds, program)


def vectorized(cfgs: list[TrainConfig], ds, program) -> None:
    train_vectorized(cfgs, ds, program, on_result=lambda i, r: None)


def planned(cfgs: list[TrainConfig], ds, program, params: int) -> str:
    """Train as the sweep planner would: its chunks, padded to one width, or one by one."""
    chunks = plan_chunks([1] * len(cfgs), params)
    slots = max(len(c) for c in chunks)
    for chunk in chunks:
        if slots == 1:
            run_program(cfgs[chunk[0]], ds, program)
        else:
            train_vectorized(
                [cfgs[i] for i in chunk], ds, program, on_result=lambda i, r: None, lanes=slots
            )
    return "1-by-1" if slots == 1 else f"{len(chunks)}x{slots}"


def timed(fn, *args) -> tuple[float, float, object]:
    """(first call s, second call s, result): the first compiles, the second reuses the
    compiled program, as every chunk after the first of a sweep does."""
    t0 = time.perf_counter()
    out = fn(*args)
    t1 = time.perf_counter()
    fn(*args)
    return t1 - t0, time.perf_counter() - t1, out


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
        f"{'width':>6} {'params':>9} {'runs':>5} {'1-by-1 s':>9} {'vmap s':>8} "
        f"{'vmap gain':>10} {'planner':>8} {'planned s':>10} {'vs best':>8} {'compile s':>10}"
    )
    for width in args.widths:
        params = n_params(grid(width, 1, args.steps)[0])
        for runs in args.runs:
            cfgs = grid(width, runs, args.steps)
            ds = load_data(cfgs[0])
            program = build_program(cfgs[0], ds)
            c_one, t_one, _ = timed(one_by_one, cfgs, ds, program)
            c_vec, t_vec, _ = timed(vectorized, cfgs, ds, program)
            _, t_plan, plan = timed(planned, cfgs, ds, program, params)
            compile_s = max(c_one - t_one, c_vec - t_vec)
            print(
                f"{width:>6} {params:>9} {runs:>5} {t_one:>9.1f} {t_vec:>8.1f} "
                f"{t_one / t_vec:>9.2f}x {plan:>8} {t_plan:>10.1f} "
                f"{t_plan / min(t_one, t_vec):>7.2f}x {compile_s:>10.1f}",
                flush=True,
            )
    print(f"planner threshold: vectorize when params <= {MAX_VECTORIZED_PARAMS:,}")


if __name__ == "__main__":
    main()
