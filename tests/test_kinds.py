"""The registry of sweep-figure kinds: every kind an experiment file names is registered once,
an unknown kind is a ConfigError, and the topic modules never import the package's names (no
import cycle through ``kinds/__init__``)."""

import ast
import importlib
from pathlib import Path

import pytest

import l2dynamics.experiments.kinds as kinds_package
from l2dynamics.errors import ConfigError
from l2dynamics.experiments.kinds import KINDS, TSTAR_KINDS, analyse
from l2dynamics.experiments.spec import experiment_names, load_experiment
from sweep_frames import experiment

KINDS_SRC = Path(kinds_package.__file__).parent


def test_every_experiment_files_kind_is_registered():
    assert set(KINDS) == {
        "scaling",
        "autol2",
        "fixed_budget",
        "time_to_fit",
        "catapult",
        "curves",
        "sigma_w",
        "equilibrium",
    }
    used = {load_experiment(name, "cpu", "/nowhere").kind for name in experiment_names()}
    assert used <= set(KINDS)


def test_the_kinds_declared_to_hold_t_star_are_those_that_build_the_run_table():
    """TSTAR_KINDS (whose reports get the small-test-set note on t* and accuracies) is true to
    the code: a kind is in it exactly when its module computes the run table, where t* and the
    best accuracies come from."""
    assert set(KINDS) >= TSTAR_KINDS and "equilibrium" not in TSTAR_KINDS
    for name, fn in KINDS.items():
        module = importlib.import_module(fn.__module__)
        builds = "run_table(" in Path(module.__file__).read_text(encoding="utf-8")
        assert builds == (name in TSTAR_KINDS), name


def test_an_unknown_kind_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown kind 'nope'"):
        analyse(experiment("nope"), None, None, tmp_path)


@pytest.mark.parametrize(
    "source", sorted(p for p in KINDS_SRC.glob("*.py") if p.name != "__init__.py"), ids=str
)
def test_topic_modules_import_the_base_module_not_the_package(source):
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ImportFrom):
            assert node.module != "l2dynamics.experiments.kinds", source.name
            assert node.level == 0, source.name  # absolute imports only
        elif isinstance(node, ast.Import):
            assert all(a.name != "l2dynamics.experiments.kinds" for a in node.names)
