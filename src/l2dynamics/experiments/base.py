"""What every ``l2dyn reproduce FIG`` runner receives and how its outputs are laid out.

A runner is a function ``run(request: ReproduceRequest) -> dict``. It writes into
``request.out_dir`` at least ``FIG.png`` (the figure), one or more CSV files (the numbers behind
it), ``summary.json`` (the fitted values it returns) and ``report.html`` (self-contained).
Long work reports progress through ``request.say(message, done, total)``, which sends an
:class:`~l2dynamics.progress.Update` of the figure's task to ``request.progress``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from l2dynamics.progress import ProgressFn, Update, no_progress

SCALES = ("cpu", "paper")


@dataclass(frozen=True)
class ReproduceRequest:
    """One ``reproduce`` invocation.

    Attributes:
        figure: the figure name as registered (e.g. ``"fig2"``).
        scale: ``"cpu"`` (reduced, sized for 2 cores) or ``"paper"`` (the paper's setup).
        out_dir: existing directory that receives every output file.
        data_dir: directory of MNIST / CIFAR-10 files, or None for ``$L2DYN_DATA``.
        executor: ``"local"`` or ``"ray"`` for figures that run sweeps.
        address: Ray cluster address, or None.
        gpus_per_task: the GPUs each Ray task asks for; None: the executor's default
            (:func:`l2dynamics.sweep.ray_executor.task_options`).
        progress: gets the runner's :class:`~l2dynamics.progress.Update` s (task: the figure).
    """

    figure: str
    scale: str
    out_dir: Path
    data_dir: str | None = None
    executor: str = "local"
    address: str | None = None
    gpus_per_task: float | None = None
    progress: ProgressFn = field(default=no_progress, compare=False)

    def say(self, message: str, done: float, total: float | None, unit: str = "") -> None:
        """Report progress of this figure: ``done`` of ``total`` (None: unknown) ``unit``."""
        self.progress(Update(self.figure, done, total, unit, message))
