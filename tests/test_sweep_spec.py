import dataclasses
import re
import tomllib

import pytest

from l2dynamics.errors import ConfigError
from l2dynamics.sweep.spec import load_sweep, parse_sweep, run_hash

BASE = """
name = "t"
[data]
name = "digits"
n_train = 64
[model]
name = "fc"
options = { depth = 1, width = 8 }
[train]
batch_size = 32
[grid]
eta = [0.1, 0.5]
lam = { log_min = 1e-3, log_max = 1e-1, num = 3, zero = true }
seeds = [0, 1]
[budget]
c = 0.5
max_epochs = 20
zero_lam_epochs = 7
"""


def test_grid_expands_eta_major_with_budgets():
    sweep = parse_sweep(tomllib.loads(BASE))
    assert len(sweep.runs) == 2 * 4 * 2
    first = sweep.runs[0]
    assert (first.eta, first.lam, first.seed) == (0.1, 0.0, 0)
    assert first.budget_epochs == 7 and first.budget_c is None
    lam_run = sweep.runs[2]
    assert lam_run.lam == pytest.approx(1e-3) and lam_run.budget_c == 0.5
    assert lam_run.max_epochs == 20
    assert len({run_hash(r) for r in sweep.runs}) == len(sweep.runs)


def test_hash_is_stable_and_config_sensitive():
    a = parse_sweep(tomllib.loads(BASE)).runs
    b = parse_sweep(tomllib.loads(BASE)).runs
    assert [run_hash(r) for r in a] == [run_hash(r) for r in b]
    c = parse_sweep(tomllib.loads(BASE.replace("n_train = 64", "n_train = 65"))).runs
    assert run_hash(a[0]) != run_hash(c[0])


def test_fields_added_later_enter_the_hash_only_when_set():
    """Runs stored by 0.1.0 keep their hashes: a field added since is left out at its default
    (the hash below is the fixture store's first run's, written by 0.1.0), and counts when set."""
    from pathlib import Path

    from l2dynamics.sweep.spec import LATER_FIELDS, config_dict

    run = load_sweep(Path(__file__).parent / "fixtures" / "store-v0.1.0.toml").runs[0]
    assert run_hash(run) == "412eda3e31c79af6"
    assert not set(LATER_FIELDS) & set(config_dict(run))
    set_one = dataclasses.replace(run, autol2_preset="paper")
    assert config_dict(set_one)["autol2_preset"] == "paper" and run_hash(set_one) != run_hash(run)


def test_runs_of_the_default_autol2_preset_name_its_rules_version():
    """A change of the default preset's rules changes its runs' hashes: a store never keeps a
    run trained under older rules as current. Other presets and fixed λ are unaffected."""
    from l2dynamics.config import AUTOL2_DEFAULT_RULES
    from l2dynamics.sweep.spec import config_dict

    run = parse_sweep(tomllib.loads(BASE)).runs[0]
    auto = dataclasses.replace(run, autol2=True, budget_c=None, budget_epochs=3.0)
    assert config_dict(auto)["autol2_default_rules"] == AUTOL2_DEFAULT_RULES
    assert "autol2_default_rules" not in config_dict(run)
    paper = dataclasses.replace(auto, autol2_preset="paper")
    assert "autol2_default_rules" not in config_dict(paper)


def test_runs_with_the_peak_aware_stop_name_its_rules_version():
    from l2dynamics.config import PEAK_STOP_RULES
    from l2dynamics.sweep.spec import config_dict

    run = parse_sweep(tomllib.loads(BASE)).runs[0]
    stopped = dataclasses.replace(run, peak_stop=3.0)
    assert config_dict(stopped)["peak_stop_rules"] == PEAK_STOP_RULES
    assert "peak_stop_rules" not in config_dict(run)


def test_a_sweep_file_reaches_every_autol2_option_and_the_convention():
    text = """
name = "t"
[data]
name = "digits"
[train]
autol2 = true
autol2_preset = "authors-code"
autol2_count_ties = false
autol2_start_refractory = true
autol2_initial_best_loss = 2.0
autol2_measure = "subset"
autol2_measure_size = 32
autol2_lam_pred = 1e-3
convention = "script"
[grid]
eta = [0.1]
lam = [0]
[budget]
epochs = 3
"""
    run = parse_sweep(tomllib.loads(text)).runs[0]
    got = (run.autol2_preset, run.autol2_count_ties, run.autol2_start_refractory,
           run.autol2_initial_best_loss, run.autol2_measure, run.autol2_measure_size,
           run.autol2_lam_pred, run.convention)  # fmt: skip
    assert got == ("authors-code", False, True, 2.0, "subset", 32, 1e-3, "script")


# Hashes computed once with the code of commit b493291, before the optimizer fields existed: a
# default run and an SGD-with-momentum run must keep them (their stores resume without retraining).
HASHES_BEFORE_OPTIMIZERS = {
    "default": "7ee2740d19b3a038",
    "mnist-momentum": "5ab71e1f93e80205",
}


def test_hashes_of_sgd_runs_are_unchanged_by_the_optimizer_fields():
    from l2dynamics.config import DataConfig, ModelConfig, TrainConfig
    from l2dynamics.sweep.spec import config_dict

    momentum = TrainConfig(
        data=DataConfig("mnist", n_train=512),
        model=ModelConfig("fc", {"width": 256}),
        eta=0.2,
        lam=0.001,
        momentum=0.9,
        batch_size=128,
        budget_c=2.0,
        seed=3,
    )
    assert run_hash(TrainConfig()) == HASHES_BEFORE_OPTIMIZERS["default"]
    assert run_hash(momentum) == HASHES_BEFORE_OPTIMIZERS["mnist-momentum"]
    adamw = dataclasses.replace(momentum, optimizer="adamw", momentum=0.0)
    assert config_dict(adamw)["optimizer"] == "adamw" and "beta1" not in config_dict(adamw)
    tuned = dataclasses.replace(adamw, beta2=0.95)
    assert len({run_hash(momentum), run_hash(adamw), run_hash(tuned)}) == 3


def test_a_sweep_file_sets_the_optimizer_and_its_options():
    text = BASE.replace("batch_size = 32", 'batch_size = 32\noptimizer = "adam"\nbeta2 = 0.99')
    run = parse_sweep(tomllib.loads(text)).runs[0]
    assert (run.optimizer, run.beta1, run.beta2, run.eps) == ("adam", None, 0.99, None)


@pytest.mark.parametrize(
    "old,new,culprit",
    [
        ('name = "t"', 'name = "t"\ncolour = 1', "unknown key 'colour'"),
        ("n_train = 64", "n_train = 64\nflavour = 2", "unknown key 'data.flavour'"),
        ("batch_size = 32", "batch_size = 32\nlr = 3", "unknown key 'lr'"),
        ("batch_size = 32", 'batch_size = "big"', "batch_size: expected int"),
        ("eta = [0.1, 0.5]", "eta = [0.1, -0.5]", "grid.eta[1]"),
        ("eta = [0.1, 0.5]", "eta = [0.1, 0.0]", "grid.eta[1]"),
        ("eta = [0.1, 0.5]", "eta = []", "grid.eta: empty grid"),
        ("eta = [0.1, 0.5]", 'eta = "fast"', "grid.eta"),
        ("num = 3", "num = 0", "grid.lam.num"),
        ("seeds = [0, 1]", "seeds = [-1]", "grid.seeds[0]"),
        ("c = 0.5", "c = -1.0", "budget.c"),
        ("zero_lam_epochs = 7", "", "budget.zero_lam_epochs"),
        ("width = 8", "width = 0", "width"),
        ("width = 8", "widht = 8", "widht"),
        ('name = "digits"', 'name = "digits"\nn_test = 0', "n_test"),
        ("batch_size = 32", "eta = 3.0", "train.eta"),
        ("batch_size = 32", 'optimizer = "lion"', "unknown train.optimizer 'lion'"),
        (
            "batch_size = 32",
            "beta1 = 0.9",
            "train.beta1 is not an option of optimizer 'sgd' (it takes train.momentum)",
        ),
        ("batch_size = 32", 'optimizer = "adamw"\neps = 0', "train.eps must be"),
    ],
)
def test_bad_sweep_names_the_field(old, new, culprit):
    with pytest.raises(ConfigError, match=re.escape(culprit)):
        parse_sweep(tomllib.loads(BASE.replace(old, new)))


def test_load_sweep_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="nope.toml"):
        load_sweep(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_sweep(bad)


def test_zero_lam_budget_as_physical_time():
    """λ = 0 runs of ``zero_lam_time = T`` train T/η epochs (the paper's 10⁶/η), capped."""
    text = BASE.replace("zero_lam_epochs = 7", "zero_lam_time = 3.0")
    runs = [r for r in parse_sweep(tomllib.loads(text)).runs if r.lam == 0]
    assert {(r.eta, r.budget_epochs) for r in runs} == {(0.1, 20.0), (0.5, 6.0)}
    with pytest.raises(ConfigError, match="budget.zero_lam_time"):
        parse_sweep(tomllib.loads(text.replace("zero_lam_time = 3.0", "zero_lam_time = -1")))
