"""Predicting λ for a budget (SPEC §2.3): the math, one calibration run, the CLI, bad input."""

import dataclasses
import json
import math

import numpy as np
import pytest

from l2dynamics.analysis.fits import c_from_run
from l2dynamics.config import (
    DataConfig,
    ModelConfig,
    TrainConfig,
    timescale_epochs,
    timescale_steps,
)
from l2dynamics.errors import ConfigError
from l2dynamics.predict import calibration_config, predict_l2, prediction_from_run
from l2dynamics.results import near_peak
from l2dynamics.train.run import result_of, train

# A tiny setup whose calibration at λ = 0.05, η = 1 peaks after ~16 epochs and is stopped at
# ~3·t* (about 50 full-batch steps).
BASE = TrainConfig(
    data=DataConfig("digits", n_train=128, n_test=300),
    model=ModelConfig("fc", {"depth": 2, "width": 32}),
    eta=1.0,
    measure_resolution=0.1,
)
CAL_LAM = 0.05
T = 200.0


# -- the math, on hand-made curves (no training) --------------------------------------------


def _result(eta: float, lam: float, peak_epoch: int, epochs: int = 40, status: str = "done"):
    """A RunResult whose test accuracy peaks at ``peak_epoch`` (one full-batch step = 1 epoch)."""
    cfg = TrainConfig(eta=eta, lam=lam, budget_epochs=float(epochs), peak_stop=3.0)
    rows = []
    for s in range(epochs + 1):
        acc = 0.9 - 0.01 * abs(s - peak_epoch)
        rows.append(
            {
                "step": s,
                "epoch": float(s),
                "time": eta * s,
                "tau": eta * lam * s,
                "train_loss": 0.1,
                "train_acc": 1.0,
                "test_loss": 0.2,
                "test_acc": acc,
                "l2_norm_sq": 1.0,
                "eta_now": eta,
                "lam_now": lam,
            }
        )
    diverged = epochs if status == "diverged" else None
    return result_of(cfg, rows, epochs + 10, float(epochs + 10), diverged, 1.0, epochs, 500)


@pytest.mark.parametrize(
    "eta,lam,peak,budget,eta_plan",
    [(1.0, 0.01, 20, 1000.0, None), (0.5, 0.02, 7, 250.0, None), (0.2, 0.01, 33, 80.0, 0.8)],
)
def test_lambda_pred_is_c_over_eta_t(eta, lam, peak, budget, eta_plan):
    result = _result(eta, lam, peak)
    p = prediction_from_run(result, budget, eta=eta_plan)
    planned = eta if eta_plan is None else eta_plan
    near = near_peak(result.curve["epoch"], result.curve["test_acc"], 500)
    assert p.t_star_first_max == peak and p.c_first_max == pytest.approx(peak * eta * lam)
    assert (p.t_star_epochs, p.t_star_interval) == (near.t_star, (near.lo, near.hi))
    assert near.lo <= peak <= near.hi  # the tent's top lies in its near-peak interval
    assert p.c == pytest.approx(near.t_star * eta * lam) == c_from_run(near.t_star, eta, lam)
    assert p.c_interval == pytest.approx((near.lo * eta * lam, near.hi * eta * lam))
    lo, hi = p.lam_pred_interval
    assert lo == pytest.approx(p.c_interval[0] / (planned * budget)) and lo <= p.lam_pred <= hi
    assert p.c_paper == pytest.approx(p.c / eta)  # the paper's c = t*·λ at the calibration η
    assert p.lam_pred == pytest.approx(p.c / (planned * budget))
    assert p.lam_pred_2c == pytest.approx(2 * p.lam_pred)
    # the defining property: the law t* = c/(η·λ) puts the predicted λ's peak at the budget
    assert p.c / (planned * p.lam_pred) == pytest.approx(budget)
    assert p.cal_epochs == 40 and p.cost_fraction == pytest.approx(40 / budget)
    assert p.peak_passed and p.eta == planned and p.cal_lam == lam


def test_a_capped_calibration_is_flagged_and_a_diverged_one_refused():
    at_cap = _result(1.0, 0.01, 40, epochs=40)
    at_cap = dataclasses.replace(at_cap, stopped_at_peak=False)
    p = prediction_from_run(at_cap, 100.0)
    assert not p.peak_passed and any("lower bound" in n for n in p.notes)
    with pytest.raises(ConfigError, match="diverged"):
        prediction_from_run(_result(1.0, 0.01, 5, status="diverged"), 100.0)


@pytest.mark.parametrize("budget", [0.0, -5.0, math.inf, math.nan])
def test_bad_budget_is_refused_before_training(budget):
    with pytest.raises(ConfigError, match="budget_epochs"):
        predict_l2(BASE, budget)


@pytest.mark.parametrize("lam", [0.0, -0.01])
def test_bad_calibration_lambda_is_refused(lam):
    with pytest.raises(ConfigError, match="lam"):
        predict_l2(BASE, T, lam=lam)


def test_calibration_config_replaces_budget_schedule_and_autol2():
    base = dataclasses.replace(
        BASE, lam=0.0, budget_epochs=5.0, lr_schedule="step", autol2=True, momentum=0.9
    )
    cfg = calibration_config(base, lam=0.02, max_c=2.0, max_epochs=30.0, peak_stop=2.5)
    assert (cfg.lam, cfg.budget_c, cfg.max_epochs, cfg.peak_stop) == (0.02, 2.0, 30.0, 2.5)
    assert cfg.budget_epochs is None and cfg.lr_schedule == "constant" and not cfg.autol2
    assert cfg.momentum == 0.9 and cfg.data == BASE.data and cfg.model == BASE.model


@pytest.mark.parametrize(
    "optimizer,eta,lam",
    [("sgd", 0.1, 0.01), ("sgdw", 0.5, 0.01), ("adam", 1e-3, 1.0), ("adamw", 4e-3, 0.25)],
)
def test_the_default_calibration_lambda_follows_the_optimizer(optimizer, eta, lam):
    """The SGDs calibrate at the authors' λ; the Adams at η·λ = 1e-3 (τ_iter = 1,000 steps)."""
    base = dataclasses.replace(BASE, optimizer=optimizer, eta=eta)
    cfg = calibration_config(base)
    assert cfg.lam == pytest.approx(lam) and cfg.optimizer == optimizer
    if optimizer.startswith("adam"):
        assert timescale_steps(cfg) == pytest.approx(1000.0)


@pytest.mark.parametrize("optimizer,momentum", [("sgd", 0.9), ("sgdw", 0.9), ("adamw", 0.0)])
def test_the_prediction_in_the_optimizers_timescale(optimizer, momentum):
    """t*/τ_epoch of the calibration, and the planned run's τ_epoch at λ_pred is T/(t*/τ_epoch):
    λ_pred = c/(η·T) puts the peak at T under t* ∝ τ_epoch for every optimizer."""
    result = _result(0.2, 0.01, 20)
    cfg = dataclasses.replace(result.config, optimizer=optimizer, momentum=momentum)
    result = dataclasses.replace(result, config=cfg)
    p = prediction_from_run(result, 400.0, eta=0.1)
    assert p.optimizer == optimizer
    assert p.c_tau_epoch == pytest.approx(p.t_star_epochs / timescale_epochs(cfg))
    assert p.tau_epoch_pred == pytest.approx(400.0 / p.c_tau_epoch)
    planned = dataclasses.replace(cfg, eta=0.1, lam=p.lam_pred)
    assert p.c_tau_epoch * timescale_epochs(planned) == pytest.approx(400.0)
    assert p.lam_pred == pytest.approx(p.c / (0.1 * 400.0))  # the same λ as SGD's rule


def test_a_coupled_adam_calibration_says_its_timescale_is_nominal():
    result = _result(1e-3, 1.0, 20)
    cfg = dataclasses.replace(result.config, optimizer="adam")
    p = prediction_from_run(dataclasses.replace(result, config=cfg), 400.0)
    assert any("nominal" in n for n in p.notes)
    assert not any("nominal" in n for n in prediction_from_run(result, 400.0).notes)


# -- one real calibration on tiny digits ------------------------------------------------------


@pytest.fixture(scope="module")
def calibration():
    return train(calibration_config(BASE, lam=CAL_LAM))


def test_calibration_stops_past_its_peak_and_measures_c(calibration):
    r = calibration
    p = prediction_from_run(r, T)
    acc, epochs = r.curve["test_acc"], r.curve["epoch"]
    t_star = float(epochs[int(np.argmax(acc))])
    assert p.peak_passed and 0 < p.t_star_first_max == t_star
    assert epochs[-1] >= 3.0 * t_star and acc[-1] <= acc.max() - 0.01  # the stop rule held
    assert near_peak(epochs, acc, BASE.data.n_test).settled  # and the near-peak interval settled
    assert p.t_star_interval[0] <= p.t_star_epochs <= p.t_star_interval[1]
    assert p.cal_epochs == epochs[-1] < 4.0 / (BASE.eta * CAL_LAM)  # before the cap
    assert p.c == pytest.approx(p.t_star_epochs * BASE.eta * CAL_LAM)
    assert p.lam_pred == pytest.approx(p.c / (BASE.eta * T))
    assert p.cost_fraction == pytest.approx(p.cal_epochs / T)
    assert 0 <= p.t_star_resolution <= BASE.measure_resolution + 1e-9


def test_predict_l2_is_the_calibration_run_plus_the_math(calibration):
    p = predict_l2(BASE, T, lam=CAL_LAM)
    expected = prediction_from_run(calibration, T)
    assert dataclasses.replace(p, wall_s=0.0) == dataclasses.replace(expected, wall_s=0.0)


# -- the command line -------------------------------------------------------------------------

TINY = [
    "predict-l2",
    "--budget-epochs",
    "200",
    "--data",
    "digits",
    "--n-train",
    "128",
    "--n-test",
    "300",
    "--depth",
    "2",
    "--width",
    "32",
    "--eta",
    "1.0",
    "--lam",
    str(CAL_LAM),
    "--measure-resolution",
    "0.1",
    "--quiet",
]


def test_cli_json_matches_the_library(run_cli, calibration):
    code, stdout, _ = run_cli([*TINY, "--json"])
    assert code in (0, None)
    out = json.loads(stdout)
    expected = prediction_from_run(calibration, T).to_dict()
    for key in ("c", "c_paper", "lam_pred", "lam_pred_2c", "t_star_epochs", "cal_epochs"):
        assert out[key] == pytest.approx(expected[key])
    assert out["cost_fraction"] == pytest.approx(out["cal_epochs"] / 200)
    assert out["peak_passed"] is True and out["eta"] == 1.0 and out["cal_lam"] == CAL_LAM


def _sweep_file(tmp_path, etas):
    path = tmp_path / "s.toml"
    path.write_text(
        '[data]\nname = "digits"\nn_train = 128\nn_test = 300\n'
        '[model]\nname = "fc"\noptions = { depth = 1, width = 16 }\n'
        "[train]\nmeasure_resolution = 0.2\n"
        f"[grid]\neta = {etas}\nlam = [1e-3]\n[budget]\nepochs = 10\n"
    )
    return path


def test_cli_calibrates_adamw_at_its_own_default_lambda(run_cli):
    """`predict-l2 --optimizer adamw`: a real AdamW calibration at λ = 1e-3/η."""
    argv = [a for a in TINY if a not in ("--lam", str(CAL_LAM))]
    argv[argv.index("--eta") + 1] = "0.01"
    code, stdout, _ = run_cli([*argv, "--optimizer", "adamw", "--beta2", "0.99", "--json"])
    assert code in (0, None)
    out = json.loads(stdout)
    assert out["optimizer"] == "adamw" and out["cal_lam"] == pytest.approx(0.1)
    assert out["lam_pred"] == pytest.approx(out["c"] / (0.01 * 200))
    assert out["tau_epoch_pred"] == pytest.approx(200 / out["c_tau_epoch"])


def test_cli_sweep_file_sets_the_setup(run_cli, tmp_path, monkeypatch, calibration):
    seen = []

    def fake_train(cfg, **kwargs):  # record the calibration's config; reuse a real run
        seen.append(cfg)
        return calibration

    monkeypatch.setattr("l2dynamics.predict.train", fake_train)
    argv = ["predict-l2", "--budget-epochs", "50", "--sweep", str(_sweep_file(tmp_path, [0.5]))]
    code, stdout, _ = run_cli([*argv, "--max-epochs", "4", "--seed", "3", "--json", "--quiet"])
    assert code in (0, None) and len(seen) == 1
    cfg = seen[0]
    assert (cfg.eta, cfg.lam, cfg.seed, cfg.max_epochs, cfg.budget_c) == (0.5, 0.01, 3, 4.0, 4.0)
    assert cfg.data.n_train == 128 and dict(cfg.model.options) == {"depth": 1, "width": 16}
    assert cfg.measure_resolution == 0.2 and cfg.peak_stop == 3.0 and cfg.budget_epochs is None
    assert json.loads(stdout)["eta"] == 0.5  # λ_pred is for the sweep's η


def _one_line_exit_2(code, stdout, stderr, culprit):
    lines = stderr.strip().splitlines()
    assert code == 2 and stdout == ""
    assert len(lines) == 1 and lines[0].startswith("l2dyn: error:") and culprit in lines[0]


@pytest.mark.parametrize(
    "extra,culprit",
    [
        (["--budget-epochs", "0"], "--budget-epochs"),
        (["--budget-epochs", "-10"], "--budget-epochs"),
        (["--budget-epochs", "soon"], "budget-epochs"),
        (["--lam", "0"], "--lam"),
        (["--lam", "-0.01"], "--lam"),
        (["--eta", "0"], "eta"),
        (["--peak-stop", "1"], "--peak-stop"),
        (["--budget-c", "0"], "--budget-c"),
        (["--max-epochs", "-1"], "--max-epochs"),
        (["--epochs", "5"], "--epochs"),  # a train option predict-l2 does not take
        (["--optimizer", "lion"], "optimizer"),
        (["--optimizer", "adamw", "--beta1", "1"], "beta1"),
        (["--optimizer", "adamw", "--eps", "0"], "eps"),
        (["--beta1", "0.9"], "beta1"),  # sgd takes no β₁
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(run_cli, extra, culprit):
    _one_line_exit_2(*run_cli([*TINY, *extra]), culprit)


def test_cli_needs_a_budget(run_cli):
    argv = [a for a in TINY if a not in ("--budget-epochs", "200")]
    _one_line_exit_2(*run_cli(argv), "--budget-epochs")


@pytest.mark.parametrize(
    "etas,extra,culprit",
    [([0.5, 1.0], [], "--eta"), ([0.5], ["--depth", "3"], "--depth")],
)
def test_cli_sweep_file_conflicts(run_cli, tmp_path, etas, extra, culprit):
    argv = ["predict-l2", "--budget-epochs", "50", "--sweep", str(_sweep_file(tmp_path, etas))]
    _one_line_exit_2(*run_cli([*argv, *extra, "--quiet"]), culprit)


def test_calibration_defaults_are_one_set_of_constants():
    """predict_l2, calibration_config and `l2dyn predict-l2` share config's constants."""
    import inspect

    from l2dynamics import cli, config, predict

    wanted = {"lam": None, "peak_stop": config.PEAK_STOP, "max_c": config.MAX_C}  # None: below
    for fn in (predict.predict_l2, predict.calibration_config):
        params = inspect.signature(fn).parameters
        assert {k: params[k].default for k in wanted} == wanted
    options = {p.name: p.default for p in cli.app.commands["predict-l2"].params}
    assert options["lam"] is None and options["peak_stop"] == config.PEAK_STOP
    assert options["budget_c"] == config.MAX_C  # --budget-c is the calibration's max_c
