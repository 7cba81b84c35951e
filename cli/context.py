"""The store a command reads, alone (no Temporal); the composition root is imported only when a command needs
it, so `--help` and the offline commands start quickly."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING

from continuum.runtime.settings import load_settings

if TYPE_CHECKING:
    from continuum.eventlog.store import PostgresEventStore


@contextlib.contextmanager
def store(*, migrate: bool = False) -> Iterator[PostgresEventStore]:
    """The event store (on the embedded PostgreSQL if DATABASE_URL is unset), migrated at start unless
    CONTINUUM_MIGRATE=never; `migrate` migrates whatever that says (`continuum migrate`)."""
    from continuum.bootstrap import open_store

    settings = load_settings()
    with open_store(dataclasses.replace(settings, migrate_at_start=True) if migrate else settings) as opened:
        yield opened
