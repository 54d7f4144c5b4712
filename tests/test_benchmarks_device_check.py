"""The GPU device check (benchmarks/device_check.py) in its reduced mode, on the CPU: it runs end
to end through the toolkit's programs, pools and sweep, and writes a results file with a number
in every row (a smoke test; the numbers themselves mean nothing at these sizes)."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TIMING_ROWS = ("matmul", "fc", "pool", "wrn", "cnn")


@pytest.fixture
def device_check(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module("device_check")
    yield module
    sys.modules.pop("device_check", None)


def summary(path: Path) -> dict[str, list[list[str]]]:
    """The summary table's rows by row name: the cells of each line."""
    text = path.read_text()
    table = text.split("## Summary", 1)[1].split("\n### ", 1)[0]
    rows: dict[str, list[list[str]]] = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] in ("row", "") or set(cells[0]) <= {"-"}:
            continue
        rows.setdefault(cells[0], []).append(cells)
    return rows


def number(cell: str) -> float:
    value = float(cell)
    assert math.isfinite(value), cell
    return value


def test_reduced_mode_without_data_times_every_row(device_check, tmp_path):
    out = tmp_path / "RESULTS-gpu.md"
    device_check.main(["--reduced", "--data-dir", str(tmp_path / "no-data"), "--out", str(out)])
    rows = summary(out)
    assert set(rows) == set(device_check.ROWS)
    for row in TIMING_ROWS:
        for cells in rows[row]:
            assert number(cells[2]) > 0, (row, cells)
    assert len(rows["matmul"]) == 2 and len(rows["pool"]) == 2 and len(rows["cnn"]) == 2
    text = out.read_text()
    assert "no mnist data" in text and "no cifar10 data" in text  # said, not hidden
    assert rows["fig2"][0][1].startswith("skipped: needs MNIST")
    assert "python3 benchmarks/device_check.py --data-dir .device-data" in text
    assert "failed" not in text and "running" not in text


def test_reduced_fig2_slice_on_mnist(device_check, tmp_path, shared_data):
    out = tmp_path / "RESULTS-gpu.md"
    argv = ["--reduced", "--data-dir", str(shared_data), "--out", str(out), "--only", "fig2"]
    device_check.main(argv)
    rows = summary(out)
    assert set(rows) == {"fig2"}
    (cells,) = rows["fig2"]
    assert number(cells[2]) > 0  # median t*·η·λ of the slice
    assert "1 of 1 runs" in cells[4]
