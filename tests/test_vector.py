"""Vectorized training equals one-by-one training up to float32 reduction order.

Tolerance: the per-measurement bare training loss agrees to a relative 1e-3 (measured:
≤ 4e-5 over 3,000+ steps on this grid). vmap turns the matmuls into batched matmuls whose
reduction order may differ from the unbatched ones by an ulp per step; over thousands of steps
of a chaotic but contracting dynamics (L2) such differences stay small. Accuracies are counts
over the test set, so t* and the best accuracy agree exactly unless two measurements tie to
within an ulp: we check they are equal.
"""

import dataclasses

import numpy as np

from l2dynamics.config import DataConfig, ModelConfig, TrainConfig
from l2dynamics.train.run import build_program, load_data, train
from l2dynamics.train.vector import train_vectorized

BASE = TrainConfig(
    data=DataConfig("digits", n_train=128, n_test=200),
    model=ModelConfig("fc", {"depth": 2, "width": 32}),
    eta=0.5,
    lam=0.01,
    budget_c=0.3,
    batch_size=32,
)


def _grid():
    cfgs = [dataclasses.replace(BASE, eta=e, lam=lam) for e in (0.3, 1.0) for lam in (0.01, 0.03)]
    cfgs.append(dataclasses.replace(BASE, eta=1e5, lam=0.01, budget_c=None, budget_epochs=4.0))
    cfgs.append(dataclasses.replace(BASE, eta=0.3, lam=0.01, seed=1, momentum=0.5))
    return cfgs


def test_vectorized_equals_one_by_one():
    cfgs = _grid()
    ds = load_data(BASE)
    single = [train(c, dataset=ds) for c in cfgs]
    got = {}
    train_vectorized(cfgs, ds, build_program(BASE, ds), on_result=got.__setitem__)
    assert sorted(got) == list(range(len(cfgs)))
    for s, v in zip(single, (got[i] for i in range(len(cfgs))), strict=True):
        assert (s.status, s.steps, s.diverged_step) == (v.status, v.steps, v.diverged_step)
        np.testing.assert_array_equal(s.curve["step"], v.curve["step"])
        if s.status == "done":
            np.testing.assert_allclose(s.curve["train_loss"], v.curve["train_loss"], rtol=1e-3)
            assert s.t_star_epochs == v.t_star_epochs
            assert s.best_test_acc == v.best_test_acc
    assert single[4].status == "diverged"


def test_finished_runs_stop_updating():
    """A short-budget run trained beside a long one ends exactly at its own budget."""
    cfgs = [dataclasses.replace(BASE, budget_c=None, budget_epochs=e) for e in (1.0, 3.0)]
    ds = load_data(BASE)
    got = {}
    train_vectorized(cfgs, ds, build_program(BASE, ds), on_result=got.__setitem__)
    assert got[0].steps == 4 and got[1].steps == 12
    alone = train(cfgs[0], dataset=ds)
    np.testing.assert_allclose(got[0].curve["l2_norm_sq"], alone.curve["l2_norm_sq"], rtol=1e-5)


def test_compaction_keeps_results_and_narrows_the_stack(monkeypatch):
    """Budgets 1, 2, 3, 8 epochs: lanes are gathered to widths 2, then 1, as runs finish."""
    import l2dynamics.train.vector as V

    cfgs = [dataclasses.replace(BASE, budget_c=None, budget_epochs=e) for e in (1.0, 2.0, 3.0, 8.0)]
    ds = load_data(BASE)
    widths = []
    real_compact = V._compact

    def spy(states, hyper, lane_run, active):
        out = real_compact(states, hyper, lane_run, active)
        widths.append(len(out[2]))
        return out

    monkeypatch.setattr(V, "_compact", spy)
    got = {}
    train_vectorized(cfgs, ds, build_program(BASE, ds), on_result=got.__setitem__)
    assert widths[0] == 4 and 2 in widths and widths[-1] == 1
    for i, cfg in enumerate(cfgs):
        alone = train(cfg, dataset=ds)
        assert got[i].steps == alone.steps
        np.testing.assert_allclose(got[i].curve["train_loss"], alone.curve["train_loss"], rtol=1e-3)
