"""Test settings: strict dtype promotion and float32 defaults, as in the library's own use;
a persistent compilation cache private to this test session."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")

# Many tests build the same small programs afresh (a sweep or a `train` call builds its own jitted
# functions), so XLA compiles identical modules again and again. A persistent cache in a fresh
# directory of this session serves the repeats; it starts empty and is removed at exit, so no
# test sees what an earlier session compiled. Subprocesses started by tests do not inherit it.
_JAX_CACHE = tempfile.mkdtemp(prefix="l2dyn-test-jax-cache-")
atexit.register(shutil.rmtree, _JAX_CACHE, ignore_errors=True)
jax.config.update("jax_compilation_cache_dir", _JAX_CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)

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
