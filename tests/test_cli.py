import dataclasses
import gzip
import json
import struct
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from l2dynamics import cli, config
from l2dynamics.autol2.start import step_scale_lam0
from l2dynamics.config import DataConfig, ModelConfig, TrainConfig

TINY = [
    "train",
    "--data",
    "digits",
    "--n-train",
    "64",
    "--n-test",
    "100",
    "--depth",
    "1",
    "--width",
    "16",
    "--eta",
    "0.5",
    "--lam",
    "0.01",
    "--epochs",
    "4",
    "--batch-size",
    "16",
    "--quiet",
]


def test_train_end_to_end_json_and_csv(run_cli, tmp_path):
    out = tmp_path / "curve.csv"
    code, stdout, _ = run_cli([*TINY, "--json", "--out", str(out)])
    assert code in (0, None)
    summary = json.loads(stdout)
    for key in ("status", "best_test_acc", "t_star_epochs", "final_train_acc", "steps", "wall_s"):
        assert key in summary
    lo, t, hi = (summary[f"t_star_robust_{k}"] for k in ("lo", "epochs", "hi"))
    assert 0 < lo <= t <= hi and t == pytest.approx((lo * hi) ** 0.5)  # the near-peak centre
    assert summary["status"] == "done" and summary["steps"] == 16
    rows = out.read_text().splitlines()
    assert rows[0].split(",")[:4] == ["step", "epoch", "time", "tau"]
    assert len(rows) > 2


def test_train_adamw_end_to_end_is_the_library_run_of_its_options(run_cli, tmp_path):
    """``--optimizer adamw`` with its options trains the config they describe: the CLI's curve
    is the library's (same seed, same numbers), and not the default SGD's."""
    from l2dynamics.train import train as run_train

    out = tmp_path / "curve.csv"
    opts = ["--optimizer", "adamw", "--beta2", "0.99", "--eta", "0.01", "--lam", "0.1"]
    argv = [a for a in TINY if a not in ("--eta", "0.5", "--lam", "0.01")] + opts
    cfg = cli.train_config(parsed_defaults("train", argv[1:]))
    assert (cfg.optimizer, cfg.beta1, cfg.beta2, cfg.eps) == ("adamw", None, 0.99, None)
    code, stdout, _ = run_cli([*argv, "--json", "--out", str(out)])
    summary = json.loads(stdout)
    assert code in (0, None) and summary["status"] == "done" and summary["steps"] == 16
    header, *rows = out.read_text().splitlines()
    norm = [float(r.split(",")[header.split(",").index("l2_norm_sq")]) for r in rows]
    alone = run_train(cfg)
    np.testing.assert_allclose(norm, alone.curve["l2_norm_sq"], rtol=1e-6)
    sgd = run_train(dataclasses.replace(cfg, optimizer="sgd", beta2=None))
    assert not np.allclose(norm, sgd.curve["l2_norm_sq"], rtol=1e-3)


def test_progress_is_written_as_lines_when_stderr_is_not_a_terminal(run_cli):
    code, stdout, stderr = run_cli([a for a in TINY if a != "--quiet"] + ["--json"])
    assert code in (0, None) and json.loads(stdout)["status"] == "done"
    lines = stderr.strip().splitlines()
    assert lines and all(line.startswith("[0:") and " train " in line for line in lines)
    assert lines[-1].split()[2] == "16/16"  # the last line: all 16 steps done


def test_train_human_summary(run_cli):
    code, stdout, _ = run_cli(TINY)
    assert code in (0, None)
    assert "best test acc" in stdout and "t* (epochs)" in stdout
    assert "near-peak interval [" in stdout and "the paper's t*" in stdout


def test_train_autol2_records_lambda_schedule(run_cli, tmp_path):
    out = tmp_path / "curve.csv"
    argv = [a for a in TINY if a not in ("--lam", "0.01")]
    code, stdout, _ = run_cli(
        [*argv, "--autol2", "--autol2-period", "2", "--json", "--out", str(out)]
    )
    summary = json.loads(stdout)
    assert code in (0, None) and summary["lam"] == 0.0  # no --lam: the preset's start
    header, *rows = out.read_text().splitlines()
    lam = np.array([float(r.split(",")[header.split(",").index("lam_now")]) for r in rows])
    eta = float(TINY[TINY.index("--eta") + 1])
    steps = 4 * 64 // 16  # --epochs 4 of --n-train 64 at --batch-size 16
    assert lam[0] == pytest.approx(step_scale_lam0(eta, 0.0, 2, budget_steps=steps), rel=1e-6)
    assert np.all(np.diff(lam) <= 0)
    assert (summary["lam_start"], summary["lam_final"]) == (lam[0], lam[-1])


@pytest.mark.parametrize(
    "extra, culprit",
    [
        (["--lam", "0"], "--lam"),
        (["--autol2-preset", "bogus"], "--autol2-preset"),
        (["--autol2-decay", "1"], "--autol2-decay"),
        (["--autol2-period", "0"], "--autol2-period"),
        (["--autol2-measure", "bogus"], "--autol2-measure"),
        (["--autol2-measure-size", "0"], "--autol2-measure-size"),
        (["--autol2-lam-pred", "-1"], "--autol2-lam-pred"),
        (["--autol2-lam-pred", "0.001", "--lam", "0.01"], "--autol2-lam-pred"),
        (["--convention", "bogus"], "--convention"),
    ],
)
def test_bad_autol2_input_is_one_line_exit_2(run_cli, extra, culprit):
    argv = [a for a in TINY if a not in ("--lam", "0.01")]
    code, _, stderr = run_cli([*argv, "--autol2", *extra])
    assert code == 2 and culprit in stderr and len(stderr.strip().splitlines()) == 1


def test_train_autol2_from_a_prediction_measuring_the_training_set(run_cli, tmp_path):
    """The budget-aware start (3 × the predicted λ), the whole-set measurement and the
    script's convention, end to end."""
    out = tmp_path / "curve.csv"
    argv = [a for a in TINY if a not in ("--lam", "0.01")]
    argv += ["--autol2", "--autol2-lam-pred", "0.002", "--autol2-measure", "train"]
    code, _, _ = run_cli([*argv, "--convention", "script", "--json", "--out", str(out)])
    assert code in (0, None)
    header, first, *_ = out.read_text().splitlines()
    assert float(first.split(",")[header.split(",").index("lam_now")]) == pytest.approx(6e-3)


def test_train_cnn_with_its_dense_width(run_cli):
    argv = ["train", "--n-train", "32", "--n-test", "50", "--model", "cnn", "--channels", "2"]
    argv += ["--dense", "8", "--pool-window", "1", "--pool-stride", "1", "--epochs", "1"]
    argv += ["--batch-norm", "--bn-group", "8", "--batch-size", "16"]
    code, stdout, _ = run_cli([*argv, "--json", "--quiet"])
    assert code in (0, None) and json.loads(stdout)["status"] == "done"


def test_autol2_needs_an_epoch_budget(run_cli):
    argv = [a for a in TINY if a not in ("--epochs", "4")]
    code, _, stderr = run_cli([*argv, "--autol2"])
    assert code == 2 and "--epochs" in stderr


def _idx(path, magic, dims, payload):
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + payload)


@pytest.mark.parametrize(
    "extra,culprit",
    [
        (["--data", "imagenet"], "imagenet"),
        (["--model", "vit"], "vit"),
        (["--eta", "0"], "eta"),
        (["--eta", "-0.1"], "eta"),
        (["--eta", "inf"], "--eta must be a finite number > 0 (got inf)"),
        (["--lam", "-1e-3"], "lam"),
        (["--epochs", "0"], "--epochs must be"),
        (["--epochs", "-2"], "--epochs must be"),
        (["--width", "0"], "width"),
        (["--eta", "fast"], "eta"),
        (["--autol2", "--autol2-decay", "1"], "--autol2-decay"),
        (["--peak-stop", "0.5"], "--peak-stop"),
        (["--dense", "8"], "dense"),  # an FC has no Dense-width option
        (["--model", "cnn", "--dense", "0"], "dense"),
        (["--model", "cnn", "--bn-group", "-1"], "bn_group"),
        (["--optimizer", "lion"], "lion"),
        (["--optimizer", "adam", "--beta1", "1"], "--beta1 must be in [0, 1) (got 1.0)"),
        (["--optimizer", "adamw", "--beta2", "nan"], "--beta2 must be in [0, 1)"),
        (["--optimizer", "adamw", "--eps", "0"], "--eps must be a finite number > 0"),
        (["--beta2", "0.9"], "--beta2 is not an option of optimizer 'sgd' (it takes --momentum)"),
        (["--optimizer", "adamw", "--momentum", "0.9"], "--momentum is not an option of"),
        (["--optimizer", "sgdw", "--convention", "script"], "--convention 'script' doubles"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(run_cli, tmp_path, extra, culprit):
    out = tmp_path / "curve.csv"
    code, stdout, stderr = run_cli([*TINY, *extra, "--out", str(out)])
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("l2dyn: error:")
    assert culprit in lines[0]
    assert not out.exists() and stdout == ""


def test_missing_data_dir(run_cli, tmp_path):
    missing = tmp_path / "nowhere"
    code, _, stderr = run_cli([*TINY, "--data", "mnist", "--data-dir", str(missing)])
    assert code == 2 and "nowhere" in stderr and len(stderr.strip().splitlines()) == 1


def test_corrupt_idx_file(run_cli, tmp_path):
    n = 4
    _idx(tmp_path / "train-images-idx3-ubyte.gz", 0x803, (n, 28, 28), bytes(n * 784))
    _idx(tmp_path / "train-labels-idx1-ubyte.gz", 0x801, (n,), bytes(n))
    _idx(tmp_path / "t10k-images-idx3-ubyte.gz", 0x999, (n, 28, 28), bytes(n * 784))  # bad magic
    _idx(tmp_path / "t10k-labels-idx1-ubyte.gz", 0x801, (n,), bytes(n))
    out = tmp_path / "c.csv"
    argv = [
        *TINY,
        "--data",
        "mnist",
        "--data-dir",
        str(tmp_path),
        "--n-train",
        "2",
        "--out",
        str(out),
    ]
    code, _, stderr = run_cli(argv)
    assert code == 2 and "t10k-images" in stderr and len(stderr.strip().splitlines()) == 1
    assert not out.exists()


def _mnist_dir(tmp_path, n_test_labels=4, truncate=False):
    n = 4
    _idx(tmp_path / "train-images-idx3-ubyte.gz", 0x803, (n, 28, 28), bytes(n * 784))
    _idx(tmp_path / "train-labels-idx1-ubyte.gz", 0x801, (n,), bytes(n))
    payload = bytes(n * 784 - (100 if truncate else 0))
    _idx(tmp_path / "t10k-images-idx3-ubyte.gz", 0x803, (n, 28, 28), payload)
    _idx(tmp_path / "t10k-labels-idx1-ubyte.gz", 0x801, (n_test_labels,), bytes(n_test_labels))
    return tmp_path


@pytest.mark.parametrize(
    "kwargs,culprit",
    [({"truncate": True}, "t10k-images"), ({"n_test_labels": 3}, "t10k")],
)
def test_truncated_or_mismatched_idx(run_cli, tmp_path, kwargs, culprit):
    data_dir = _mnist_dir(tmp_path, **kwargs)
    out = tmp_path / "c.csv"
    argv = [*TINY, "--data", "mnist", "--data-dir", str(data_dir), "--n-train", "2"]
    code, _, stderr = run_cli([*argv, "--out", str(out)])
    assert code == 2 and culprit in stderr and len(stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_corrupt_cifar_file(run_cli, tmp_path):
    (tmp_path / "data_batch_1").write_bytes(b"not a pickle at all")
    (tmp_path / "test_batch").write_bytes(b"\x80\x04junk")
    out = tmp_path / "c.csv"
    argv = [*TINY, "--data", "cifar10", "--data-dir", str(tmp_path), "--out", str(out)]
    code, _, stderr = run_cli(argv)
    assert code == 2 and "data_batch_1" in stderr and len(stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_out_directory_must_exist(run_cli, tmp_path):
    code, _, stderr = run_cli([*TINY, "--out", str(tmp_path / "no" / "c.csv")])
    assert code == 2 and "--out" in stderr


def test_same_seed_same_json(run_cli):
    _, a, _ = run_cli([*TINY, "--json"])
    _, b, _ = run_cli([*TINY, "--json"])
    da, db = json.loads(a), json.loads(b)
    for key in ("best_test_acc", "t_star_epochs", "final_train_acc", "steps"):
        assert da[key] == db[key]
    assert np.isfinite(da["best_test_acc"])


# Options that set no config field (model options go into ModelConfig.options, with the model's
# own defaults) or whose default differs from the field's on purpose (checked below).
NOT_FIELDS = {
    "depth",
    "width",
    "channels",
    "dense",
    "batch_norm",
    "bn_group",
    "bias",
    "activation",
    "sigma_w",
    "sigma_b",
    "pool_window",
    "pool_stride",
    "json_out",
    "out",
    "quiet",
    "help",
}
OWN_DEFAULTS = {
    "train": {"lam": None, "budget_c": None},  # then CLI_LAM (or 0: AutoL2's preset), CLI_BUDGET_C
    "predict-l2": {
        "lam": None,  # then config.calibration_lam of the optimizer and η
        "budget_c": config.MAX_C,
        "peak_stop": config.PEAK_STOP,
        "budget_epochs": 1.0,  # given below (required)
        "sweep_file": None,
    },
}


def field_defaults(cls) -> dict:
    return {f.name: f.default for f in dataclasses.fields(cls)}


def parsed_defaults(name: str, argv: list[str]) -> dict:
    command = cli.app.commands[name]
    return command.make_context(name, list(argv)).params


@pytest.mark.parametrize(
    ("name", "argv"), [("train", []), ("predict-l2", ["--budget-epochs", "1"])]
)
def test_option_defaults_are_the_config_fields_defaults(name, argv):
    """Each option that sets a config field defaults to that field's default (same value and
    type); every other option is either not a field or has a default of its own, listed."""
    data, train = field_defaults(DataConfig), field_defaults(TrainConfig)
    own = OWN_DEFAULTS[name]
    for option, value in parsed_defaults(name, argv).items():
        if option in own:
            assert value == own[option], option
            continue
        if option in NOT_FIELDS:
            continue
        if option == "model":
            want = field_defaults(ModelConfig)["name"]
        elif option in cli.DATA_FIELDS:
            want = data[cli.DATA_FIELDS[option]]
        else:
            assert option in cli.TRAIN_FIELDS, f"--{option}: not mapped to a config field"
            want = train[cli.TRAIN_FIELDS[option]]
        assert value == want and type(value) is type(want), (option, value, want)


def test_train_without_options_is_the_default_config_with_the_cli_lambda_and_budget():
    params = parsed_defaults("train", [])
    assert cli.train_config(params) == TrainConfig(lam=config.CLI_LAM, budget_c=config.CLI_BUDGET_C)
    auto = cli.train_config(parsed_defaults("train", ["--autol2", "--epochs", "3"]))
    assert auto == TrainConfig(lam=0.0, autol2=True, budget_epochs=3.0)
    given = cli.train_config(parsed_defaults("train", ["--mixup", "0.5", "--epochs", "2"]))
    assert given.data.mixup_alpha == 0.5 and given.budget_c is None


def test_data_and_model_choices_are_the_registries():
    from l2dynamics.data import DATASETS
    from l2dynamics.models import MODELS

    params = {p.name: p for p in cli.app.commands["train"].params}
    assert tuple(params["data"].type.choices) == tuple(DATASETS)
    assert tuple(params["model"].type.choices) == tuple(MODELS)


def test_the_cli_imports_without_jax():
    """`l2dyn --help` stays fast: the CLI module and the figure registry import no JAX."""
    code = (
        "import sys, l2dynamics.cli, l2dynamics.experiments; "
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('jax', 'flax', 'optax')]; "
        "sys.exit(' '.join(heavy) or None)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--batch-size", "65"], "--batch-size 65 is larger than the training set of 64 "),
        (["--epochs", "0.01"], "--epochs: the budget of 0.01 epochs is 0.04 steps"),
        (["--epochs", "0.01", "--batch-size", "64"], "--epochs: the budget"),
    ],
)
def test_train_refuses_what_the_data_rules_out_before_training(run_cli, tmp_path, extra, message):
    out = tmp_path / "c.csv"
    code, stdout, stderr = run_cli([*TINY, *extra, "--out", str(out)])
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1
    assert stdout == "" and not out.exists()


def test_a_c_budget_under_one_step_names_budget_c(run_cli):
    argv = [a for a in TINY if a not in ("--epochs", "4")]
    code, _, stderr = run_cli([*argv, "--eta", "1e6", "--budget-c", "2"])
    assert code == 2 and "--budget-c: the budget of" in stderr


def test_model_option_defaults_shown_in_help_are_the_models_own():
    """--help shows each model option's default per model (the command line does not import the
    models, so it keeps a copy: it must equal every model's field default, and cover them)."""
    from l2dynamics.models.registry import model_defaults

    for model in ("fc", "cnn", "wrn"):
        own = {k: v for k, v in model_defaults(model).items() if k != "sigma_w_last"}
        shown = {f: per[model] for f, per in cli.MODEL_DEFAULTS.items() if model in per}
        assert shown == own, model
    text = " ".join(CliRunner().invoke(cli.app, ["train", "--help"]).output.split())
    assert "[default: fc 3, wrn 28]" in text and "[default: fc 2048, wrn 10]" in text
    assert "[default: fc √2, cnn √2, wrn 1]" in text and "[default: 300]" in text


def test_train_measure_layers_end_to_end_writes_the_layer_rows_beside_the_curve(run_cli, tmp_path):
    """``--measure-layers`` on the small BatchNorm CNN: the layer CSV beside the curve has one
    row per tensor per measurement, the BatchNorm-fed kernels flagged, angles > 0 after step 0."""
    out = tmp_path / "curve.csv"
    argv = [
        *("train", "--data", "digits", "--n-train", "64", "--n-test", "100", "--model", "cnn"),
        *("--channels", "4", "--dense", "16", "--batch-norm", "--pool-stride", "1"),
        *("--eta", "0.1", "--lam", "0.01", "--momentum", "0.9", "--epochs", "2"),
        *("--batch-size", "16", "--measure-layers", "--quiet", "--json", "--out", str(out)),
    ]
    code, stdout, _ = run_cli(argv)
    summary = json.loads(stdout)
    assert code in (0, None) and summary["status"] == "done"
    layers = pd.read_csv(summary["layers_csv"])
    assert summary["layers_csv"] == str(tmp_path / "curve_layers.csv")
    curve = pd.read_csv(out)
    assert list(layers.columns) == ["step", "layer", "norm_sq", "angle", "scale_invariant"]
    assert len(layers) == layers["layer"].nunique() * len(curve)
    flagged = set(layers.loc[layers["scale_invariant"], "layer"])
    assert flagged == {"conv_0/kernel", "conv_1/kernel", "conv_2/kernel"}
    kernels = layers[layers["scale_invariant"] & (layers["step"] > 0)]
    assert (kernels["angle"] > 0).all() and (kernels["norm_sq"] > 0).all()


def test_train_measure_layers_without_out_is_refused_before_training(run_cli):
    """The layer rows go beside the curve; without --out they would be thrown away."""
    argv = ["train", "--data", "digits", "--epochs", "1", "--measure-layers", "--quiet"]
    code, _, stderr = run_cli(argv)
    assert code == 2 and "--measure-layers needs --out" in stderr
    assert len(stderr.strip().splitlines()) == 1
