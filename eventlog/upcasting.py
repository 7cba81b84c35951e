"""Upcasting: an old schema version of an event is upgraded on read, one registered step at a time."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Payload = dict[str, Any]
Upcast = Callable[[Payload], Payload]


class Upcasters:
    """A registry of steps `(event_type, from_version) -> function(payload) -> payload of from_version + 1`."""

    def __init__(self, steps: Mapping[tuple[str, int], Upcast] | None = None) -> None:
        self._steps: dict[tuple[str, int], Upcast] = dict(steps or {})

    def register(self, event_type: str, from_version: int, step: Upcast) -> None:
        if (event_type, from_version) in self._steps:
            raise ValueError(f"an upcaster for {event_type} v{from_version} is already registered")
        self._steps[(event_type, from_version)] = step

    def upcast(self, event_type: str, schema_version: int, payload: Payload) -> tuple[int, Payload]:
        """Apply every registered step from `schema_version` on; return the final version and payload."""
        while (step := self._steps.get((event_type, schema_version))) is not None:
            payload = step(dict(payload))
            schema_version += 1
        return schema_version, payload
