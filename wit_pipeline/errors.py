"""The user-error types.

`UserError` is what the user must fix (a flag, a config key or value, a missing or malformed
input), as opposed to a bug. Library modules raise its subclasses (`config.ConfigError`,
`InputError`, `OutputError`) and commands raise `cli.UsageError`; `cli.main` alone catches
`UserError` and prints it in one line, exit status 2.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user must fix; the message names it."""


class InputError(UserError, ValueError):
    """An input folder or file is missing, empty or does not match what a stage expects.

    Entry points report it in one line; it is the user's data, not a bug, that needs fixing.
    """


class OutputError(InputError):
    """An output file cannot be written: the disk is full, or the folder read-only."""
