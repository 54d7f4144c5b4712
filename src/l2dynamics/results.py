"""Names shared by training, the run store and analysis (no JAX import here).

``CURVE_COLUMNS``: one measurement of a run — ``step`` (SGD steps), ``epoch`` (= step·B/N),
``time`` (physical time η·epochs, schedule included), ``tau`` (normalized time η·λ·epochs),
bare ``train_loss``/``train_acc`` (full training set), ``test_loss``/``test_acc`` (full test
set), ``l2_norm_sq`` (‖θ‖²), and the current ``eta`` and ``lam``.
"""

CURVE_COLUMNS = (
    "step",
    "epoch",
    "time",
    "tau",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "l2_norm_sq",
    "eta",
    "lam",
)
