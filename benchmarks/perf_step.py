"""Step efficiency: the machine's float32 matmul limit and the achieved FLOP/s of one step.

FLOPs are counted analytically from the model's layer shapes, as ``flops.py`` says (forward
products and convolutions, twice that for the backward pass less the first layer's input
gradient, the update per parameter; elementwise work not counted, so the efficiency of
BatchNorm nets is a lower bound). XLA's own count of the compiled step is printed next to it
as a cross-check.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import torch
import torch_baseline as tb
from flops import gemm_ops, step_flops, xla_step_flops

from l2dynamics.config import DataConfig, ModelConfig, TrainConfig
from l2dynamics.train import step as S
from l2dynamics.train.run import build_program, init_state, load_data


def best_time(fn: Callable[[], Any], reps: int) -> float:
    """Minimum wall time (s) of ``reps`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def gemm_rates(sizes: tuple[int, ...], reps: int) -> dict[str, dict[int, float]]:
    """float32 ``n×n @ n×n`` rate (FLOP/s) per size, in XLA (``jnp.dot``) and PyTorch (MKL)."""
    out: dict[str, dict[int, float]] = {"jax": {}, "torch": {}}
    mm = jax.jit(jnp.dot)
    for n in sizes:
        a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
        out["jax"][n] = 2 * n**3 / best_time(lambda a=a: mm(a, a).block_until_ready(), reps)
        t = torch.randn(n, n)
        out["torch"][n] = 2 * n**3 / best_time(lambda t=t: t @ t, reps)
    return out


# --------------------------------------------------------------------------- timing


@dataclasses.dataclass
class StepCase:
    """One benchmarked step: a name, its run configuration and the data set it reads."""

    name: str
    cfg: TrainConfig


def step_cases(data_dir: str) -> list[StepCase]:
    """The paper's FC on MNIST, the CNN at a CPU width and a narrow WRN on CIFAR-10."""
    mnist = DataConfig("mnist", data_dir=data_dir, n_train=512, n_test=512)
    cifar = DataConfig("cifar10", data_dir=data_dir, n_train=1024, n_test=256)
    fc = ModelConfig("fc", {"depth": 3, "width": 2048})
    cnn = ModelConfig("cnn", {"channels": 32, "dense": 128, "pool_window": 2, "pool_stride": 2})
    wrn = ModelConfig("wrn", {"depth": 16, "width": 2})
    base = TrainConfig(eta=0.1, lam=1e-4, budget_epochs=1.0)
    return [
        StepCase(
            "FC 784-2048x3-10, B=512",
            dataclasses.replace(base, data=mnist, model=fc, batch_size=512),
        ),
        StepCase(
            "CNN ch=32 dense=128, B=128",
            dataclasses.replace(base, data=cifar, model=cnn, batch_size=128),
        ),
        StepCase(
            "WRN-16-2, B=128", dataclasses.replace(base, data=cifar, model=wrn, batch_size=128)
        ),
    ]


def time_jax_step(program, state, hyper, n: int, reps: int) -> tuple[float, Any]:
    """Seconds per step of the toolkit's ``run_steps`` (a jitted ``while_loop`` of ``n`` steps
    per dispatch, or for conv models on CPU one jitted step per dispatch; compiled by a 1-step
    call first), and the state it leaves."""
    holder = [program.run_steps(program.data, state, hyper, jnp.int32(1))]
    holder[0].step.block_until_ready()

    def run() -> None:
        holder[0] = program.run_steps(program.data, holder[0], hyper, jnp.int32(n))
        holder[0].step.block_until_ready()

    times = []
    for _ in range(reps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times) / n, holder[0]


def time_jax_single(program, state, hyper, n: int, reps: int) -> float:
    """Seconds per step when each step is its own dispatch of the jitted ``train_step`` (the
    same step function, without the ``while_loop``), state donated."""
    step = jax.jit(
        lambda s: S.train_step(program.spec, program.data, s, hyper), donate_argnums=(0,)
    )
    holder = [state]

    def run() -> None:
        for _ in range(n):
            holder[0] = step(holder[0])
        holder[0].step.block_until_ready()

    return best_time(run, reps) / n


def time_torch_step(cfg: TrainConfig, ds, n: int, reps: int) -> float:
    """Seconds per step of the same step in PyTorch (forward, loss, backward, SGD update)."""
    torch.manual_seed(0)
    model = tb.build(cfg.model.name, cfg.model.options, ds.input_shape, ds.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.eta, weight_decay=cfg.lam)
    data = tb.tensors(ds, cfg.model.name)
    x, y = data.x_train[: cfg.batch_size], data.y_train[: cfg.batch_size]

    def run() -> None:
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            tb.normalized_xent(model(x), y).backward()
            opt.step()

    return best_time(run, reps) / n


def gemm_profile(program, state, hyper, reps: int) -> tuple[float, float]:
    """(FLOPs, seconds) of the step's matrix products and convolutions run one by one in
    isolation: the time the step would take if they were all it did, at XLA's rate for
    those shapes."""
    jaxpr = jax.make_jaxpr(lambda s: S.train_step(program.spec, program.data, s, hyper))(state)
    flops = seconds = 0.0
    for prim, f, lhs, rhs, params in gemm_ops(jaxpr.jaxpr):
        fn = jax.jit(lambda a, b, prim=prim, params=params: prim.bind(a, b, **params))
        a, b = jnp.ones(lhs, jnp.float32), jnp.ones(rhs, jnp.float32)
        seconds += best_time(lambda fn=fn, a=a, b=b: fn(a, b).block_until_ready(), reps)
        flops += f
    return flops, seconds


def bench_case(case: StepCase, n: int, reps: int, loop_steps: int | None) -> dict[str, Any]:
    """Analytic and XLA FLOPs of one step, the GEMM profile, and seconds per step: the toolkit's
    ``run_steps`` (``loop_steps`` steps once; 0: ``n`` steps, best of ``reps``; None: not
    timed), one dispatch per step, and PyTorch."""
    ds = load_data(case.cfg)
    program = build_program(case.cfg, ds)
    state = init_state(case.cfg, program)
    hyper = S.Hyper(jnp.float32(case.cfg.eta), jnp.float32(case.cfg.lam), jnp.int32(10**6))
    x = program.data.x_train[: case.cfg.batch_size]
    out = step_flops(program, state.params, x)
    out["xla_flops"] = xla_step_flops(program, state, hyper)
    out["gemm_flops"], out["gemm_s"] = gemm_profile(program, state, hyper, reps)
    out["convs"] = noncanonical_convs(program, state, hyper)
    out["torch_s"] = time_torch_step(case.cfg, ds, n, reps)
    out["single_s"] = time_jax_single(program, state, hyper, n, reps)
    out["jax_s"] = float("nan")
    if loop_steps is not None:
        out["jax_s"], _ = time_jax_step(
            program,
            init_state(case.cfg, program),
            hyper,
            loop_steps or n,
            1 if loop_steps else reps,
        )
    return out


CANONICAL_CONV = "b01f_01io->b01f"


def noncanonical_convs(program, state, hyper) -> dict[str, tuple[int, int]]:
    """(convolutions, convolutions not in XLA:CPU's fast NHWC/HWIO form) in the compiled
    ``run_steps`` (``while_loop``) and in the compiled single ``train_step``."""
    # the while_loop itself, compiled explicitly: conv programs on CPU dispatch step by step
    while_loop = jax.jit(functools.partial(S.run_steps, program.spec))
    loop = while_loop.lower(program.data, state, hyper, jnp.int32(1)).compile()
    single = jax.jit(lambda s: S.train_step(program.spec, program.data, s, hyper))
    out = {}
    for name, compiled in (("while_loop", loop), ("single", single.lower(state).compile())):
        labels = re.findall(r"dim_labels=([^,\s]+)", compiled.as_text())
        out[name] = (len(labels), sum(lab != CANONICAL_CONV for lab in labels))
    return out
