"""Training on several local devices, for ``test_devices.py``.

``python devices_check.py MODE OUT`` trains the runs of ``MODE`` (``pool``: a pool of small FC
runs with its lanes sharded; ``data-parallel``: one BatchNorm CNN run with its batch split) on
the devices JAX sees, and saves the results to ``OUT`` (``.npz``). The test starts it with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (which must be set before JAX starts, so
in a subprocess), trains the same runs with the same functions on its own single device, and
compares.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from functools import partial
from typing import Any

import jax
import numpy as np

from l2dynamics.config import DataConfig, ModelConfig, TrainConfig
from l2dynamics.errors import ConfigError
from l2dynamics.train import devices as D
from l2dynamics.train import step as S
from l2dynamics.train.run import (
    RunBook,
    build_program,
    init_state,
    load_data,
    run_hyper,
    train_with_book,
)
from l2dynamics.train.vector import Pool, train_vectorized
from test_vector import BASE

FC = BASE  # the small FC on digits that the pool tests train
# Five runs: on four devices the pool is padded to eight lanes, three of them empty.
POOL = [dataclasses.replace(FC, eta=e, lam=lam) for e in (0.3, 1.0) for lam in (0.01, 0.03)]
POOL.append(dataclasses.replace(FC, eta=0.3, seed=1, momentum=0.5))
# Batch 32 over 4 devices, BatchNorm statistics over groups of 8: one group per device.
CNN_OPTIONS = {"channels": 4, "dense": 8, "pool_window": 1, "pool_stride": 1}
CNN = TrainConfig(
    data=DataConfig("digits", n_train=128, n_test=200),
    model=ModelConfig("cnn", {**CNN_OPTIONS, "batch_norm": True, "bn_group": 8}),
    eta=0.1,
    lam=0.01,
    momentum=0.9,
    budget_epochs=4.0,
    batch_size=32,
    measure="every",
    measure_every=4,
)
CURVES = ("train_loss", "test_loss", "train_acc", "test_acc", "l2_norm_sq")
POOL_STEPS = 3  # dispatches of the pool whose parameters are compared


def _result(prefix: str, result: Any) -> dict[str, np.ndarray]:
    out = {f"{prefix}/{k}": np.asarray(result.curve[k]) for k in ("step", *CURVES)}
    out[f"{prefix}/t_star"] = np.asarray(result.t_star_epochs)
    out[f"{prefix}/steps"] = np.asarray(result.steps)
    return out


def _params(prefix: str, params: Any) -> dict[str, np.ndarray]:
    leaves = jax.tree.leaves(jax.device_get(params))
    return {f"{prefix}/param{j}": np.asarray(x) for j, x in enumerate(leaves)}


def _where(params: Any) -> np.ndarray:
    """Where the first parameter lives: ``"<devices>:<partition spec>"``."""
    sharding = jax.tree.leaves(params)[0].sharding
    return np.asarray(f"{len(sharding.device_set)}:{getattr(sharding, 'spec', '')}")


def pool_results(shard: bool) -> dict[str, np.ndarray]:
    """The pool's runs trained to their ends (curves, t*), and the stacked parameters of the
    lanes after :data:`POOL_STEPS` dispatches; with ``shard`` the lanes split over the local
    devices."""
    ds = load_data(FC)
    program = build_program(POOL[-1], ds, data_parallel=False)
    got: dict[int, Any] = {}
    # no tail hand-over, so that both pools train every step in their lanes
    train_vectorized(POOL, ds, program, on_result=got.__setitem__, shard=shard,
                     tail_min_saving=float("inf"))  # fmt: skip
    out: dict[str, np.ndarray] = {}
    for i, result in got.items():
        out |= _result(f"run{i}", result)
    pool = Pool(POOL, ds, program, len(POOL), lambda i, r: None, None, shard)
    pool.fill()
    for _ in range(POOL_STEPS):
        pool.measure_due()
        pool.step()
    out |= _params("pool", jax.tree.map(lambda x: x[: len(POOL)], pool.states.params))
    out["width"] = np.asarray(pool.lanes)
    out["sharding"] = _where(pool.states.params)
    return out


def data_parallel_results(data_parallel: bool) -> dict[str, np.ndarray]:
    """The CNN run trained to its end: curve, t* and final parameters."""
    ds = load_data(CNN)
    program = build_program(CNN, ds, data_parallel=data_parallel)
    book = RunBook(CNN, ds.n_train, program.spec.batch_size, ds.n_test)
    state = train_with_book(book, init_state(CNN, program), run_hyper(book), program, ds)
    out = _result("run", book.result()) | _params("run", state.params)
    out["devices"] = np.asarray(program.data_parallel)
    if len(jax.local_devices()) > 1:
        out["all_reduces"] = np.asarray(all_reduces(8))
    out["sharding"] = _where(state.params)
    try:  # a batch the devices do not divide, asked for data parallel
        build_program(dataclasses.replace(CNN, batch_size=30), ds, data_parallel=True)
        out["refusal"] = np.asarray("")
    except ConfigError as e:
        out["refusal"] = np.asarray(str(e))
    return out


def all_reduces(bn_group: int) -> int:
    """All-reduce instructions in the compiled data-parallel step of :data:`CNN` with BatchNorm
    groups of ``bn_group`` examples (0: the whole batch: 13 on four devices, as its statistics
    and their gradients are summed across them), as the program builds it: minibatch split over
    the local devices, state replicated."""
    cfg = dataclasses.replace(
        CNN, model=ModelConfig("cnn", {**CNN.model.options, "bn_group": bn_group})
    )
    ds = load_data(cfg)
    program = build_program(cfg, ds, data_parallel=True)
    mesh = D.local_mesh()
    spec = dataclasses.replace(program.spec, batch_sharding=D.lane_sharding(mesh))
    book = RunBook(cfg, ds.n_train, spec.batch_size, ds.n_test)
    state, hyper = jax.device_put((init_state(cfg, program), run_hyper(book)), D.replicated(mesh))
    step = jax.jit(partial(S.guarded_step, spec), out_shardings=D.replicated(mesh))
    text = step.lower(program.data, state, hyper, np.bool_(True)).compile().as_text()
    return sum(1 for line in text.splitlines() if re.search(r"\ball-reduce(-start)?\(", line))


def main() -> None:
    mode, path = sys.argv[1:]
    jax.config.update("jax_numpy_dtype_promotion", "strict")  # as the tests' conftest
    results = pool_results(True) if mode == "pool" else data_parallel_results(True)
    results["local_devices"] = np.asarray(len(jax.local_devices()))
    results["mesh"] = np.asarray(D.local_mesh() is not None)
    np.savez(path, **results)


if __name__ == "__main__":
    main()
