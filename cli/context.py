"""The store a command reads, alone (no Temporal); the composition root is imported only when a command needs
it, so `--help` and the offline commands start quickly."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from continuum.runtime.settings import load_settings

if TYPE_CHECKING:
    from continuum.eventlog.store import PostgresEventStore


@contextlib.contextmanager
def store() -> Iterator[PostgresEventStore]:
    """The event store, migrated (on the embedded PostgreSQL if DATABASE_URL is unset)."""
    from continuum.bootstrap import open_store

    with open_store(load_settings()) as opened:
        yield opened
