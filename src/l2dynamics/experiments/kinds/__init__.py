"""What each kind of sweep figure computes and draws, from the store's runs and curves.

Every kind is ``kind(exp, runs, curves, out) -> Outcome`` (:mod:`.base`): the analysis of the
two DataFrames (:func:`~l2dynamics.sweep.store.load_runs` / ``load_measurements`` with a
``variant`` column) with :mod:`l2dynamics.analysis`, plus the figure files it draws into
``out``. An experiment file names its kind; :data:`KINDS` maps the name to the function.

One module per topic of the paper, mirroring :mod:`l2dynamics.analysis`: :mod:`.tstar`
(``scaling``), :mod:`.budgets` (``fixed_budget``), :mod:`.fit_time` (``time_to_fit``),
:mod:`.catapult` (``catapult``), :mod:`.curves` (``curves``, ``sigma_w``),
:mod:`.autol2_vs_fixed` (``autol2``) and :mod:`.equilibrium` (``equilibrium``, which also
takes the per-layer measurements: :data:`LAYER_KINDS`). They import :mod:`.base`, never this
package's names. :data:`TSTAR_KINDS` are those whose outputs hold t* and best test accuracies.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from l2dynamics.errors import ConfigError
from l2dynamics.experiments.kinds.autol2_vs_fixed import autol2_compare
from l2dynamics.experiments.kinds.base import KindFn, Outcome, finite
from l2dynamics.experiments.kinds.budgets import fixed_budget
from l2dynamics.experiments.kinds.catapult import catapult_kind
from l2dynamics.experiments.kinds.curves import curves_kind, sigma_w
from l2dynamics.experiments.kinds.equilibrium import equilibrium
from l2dynamics.experiments.kinds.fit_time import time_to_fit
from l2dynamics.experiments.kinds.tstar import scaling
from l2dynamics.experiments.spec import Experiment

KINDS: dict[str, KindFn] = {
    "scaling": scaling,
    "autol2": autol2_compare,
    "fixed_budget": fixed_budget,
    "time_to_fit": time_to_fit,
    "catapult": catapult_kind,
    "curves": curves_kind,
    "sigma_w": sigma_w,
    "equilibrium": equilibrium,
}
# The kinds that read the runs' per-layer measurements (load_layer_measurements) too.
LAYER_KINDS = ("equilibrium",)
# The kinds whose outputs hold t* and the best test accuracies (each writes the run table,
# l2dynamics.analysis.tables.run_table): what a small test set does to those numbers is said
# in their reports only (sweep_figure.test_set_note). The equilibrium kind reads angles, not
# test accuracy.
TSTAR_KINDS = frozenset(
    {"scaling", "autol2", "fixed_budget", "time_to_fit", "catapult", "curves", "sigma_w"}
)


def analyse(
    exp: Experiment,
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    out: Path,
    layers: pd.DataFrame | None = None,
) -> Outcome:
    """Run the analysis of ``exp.kind`` (see :data:`KINDS`) and draw its figures into ``out``;
    ``layers`` (the per-layer measurements) go to the kinds of :data:`LAYER_KINDS`.

    Raises:
        ConfigError: ``exp.kind`` is not a known kind.
    """
    if exp.kind not in KINDS:
        raise ConfigError(f"experiment {exp.figure}: unknown kind {exp.kind!r}")
    if exp.kind in LAYER_KINDS:
        return equilibrium(exp, runs, curves, out, layers)
    return KINDS[exp.kind](exp, runs, curves, out)


__all__ = ["KINDS", "LAYER_KINDS", "TSTAR_KINDS", "KindFn", "Outcome", "analyse", "finite"]
