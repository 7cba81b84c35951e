"""Plain-data encoding of domain values (events, state) for envelopes, JSON columns and Temporal payloads.

Events cross layers as a tagged envelope (`type`, `schema_version`, `data`) so a reader never has to guess
which class a payload is: two events with the same fields still come back as the right type.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from functools import cache
from typing import Any, TypeVar

from continuum.domain.errors import UnknownEventType
from continuum.domain.events import EVENT_TYPES, DomainEvent
from continuum.domain.flags import Flag

T = TypeVar("T")
JsonValue = Any  # str | int | float | bool | None | list[JsonValue] | dict[str, JsonValue]


@dataclass(frozen=True)
class EventEnvelope:
    """What crosses into activities and the store: the event's type tag, its schema version and its data."""

    type: str
    schema_version: int
    data: dict[str, JsonValue]


def format_instant(value: datetime) -> str:
    """An aware instant as UTC ISO-8601 with microseconds: one spelling per instant, which parses back.

    The year always has four digits (`strftime("%Y")` writes year 1 as `1`, which does not parse back);
    for years 1000-9999 the spelling is the one every hash in a log was computed over.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("instants must carry a time zone")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00, which is in year 0 in UTC
        raise ValueError("the instant lies outside the years 1-9999 in UTC") from None
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
        f".{utc.microsecond:06d}Z"
    )


def parse_instant(text: str) -> datetime:
    """An ISO-8601 date and time, `Z` or an offset for its zone (`format_instant`'s spelling among them); naive
    if the text names no zone. ValueError if it is not one."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@cache
def _field_names(cls: type) -> tuple[str, ...] | None:
    """A dataclass's field names in order; None for any other type."""
    if not dataclasses.is_dataclass(cls):
        return None
    return tuple(f.name for f in dataclasses.fields(cls))


def encode(value: Any) -> JsonValue:
    """A dataclass, enum, datetime or container of them, as JSON-ready data."""
    kind: type = type(value)
    names = _field_names(kind)
    if names is not None:
        return {name: encode(getattr(value, name)) for name in names}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return format_instant(value)
    if isinstance(value, (list, tuple)):
        return [encode(item) for item in value]
    if isinstance(value, dict):
        return {str(key): encode(item) for key, item in value.items()}
    if isinstance(value, Flag):
        return str(value)
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def decode(cls: type[T], data: JsonValue) -> T:
    """The inverse of `encode` for a dataclass type (fields decoded by their type hints)."""
    hint: Any = cls
    decoded: T = _decoder(hint)(data)
    return decoded


@cache
def _decoder(hint: Any) -> Callable[[JsonValue], Any]:
    """A function that decodes data of type `hint`, worked out once per type (every replay, projection and
    read decodes thousands of events of a few dozen types)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = _decoder(next(arg for arg in typing.get_args(hint) if arg is not type(None)))
        return lambda data: None if data is None else inner(data)
    if hasattr(hint, "__supertype__"):  # NewType
        return _decoder(hint.__supertype__)
    if origin is tuple:
        item = _decoder(typing.get_args(hint)[0])
        return lambda data: tuple(item(value) for value in data)
    if origin is list:
        element = _decoder(typing.get_args(hint)[0])
        return lambda data: [element(value) for value in data]
    if origin is dict:
        value_of = _decoder(typing.get_args(hint)[1])
        return lambda data: {key: value_of(value) for key, value in data.items()}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass_decoder(hint)
    if hint is datetime:
        return lambda data: parse_instant(data) if isinstance(data, str) else data
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint
    if hint is Flag:
        return Flag.parse
    return _same


def _same(data: JsonValue) -> JsonValue:
    return data


def _dataclass_decoder(cls: type) -> Callable[[JsonValue], Any]:
    fields: dict[str, Callable[[JsonValue], Any]] | None = (
        None  # worked out on first use: types may refer to themselves
    )

    def decode_fields(data: JsonValue) -> Any:
        nonlocal fields
        if fields is None:
            hints = _hints(cls)
            fields = {f.name: _decoder(hints[f.name]) for f in dataclasses.fields(cls) if f.init}
        known = fields
        return cls(**{name: known[name](value) for name, value in data.items() if name in known})

    return decode_fields


def to_envelope(event: DomainEvent) -> EventEnvelope:
    return EventEnvelope(type(event).type_name(), type(event).SCHEMA_VERSION, encode(event))


def from_envelope(envelope: EventEnvelope) -> DomainEvent:
    """Rebuild the event an envelope names; an unknown type or version is an error, never a guess."""
    cls = EVENT_TYPES.get(envelope.type)
    if cls is None:
        raise UnknownEventType(f"unknown event type {envelope.type!r}")
    if envelope.schema_version != cls.SCHEMA_VERSION:
        raise UnknownEventType(
            f"{envelope.type} schema version {envelope.schema_version} is not {cls.SCHEMA_VERSION}"
            "; register an upcaster"
        )
    return decode(cls, envelope.data)
