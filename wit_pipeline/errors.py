"""The one user-error type.

`UserError` is what the user must fix (a flag, a config key or value, a missing or malformed
input), as opposed to a bug. Library modules raise its subclasses (`config.ConfigError`,
`shards.InputError`) and commands raise `cli.UsageError`; `cli.main` alone catches `UserError`
and prints it in one line, exit status 2.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user must fix; the message names it."""
