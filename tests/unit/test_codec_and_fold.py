"""The envelope codec and the fold: pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.codec import EventEnvelope, decode, encode, from_envelope, to_envelope
from domain.episode import DischargeReason, Episode, EpisodeStatus, HoldReason, TedsDischarge
from domain.errors import InvalidIdentifier, UnknownEventType
from domain.events import (
    EpisodeClosed,
    EpisodeOpened,
    EpisodePutOnHold,
    EpisodeResumed,
    FlagCleared,
    FlagRaised,
    LevelChanged,
    StayStarted,
)
from domain.fold import FoldError, evolve, fold
from domain.ids import ClientId, EpisodeId, episode_id
from domain.levels import AsamEdition, Direction, LevelOfCare, asam_code, direction

EP = EpisodeId("ep-1")
T0 = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
levels = st.sampled_from(list(LevelOfCare))
words = st.text(min_size=1, max_size=40)
events = st.one_of(
    st.builds(EpisodeOpened, st.just(EP), instants, st.just(ClientId("c-1")), st.none() | st.just(EpisodeId("ep-0"))),
    st.builds(StayStarted, st.just(EP), instants, levels),
    st.builds(LevelChanged, st.just(EP), instants, levels, levels, st.sampled_from(list(Direction)), words),
    st.builds(FlagRaised, st.just(EP), instants, words, words),
    st.builds(FlagCleared, st.just(EP), instants, words),
    st.builds(EpisodePutOnHold, st.just(EP), instants, st.sampled_from(list(HoldReason))),
    st.builds(EpisodeResumed, st.just(EP), instants),
    st.builds(EpisodeClosed, st.just(EP), instants, st.sampled_from(list(DischargeReason))),
)


@given(events)
def test_every_event_survives_the_envelope_round_trip(event: object) -> None:
    envelope = to_envelope(event)  # type: ignore[arg-type]
    assert from_envelope(EventEnvelope(envelope.type, envelope.schema_version, envelope.data)) == event


def test_an_unknown_type_or_version_is_refused_not_guessed() -> None:
    with pytest.raises(UnknownEventType, match="unknown event type 'Nope'"):
        from_envelope(EventEnvelope("Nope", 1, {}))
    with pytest.raises(UnknownEventType, match="register an upcaster"):
        from_envelope(EventEnvelope("EpisodeResumed", 7, {"episode_id": "ep-1", "occurred_at": "2026-01-01T00:00:00Z"}))


def test_a_journey_folds_to_the_expected_state_and_state_round_trips() -> None:
    history = [
        EpisodeOpened(EP, T0, ClientId("c-1")),
        StayStarted(EP, T0 + timedelta(days=1), LevelOfCare.WITHDRAWAL_MANAGEMENT),
        LevelChanged(EP, T0 + timedelta(days=6), LevelOfCare.WITHDRAWAL_MANAGEMENT, LevelOfCare.RESIDENTIAL,
                     Direction.DOWN, "withdrawal_completed"),  # fmt: skip
        FlagRaised(EP, T0 + timedelta(days=7), "review_overdue", "due day 6"),
        EpisodePutOnHold(EP, T0 + timedelta(days=8), HoldReason.HOSPITALISED),
        EpisodeResumed(EP, T0 + timedelta(days=10)),
        FlagCleared(EP, T0 + timedelta(days=11), "review_overdue"),
        EpisodeClosed(EP, T0 + timedelta(days=30), DischargeReason.AGAINST_MEDICAL_ADVICE),
    ]
    state = fold(history)
    assert state == Episode(
        episode_id=EP, client_id=ClientId("c-1"), status=EpisodeStatus.CLOSED, opened_at=T0,
        status_since=T0 + timedelta(days=30), version=8, level=LevelOfCare.RESIDENTIAL,
        level_since=T0 + timedelta(days=6), hold_reason=None, flags=(),
        discharge_reason=DischargeReason.AGAINST_MEDICAL_ADVICE, closed_at=T0 + timedelta(days=30),
    )  # fmt: skip
    assert decode(Episode, encode(state)) == state
    assert state.discharge_reason is not None and state.discharge_reason.teds is TedsDischarge.DROPPED_OUT


def test_a_history_must_start_with_the_opening_and_belong_to_one_episode() -> None:
    with pytest.raises(FoldError, match="must begin with EpisodeOpened"):
        evolve(None, EpisodeResumed(EP, T0))
    opened = evolve(None, EpisodeOpened(EP, T0, ClientId("c-1")))
    with pytest.raises(FoldError, match="applied to episode ep-1"):
        evolve(opened, EpisodeResumed(EpisodeId("ep-2"), T0))


def test_levels_are_ordered_by_intensity_and_carry_asam_codes_per_edition() -> None:
    assert [lv.intensity for lv in LevelOfCare] == list(range(6))
    assert direction(LevelOfCare.OUTPATIENT, LevelOfCare.INTENSIVE_OUTPATIENT) is Direction.UP
    assert direction(LevelOfCare.RESIDENTIAL, LevelOfCare.RESIDENTIAL) is Direction.LATERAL
    assert asam_code(LevelOfCare.INTENSIVE_OUTPATIENT) == "2.1"
    assert asam_code(LevelOfCare.WITHDRAWAL_MANAGEMENT, AsamEdition.THIRD) == "3.7-WM"
    assert asam_code(LevelOfCare.AFTERCARE) is None


@pytest.mark.parametrize("bad", ["", "Jane Doe", "x" * 65, "-leading", "a/b"])
def test_identifiers_that_could_carry_names_or_paths_are_refused(bad: str) -> None:
    with pytest.raises(InvalidIdentifier):
        episode_id(bad)
