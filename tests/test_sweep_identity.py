"""A store belongs to one sweep: other data, model, train or budget settings are refused
(nothing written); a changed grid is reported and can be told apart (status --current,
load_runs(current=True), model options as columns); old stores adopt an identity."""

import json
import shutil
from pathlib import Path

import pytest

from l2dynamics.sweep import RunStore, load_runs, load_sweep, run_sweep
from l2dynamics.sweep.spec import section_changes

SWEEP = """
name = "{name}"
[data]
name = "digits"
n_train = 64
n_test = 100
[model]
name = "fc"
options = {{ depth = 1, width = {width} }}
[train]
batch_size = 32
measure_resolution = 0.2
[grid]
eta = {etas}
lam = [0.01]
seeds = [0]
[budget]
epochs = {epochs}
"""


def sweep_file(path, name="s", width=8, etas="[0.2, 0.5]", epochs=1):
    path.write_text(SWEEP.format(name=name, width=width, etas=etas, epochs=epochs))
    return path


def snapshot(store):
    with RunStore(store, create=False) as s:
        return [(r.hash, r.status) for r in s.runs()], s.get_meta("sections")


@pytest.mark.parametrize(
    "change, culprit",
    [
        ({"width": 16}, "model.options.width: 8 -> 16"),
        ({"epochs": 2}, "budget.epochs: 1.0 -> 2.0"),
    ],
)
def test_resuming_with_other_settings_is_refused_naming_the_keys(
    run_cli, tmp_path, change, culprit
):
    store = tmp_path / "runs.sqlite"
    run_sweep(load_sweep(sweep_file(tmp_path / "a.toml")), str(store))
    before = snapshot(store)
    other = sweep_file(tmp_path / "b.toml", **change)
    code, _, stderr = run_cli(["sweep", str(other), "--store", str(store), "--quiet"])
    assert code == 2 and len(stderr.strip().splitlines()) == 1
    assert culprit in stderr and "give another --store" in stderr
    assert snapshot(store) == before  # nothing registered


def test_section_changes_lists_dotted_keys_with_both_values():
    old = {"data": {"n_train": 64}, "train": {"momentum": 0.0}}
    new = {"data": {"n_train": 128}, "train": {"momentum": 0.0, "loss": "mse"}}
    assert section_changes(old, new) == ["data.n_train: 64 -> 128", 'train.loss: (none) -> "mse"']
    assert section_changes(old, old) == []


def test_a_rule_version_is_not_part_of_a_sweeps_identity(tmp_path):
    """A store written when the peak-aware stop's rule was at version 2 resumes under a later
    version: the runs get new hashes (they train again), the sweep stays the same."""
    path = sweep_file(tmp_path / "a.toml")
    path.write_text(path.read_text().replace("[train]", "[train]\npeak_stop = 3.0"))
    sweep = load_sweep(path)
    assert "peak_stop_rules" not in sweep.sections["train"]
    old = json.loads(json.dumps(sweep.sections))
    old["train"]["peak_stop_rules"] = 2  # as identities held it before rule versions left them
    assert section_changes(old, sweep.sections) == []


def test_an_equal_setting_written_another_way_is_the_same_sweep(tmp_path):
    store = tmp_path / "runs.sqlite"
    run_sweep(load_sweep(sweep_file(tmp_path / "a.toml", epochs=1)), str(store))
    again = run_sweep(load_sweep(sweep_file(tmp_path / "b.toml", epochs="1.0")), str(store))
    assert (again.skipped, again.done) == (2, 0)


def test_a_changed_grid_is_reported_and_the_current_grid_can_be_selected(run_cli, tmp_path):
    store = tmp_path / "runs.sqlite"
    run_sweep(load_sweep(sweep_file(tmp_path / "a.toml")), str(store))
    grown = sweep_file(tmp_path / "b.toml", name="renamed", etas="[0.5, 1.0]")
    code, out, stderr = run_cli(["sweep", str(grown), "--store", str(store), "--quiet"])
    assert code == 0 and "2 runs: 1 already done, 1 done" in out
    assert "1 runs new, 1 kept, 1 no longer in the sweep file" in stderr
    assert "sweep 's' is now named 'renamed'" in stderr
    assert len(load_runs(store)) == 3
    current = load_runs(store, current=True)
    assert sorted(current["eta"]) == [0.5, 1.0]
    code, out, _ = run_cli(["status", "--store", str(store), "--json", "--current"])
    state = json.loads(out)
    assert code == 0 and state["name"] == "renamed" and state["runs"] == 2
    assert state["current_only"] and state["counts"]["done"] == 2
    code, out, _ = run_cli(["status", "--store", str(store)])
    assert "sweep renamed: 3 runs" in out and "1 more runs from earlier grids" in out


def test_model_options_are_columns_of_load_runs(tmp_path):
    store = tmp_path / "runs.sqlite"
    run_sweep(load_sweep(sweep_file(tmp_path / "a.toml", etas="[0.5]")), str(store))
    runs = load_runs(store)
    row = runs.iloc[0]
    assert (row["model"], row["width"], row["depth"]) == ("fc", 8, 1)
    assert row["activation"] == "relu"  # not given: the model's default
    assert runs["width"].dtype == "int64"
    assert list(runs.columns[:8]) == ["hash", "status", "eta", "lam", "seed", "model"] + [
        "activation",
        "depth",
    ]


def test_a_store_without_identity_adopts_the_first_sweep_resumed_into_it(tmp_path):
    fixtures = Path(__file__).parent / "fixtures"
    store = tmp_path / "old.sqlite"
    shutil.copy(fixtures / "store-v0.1.0.sqlite", store)
    with RunStore(store, create=False) as s:
        assert s.sweep_sections() is None and s.current_hashes() is None
        n_old = len(s.runs())
    assert len(load_runs(store, current=True)) == n_old  # no grid recorded: all current
    toml = (fixtures / "store-v0.1.0.toml").read_text()
    (tmp_path / "s.toml").write_text(toml)
    spec = load_sweep(tmp_path / "s.toml")
    report = run_sweep(spec, str(store))
    assert report.skipped == n_old
    with RunStore(store, create=False) as s:
        assert s.sweep_sections() == json.loads(json.dumps(spec.sections))
    (tmp_path / "t.toml").write_text(toml.replace("[data]", "[data]\nstandardize = false"))
    with pytest.raises(Exception, match="data.standardize: true -> false"):
        run_sweep(load_sweep(tmp_path / "t.toml"), str(store))
