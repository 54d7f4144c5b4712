"""Progress: plain lines for logs at a bounded rate, and one format for every sweep's bar."""

import io
from pathlib import Path

from l2dynamics.experiments.base import ReproduceRequest
from l2dynamics.experiments.sweep_figure import FigureProgress
from l2dynamics.progress import LineProgress, Update, count_text, status_text
from l2dynamics.sweep.runner import SweepReport


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_lines_are_rate_limited_but_completion_and_renames_always_show():
    out, clock = io.StringIO(), Clock()
    with LineProgress(out, every_s=10.0, clock=clock) as bar:
        task = bar.add_task("runs", total=None, status="", unit="runs")
        bar.update(task, total=4, completed=0, status="0 already in the store")
        clock.t = 1.0
        bar.update(task, advance=1, status="done 1")  # too soon: no line
        clock.t = 12.0
        bar.update(task, advance=1, status="done 2")
        clock.t = 13.0
        bar.update(task, advance=2, status="done 4")  # finished: always written
        chunk = bar.add_task("chunk", total=None, status="", unit="steps")
        bar.update(chunk, total=100, completed=0, description="chunk 1/2", status="3 runs")
        bar.update(chunk, completed=5, status="3 runs active")  # same second: no line
    lines = out.getvalue().splitlines()
    assert lines == [
        "[0:00:00] runs 0/4 runs · 0 already in the store",
        "[0:00:12] runs 2/4 runs · done 2",
        "[0:00:13] runs 4/4 runs · done 4",
        "[0:00:13] chunk 1/2 0/100 steps · 3 runs",
    ]


def test_identical_lines_are_not_repeated():
    out, clock = io.StringIO(), Clock()
    bar = LineProgress(out, every_s=0.0, clock=clock)
    task = bar.add_task("train", total=None, status="", unit="steps")
    for t in range(3):
        clock.t = float(t)
        bar.update(task, completed=7, total=10, status="epoch 3")
    assert out.getvalue().count("\n") == 1


def test_counts_group_thousands_and_runs_come_before_the_status():
    assert count_text(12345, 40000, "run-steps") == "12,345/40,000 run-steps"
    assert count_text(7, None, "steps") == "7 steps" and count_text(0.5, 1) == "0.5/1"
    update = Update("sweep", 10, 20, "run-steps", "2 from the store", (3, 12))
    assert status_text(update) == "runs finished 3/12 · 2 from the store"
    assert status_text(Update("train", 1, 2, "steps", "epoch 3")) == "epoch 3"


def test_a_figure_counts_run_steps_of_all_its_sweeps_and_runs_of_all():
    """Two sweeps planned at 100 and 50 run-steps; the first ends early (80 trained): the bar's
    total is the first's count plus the second's plan until the second starts."""
    seen = []
    request = ReproduceRequest("fig", "cpu", Path("."), progress=seen.append)
    bar = FigureProgress(request, [100, 50], runs=6)
    first = bar.sweep(0, "a")
    first(Update("sweep", 0, 100, "run-steps", "", (0, 3)))
    first(Update("sweep", 80, 80, "run-steps", "", (3, 3)))
    bar.finished(SweepReport(total=3, skipped=0, done=3, steps_total=80, steps_done=80))
    bar.sweep(1, "b")(Update("sweep", 10, 40, "run-steps", "1 from the store", (2, 3)))
    got = [(u.task, u.done, u.total, u.runs, u.status) for u in seen]
    assert got == [
        ("fig", 0, 150, (0, 6), "a"),
        ("fig", 80, 130, (3, 6), "a"),
        ("fig", 90, 120, (5, 6), "b: 1 from the store"),
    ]
