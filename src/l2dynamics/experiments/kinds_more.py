"""Further kinds of sweep figure (fixed budgets, time to fit, MSE, curves): see :mod:`.kinds`.

Each kind is ``kind(exp, runs, curves, out) -> Outcome``, registered in ``MORE_KINDS``.
"""

from __future__ import annotations

from l2dynamics.experiments.kinds import KindFn

MORE_KINDS: dict[str, KindFn] = {}
