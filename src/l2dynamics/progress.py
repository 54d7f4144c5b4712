"""Progress: the one callback type of long work, and a display of it as plain lines for logs.

Every long call (``train``, ``predict_l2``, ``run_sweep``, a ``reproduce`` runner) takes
``progress: ProgressFn`` and calls it with an :class:`Update` (a task's name, how much of it is
done out of what total, in what unit, and a status line); the command line shows each task as a
bar. A live progress bar draws nothing until the end when its output is a file or a pipe (a job
under ``nohup``, a CI log, ``2> log``). :class:`LineProgress` takes the same calls as
``rich.progress.Progress`` (``add_task``, ``update``, use as a context manager) and writes one
line per task at most every ``every_s`` seconds, and always when a task completes or changes
its description, so a long sweep in a log still says how far it is.
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
    """

    task: str
    done: float
    total: float | None = None
    unit: str = ""
    status: str = ""


ProgressFn = Callable[[Update], None]


def no_progress(update: Update) -> None:
    """The default :data:`ProgressFn`: report nothing."""


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
        """``description completed/total unit status`` (total omitted while unknown)."""
        done = f"{task.completed:g}" + (f"/{task.total:g}" if task.total is not None else "")
        unit = task.fields.get("unit", "")
        status = task.fields.get("status", "")
        return " ".join(part for part in (task.description, done, unit, status) if part)
