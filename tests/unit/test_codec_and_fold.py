"""The envelope codec and the fold: pure, no I/O."""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from continuum.domain.codec import EventEnvelope, decode, encode, from_envelope, to_envelope
from continuum.domain.episode import DischargeReason, Episode, TedsDischarge
from continuum.domain.errors import InvalidIdentifier, UnknownEventType
from continuum.domain.events import EVENT_TYPES, DomainEvent, EpisodeOpened, EpisodeResumed
from continuum.domain.fold import FoldError, evolve, replace
from continuum.domain.ids import ClientId, EpisodeId, episode_id
from continuum.domain.levels import ASAM_CODES, AsamEdition, Direction, LevelOfCare, direction

EP = EpisodeId("ep-1")
T0 = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


def _strategy(hint: typing.Any) -> st.SearchStrategy[typing.Any]:
    if hint is datetime:
        return instants
    if hint in (EpisodeId, ClientId):
        return st.just(hint("ep-1"))
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = [h for h in typing.get_args(hint) if h is not type(None)]
        return st.none() | _strategy(members[0])
    if typing.get_origin(hint) is tuple:
        return st.lists(_strategy(typing.get_args(hint)[0]), max_size=6).map(tuple)
    if hint is float:
        return st.floats(min_value=0, max_value=1e6, allow_nan=False)
    if dataclasses.is_dataclass(hint):  # a value inside an event (a disclosure, a planned follow-up)
        hints = typing.get_type_hints(hint)
        return st.builds(hint, **{f.name: _strategy(hints[f.name]) for f in dataclasses.fields(hint)})
    return st.from_type(hint)


def _events(cls: type[DomainEvent]) -> st.SearchStrategy[DomainEvent]:
    hints = typing.get_type_hints(cls)
    return st.builds(cls, **{f.name: _strategy(hints[f.name]) for f in dataclasses.fields(cls)})


any_event = st.one_of([_events(cls) for cls in EVENT_TYPES.values()])


@given(any_event)
def test_every_event_type_survives_the_envelope_round_trip(event: DomainEvent) -> None:
    envelope = to_envelope(event)
    assert envelope.type == type(event).__name__
    assert from_envelope(EventEnvelope(envelope.type, envelope.schema_version, envelope.data)) == event


def test_an_unknown_type_or_version_is_refused_not_guessed() -> None:
    with pytest.raises(UnknownEventType, match="unknown event type 'Nope'"):
        from_envelope(EventEnvelope("Nope", 1, {}))
    with pytest.raises(UnknownEventType, match="register an upcaster"):
        from_envelope(EventEnvelope("EpisodeResumed", 7, {"episode_id": "ep-1", "occurred_at": "2026-01-01T00:00:00Z"}))


def test_the_state_round_trips_through_plain_data() -> None:
    state = evolve(None, EpisodeOpened(EP, T0, ClientId("c-1")))
    assert decode(Episode, encode(state)) == state


def test_a_history_must_start_with_the_opening_and_belong_to_one_episode() -> None:
    with pytest.raises(FoldError, match="must begin with EpisodeOpened"):
        evolve(None, EpisodeResumed(EP, T0, 0.0))
    opened = evolve(None, EpisodeOpened(EP, T0, ClientId("c-1")))
    with pytest.raises(FoldError, match="applied to episode ep-1"):
        evolve(opened, EpisodeResumed(EpisodeId("ep-2"), T0 + timedelta(hours=1), 0.0))
    with pytest.raises(FoldError, match="opened only once"):
        evolve(opened, EpisodeOpened(EP, T0, ClientId("c-1")))


def test_levels_are_ordered_by_intensity_and_carry_asam_codes_per_edition() -> None:
    assert [lv.intensity for lv in LevelOfCare] == list(range(6))
    assert direction(LevelOfCare.OUTPATIENT, LevelOfCare.INTENSIVE_OUTPATIENT) is Direction.UP
    assert direction(LevelOfCare.RESIDENTIAL, LevelOfCare.RESIDENTIAL) is Direction.LATERAL
    assert ASAM_CODES[AsamEdition.THIRD][LevelOfCare.INTENSIVE_OUTPATIENT] == "2.1"
    assert ASAM_CODES[AsamEdition.THIRD][LevelOfCare.WITHDRAWAL_MANAGEMENT] == "3.7-WM"
    assert ASAM_CODES[AsamEdition.FOURTH][LevelOfCare.WITHDRAWAL_MANAGEMENT] == "3.7"
    assert ASAM_CODES[AsamEdition.THIRD][LevelOfCare.AFTERCARE] is None


def test_every_discharge_reason_maps_to_a_teds_code() -> None:
    assert {reason: reason.teds for reason in DischargeReason} == {
        DischargeReason.COMPLETED: TedsDischarge.COMPLETED,
        DischargeReason.AGAINST_MEDICAL_ADVICE: TedsDischarge.DROPPED_OUT,
        DischargeReason.ADMINISTRATIVE: TedsDischarge.TERMINATED,
        DischargeReason.TRANSFERRED: TedsDischarge.TRANSFERRED,
        DischargeReason.DECEASED: TedsDischarge.OTHER,
        DischargeReason.LOST_TO_FOLLOW_UP: TedsDischarge.DROPPED_OUT,
    }


@pytest.mark.parametrize("bad", ["", "Jane Doe", "x" * 65, "-leading", "a/b"])
def test_identifiers_that_could_carry_names_or_paths_are_refused(bad: str) -> None:
    with pytest.raises(InvalidIdentifier):
        episode_id(bad)


@given(version=st.integers(min_value=1, max_value=10_000), flags=st.lists(st.text(min_size=1, max_size=8), max_size=4))
def test_the_folds_replace_makes_what_dataclasses_replace_makes(version: int, flags: list[str]) -> None:
    state = evolve(None, EpisodeOpened(EP, T0, ClientId("client-1")))
    ours = replace(state, version=version, flags=tuple(flags))
    theirs = dataclasses.replace(state, version=version, flags=tuple(flags))
    assert ours == theirs and encode(ours) == encode(theirs)
    assert state.version == 1 and state.flags == ()  # the original is untouched
    with pytest.raises(TypeError, match="no field 'level_of_care'"):
        replace(state, level_of_care=None)
