"""Upcasting: an old schema version of an event is upgraded on read, one registered step at a time.

The steps of the product's own events are in `STEPS`; every store reads through them unless given others.
What is stored is never rewritten: its hash chain covers the payload as recorded (exports carry that).
"""

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


def test_cancelled_v1(payload: Payload) -> Payload:
    """TestCancelled v1 -> v2: version 1 did not record who cancelled the test."""
    return {**payload, "cancelled_by": None}


test_cancelled_v1.__test__ = False  # type: ignore[attr-defined]  # not a pytest test

STEPS: Mapping[tuple[str, int], Upcast] = {("TestCancelled", 1): test_cancelled_v1}


def product_upcasters() -> Upcasters:
    """A registry holding the product's own steps (a fresh one: a registry is open to more steps)."""
    return Upcasters(STEPS)
