"""Vectorized training equals one-by-one training up to float32 reduction order.

Tolerance: the per-measurement bare training loss agrees to a relative 1e-3 (measured:
≤ 4e-5 over 3,000+ steps on this grid). vmap turns the matmuls into batched matmuls whose
reduction order may differ from the unbatched ones by an ulp per step; over thousands of steps
of a chaotic but contracting dynamics (L2) such differences stay small. Accuracies are counts
over the test set, so t* and the best accuracy agree exactly unless two measurements tie to
within an ulp: we check they are equal.
"""

import dataclasses
import math

import numpy as np

from l2dynamics.config import DataConfig, ModelConfig, TrainConfig
from l2dynamics.train.cost import LANE_OVERHEAD
from l2dynamics.train.run import build_program, load_data, run_program, train
from l2dynamics.train.vector import hand_over_tail, tail_saving, train_vectorized

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
    # one program for all, as a sweep shares it; built for μ = 0.5, so it has the momentum
    # buffer that run needs (its μ = 0 runs carry the buffer unused)
    program = build_program(cfgs[-1], ds)
    single = [run_program(c, ds, program) for c in cfgs]
    got = {}
    train_vectorized(cfgs, ds, program, on_result=got.__setitem__)
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


def test_a_narrow_pool_refills_its_lanes_compiles_once_and_equals_one_by_one():
    """Budgets of 4, 8, 12 and 32 steps in a pool of 2 lanes: the two longest start; as the
    12-step run ends its lane takes the 8-step run, then the 4-step one. One compilation of the
    vmapped step loop and of the lane measurement serves them all, and every run equals its
    one-by-one twin."""
    cfgs = [dataclasses.replace(BASE, budget_c=None, budget_epochs=e) for e in (1.0, 2.0, 3.0, 8.0)]
    ds = load_data(BASE)
    program = build_program(BASE, ds)
    order, got = [], {}

    def on_result(i, result):
        order.append(i)
        got[i] = result

    train_vectorized(cfgs, ds, program, on_result=on_result, lanes=2)
    assert order == [2, 1, 0, 3]
    assert program.pool.run_steps._cache_size() == 1 and program.pool.measure._cache_size() == 1
    for i, cfg in enumerate(cfgs):
        alone = run_program(cfg, ds, program)
        assert got[i].steps == alone.steps == 4 * cfg.budget_epochs
        np.testing.assert_array_equal(got[i].curve["step"], alone.curve["step"])
        np.testing.assert_allclose(got[i].curve["train_loss"], alone.curve["train_loss"], rtol=1e-3)
        assert got[i].best_test_acc == alone.best_test_acc


def test_tail_saving_counts_lane_steps_of_the_pool_against_one_by_one():
    # a pool step costs width + a lanes' worth, a one-run step 1 + a (a = LANE_OVERHEAD)
    a = LANE_OVERHEAD
    assert tail_saving([100], 6) == 100 * (6 + a) - 100 * (1 + a)
    assert tail_saving([100, 50, 10], 6) == 100 * (6 + a) - 160 * (1 + a)
    assert tail_saving([], 6) == 0.0


def test_the_tail_is_handed_over_only_when_the_queue_is_dry_and_half_the_lanes_idle():
    saving = tail_saving([100, 40], 4)
    assert hand_over_tail([100, 40], 4, queued=0, min_saving=saving)
    assert not hand_over_tail([100, 40], 4, queued=0, min_saving=saving + 1)
    assert not hand_over_tail([100, 40], 4, queued=1, min_saving=0)
    assert not hand_over_tail([100, 40, 10], 4, queued=0, min_saving=0)
    assert not hand_over_tail([], 4, queued=0, min_saving=0)
    assert not hand_over_tail([100], 1, queued=0, min_saving=0)


def _same_as_alone(got, cfgs, ds):
    """Each result in ``got`` equals its one-by-one twin (up to float32 reduction order)."""
    for i, cfg in enumerate(cfgs):
        alone = run_program(cfg, ds, build_program(BASE, ds))
        r = got[i]
        assert (r.status, r.steps, r.diverged_step, r.stopped_at_peak) == (
            alone.status,
            alone.steps,
            alone.diverged_step,
            alone.stopped_at_peak,
        )
        np.testing.assert_array_equal(r.curve["step"], alone.curve["step"])
        if r.status == "done":
            np.testing.assert_allclose(r.curve["train_loss"], alone.curve["train_loss"], rtol=1e-3)
            assert r.best_test_acc == alone.best_test_acc


def test_a_pool_hands_its_tail_to_the_one_run_program_and_equals_one_by_one():
    """Budgets of 4, 8 and 120 steps in 2 lanes: the 120- and 8-step runs start, then the
    8-step run's lane takes the 4-step one; when that ends the queue is dry and one lane idles,
    so the pool hands its last run (108 steps left) to the one-run program, where the
    peak-aware stop ends it (t* = 34 steps, stop at 106). Every run equals its one-by-one twin,
    with the hand-over and without it."""
    long = dataclasses.replace(BASE, eta=1.0, lam=0.03, budget_c=None, budget_epochs=30.0)
    cfgs = [
        dataclasses.replace(BASE, budget_c=None, budget_epochs=1.0),
        dataclasses.replace(BASE, budget_c=None, budget_epochs=2.0),
        dataclasses.replace(long, peak_stop=3.0),
    ]
    ds = load_data(BASE)
    handed, kept = build_program(BASE, ds), build_program(BASE, ds)
    got, ref = {}, {}
    train_vectorized(cfgs, ds, handed, on_result=got.__setitem__, lanes=2, tail_min_saving=0)
    train_vectorized(cfgs, ds, kept, on_result=ref.__setitem__, lanes=2, tail_min_saving=math.inf)
    assert handed.run_steps._cache_size() == 1 and handed.measure._cache_size() == 1
    assert kept.run_steps._cache_size() == 0 and kept.measure._cache_size() == 0
    assert got[2].stopped_at_peak and got[2].steps < 120
    _same_as_alone(got, cfgs, ds)
    _same_as_alone(ref, cfgs, ds)


def test_a_tail_of_several_runs_trains_them_one_after_the_other():
    """3 runs in 4 lanes: when the shortest ends, 2 of 4 lanes hold runs and both are handed
    over, in lane order (the 20-step run, then the 12-step one); progress counts the runs left
    in the tail, 2 then 1, and the steps they have trained, summed (run-steps)."""
    cfgs = [dataclasses.replace(BASE, budget_c=None, budget_epochs=e) for e in (1.0, 3.0, 5.0)]
    ds = load_data(BASE)
    program = build_program(BASE, ds)
    got, ticks = {}, []
    train_vectorized(
        cfgs,
        ds,
        program,
        on_result=got.__setitem__,
        progress=lambda u: ticks.append((u.done, int(u.status.split()[0]))),
        lanes=4,
        tail_min_saving=0,
    )
    assert program.run_steps._cache_size() == 1
    tail = ticks[ticks.index((3 * 4, 3)) + 1 :]  # after the dispatch to the 4-step run's end
    assert [a for _, a in tail] == sorted((a for _, a in tail), reverse=True)
    assert (20 + 4, 2) in tail and tail[-1] == (12, 1)
    _same_as_alone(got, cfgs, ds)


def test_a_run_that_diverges_in_the_tail_is_reported_diverged():
    """A lone run in 2 lanes is handed over at once; it diverges there at step 3, as alone."""
    cfgs = [dataclasses.replace(BASE, eta=1e5, budget_c=None, budget_epochs=4.0)]
    ds = load_data(BASE)
    program = build_program(BASE, ds)
    got = {}
    train_vectorized(cfgs, ds, program, on_result=got.__setitem__, lanes=2, tail_min_saving=0)
    assert program.run_steps._cache_size() == 1 and program.pool.run_steps._cache_size() == 0
    assert got[0].status == "diverged" and got[0].diverged_step == 3
    _same_as_alone(got, cfgs, ds)


def test_a_pooled_run_times_itself_from_when_it_enters_its_lane():
    """In a one-lane pool the short run waits for the long one; the long one's result takes
    0.5 s to hand over. The short run's wall_s is its own time, without that wait."""
    import time

    cfgs = [dataclasses.replace(BASE, budget_c=None, budget_epochs=e) for e in (2.0, 1.0)]
    ds = load_data(BASE)
    got = {}

    def on_result(i, result):
        got[i] = result
        if i == 0:
            time.sleep(0.5)

    start = time.perf_counter()
    train_vectorized(cfgs, ds, build_program(BASE, ds), on_result=on_result, lanes=1)
    total = time.perf_counter() - start
    assert total > 0.5
    assert got[1].wall_s < total - 0.5
    assert got[0].wall_s < total - 0.5  # measured before its own hand-over


def test_a_pool_of_two_adamw_runs_equals_the_two_runs_one_by_one():
    """AdamW's η and λ are per-lane arrays like SGD's: two runs at different (η, λ) and seeds,
    trained side by side in one vmapped program (no hand-over to the one-run program), end as
    each does alone; Adam's moments and count are stacked per lane with the rest of the state."""
    adamw = dataclasses.replace(BASE, optimizer="adamw", budget_c=None, budget_epochs=8.0)
    cfgs = [
        dataclasses.replace(adamw, eta=0.01, lam=0.1),
        dataclasses.replace(adamw, eta=0.003, lam=1.0, seed=1),
    ]
    ds = load_data(BASE)
    program = build_program(cfgs[0], ds)
    got = {}
    train_vectorized(cfgs, ds, program, on_result=got.__setitem__, tail_min_saving=math.inf)
    assert program.pool.run_steps._cache_size() == 1 and program.run_steps._cache_size() == 0
    for i, cfg in enumerate(cfgs):
        alone = run_program(cfg, ds, program)
        assert (got[i].status, got[i].steps) == (alone.status, alone.steps) == ("done", 32)
        np.testing.assert_array_equal(got[i].curve["step"], alone.curve["step"])
        for column in ("train_loss", "l2_norm_sq"):
            np.testing.assert_allclose(got[i].curve[column], alone.curve[column], rtol=1e-4)
        assert got[i].best_test_acc == alone.best_test_acc
    # the lanes really ran different (η, λ): their weights decayed at different rates
    assert not np.allclose(got[0].curve["l2_norm_sq"], got[1].curve["l2_norm_sq"], rtol=0.01)


def test_a_pool_of_two_runs_measuring_layers_equals_the_two_runs_one_by_one():
    """Layer measurements (norms, last-step angles) travel with each lane's state: a pool of
    two runs at different (η, λ) and seeds gives each run's per-layer rows as it gets alone
    (float32 rounding; the conv biases that feed a BatchNorm get no gradient and are float
    noise of norm ~1e-9, whose angles are noise too, so only tensors of norm² > 1e-10 count)."""
    from test_train import LAYERED

    cfgs = [LAYERED, dataclasses.replace(LAYERED, eta=0.05, lam=0.03, seed=1)]
    ds = load_data(LAYERED)
    program = build_program(LAYERED, ds)
    got = {}
    train_vectorized(cfgs, ds, program, on_result=got.__setitem__, tail_min_saving=math.inf)
    for i, cfg in enumerate(cfgs):
        alone = run_program(cfg, ds, program).layers
        pooled = got[i].layers
        for c in ("step", "layer", "scale_invariant"):
            np.testing.assert_array_equal(pooled[c], alone[c], err_msg=c)
        real = alone["norm_sq"] > 1e-10
        assert real.sum() > len(real) / 2
        for c in ("norm_sq", "angle"):
            np.testing.assert_allclose(pooled[c][real], alone[c][real], rtol=1e-4, err_msg=c)
    assert not np.allclose(got[0].layers["angle"][real], got[1].layers["angle"][real], rtol=0.05)
