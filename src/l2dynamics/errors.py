"""Errors raised on bad user input.

Every error a user can cause derives from :class:`L2DynError`; the command line turns it into
one line on standard error and exit code 2. The message must name the culprit (the option,
file or field) so that the line alone says what to fix.
"""


class L2DynError(ValueError):
    """Bad user input: an option, a file or a configuration value. The CLI exits with code 2."""


class DataError(L2DynError):
    """A data set that is unknown, missing, truncated or corrupt."""


class ConfigError(L2DynError):
    """A configuration value that is unknown, of the wrong type or out of range."""
