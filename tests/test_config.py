import dataclasses
import math

import pytest

from l2dynamics.config import (
    TRAIN_SET_SIZES,
    DataConfig,
    TrainConfig,
    adam_options,
    budget_epochs,
    field_default,
    from_dict,
    timescale_epochs,
    timescale_steps,
    train_set_size,
    validate,
    validate_for_data,
)
from l2dynamics.errors import ConfigError


def test_budget_rules():
    assert budget_epochs(TrainConfig(eta=0.5, lam=0.01, budget_c=2.0)) == pytest.approx(400)
    capped = TrainConfig(eta=0.5, lam=1e-6, budget_c=2.0, max_epochs=100)
    assert budget_epochs(capped) == 100
    assert budget_epochs(TrainConfig(budget_epochs=7.5)) == 7.5
    assert budget_epochs(TrainConfig(lam=0.0, budget_c=2.0, max_epochs=50)) == 50


@pytest.mark.parametrize(
    "kwargs,culprit",
    [
        ({"eta": 0.0, "budget_epochs": 1}, "eta"),
        ({"eta": -1.0, "budget_epochs": 1}, "eta"),
        ({"lam": -0.1, "budget_epochs": 1}, "lam"),
        ({"budget_epochs": 0.0}, "budget_epochs"),
        ({"budget_epochs": -3.0}, "budget_epochs"),
        ({"budget_c": -1.0}, "budget_c"),
        ({"lam": 0.0, "budget_c": 2.0}, "lam = 0"),
        ({}, "no budget"),
        ({"budget_epochs": 1, "momentum": 1.0}, "momentum"),
        ({"budget_epochs": 1, "batch_size": 0}, "batch_size"),
        ({"budget_epochs": 1, "loss": "hinge"}, "loss"),
        ({"budget_epochs": 1, "lr_schedule": "cosine"}, "lr_schedule"),
        ({"budget_epochs": 1, "measure": "sometimes"}, "measure"),
        ({"budget_epochs": 1, "budget_c": 1.0}, "not both"),
    ],
)
def test_validate_names_the_culprit(kwargs, culprit):
    with pytest.raises(ConfigError, match=culprit):
        validate(TrainConfig(**kwargs))


def test_from_dict_builds_nested_and_coerces_ints():
    cfg = from_dict(
        TrainConfig,
        {
            "eta": 1,
            "lam": 0.01,
            "budget_c": 2,
            "data": {"name": "digits", "n_train": 512},
            "model": {"name": "fc", "options": {"width": 64}},
        },
    )
    assert cfg.eta == 1.0 and isinstance(cfg.eta, float)
    assert cfg.data == DataConfig(name="digits", n_train=512)
    assert cfg.model.options == {"width": 64}


@pytest.mark.parametrize(
    "values,culprit",
    [
        ({"etaa": 0.1}, "unknown key 'etaa'"),
        ({"data": {"nme": "digits"}}, "unknown key 'data.nme'"),
        ({"eta": "fast"}, "eta: expected float"),
        ({"data": {"n_train": 5.5}}, "data.n_train: expected int or NoneType"),
        ({"data": {"balanced": 1}}, "data.balanced: expected bool"),
        ({"data": 3}, "data: expected a table"),
    ],
)
def test_from_dict_rejects_bad_keys_and_types(values, culprit):
    with pytest.raises(ConfigError, match=culprit):
        from_dict(TrainConfig, values)


@dataclasses.dataclass(frozen=True)
class Numbers:
    """A config with tuple fields and no defaults, as an experiment file fills one."""

    widths: tuple[int, ...]
    span: tuple[float, float]
    lam: float


def test_from_dict_makes_tuples_requires_fields_without_defaults_and_overrides_a_base():
    cfg = from_dict(Numbers, {"widths": [16, 64], "span": [1, 2.5], "lam": 2})
    assert cfg == Numbers((16, 64), (1.0, 2.5), 2.0)
    assert repr(cfg.span) == "(1.0, 2.5)" and repr(cfg.lam) == "2.0"  # ints widened
    over = from_dict(Numbers, {"widths": [8]}, prefix="cpu.", base=cfg)
    assert over == Numbers((8,), (1.0, 2.5), 2.0)
    with pytest.raises(ConfigError, match="missing key 'paper.lam'"):
        from_dict(Numbers, {"widths": [1], "span": [1, 2]}, prefix="paper.")


@pytest.mark.parametrize(
    "values,culprit",
    [
        ({"widthz": [1]}, "unknown key 'cpu.widthz'"),
        ({"widths": 16}, "cpu.widths: expected a list"),
        ({"widths": [16, 2.5]}, r"cpu.widths\[1\]: expected int"),
        ({"span": [1.0]}, "cpu.span: expected 2 values"),
        ({"lam": [2.0]}, "cpu.lam: expected float"),
    ],
)
def test_from_dict_names_a_bad_tuple_or_unknown_override(values, culprit):
    base = Numbers((1,), (0.0, 1.0), 1.0)
    with pytest.raises(ConfigError, match=culprit):
        from_dict(Numbers, values, prefix="cpu.", base=base)


def test_field_default_reads_the_dataclass():
    assert field_default(TrainConfig, "eta") == 0.1
    assert field_default(DataConfig, "standardize") is True
    with pytest.raises(KeyError, match="etta"):
        field_default(TrainConfig, "etta")
    with pytest.raises(KeyError, match="data"):
        field_default(TrainConfig, "data")  # a default_factory, not a plain default


def test_validate_says_finite_for_infinite_numbers():
    with pytest.raises(ConfigError, match=r"eta must be a finite number > 0 \(got inf\)"):
        validate(TrainConfig(eta=float("inf"), budget_epochs=1))


def test_config_errors_name_their_fields_and_rename_to_what_the_user_typed():
    with pytest.raises(ConfigError) as info:
        validate(TrainConfig(budget_epochs=0.0))
    assert info.value.fields == ("budget_epochs",)
    renamed = info.value.renamed({"budget_epochs": "--epochs"})
    assert str(renamed) == "--epochs must be a finite number > 0 (got 0.0)"
    assert renamed.fields == ()  # renamed once: a second edge leaves it alone
    # a field is renamed as a whole word only (lam is inside autol2_lam_pred)
    err = ConfigError("lam and autol2_lam_pred clash", "lam")
    assert str(err.renamed({"lam": "--lam"})) == "--lam and autol2_lam_pred clash"


@pytest.mark.parametrize(
    "kwargs,n_train,message",
    [
        ({"batch_size": 200, "budget_epochs": 1.0}, 100, "batch_size 200 is larger than"),
        ({"budget_epochs": 0.5}, 100, "budget_epochs: the budget of 0.5 epochs"),
        ({"eta": 1e6, "lam": 1e-3, "budget_c": 2.0}, 100, "budget_c: the budget"),
        ({"lam": 0.0, "budget_c": 2.0, "max_epochs": 0.1}, 100, "max_epochs: the budget"),
    ],
)
def test_validate_for_data_refuses_a_batch_over_n_and_a_budget_under_one_step(
    kwargs, n_train, message
):
    cfg = validate(TrainConfig(**kwargs))
    with pytest.raises(ConfigError, match=message):
        validate_for_data(cfg, n_train)


def test_validate_for_data_accepts_one_step_exactly_and_short_budgets_on_request():
    validate_for_data(TrainConfig(batch_size=10, budget_epochs=0.1), 100)  # 1 step
    short = TrainConfig(eta=1e6, lam=1e-3, budget_c=2.0)
    assert validate_for_data(short, 100, short_budget=True) is short


# --- the optimizers: options, their checks, the timescale (SPEC §6) ---------------------------


@pytest.mark.parametrize(
    "kwargs,field,message",
    [
        ({"optimizer": "lion"}, "optimizer", "unknown optimizer 'lion' (choose from sgd, sgdw, "),
        ({"optimizer": "adam", "beta1": 1.0}, "beta1", "beta1 must be in [0, 1) (got 1.0)"),
        ({"optimizer": "adamw", "beta2": -0.1}, "beta2", "beta2 must be in [0, 1) (got -0.1)"),
        ({"optimizer": "adamw", "beta1": math.nan}, "beta1", "beta1 must be in [0, 1) (got nan)"),
        ({"optimizer": "adam", "eps": 0.0}, "eps", "eps must be a finite number > 0 (got 0.0)"),
        ({"optimizer": "adamw", "eps": math.inf}, "eps", "eps must be a finite number > 0"),
        ({"beta1": 0.9}, "beta1", "beta1 is not an option of optimizer 'sgd' (it takes momentum)"),
        ({"optimizer": "sgdw", "eps": 1e-8}, "eps", "eps is not an option of optimizer 'sgdw'"),
        (
            {"optimizer": "adam", "momentum": 0.9},
            "momentum",
            "momentum is not an option of optimizer 'adam' (it takes beta1, beta2, eps)",
        ),
        ({"optimizer": "adamw", "momentum": 0.5}, "momentum", "not an option of optimizer 'adamw'"),
        ({"optimizer": "adamw", "convention": "script"}, "convention", "convention 'script' "),
        ({"optimizer": "sgdw", "convention": "script"}, "convention", "'sgdw' decays the weights"),
    ],
)
def test_bad_optimizer_settings_are_one_line_naming_the_field(kwargs, field, message):
    with pytest.raises(ConfigError) as info:
        validate(TrainConfig(budget_epochs=1.0, **kwargs))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert info.value.fields[0] == field


def test_each_optimizer_accepts_its_own_options_and_adam_defaults_are_optaxs():
    given = {"beta1": 0.5, "beta2": 0.9, "eps": 1e-6}
    for cfg in (
        TrainConfig(budget_epochs=1.0, optimizer="sgdw", momentum=0.9),
        TrainConfig(budget_epochs=1.0, optimizer="adam", convention="script", **given),
        TrainConfig(budget_epochs=1.0, optimizer="adamw", **given),
        TrainConfig(budget_epochs=1.0, optimizer="adamw", beta1=0.0),  # β = 0 is allowed
    ):
        assert validate(cfg) is cfg
    assert adam_options(TrainConfig(optimizer="adamw")) == (0.9, 0.999, 1e-8)
    assert adam_options(TrainConfig(optimizer="adam", beta2=0.95)) == (0.9, 0.95, 1e-8)


def test_timescale_per_optimizer_in_steps_and_epochs():
    """τ_iter = 1/(decay per step): η·λ decoupled, η·s·λ/(1−μ) for coupled SGD (s = 2 in the
    script convention), the nominal η·s·λ for Adam; τ_epoch = τ_iter·B/N."""
    eta, lam = 0.2, 0.01
    data = DataConfig("digits", n_train=512)
    cases = {
        ("sgd", 0.0, "sm"): 1 / (eta * lam),
        ("sgd", 0.9, "sm"): 0.1 / (eta * lam),
        ("sgd", 0.9, "script"): 0.1 / (2 * eta * lam),
        ("sgdw", 0.9, "sm"): 1 / (eta * lam),
        ("adam", 0.0, "sm"): 1 / (eta * lam),
        ("adam", 0.0, "script"): 1 / (2 * eta * lam),
        ("adamw", 0.0, "sm"): 1 / (eta * lam),
    }
    for (optimizer, momentum, convention), want in cases.items():
        cfg = TrainConfig(data=data, eta=eta, lam=lam, optimizer=optimizer, momentum=momentum,
                          convention=convention, batch_size=128)  # fmt: skip
        assert timescale_steps(cfg) == pytest.approx(want, rel=1e-12)
        assert timescale_epochs(cfg) == pytest.approx(want / 4, rel=1e-12)  # 4 steps per epoch
    assert timescale_steps(TrainConfig(lam=0.0)) == math.inf
    full = TrainConfig(eta=eta, lam=lam, data=DataConfig("digits"), batch_size=100)
    assert timescale_epochs(full) == pytest.approx(timescale_steps(full) * 100 / 1297)
    assert timescale_epochs(dataclasses.replace(full, batch_size=None)) == timescale_steps(full)


def test_train_set_sizes_are_the_loaders():
    from l2dynamics.data import load_dataset

    assert load_dataset("digits").n_train == TRAIN_SET_SIZES["digits"]
    assert train_set_size(DataConfig("mnist", n_train=512)) == 512
    assert train_set_size(DataConfig("cifar10")) == 50_000
