"""Training: a jitted L2-SGD step, measurement schedules, and single runs."""

from l2dynamics.train.run import RunResult, train
from l2dynamics.train.schedule import every_k, log_spaced

__all__ = ["RunResult", "every_k", "log_spaced", "train"]
