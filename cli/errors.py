"""The CLI's failures and exit codes: 0 ok, 1 not found, 2 usage, 3 a server is unreachable or a setting is
invalid, 4 the record was altered (130: stopped by a signal)."""

from __future__ import annotations

import re
from typing import Any

PROGRAM = "continuum"

EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_VERIFICATION_FAILED = 4
EXIT_INTERRUPTED = 130


class NotFound(Exception):
    """What the command was asked about does not exist (exit 1)."""


class Usage(Exception):
    """An option's value is not one the command can use (exit 2); the message names the option."""


def usage_line(error: Any) -> str:
    """A usage error of click (as typer bundles it) in one line: the command, what is wrong, where help is."""
    ctx = getattr(error, "ctx", None)
    path = ctx.command_path if ctx is not None else PROGRAM
    message = re.sub(r"\bValue error, ", "", str(error.format_message())).strip().rstrip(".")
    message = message[:1].lower() + message[1:]
    return f"{path}: {message} (see '{path} --help')"
