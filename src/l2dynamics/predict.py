"""Predicting the L2 coefficient for a training budget from one calibration run (SPEC §2.3).

With plain SGD at a constant learning rate η a network peaks after t* ≈ c/(η·λ) epochs
(SPEC §2.1). One run at a large λ (default 0.01) peaks early and cheaply; it measures the
dimensionless constant ``c = t*·η·λ`` (normalized time τ = η·λ·epochs at the peak), and the λ
whose peak falls at the end of a budget of T epochs is then ``λ_pred = c/(η·T)``. Small λ tends
to need about twice the c of a large one (the paper), so ``2c/(η·T)`` is given too.

The paper writes ``c = t*·λ`` at its fixed η (λ_pred = c/T); that is ``c_paper = c/η`` here.

Every optimizer (SPEC §6): the calibration trains the base's optimizer, and the law it assumes
is t* ∝ the decay's timescale ``τ_epoch`` (:func:`l2dynamics.config.timescale_epochs`). Every
optimizer's ``τ_epoch`` is ∝ 1/(η·λ) at fixed momentum, convention and batch, so the λ whose
peak falls at T is still ``c/(η·T)``; ``c_tau_epoch = t*/τ_epoch`` states the calibration in the
optimizer's own unit (the planned run's ``τ_epoch`` at λ_pred is ``T/c_tau_epoch``). For Adam
with coupled L2 that timescale is nominal (Adam rescales the L2 gradient per coordinate); the
default calibration λ of the Adams is ``CAL_ETA_LAM_ADAM/η``
(:func:`l2dynamics.config.calibration_lam`).

Cost: the calibration ends once its test accuracy has clearly passed its peak (the peak-aware
stop, :func:`l2dynamics.train.stopping.passed_peak`), capped at ``max_c/(η·λ)`` epochs; its
epochs divided by T is the fraction of the predicted budget it spent.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from l2dynamics.analysis.fits import c_from_run, predict_lambda
from l2dynamics.config import (
    MAX_C,
    PEAK_STOP,
    TrainConfig,
    calibration_lam,
    timescale_epochs,
    validate,
)
from l2dynamics.data import Dataset
from l2dynamics.errors import ConfigError
from l2dynamics.progress import ProgressFn
from l2dynamics.train.run import RunResult, train


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The λ predicted for a budget, and the calibration run that measured it.

    Attributes:
        budget_epochs: the planned budget T (epochs).
        eta: the planned run's learning rate η (the λ_pred below are for this η).
        optimizer: the optimizer of the calibration and the planned run
            (:data:`l2dynamics.config.OPTIMIZERS`).
        cal_lam: the calibration run's λ.
        cal_eta: the calibration run's η.
        t_star_epochs: the calibration's t* (epochs): the toolkit's, the centre of the
            near-peak interval (:func:`l2dynamics.results.near_peak`).
        t_star_interval: that interval (epochs): the accuracy is within the test set's noise
            of its best all through it, so the peak lies anywhere in it.
        t_star_first_max: the paper's t* (epochs): the first maximum of test accuracy.
        t_star_resolution: relative gap of the measurements at the paper's t* (0.05 = ±5%).
        c: ``t*·η_cal·λ_cal`` (dimensionless, τ units) of the toolkit's t*: t* ≈ c/(η·λ) at
            any η.
        c_interval: c at the two ends of ``t_star_interval``.
        c_first_max: c of the paper's t*.
        c_paper: ``c/η_cal = t*·λ_cal`` (epochs·λ): the paper's way of writing c, valid at
            η = ``cal_eta`` only.
        c_tau_epoch: ``t*/τ_epoch`` of the calibration (dimensionless): t* in units of the
            optimizer's decay timescale (:func:`l2dynamics.config.timescale_epochs`).
        tau_epoch_pred: the planned run's τ_epoch at ``lam_pred`` (epochs), ``T/c_tau_epoch``.
        lam_pred: ``c/(η·T)``: the λ whose peak falls at the end of the budget.
        lam_pred_interval: ``c/(η·T)`` at the two ends of ``c_interval``.
        lam_pred_2c: ``2c/(η·T)``: the paper's small-λ variant.
        cal_epochs: epochs the calibration trained.
        cost_fraction: ``cal_epochs/T`` (same batch size, so also a fraction of the steps).
        wall_s: the calibration's wall time (seconds, compilation included).
        best_test_acc: the calibration's best test accuracy (fraction).
        max_train_acc: its highest training accuracy (1 = over-parameterized at λ_cal).
        peak_passed: whether it stopped clearly past its peak (else it hit its cap and t* is
            only a lower bound).
        notes: warnings about the calibration, as sentences.
    """

    budget_epochs: float
    eta: float
    optimizer: str
    cal_lam: float
    cal_eta: float
    t_star_epochs: float
    t_star_interval: tuple[float, float]
    t_star_first_max: float
    t_star_resolution: float
    c: float
    c_interval: tuple[float, float]
    c_first_max: float
    c_paper: float
    c_tau_epoch: float
    tau_epoch_pred: float
    lam_pred: float
    lam_pred_interval: tuple[float, float]
    lam_pred_2c: float
    cal_epochs: float
    cost_fraction: float
    wall_s: float
    best_test_acc: float
    max_train_acc: float
    peak_passed: bool
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The prediction as a JSON-ready dict (``notes`` as a list)."""
        out = dataclasses.asdict(self)
        out["notes"] = list(self.notes)
        return out


def calibration_config(
    base: TrainConfig,
    *,
    lam: float | None = None,
    peak_stop: float = PEAK_STOP,
    max_c: float = MAX_C,
    max_epochs: float | None = None,
) -> TrainConfig:
    """The calibration run: ``base`` (data, model, optimizer, η, batch, …) at λ = ``lam``
    (None: :func:`~l2dynamics.config.calibration_lam` of its optimizer and η), constant η, no
    AutoL2, stopped ``peak_stop``·t* past its peak, at most ``max_c/(η·λ)`` epochs (capped by
    ``max_epochs``). Raises :class:`~l2dynamics.errors.ConfigError` on bad values."""
    if lam is None:
        lam = calibration_lam(base.optimizer, base.eta)
    _positive("lam (the calibration λ)", lam)
    _positive("max_c", max_c)
    cfg = dataclasses.replace(
        base,
        lam=float(lam),
        lr_schedule="constant",
        autol2=False,
        budget_epochs=None,
        budget_c=float(max_c),
        max_epochs=max_epochs,
        peak_stop=peak_stop,
    )
    return validate(cfg)


def prediction_from_run(
    result: RunResult, budget_epochs: float, *, eta: float | None = None
) -> Prediction:
    """The :class:`Prediction` of a finished calibration run for a budget of T epochs, from
    the toolkit's t* (the near-peak centre) and its interval; the paper's t* beside it.

    Args:
        result: the calibration run (λ > 0, constant η).
        budget_epochs: the planned budget T (epochs, > 0).
        eta: the planned run's η (default: the calibration's).

    Raises:
        ConfigError: T or η not > 0, a calibration at λ = 0, or one that diverged.
    """
    cfg = result.config
    _positive("budget_epochs", budget_epochs)
    eta = cfg.eta if eta is None else eta
    _positive("eta", eta)
    if result.status != "done" or not math.isfinite(result.t_star_robust_epochs):
        raise ConfigError(
            f"the calibration run (eta={cfg.eta:g}, lam={cfg.lam:g}) diverged at step "
            f"{result.diverged_step}: lower eta or the calibration lam"
        )
    interval = (float(result.t_star_robust_lo), float(result.t_star_robust_hi))
    c, c_lo, c_hi = (
        c_from_run(t, cfg.eta, cfg.lam)
        for t in (result.t_star_robust_epochs, *interval)  # after epoch 0: all > 0
    )
    first_max = max(result.t_star_epochs, _one_step(result))  # a peak at step 0 is < 1 step away
    cal_epochs = float(result.curve["epoch"][-1])
    lam_pred = predict_lambda(c, eta, budget_epochs)
    c_tau = float(result.t_star_robust_epochs) / timescale_epochs(cfg)
    return Prediction(
        budget_epochs=float(budget_epochs),
        eta=float(eta),
        optimizer=cfg.optimizer,
        cal_lam=cfg.lam,
        cal_eta=cfg.eta,
        t_star_epochs=float(result.t_star_robust_epochs),
        t_star_interval=interval,
        t_star_first_max=float(result.t_star_epochs),
        t_star_resolution=float(result.t_star_resolution),
        c=c,
        c_interval=(c_lo, c_hi),
        c_first_max=c_from_run(first_max, cfg.eta, cfg.lam),
        c_paper=c / cfg.eta,
        c_tau_epoch=c_tau,
        tau_epoch_pred=timescale_epochs(dataclasses.replace(cfg, eta=eta, lam=lam_pred)),
        lam_pred=lam_pred,
        lam_pred_interval=(
            predict_lambda(c_lo, eta, budget_epochs),
            predict_lambda(c_hi, eta, budget_epochs),
        ),
        lam_pred_2c=predict_lambda(2 * c, eta, budget_epochs),
        cal_epochs=cal_epochs,
        cost_fraction=cal_epochs / float(budget_epochs),
        wall_s=float(result.wall_s),
        best_test_acc=float(result.best_test_acc),
        max_train_acc=float(result.max_train_acc),
        peak_passed=bool(result.stopped_at_peak),
        notes=_notes(result),
    )


def predict_l2(
    base: TrainConfig,
    budget_epochs: float,
    *,
    lam: float | None = None,
    peak_stop: float = PEAK_STOP,
    max_c: float = MAX_C,
    max_epochs: float | None = None,
    eta: float | None = None,
    dataset: Dataset | None = None,
    progress: ProgressFn | None = None,
) -> Prediction:
    """Predict λ for a budget of T epochs from one calibration run at a large λ.

    Trains :func:`calibration_config` of ``base`` (its data, model, optimizer, η, batch size,
    momentum or Adam's β₁, β₂, ε, seed, measurement schedule; its own λ and budget are
    replaced), measures
    ``c = t*·η·λ`` and returns ``λ_pred = c/(η·T)`` and ``2c/(η·T)``.

    Args:
        base: the setup to predict for (η = ``base.eta`` unless ``eta`` is given).
        budget_epochs: the planned budget T (epochs, > 0).
        lam: the calibration λ (> 0; large, so that the calibration is short; None:
            :func:`~l2dynamics.config.calibration_lam` of the base's optimizer and η).
        peak_stop: stop once at >= ``peak_stop``·t* (epochs) with test accuracy
            ``base.peak_drop`` below its best (> 1).
        max_c: cap of the calibration, ``max_c/(η·λ)`` epochs (τ units).
        max_epochs: a further cap, in epochs.
        eta: the planned run's η (default ``base.eta``; c does not depend on η).
        dataset: the data, if already loaded.
        progress: gets the calibration run's :class:`~l2dynamics.progress.Update` s (task
            ``"train"``, in steps) after each measurement.

    Raises:
        ConfigError: bad arguments (named), or a calibration run that diverged.
    """
    _positive("budget_epochs", budget_epochs)
    _positive("eta", base.eta if eta is None else eta)
    cfg = calibration_config(base, lam=lam, peak_stop=peak_stop, max_c=max_c, max_epochs=max_epochs)
    result = train(cfg, dataset=dataset, progress=progress)
    return prediction_from_run(result, budget_epochs, eta=base.eta if eta is None else eta)


def _one_step(result: RunResult) -> float:
    """One step, in epochs (the smallest t* the measurements can resolve)."""
    steps, epochs = result.curve["step"], result.curve["epoch"]
    return float(epochs[-1] / steps[-1]) if len(steps) and steps[-1] > 0 else 0.0


def _notes(result: RunResult) -> tuple[str, ...]:
    """Warnings about a calibration run whose c may not carry over."""
    cfg, notes = result.config, []
    if not result.stopped_at_peak:
        notes.append(
            f"the calibration did not clearly pass its peak within its {result.budget_epochs:g}"
            " epochs: t* and c are lower bounds (raise the cap: max_c, --budget-c or max_epochs,"
            " --max-epochs)"
        )
    if result.max_train_acc < 1.0:
        notes.append(
            f"the calibration never reached training accuracy 1 (max {result.max_train_acc:.3f})"
            f" at lam={cfg.lam:g}: the law is claimed for over-parameterized runs, so c may not"
            " carry over to small lam (try a smaller calibration lam)"
        )
    if cfg.optimizer == "adam":
        notes.append(
            "with Adam and coupled L2 the decay's timescale 1/(eta*lam) is nominal (Adam rescales"
            " the L2 gradient per coordinate): lam_pred assumes t* scales with it all the same"
        )
    if result.t_star_step <= 0:
        notes.append(
            "the calibration's first maximum is at initialization: its c_first_max is an upper "
            "bound of 1 step"
        )
    return tuple(notes)


def _positive(name: str, value: Any) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value <= 0:
        raise ConfigError(f"{name} must be > 0 (got {value!r})")


__all__ = ["Prediction", "calibration_config", "predict_l2", "prediction_from_run"]
