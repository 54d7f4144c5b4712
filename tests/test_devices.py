"""Pools and runs across local devices (:mod:`l2dynamics.train.devices`) equal one device.

The multi-device side runs in a subprocess on four forced host devices (``devices_check.py``;
``XLA_FLAGS`` must be set before JAX starts); this process, on its one device, trains the same
runs with the same functions and compares.

Tolerance: not bit-equal, and not expected to be. Split over devices, XLA compiles other
programs: a pool's device holds fewer lanes (other batched matmul shapes, so other reduction
orders), and a data-parallel step sums the loss, its gradient and the weight norm in per-device
parts added by an all-reduce. Each differs from one device by float32 rounding per step
(measured: ≤ 1e-5 absolute on the curves and ≤ 1e-6 on the parameters over the runs here);
accuracies are counts, so t*, the steps and the accuracy curves agree exactly.
"""

import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import devices_check as C
from l2dynamics.errors import ConfigError
from l2dynamics.train import devices as D
from l2dynamics.train.run import build_program, load_data
from l2dynamics.train.vector import Pool

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
FORCED = 4
RTOL, ATOL = 1e-4, 1e-5


def _on_forced_devices(mode: str, tmp_path: Path) -> dict[str, np.ndarray]:
    out = tmp_path / f"{mode}.npz"
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={FORCED}"
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(TESTS), env.get("PYTHONPATH", "")])
    env["JAX_PLATFORMS"] = "cpu"
    script = str(TESTS / "devices_check.py")
    proc = subprocess.run(
        [sys.executable, script, mode, str(out)], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out) as npz:
        return {k: npz[k] for k in npz.files}


def _assert_equal_results(got: dict, ref: dict, prefixes: list[str]) -> None:
    for p in prefixes:
        assert got[f"{p}/steps"] == ref[f"{p}/steps"] and got[f"{p}/t_star"] == ref[f"{p}/t_star"]
        np.testing.assert_array_equal(got[f"{p}/step"], ref[f"{p}/step"])
        for k in ("train_acc", "test_acc"):
            np.testing.assert_array_equal(got[f"{p}/{k}"], ref[f"{p}/{k}"], err_msg=f"{p}/{k}")
        for k in ("train_loss", "test_loss", "l2_norm_sq"):
            a, b = got[f"{p}/{k}"], ref[f"{p}/{k}"]
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=f"{p}/{k}")
    params = [k for k in ref if "/param" in k]
    assert params and sorted(params) == sorted(k for k in got if "/param" in k)
    for k in params:
        np.testing.assert_allclose(got[k], ref[k], rtol=RTOL, atol=ATOL, err_msg=k)


def test_this_process_has_one_device():
    """The reference side: one device, so nothing below is sharded here."""
    assert len(jax.local_devices()) == 1 and D.local_mesh() is None


@pytest.mark.slow
def test_a_pool_sharded_over_four_devices_equals_one_device(tmp_path):
    got = _on_forced_devices("pool", tmp_path)
    assert got["local_devices"] == FORCED and got["mesh"]
    assert got["width"] == 8 and str(got["sharding"]) == f"{FORCED}:{P(D.AXIS)}"
    ref = C.pool_results(shard=False)
    assert ref["width"] == len(C.POOL) and str(ref["sharding"]) == "1:"
    _assert_equal_results(got, ref, [f"run{i}" for i in range(len(C.POOL))])


@pytest.mark.slow
def test_a_data_parallel_batchnorm_run_equals_one_device(tmp_path):
    """The CNN's BatchNorm normalizes groups of 8 of its 32 examples: on four devices each
    device's share, on one device the same groups; the stepwise path (XLA:CPU convolutions).
    Its statistics stay on their device: the step's only cross-device sum is the gradient's
    and loss's (one all-reduce after XLA's combiner; the statistics, needed before the
    gradient, could not join it: over the whole batch the step has 13)."""
    got = _on_forced_devices("data-parallel", tmp_path)
    assert got["all_reduces"] == 1
    assert got["devices"] == FORCED and str(got["sharding"]) == f"{FORCED}:{P()}"
    assert str(got["refusal"]) == (
        "batch_size 30 does not split over 4 local devices for data-parallel training: use a "
        "multiple of 4, or train on one device"
    )
    ref = C.data_parallel_results(data_parallel=False)
    assert ref["devices"] == 1 and str(ref["sharding"]) == "1:"
    _assert_equal_results(got, ref, ["run"])


def test_on_one_device_nothing_is_sharded():
    """One device: no mesh, programs as before (no sharded pool, not data-parallel, even when
    asked for), a pool keeps its width and its unsharded functions."""
    assert D.pool_mesh(6) is None and D.pool_mesh(6, shard=True) is None
    assert D.data_parallel_mesh(32, ask=True) is None
    ds = load_data(C.FC)
    program = build_program(C.FC, ds, data_parallel=True)
    assert program.sharded_pool is None and program.data_parallel == 1
    assert program.pool.data is program.data
    pool = Pool(C.POOL, ds, program, 5, lambda i, r: None, None)
    assert pool.lanes == 5 and pool.mesh is None and pool.ops is program.pool


def test_the_rules_of_devices():
    """Data parallel over all devices when asked (refused unless they divide the batch) or when
    automatic and they divide it; never on one device or when turned off."""
    assert D.data_parallel_devices(32, 4, None) == 4
    assert D.data_parallel_devices(30, 4, None) == 1
    assert D.data_parallel_devices(30, 4, False) == 1
    assert D.data_parallel_devices(30, 1, True) == 1
    with pytest.raises(ConfigError, match="batch_size 30 does not split over 4 local devices"):
        D.data_parallel_devices(30, 4, True)
    assert D.pool_width(5, None) == 5
