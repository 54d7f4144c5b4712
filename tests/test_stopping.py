"""The peak-aware stop: the rule itself, and that it keeps t* and the best accuracy."""

import dataclasses

import numpy as np
import pytest

from l2dynamics.config import DataConfig, ModelConfig, TrainConfig, validate
from l2dynamics.errors import ConfigError
from l2dynamics.train.run import build_program, load_data, train
from l2dynamics.train.stopping import passed_peak
from l2dynamics.train.vector import train_vectorized


@pytest.mark.parametrize(
    "epochs,acc,expected",
    [
        ([0, 1, 2, 4], [0.1, 0.9, 0.85, 0.7], True),  # 4 ≥ 2·1 and 0.7 ≤ 0.9 − 0.01
        ([0, 2, 3, 3.5], [0.1, 0.9, 0.85, 0.7], False),  # 3.5 < 2·t* = 4
        ([0, 1, 2, 4], [0.1, 0.9, 0.85, 0.895], False),  # within the drop
        ([0, 1, 2, 4], [0.1, 0.8, 0.85, 0.9], False),  # still rising: t* is the last epoch
        ([0, 1, 2, 4], [0.1, 0.9, 0.9, 0.7], True),  # t* is the FIRST epoch of the maximum
        ([0], [0.5], False),
    ],
)
def test_passed_peak(epochs, acc, expected):
    assert passed_peak(epochs, acc, factor=2.0, drop=0.01) is expected


CFG = TrainConfig(
    data=DataConfig("digits", n_train=256, n_test=300),
    model=ModelConfig("fc", {"depth": 2, "width": 64}),
    eta=1.0,
    lam=0.05,
    budget_c=3.0,
    measure_resolution=0.1,
)


def test_peak_stop_keeps_t_star_and_best_and_saves_steps():
    full = train(CFG)
    early = train(dataclasses.replace(CFG, peak_stop=2.0, peak_drop=0.01))
    assert early.stopped_at_peak and not full.stopped_at_peak
    assert early.steps < full.steps
    assert early.t_star_epochs == full.t_star_epochs
    assert early.best_test_acc == full.best_test_acc
    n = len(early.curve["step"])
    np.testing.assert_array_equal(early.curve["test_acc"], full.curve["test_acc"][:n])


def test_vectorized_peak_stop_equals_one_by_one():
    cfgs = [dataclasses.replace(CFG, lam=lam, peak_stop=2.0) for lam in (0.05, 0.1)]
    cfgs.append(dataclasses.replace(CFG, lam=0.1))  # no stop: runs to its budget
    ds = load_data(CFG)
    got = {}
    train_vectorized(cfgs, ds, build_program(CFG, ds), on_result=got.__setitem__)
    for i, cfg in enumerate(cfgs):
        alone = train(cfg, dataset=ds)
        assert (got[i].steps, got[i].stopped_at_peak) == (alone.steps, alone.stopped_at_peak)
        assert got[i].t_star_epochs == alone.t_star_epochs
    assert got[1].stopped_at_peak and not got[2].stopped_at_peak


@pytest.mark.parametrize("field,value", [("peak_stop", 1.0), ("peak_drop", 0.0), ("peak_drop", 1)])
def test_bad_peak_options_are_named(field, value):
    with pytest.raises(ConfigError, match=field):
        validate(dataclasses.replace(CFG, **{field: value}))
