"""The CLI's failures and exit codes: 0 ok, 1 not found, 2 usage, 3 a server is unreachable or a setting is
invalid, 4 the record was altered (130: stopped by a signal)."""

from __future__ import annotations

EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_VERIFICATION_FAILED = 4
EXIT_INTERRUPTED = 130


class NotFound(Exception):
    """What the command was asked about does not exist (exit 1)."""


class Usage(Exception):
    """An option's value is not one the command can use (exit 2); the message names the option."""
