"""The AutoL2 validation script end to end on a tiny setting (the real settings are long)."""

import importlib.util
from pathlib import Path

import pandas as pd

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "validate_autol2.py"
TINY = """
seeds = [0, 1]
fixed_lam = [1e-3, 1e-2]
[settings.tiny]
data = { name = "digits", n_train = 64, n_test = 100 }
model = { name = "fc", options = { depth = 1, width = 16 } }
train = { batch_size = 32 }
eta = 0.5
epochs = 8
"""


def load_script():
    spec = importlib.util.spec_from_file_location("validate_autol2", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_script_trains_every_variant_and_pairs_them_by_seed(tmp_path):
    script = load_script()
    settings = tmp_path / "s.toml"
    settings.write_text(TINY)
    argv = ["--settings", str(settings), "--stores", str(tmp_path / "stores")]
    assert script.main([*argv, "--out", str(tmp_path / "out")]) == 0
    table = pd.read_csv(tmp_path / "out" / "autol2_validation.csv")
    assert list(table["autol2"]) == list(script.AUTOL2_VARIANTS) and set(table["seeds"]) == {2}
    runs = pd.concat(
        script.load_runs(tmp_path / "stores" / f"tiny-{v}.sqlite") for v in script.VARIANTS
    )
    fixed = runs[runs["lam"] > 0].groupby("lam")["best_test_acc"].mean()
    assert table["best_fixed_lam"].iloc[0] == fixed.idxmax()
    assert table["best_fixed_acc"].iloc[0] == round(fixed.max(), 4)
    auto = runs[runs["lam"] == 0].sort_values("seed")  # AutoL2 runs: lam 0 = the preset's start
    assert len(auto) == 2 * len(script.AUTOL2_VARIANTS)
    paper = table.set_index("autol2").loc["autol2-paper"]
    assert (paper["autol2_start_lam"], paper["autol2_final_lam"] <= 0.1) == (0.1, True)
    assert (tmp_path / "out" / "autol2_validation.md").stat().st_size > 0
