"""Errors raised on bad user input.

Every error a user can cause derives from :class:`L2DynError`; the command line turns it into
one line on standard error and exit code 2. The message must name the culprit (the option,
file or field) so that the line alone says what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping


class L2DynError(ValueError):
    """Bad user input: an option, a file or a configuration value. The CLI exits with code 2."""


class DataError(L2DynError):
    """A data set that is unknown, missing, truncated or corrupt."""


class ConfigError(L2DynError):
    """A configuration value that is unknown, of the wrong type or out of range.

    Args:
        message: the line shown to the user.
        fields: the configuration fields the message names (``"eta"``, ``"data.n_train"``), so
            that an edge where the user typed other names (a CLI option, a sweep file key) can
            say those instead (:meth:`renamed`).
    """

    def __init__(self, message: str, *fields: str) -> None:
        super().__init__(message)
        self.fields = fields

    def renamed(self, names: Mapping[str, str]) -> ConfigError:
        """This error with each of its fields that ``names`` maps written as the user wrote it
        (``budget_epochs`` → ``--epochs`` or ``budget.epochs``); fields renamed are dropped, so
        a second renaming leaves the message as it is."""
        message, left = str(self), []
        for field in self.fields:
            if field not in names:
                left.append(field)
                continue
            # the field as a whole word: not inside another name (`lam` in `autol2_lam_pred`)
            pattern = rf"(?<![\w.\-]){re.escape(field)}(?![\w])"
            message = re.sub(pattern, lambda _, n=names[field]: n, message)
        return ConfigError(message, *left)
