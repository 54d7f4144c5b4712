"""Test settings: strict dtype promotion and float32 defaults, as in the library's own use."""

import os
from pathlib import Path

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if os.environ.get("L2DYN_SHARED_DATA"):
    SHARED_DATA = Path(os.environ["L2DYN_SHARED_DATA"])


@pytest.fixture
def shared_data() -> Path:
    """The real MNIST / CIFAR-10 files next to the repository; skip the test when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def run_cli(capsys):
    """Run ``l2dyn ARGV`` in-process; return (exit code, stdout, stderr)."""
    from l2dynamics.cli import main

    def run(argv: list[str]) -> tuple[int | None, str, str]:
        with pytest.raises(SystemExit) as info:
            main(argv)
            raise SystemExit(0)
        out = capsys.readouterr()
        return info.value.code, out.out, out.err

    return run
