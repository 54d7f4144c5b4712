"""AutoL2 for PyTorch optimizers: the plain-Python controller driving ``weight_decay``."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

from l2dynamics.autol2 import pure
from l2dynamics.autol2.options import AutoL2Options, resolve_options
from l2dynamics.autol2.start import step_scale_lam0
from l2dynamics.errors import ConfigError


class AutoL2:
    """Sets ``weight_decay`` of every param group of a PyTorch optimizer to AutoL2's λ.

    ``torch.optim.SGD`` adds ``weight_decay·θ`` to the gradient *before* its momentum buffer:
    that is exactly our coupled L2, the gradient of ``(λ/2)‖θ‖²`` (SPEC §1), so λ goes into
    ``weight_decay`` unchanged (so does ``Adam``'s; ``AdamW``'s decay is decoupled, hence not
    this, and draws a warning). On construction every group's ``weight_decay`` is set to λ₀.

    Usage, one call per training step::

        sched = AutoL2(optimizer, k=10)
        for batch in batches:
            optimizer.zero_grad()
            loss = bare_loss(model(x), y)   # no L2 term: weight_decay adds it
            loss.backward()
            optimizer.step()
            sched.step(loss, error)         # loss/error at the parameters before this update

    Call ``c`` (0-based) of :meth:`step` is step ``c``; every ``k``-th (``c % k == 0``) folds
    ``(c, loss, error)`` into the controller (the rule of
    :mod:`l2dynamics.autol2.controller`, decision for decision) and writes the new λ. Called
    after ``optimizer.step()`` as above, the measurement at step ``c`` sets λ from update
    ``c + 1`` on; called between ``loss.backward()`` and ``optimizer.step()`` instead it sets λ
    from update ``c`` on, the timing of the optax :func:`~l2dynamics.autol2.autol2`. On the
    other calls ``loss`` and ``error`` are not read (a tensor there costs no device sync).

    Args:
        optimizer: a ``torch.optim.Optimizer`` (anything with ``param_groups``).
        k: steps between measurements (the period).
        lam0: starting λ; default: the scale-aware start of
            :func:`l2dynamics.autol2.start.step_scale_lam0` for the optimizer's own step, from
            the param group whose ``lr/(1−momentum)`` is largest (SGD; other optimizers need
            ``lam0``), for a budget of ``budget_steps`` steps if given.
        budget_steps: the training budget in steps, if known (see
            :func:`~l2dynamics.autol2.start.step_scale_lam0`; unused when ``lam0`` is given).
        decay: λ's divisor at a decay; refractory: ``r``, no decay within
            ``r/λ`` steps of the last one.
        **options: further :class:`~l2dynamics.autol2.AutoL2Options` fields
            (``initial_best_loss``, ``count_ties``, ...).
    """

    def __init__(
        self,
        optimizer: Any,
        k: int = 10,
        lam0: float | None = None,
        decay: float = 10.0,
        refractory: float = 0.1,
        budget_steps: int | None = None,
        **options: Any,
    ) -> None:
        if lam0 is None:
            lam0 = optimizer_start(optimizer, k, budget_steps)
        self.options: AutoL2Options = resolve_options(
            period=k, lam0=lam0, decay=decay, refractory=refractory, **options
        )
        self.optimizer = optimizer
        self.steps = 0
        self.controller: pure.PyAutoL2State = pure.init(self.options)
        _warn_if_decoupled(optimizer)
        self._write_lam()

    @property
    def lam(self) -> float:
        """λ now: the ``weight_decay`` of every param group (a float32 value)."""
        return self.controller.lam

    def step(self, loss: Any, error: Any) -> bool:
        """Count one training step; on every ``k``-th, fold in the measurement.

        Args:
            loss: bare training loss (without L2) on this step's minibatch, before the update
                (a float or a 0-d tensor).
            error: training error (a fraction in [0, 1]) on the same minibatch.

        Returns:
            Whether λ changed (decayed) at this call.
        """
        step, self.steps = self.steps, self.steps + 1
        if step % self.options.period:
            return False
        before = self.controller.decays
        loss, error = _as_float(loss), _as_float(error)
        self.controller = pure.update(self.controller, step, loss, error, self.options)
        self._write_lam()
        return self.controller.decays != before

    def state_dict(self) -> dict[str, Any]:
        """The step count, the controller's state and the options (plain Python values)."""
        return {
            "steps": self.steps,
            "controller": self.controller._asdict(),
            "options": dataclasses.asdict(self.options),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict` and write λ into the optimizer.

        Raises:
            ValueError: the saved options differ from this scheduler's.
        """
        saved = AutoL2Options(**state_dict["options"])
        if saved != self.options:
            diff = [
                f.name
                for f in dataclasses.fields(saved)
                if getattr(saved, f.name) != getattr(self.options, f.name)
            ]
            raise ValueError(f"AutoL2 options differ from the saved ones: {', '.join(diff)}")
        self.steps = int(state_dict["steps"])
        self.controller = pure.PyAutoL2State(**state_dict["controller"])
        self._write_lam()

    def _write_lam(self) -> None:
        for group in self.optimizer.param_groups:
            group["weight_decay"] = self.controller.lam


def _as_float(value: Any) -> float:
    """A Python float from a float or a 0-d tensor (detached: no autograd warning)."""
    return float(value.detach() if hasattr(value, "detach") else value)


def _warn_if_decoupled(optimizer: Any) -> None:
    decoupled = type(optimizer).__name__ == "AdamW" or any(
        group.get("decoupled_weight_decay", False) for group in optimizer.param_groups
    )
    if decoupled:
        warnings.warn(
            "AutoL2: this optimizer's weight_decay is decoupled (AdamW-style), not the coupled "
            "L2 gradient λ·θ that AutoL2's λ is defined for",
            stacklevel=3,
        )


def optimizer_start(optimizer: Any, k: int, budget_steps: int | None = None) -> float:
    """AutoL2's scale-aware λ₀ for a torch SGD optimizer measured every ``k`` steps: the start
    of :func:`~l2dynamics.autol2.start.step_scale_lam0` for the param group whose effective
    step ``lr/(1−momentum)`` is largest (L2 shrinks that group fastest), for a budget of
    ``budget_steps`` steps if known.

    Raises:
        ConfigError: an optimizer without SGD's ``momentum`` (give ``lam0`` for it).
    """
    groups = optimizer.param_groups
    if not all("momentum" in g for g in groups):
        raise ConfigError(
            f"AutoL2: lam0 is required for {type(optimizer).__name__} (the scale-aware start is "
            "defined for SGD's lr and momentum)"
        )
    lr, mu = max(((g["lr"], g["momentum"]) for g in groups), key=lambda g: g[0] / (1 - g[1]))
    return step_scale_lam0(lr, mu, k, budget_steps=budget_steps)
