"""Progress: the one callback type of long work, and a display of it as plain lines for logs.

Every long call (``train``, ``predict_l2``, ``run_sweep``, a ``reproduce`` runner) takes
``progress: ProgressFn`` and calls it with an :class:`Update` (a task's name, how much of it is
done out of what total, in what unit, and a status line); the command line shows each task as a
bar. A live progress bar draws nothing until the end when its output is a file or a pipe (a job
under ``nohup``, a CI log, ``2> log``). :class:`LineProgress` takes the same calls as
``rich.progress.Progress`` (``add_task``, ``update``, use as a context manager) and writes one
line per task at most every ``every_s`` seconds, and always when a task completes or changes
its description, so a long sweep in a log still says how far it is.

A sweep (``l2dyn sweep``, ``reproduce``, ``quickstart``) is one bar in one format: run-steps
trained of all its runs' budgets (so the time left is real even when the long runs go
first), with the runs finished beside it (:attr:`Update.runs`). The text of the count and of
the status beside the bar is :func:`count_text` and :func:`status_text`, for the live bar and
the plain lines alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass(frozen=True)
class Update:
    """One progress report.

    Attributes:
        task: what is progressing (``"train"``, ``"runs"``, a figure's name); one bar each.
        done: how much of it is done, in ``unit``.
        total: out of how much (None while unknown).
        unit: ``"steps"``, ``"runs"``, … ("" for none).
        status: a short line on the state of the task (accuracy so far, runs active, …).
        runs: for a sweep, (runs finished, of how many), shown before ``status``.
    """

    task: str
    done: float
    total: float | None = None
    unit: str = ""
    status: str = ""
    runs: tuple[int, int] | None = None


ProgressFn = Callable[[Update], None]


def no_progress(update: Update) -> None:
    """The default :data:`ProgressFn`: report nothing."""


def count_text(done: float, total: float | None, unit: str = "") -> str:
    """``done/total unit`` with whole numbers grouped by thousands (``12,345/40,000
    run-steps``); ``total`` left out while unknown."""
    text = _number(done) + (f"/{_number(total)}" if total is not None else "")
    return f"{text} {unit}" if unit else text


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3g}"


def status_text(update: Update) -> str:
    """What is shown beside a bar: the runs finished (a sweep's), then the status line."""
    runs = f"runs finished {update.runs[0]}/{update.runs[1]}" if update.runs else ""
    return " · ".join(part for part in (runs, update.status) if part)


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float = 0.0
    fields: dict[str, Any] = field(default_factory=dict)
    last_line: float = float("-inf")
    last_text: str = ""


class LineProgress:
    """A drop-in for ``rich.progress.Progress`` that writes timestamped lines to ``stream``.

    Args:
        stream: where the lines go (standard error in the CLI).
        every_s: the least time between two lines of one task (seconds); a task's completion
            and a change of its description are always written.
        clock: seconds since an arbitrary origin (``time.monotonic``; injectable for tests).
    """

    def __init__(
        self, stream: TextIO, every_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stream = stream
        self.every_s = every_s
        self.clock = clock
        self.start = clock()
        self.tasks: list[_Task] = []

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.flush()

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        """Register a task; returns its id for :meth:`update`."""
        self.tasks.append(_Task(description, total, fields=dict(fields)))
        return len(self.tasks) - 1

    def update(
        self,
        task_id: int,
        *,
        completed: float | None = None,
        total: float | None = None,
        advance: float | None = None,
        description: str | None = None,
        **fields: Any,
    ) -> None:
        """Change a task as ``Progress.update`` does, and write a line when one is due."""
        task = self.tasks[task_id]
        renamed = description is not None and description != task.description
        if description is not None:
            task.description = description
        if total is not None:
            task.total = total
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        task.fields.update(fields)
        finished = task.total is not None and task.completed >= task.total
        now = self.clock()
        if renamed or finished or now - task.last_line >= self.every_s:
            self._write(task, now)

    def _write(self, task: _Task, now: float) -> None:
        text = self.line(task)
        if text == task.last_text:
            return
        task.last_line, task.last_text = now, text
        elapsed = int(now - self.start)
        stamp = f"{elapsed // 3600:d}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}"
        self.stream.write(f"[{stamp}] {text}\n")
        self.stream.flush()

    @staticmethod
    def line(task: _Task) -> str:
        """``description completed/total unit · status`` (total omitted while unknown; the
        count as :func:`count_text` writes it)."""
        done = count_text(task.completed, task.total, task.fields.get("unit", ""))
        status = task.fields.get("status", "")
        return f"{task.description} {done}" + (f" · {status}" if status else "")
