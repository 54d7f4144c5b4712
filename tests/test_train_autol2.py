"""AutoL2 inside the training loop: the λ it applies is the controller's, run by run."""

import dataclasses

import jax
import numpy as np
import pytest

from l2dynamics.autol2 import replay, step_scale_lam0
from l2dynamics.config import DataConfig, ModelConfig, TrainConfig, validate
from l2dynamics.errors import ConfigError
from l2dynamics.train.run import build_program, load_data, train
from l2dynamics.train.vector import train_vectorized

K = 5
CFG = TrainConfig(
    data=DataConfig("digits", n_train=128, n_test=200),
    model=ModelConfig("fc", {"depth": 2, "width": 32}),
    eta=0.5,
    lam=0.05,
    autol2=True,
    autol2_period=K,
    autol2_refractory=0.05,
    budget_epochs=300,
    measure="every",
    measure_every=K,
)


def replayed(curve) -> list[float]:
    """CFG's controller replayed on a curve's whole-training-set measurements."""
    errors = 1.0 - curve["train_acc"]
    return replay(curve["step"], curve["train_loss"], errors, lam0=0.05, decay=10.0,
                  refractory=0.05, period=K)  # fmt: skip


def test_lambda_schedule_is_the_controller_replayed_on_the_measurements():
    """Full batch: the controller's minibatch measurement at step s is the training-set loss
    and error at step s, which the curve records; replaying them gives the curve's λ."""
    r = train(CFG)
    c = r.curve
    assert np.all(np.diff(c["step"]) == K)
    lams = replayed(c)
    # the row at step s is measured before the update of step s: it shows λ after the
    # controller has seen the measurements at steps 0, K, …, s − K
    np.testing.assert_allclose(c["lam_now"][1:], lams[:-1], rtol=1e-6)
    assert c["lam_now"][0] == pytest.approx(0.05)
    assert c["lam_now"][-1] < 0.05  # it did decay in this run
    assert np.all(np.diff(c["lam_now"]) <= 0)


@pytest.mark.parametrize("source", ["train", "subset"])
def test_measuring_the_training_set_replays_from_the_curves_whole_set_measurements(source):
    """Minibatches of 32, AutoL2 measuring the whole training set (or a subset as large as
    it): the curve's measurements every K steps are the controller's, so replaying them gives
    the curve's λ; the minibatch source takes other decisions from the same start."""
    cfg = dataclasses.replace(
        CFG, batch_size=32, budget_epochs=40, autol2_measure=source, autol2_measure_size=128
    )
    c = train(cfg).curve
    lams = replayed(c)
    np.testing.assert_allclose(c["lam_now"][1:], lams[:-1], rtol=1e-6)
    assert c["lam_now"][-1] < 0.05
    mini = train(dataclasses.replace(cfg, autol2_measure="minibatch")).curve
    assert not np.array_equal(mini["lam_now"], c["lam_now"])


def test_a_fixed_subset_is_drawn_once_per_run():
    from l2dynamics.train.run import device_data
    from l2dynamics.train.step import measured_set

    ds = load_data(CFG)
    program = build_program(
        dataclasses.replace(CFG, autol2_measure="subset", autol2_measure_size=50), ds
    )
    data = device_data(ds)
    key = jax.random.key(3)
    x1, y1 = measured_set(program.spec, data, key)
    x2, _ = measured_set(program.spec, data, key)
    assert x1.shape[0] == 50 and y1.shape == (50, ds.num_classes)
    np.testing.assert_array_equal(x1, x2)
    rows = {tuple(np.asarray(r).ravel().tolist()) for r in x1}
    assert len(rows) == 50  # distinct examples of the training set


def test_the_default_preset_measures_a_fixed_subset_the_papers_its_minibatch():
    from l2dynamics.train.run import autol2_measure

    assert autol2_measure(CFG) == "subset"
    assert autol2_measure(dataclasses.replace(CFG, autol2_preset="paper")) == "minibatch"
    assert autol2_measure(dataclasses.replace(CFG, autol2_preset="authors-code")) == "minibatch"
    assert autol2_measure(dataclasses.replace(CFG, autol2_measure="train")) == "train"
    assert autol2_measure(dataclasses.replace(CFG, autol2=False)) == "minibatch"
    # a subset as large as the training set is the training set: the same run, bit for bit
    small = dataclasses.replace(CFG, batch_size=32, budget_epochs=10)
    default = train(small).curve
    whole = train(dataclasses.replace(small, autol2_measure="train")).curve
    np.testing.assert_array_equal(default["lam_now"], whole["lam_now"])
    np.testing.assert_array_equal(default["test_acc"], whole["test_acc"])


def test_a_sweep_trains_runs_measuring_beyond_their_minibatch_alone():
    from l2dynamics.sweep.chunks import Context, plan

    cfgs = [dataclasses.replace(CFG, seed=s, autol2_measure="train") for s in range(3)]
    chunks = plan([(str(i), c) for i, c in enumerate(cfgs)], Context(), None)
    assert {c.lanes for c in chunks} == {1}
    pooled = plan(
        [(str(i), dataclasses.replace(c, autol2_measure="minibatch")) for i, c in enumerate(cfgs)],
        Context(),
        None,
    )
    assert max(c.lanes for c in pooled) > 1


def test_the_authors_code_preset_counts_ties_and_starts_refractory():
    from l2dynamics.train.run import controller_options

    cfg = dataclasses.replace(CFG, lam=0.0, autol2_preset="authors-code")
    opts = controller_options(cfg)
    assert (opts.lam0, opts.initial_best_loss, opts.count_ties, opts.start_refractory) == (
        0.1,
        np.inf,
        True,
        True,
    )
    mine = dataclasses.replace(cfg, autol2_count_ties=False, autol2_start_refractory=False)
    assert (controller_options(mine).count_ties, controller_options(mine).start_refractory) == (
        False,
        False,
    )


def test_the_scale_aware_start_in_the_script_convention_is_half_the_sms():
    """The script's λ·‖θ‖² acts at 2ηλ per step: the same L2 time scale needs half the λ₀."""
    from l2dynamics.train.run import controller_options

    cfg = dataclasses.replace(CFG, lam=0.0)
    sm = controller_options(cfg, budget_steps=300).lam0
    script = controller_options(dataclasses.replace(cfg, convention="script"), budget_steps=300)
    assert script.lam0 == pytest.approx(sm / 2) and sm == pytest.approx(1 / (0.5 * 300))
    paper = dataclasses.replace(cfg, convention="script", autol2_preset="paper")
    assert controller_options(paper).lam0 == 0.1  # the authors' λ values carry over unchanged


@pytest.mark.parametrize(
    "optimizer,momentum", [("sgd", 0.9), ("sgdw", 0.9), ("sgdw", 0.0), ("adamw", 0.0)]
)
def test_the_scale_aware_start_puts_the_decays_timescale_at_the_horizon(optimizer, momentum):
    """Every optimizer starts where its decay's timescale τ_iter(λ₀) is the budget (when that
    is under the reaction bound): SGDW's and AdamW's decay acts at η·λ whatever the momentum."""
    from l2dynamics.config import timescale_steps
    from l2dynamics.train.run import controller_options

    cfg = dataclasses.replace(CFG, lam=0.0, optimizer=optimizer, momentum=momentum)
    lam0 = controller_options(cfg, budget_steps=300).lam0
    assert timescale_steps(dataclasses.replace(cfg, lam=lam0)) == pytest.approx(300)
    expected = (1 - momentum) if optimizer == "sgd" else 1.0
    assert lam0 == pytest.approx(expected / (cfg.eta * 300))


def test_the_budget_aware_start_is_three_times_the_predicted_lambda():
    cfg = dataclasses.replace(CFG, lam=0.0, autol2_lam_pred=2e-3, budget_epochs=2)
    assert train(cfg).curve["lam_now"][0] == pytest.approx(6e-3, rel=1e-6)
    with pytest.raises(ConfigError, match="autol2_lam_pred"):
        validate(dataclasses.replace(CFG, autol2_lam_pred=2e-3))  # lam given as well
    with pytest.raises(ConfigError, match="autol2_lam_pred"):
        validate(dataclasses.replace(CFG, lam=0.0, autol2_lam_pred=-1.0))


def test_tau_integrates_the_schedule():
    c = train(CFG).curve
    expected = np.concatenate([[0.0], np.cumsum(np.diff(c["time"]) * c["lam_now"][:-1])])
    np.testing.assert_allclose(c["tau"], expected, rtol=1e-9)


def test_vectorized_autol2_runs_keep_their_own_state():
    cfgs = [dataclasses.replace(CFG, lam=lam) for lam in (0.05, 0.2)]
    cfgs.append(dataclasses.replace(CFG, autol2=False, lam=0.01))
    ds = load_data(CFG)
    got = {}
    program = build_program(CFG, ds)
    train_vectorized(cfgs[:2], ds, program, on_result=got.__setitem__)
    for i, cfg in enumerate(cfgs[:2]):
        alone = train(cfg, dataset=ds)
        np.testing.assert_allclose(got[i].curve["lam_now"], alone.curve["lam_now"], rtol=1e-6)
        np.testing.assert_allclose(got[i].curve["train_loss"], alone.curve["train_loss"], rtol=1e-3)
    fixed = train(cfgs[2], dataset=ds)
    assert np.all(fixed.curve["lam_now"] == 0.01)


@pytest.mark.parametrize(
    "field,value",
    [
        ("lam", -1.0),
        ("autol2_decay", 1.0),
        ("autol2_refractory", 0.0),
        ("autol2_period", 0),
        ("autol2_preset", "bogus"),
        ("autol2_initial_best_loss", 0.0),
        ("autol2_measure", "bogus"),
        ("autol2_measure_size", 0),
        ("convention", "bogus"),
        ("budget_c", 2.0),
    ],
)
def test_bad_autol2_options_are_named(field, value):
    with pytest.raises(ConfigError, match=field):
        validate(dataclasses.replace(CFG, **{field: value}))


@pytest.mark.parametrize(
    "over, lam0",
    [
        # the scale-aware default start: the reaction bound 3·K/0.03 = 500 steps, or the budget
        ({"lam": 0.0, "budget_epochs": 600}, step_scale_lam0(0.5, 0.0, K)),
        ({"lam": 0.0, "momentum": 0.9, "budget_epochs": 600}, step_scale_lam0(0.5, 0.9, K)),
        ({"lam": 0.0}, 1 / (0.5 * 300)),
        ({"lam": 0.0, "budget_epochs": 2}, 1 / (0.5 * 2)),
        ({"lam": 0.0, "autol2_preset": "paper"}, 0.1),
        ({"lam": 0.02, "autol2_preset": "paper"}, 0.02),  # a given λ₀ overrides the preset
    ],
)
def test_lambda_starts_where_the_preset_or_the_given_lam_says(over, lam0):
    """CFG trains full batch, one step per epoch."""
    cfg = dataclasses.replace(CFG, **({"budget_epochs": 300} | over))
    curve = train(cfg).curve
    assert curve["lam_now"][0] == pytest.approx(lam0, rel=1e-6)


def test_the_paper_preset_starts_the_best_loss_at_one_and_rules_are_passed_on():
    from l2dynamics.train.run import controller_options

    cfg = dataclasses.replace(CFG, lam=0.0, autol2_preset="paper", autol2_count_ties=True,
                              autol2_start_refractory=True)  # fmt: skip
    opts = controller_options(cfg)
    assert (opts.lam0, opts.initial_best_loss, opts.count_ties, opts.start_refractory) == (
        0.1,
        1.0,
        True,
        True,
    )
    assert controller_options(dataclasses.replace(CFG, lam=0.0)).initial_best_loss == np.inf
    given = dataclasses.replace(cfg, autol2_initial_best_loss=2.5)
    assert controller_options(given).initial_best_loss == 2.5


def test_autol2_runs_keep_their_schedule_through_a_tail_hand_over():
    """The 30-step run ends first, the pool's queue is dry and one of its 2 lanes idles: the
    300-step run is handed to the one-run program with its controller state and continues
    its λ schedule as if alone."""
    cfgs = [CFG, dataclasses.replace(CFG, lam=0.2, budget_epochs=30)]
    ds = load_data(CFG)
    got = {}
    program = build_program(CFG, ds)
    train_vectorized(cfgs, ds, program, on_result=got.__setitem__, lanes=2, tail_min_saving=0)
    assert program.run_steps._cache_size() == 1  # the tail was handed over
    for i, cfg in enumerate(cfgs):
        alone = train(cfg, dataset=ds)
        np.testing.assert_array_equal(got[i].curve["step"], alone.curve["step"])
        np.testing.assert_allclose(got[i].curve["lam_now"], alone.curve["lam_now"], rtol=1e-6)
        np.testing.assert_allclose(got[i].curve["tau"], alone.curve["tau"], rtol=1e-6)
        np.testing.assert_allclose(got[i].curve["train_loss"], alone.curve["train_loss"], rtol=1e-3)
    c = got[0].curve
    after = c["step"] > 30  # the hand-over came when the 30-step run ended
    assert c["lam_now"][after][-1] < c["lam_now"][after][0]  # λ decayed after it too


def test_autol2_sets_the_lambda_of_adamw():
    """The controller's λ reaches every optimizer through the injected ``l2``: an AdamW run
    started by AutoL2 at λ₀ = 3·lam_pred (its config's lam is 0) and kept from decaying (a
    refractory period longer than the run) trains as the fixed-λ AdamW run at λ₀."""
    base = dataclasses.replace(
        CFG, optimizer="adamw", eta=0.01, budget_epochs=8, autol2=False, lam=0.3
    )
    auto = dataclasses.replace(
        base,
        autol2=True,
        lam=0.0,
        autol2_lam_pred=0.1,
        autol2_start_refractory=True,
        autol2_refractory=1e3,
    )
    fixed, scheduled = train(base), train(auto)
    np.testing.assert_allclose(scheduled.curve["lam_now"], 0.3, rtol=1e-6)
    for column in ("train_loss", "l2_norm_sq"):
        np.testing.assert_allclose(scheduled.curve[column], fixed.curve[column], rtol=1e-5)
    without = train(dataclasses.replace(base, lam=0.0))  # the decay matters at this λ
    assert not np.allclose(without.curve["l2_norm_sq"], fixed.curve["l2_norm_sq"], rtol=1e-2)
