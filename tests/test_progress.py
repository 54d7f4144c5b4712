"""Plain-line progress for logs: the calls of rich's Progress, lines at a bounded rate."""

import io

from l2dynamics.progress import LineProgress


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
        "[0:00:00] runs 0/4 runs 0 already in the store",
        "[0:00:12] runs 2/4 runs done 2",
        "[0:00:13] runs 4/4 runs done 4",
        "[0:00:13] chunk 1/2 0/100 steps 3 runs",
    ]


def test_identical_lines_are_not_repeated():
    out, clock = io.StringIO(), Clock()
    bar = LineProgress(out, every_s=0.0, clock=clock)
    task = bar.add_task("train", total=None, status="", unit="steps")
    for t in range(3):
        clock.t = float(t)
        bar.update(task, completed=7, total=10, status="epoch 3")
    assert out.getvalue().count("\n") == 1
