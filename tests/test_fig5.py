import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from l2dynamics.errors import ConfigError
from l2dynamics.experiments import FIGURES, runner
from l2dynamics.experiments.base import ReproduceRequest
from l2dynamics.experiments.fig5 import load_configs, load_images, run, run_config
from l2dynamics.experiments.spec import file_path

CONFIGS = load_configs()


def test_tiny_end_to_end_writes_every_output(tmp_path):
    messages = []
    request = ReproduceRequest(
        "fig5", "tiny", tmp_path, progress=lambda u: messages.append((u.status, u.done, u.total))
    )
    summary = run_config(request, CONFIGS["tiny"])
    for name in ("fig5.png", "summary.json", "report.html", "width_table.csv", "panel_c.csv"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert json.loads((tmp_path / "summary.json").read_text())["panel_c"] == summary["panel_c"]
    assert "data:image/png;base64" in (tmp_path / "report.html").read_text()
    assert messages[-1] == ("done", 1, 1)
    # The checks that hold at any size.
    assert summary["eq3_vs_ode"]["passed"]
    assert summary["deep_linear"]["within_1pct"]
    assert summary["panel_ab"]["k2_max_abs_f_at_t_last"] < 1e-6
    assert summary["panel_ab"]["k1_max_error_vs_limit"] < 1e-6
    assert [row["fitted_k"] for row in summary["homogeneity"]] == [pytest.approx(3, abs=1e-4)]
    table = pd.read_csv(tmp_path / "width_table.csv")
    assert list(table["width"]) == sorted(CONFIGS["tiny"].widths)
    assert summary["panel_c"]["closer_to"] in ("k=1", "k=2")
    outputs = pd.read_csv(tmp_path / "panel_c.csv")
    first = outputs[outputs["t"] == 0]
    np.testing.assert_allclose(first["k1"], first["trained"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(first["k2"], first["trained"], rtol=1e-5, atol=1e-6)


def test_run_accepts_only_the_cli_scales(tmp_path):
    assert runner("fig5") is run
    with pytest.raises(ConfigError, match="tiny"):
        run(ReproduceRequest("fig5", "tiny", tmp_path))


def test_scales_train_for_the_stated_physical_time():
    for name in ("cpu", "paper"):
        cfg = CONFIGS[name]
        assert cfg.steps * cfg.eta == pytest.approx(cfg.t_max, rel=0.05)
        assert cfg.steps % (cfg.segments * cfg.record_every) == 0
        assert cfg.kernel_width == 5000 and cfg.n_train == 200 and cfg.dataset == "mnist"
    assert max(CONFIGS["paper"].widths) == 100_000
    assert CONFIGS["paper"].lam / CONFIGS["paper"].n_train == pytest.approx(0.01)


def test_mnist_images_and_even_odd_targets(shared_data):
    cfg = dataclasses.replace(CONFIGS["tiny"], dataset="mnist", n_train=20)
    x, y = load_images(cfg, str(shared_data))
    assert x.shape == (20, 784)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert sorted(set(y.tolist())) == [-1.0, 1.0] and y.sum() == 0  # balanced digits


# The configs as the Python code defined them before they moved to files/fig5.toml (commit
# 261aa2f, fig5.CONFIGS), written out: the file must reproduce them exactly, types included.
PAPER = {
    "theory_lam": 0.01,
    "eigenvalues": (0.001, 0.01, 0.1, 1.0, 10.0),
    "theory_t": (0.01, 3000.0),
    "dataset": "mnist",
    "n_train": 200,
    "seed": 0,
    "kernel_width": 5000,
    "widths": (1000, 5000, 20000, 100000),
    "lam": 2.0,
    "eta": 0.001,
    "t_max": 1.5,
    "segments": 10,
    "record_every": 10,
    "probes": 32,
    "block_size": 32,
    "ode_size": 16,
    "ode_kernels": 2,
    "ode_lam": 0.01,
    "ode_t": 5.0,
    "homogeneity_width": 64,
    "homogeneity_layers": (1, 2, 3, 4),
    "linear_ns": (10, 100, 1000, 10000),
    "linear_c": (0.1, 0.3, 0.5, 0.7, 0.9, 1.25, 2.0),
}
BEFORE = {
    "paper": PAPER,
    "cpu": PAPER
    | {"widths": (250, 1000, 4000, 16000), "eta": 0.0025, "segments": 8, "record_every": 5},
    "tiny": PAPER
    | {
        "eigenvalues": (0.1, 10.0),
        "dataset": "digits",
        "n_train": 24,
        "kernel_width": 64,
        "widths": (16, 64),
        "eta": 0.01,
        "t_max": 0.4,
        "segments": 2,
        "record_every": 5,
        "probes": 8,
        "ode_size": 6,
        "ode_kernels": 1,
        "ode_t": 2.0,
        "homogeneity_width": 8,
        "homogeneity_layers": (3,),
        "linear_ns": (10,),
        "linear_c": (0.5, 2.0),
    },
}


@pytest.mark.parametrize("scale", ["paper", "cpu", "tiny"])
def test_the_file_gives_the_numbers_the_python_config_had(scale):
    got = dataclasses.asdict(CONFIGS[scale])
    assert repr(got) == repr(BEFORE[scale])  # repr: 2.0 is not 2, a tuple is not a list
    assert CONFIGS[scale].steps == {"paper": 1500, "cpu": 600, "tiny": 40}[scale]


def test_fig5_file_names_its_own_runner_not_the_sweep_runner():
    assert FIGURES["fig5"] == "l2dynamics.experiments.fig5:run"
    assert "[sweep" not in file_path("fig5").read_text()


@pytest.mark.parametrize(
    ("edit", "culprit"),
    [
        (("[cpu]\n", "[cpu]\nwidthz = [1]\n"), "unknown key 'cpu.widthz'"),
        (("[config]\n", "[config]\nlamda = 1.0\n"), "unknown key 'config.lamda'"),
        (("[tiny]\n", "[huge]\n"), r"unknown table \[huge\]"),
        (('runner = "', 'runnr = "'), "unknown key 'experiment.runnr'"),
        (("eta = 0.0025", "eta = [0.0025]"), "cpu.eta: expected float"),
        (("widths = [16, 64]", "widths = [16, 6.4]"), r"tiny.widths\[1\]: expected int"),
        (("theory_t = [0.01, 3000.0]", "theory_t = [0.01]"), "config.theory_t: expected 2"),
        (("seed = 0", "# seed = 0"), "missing key 'config.seed'"),
    ],
)
def test_the_file_is_validated_naming_the_key(edit, culprit):
    text = file_path("fig5").read_text()
    assert edit[0] in text
    with pytest.raises(ConfigError, match=culprit):
        load_configs(text.replace(edit[0], edit[1], 1))
