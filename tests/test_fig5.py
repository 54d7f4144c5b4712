import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from l2dynamics.errors import ConfigError
from l2dynamics.experiments import runner
from l2dynamics.experiments.base import ReproduceRequest
from l2dynamics.experiments.fig5 import CONFIGS, load_images, run, run_config


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
