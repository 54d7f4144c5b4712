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
