"""The compiled JSON decoding of payloads gives exactly what the SDK's own decoding gives, for every payload
type the workflows and activities exchange, and takes the SDK's path for any type it cannot match."""

from __future__ import annotations

import dataclasses
import types
import typing
import uuid
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from temporalio.converter import DefaultPayloadConverter

from continuum.activities.eventlog import RecordEventsInput, RecordEventsResult
from continuum.domain.commands import COMMANDS
from continuum.domain.flags import Flag, FlagFamily
from continuum.runtime.codec import ContinuumPayloadConverter, _compiled
from continuum.workflows.episode import CommandMeta, CommandResult, EpisodeInput

PAYLOAD_TYPES: list[Any] = [
    CommandMeta,
    CommandResult,
    EpisodeInput,
    RecordEventsInput,
    RecordEventsResult,
    list[str],
    dict[str, Any],
    *COMMANDS.values(),
]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def strategy_for(hint: Any) -> st.SearchStrategy[Any]:
    """Values of `hint` as the project's payloads hold them (aware instants, valid flags, JSON for Any)."""
    if hint is Any:
        return JSON
    if hint is datetime:
        return st.datetimes(timezones=st.just(UTC))
    if hint is Flag:
        return st.sampled_from([Flag(family) for family in FlagFamily])
    if hasattr(hint, "__supertype__"):
        return strategy_for(hint.__supertype__)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return st.sampled_from(list(hint))
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(strategy_for(arg) for arg in args))
    if origin is list:
        return st.lists(strategy_for(args[0]), max_size=3)
    if origin is tuple:
        return st.lists(strategy_for(args[0]), max_size=3).map(tuple)
    if origin is dict:
        return st.dictionaries(st.text(max_size=5), strategy_for(args[1]), max_size=3)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        return st.builds(hint, **{f.name: strategy_for(hints[f.name]) for f in dataclasses.fields(hint) if f.init})
    if hint is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    return st.from_type(hint)


def test_every_payload_type_the_workflows_exchange_takes_the_compiled_path() -> None:
    assert [t for t in PAYLOAD_TYPES if not _compiled(t)] == []


@pytest.mark.parametrize("hint", PAYLOAD_TYPES, ids=lambda t: getattr(t, "__name__", str(t)))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_compiled_decoding_equals_the_sdk_decoding(hint: Any, data: st.DataObject) -> None:
    value = data.draw(strategy_for(hint))
    sdk, ours = DefaultPayloadConverter(), ContinuumPayloadConverter()
    [payload] = sdk.to_payloads([value])
    assert ours.to_payloads([value]) == [payload]  # encoding is unchanged
    [expected] = sdk.from_payloads([payload], [hint])
    [decoded] = ours.from_payloads([payload], [hint])
    assert decoded == expected == value
    assert type(decoded) is type(expected)


@pytest.mark.parametrize("hint", [uuid.UUID, tuple[int, str], int | str], ids=str)
def test_types_the_compiled_decoder_does_not_match_stay_with_the_sdk(hint: Any) -> None:
    assert not _compiled(hint)
