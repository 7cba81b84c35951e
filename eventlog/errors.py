"""Event-store errors, translated from PostgreSQL's into ours at this boundary.

EventStoreError
├── ConcurrencyError        the stream is not at the version the caller expected
├── EventIdConflict         an event id already stored with different content
├── StoreBusy               the append lock was not granted in time (retry)
└── StoreUnavailable        PostgreSQL cannot be reached (one line, names the address)
"""

from __future__ import annotations


class EventStoreError(Exception):
    pass


class ConcurrencyError(EventStoreError):
    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        super().__init__(f"stream {stream_id} is at version {actual}, not the expected {expected}")
        self.stream_id, self.expected, self.actual = stream_id, expected, actual


class EventIdConflict(EventStoreError):
    pass


class StoreBusy(EventStoreError):
    pass


class StoreUnavailable(EventStoreError):
    pass
