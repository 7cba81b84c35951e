"""Episodes at a facility: opened at one, transferred (the new facility's policy decides), and waitlisted when
the facility cannot take the client at the level decided."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from continuum.domain.commands import OpenEpisode, OverridePlacement, RecordAssessment, TransferEpisode
from continuum.domain.decisions import decide
from continuum.domain.episode import Episode, OverrideReason
from continuum.domain.errors import CommandRejected
from continuum.domain.events import EpisodeTransferred, LevelChanged, PlacementDecided, StayStarted, WaitlistEntered
from continuum.domain.facility_decisions import interim_level
from continuum.domain.fold import fold
from continuum.domain.levels import LevelOfCare
from continuum.domain.policy import default_policy_text, load_policy

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
POLICY = load_policy()
OTHER_TEXT = default_policy_text().replace("residential = 30", "residential = 21", 1)
MILD = (1, 1, 1, 1, 1, 1)  # intensive outpatient by the default policy
UNSTABLE_HOME = (1, 1, 1, 1, 1, 3)  # residential


def _opened(ratings: tuple[int, ...] = UNSTABLE_HOME, unavailable: tuple[LevelOfCare, ...] = ()) -> Episode:
    assessment = RecordAssessment(ratings, "clin-1", unavailable)
    events = decide(None, OpenEpisode("ep-1", "client-1", None, assessment, "nv-reno"), POLICY, T0)
    state = fold(events)
    assert state is not None
    return state


def test_an_episode_opens_at_its_facility_and_the_placement_names_it() -> None:
    events = decide(
        None, OpenEpisode("ep-1", "client-1", None, RecordAssessment(MILD, "clin-1"), "nv-reno"), POLICY, T0
    )

    placed = next(e for e in events if isinstance(e, PlacementDecided))
    assert placed.facility_id == "nv-reno" and placed.policy_version == POLICY.version
    assert fold(events).facility_id == "nv-reno"  # type: ignore[union-attr]
    assert not any(isinstance(e, WaitlistEntered) for e in events)


def test_a_placement_at_a_full_level_waitlists_the_client_at_the_interim_level() -> None:
    state = _opened(UNSTABLE_HOME, (LevelOfCare.RESIDENTIAL,))

    assert state.level is LevelOfCare.PARTIAL_HOSPITALIZATION  # the nearest (detox is no waiting room)
    assert state.recommended_level is LevelOfCare.RESIDENTIAL
    assert state.waitlist is not None and state.waitlist.wanted_level is LevelOfCare.RESIDENTIAL


def test_the_client_leaves_the_waitlist_when_placed_at_the_level_waited_for() -> None:
    state = _opened(UNSTABLE_HOME, (LevelOfCare.RESIDENTIAL,))
    at = T0 + timedelta(hours=2)
    override = OverridePlacement(
        LevelOfCare.RESIDENTIAL, OverrideReason.SERVICE_UNAVAILABLE, "a bed freed up", "clin-1"
    )

    moved = fold(decide(state, override, POLICY, at), state)

    assert moved is not None and moved.level is LevelOfCare.RESIDENTIAL and moved.waitlist is None


def test_a_transfer_records_the_facility_and_the_new_policy_version() -> None:
    state = _opened(MILD)
    command = TransferEpisode("tx-austin", "closer to home", "clin-2", OTHER_TEXT)

    events = decide(state, command, POLICY, T0 + timedelta(days=1))

    assert len(events) == 1 and isinstance(events[0], EpisodeTransferred)
    transferred = events[0]
    assert (transferred.from_facility_id, transferred.to_facility_id) == ("nv-reno", "tx-austin")
    assert transferred.policy_version == load_policy(OTHER_TEXT).version != POLICY.version
    assert fold(events, state).facility_id == "tx-austin"  # type: ignore[union-attr]


def test_a_transfer_to_a_facility_without_the_clients_level_waitlists_them_there() -> None:
    state = _opened(UNSTABLE_HOME)
    offered_only_outpatient = tuple(set(LevelOfCare) - {LevelOfCare.INTENSIVE_OUTPATIENT, LevelOfCare.OUTPATIENT})
    command = TransferEpisode(
        "tx-austin", "bed needed elsewhere", "clin-2", OTHER_TEXT, None, None, offered_only_outpatient
    )

    events = decide(state, command, POLICY, T0 + timedelta(days=1))

    assert [type(e) for e in events[:3]] == [EpisodeTransferred, WaitlistEntered, LevelChanged]
    after = fold(events, state)
    assert after is not None and after.level is LevelOfCare.INTENSIVE_OUTPATIENT and after.facility_id == "tx-austin"
    assert after.waitlist is not None and after.waitlist.wanted_level is LevelOfCare.RESIDENTIAL


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (TransferEpisode("nv-reno", "again", "clin-2"), "already at facility nv-reno"),
        (TransferEpisode("tx-austin", "", "clin-2"), "a reason is"),
        (TransferEpisode("tx austin", "why", "clin-2"), "an id is"),
    ],
)
def test_a_transfer_is_refused_saying_why(command: TransferEpisode, reason: str) -> None:
    with pytest.raises(CommandRejected, match=reason):
        decide(_opened(MILD), command, POLICY, T0 + timedelta(days=1))


def test_a_facility_with_no_room_at_all_refuses_the_placement() -> None:
    with pytest.raises(CommandRejected, match="no room at any level"):
        _opened(MILD, tuple(LevelOfCare))


@given(st.sampled_from(list(LevelOfCare)), st.sets(st.sampled_from(list(LevelOfCare))))
def test_the_interim_level_is_the_nearest_available_and_never_an_unavailable_one(
    wanted: LevelOfCare, unavailable: set[LevelOfCare]
) -> None:
    level = interim_level(wanted, unavailable)

    detox = LevelOfCare.WITHDRAWAL_MANAGEMENT
    possible = {lvl for lvl in LevelOfCare if lvl not in unavailable and (lvl is not detox or wanted is detox)}
    if not possible:
        assert level is None
        return
    assert level is not None and level in possible
    distance = abs(level.intensity - wanted.intensity)
    assert all(abs(other.intensity - wanted.intensity) >= distance for other in possible)
    assert (level is wanted) is (wanted not in unavailable)


def test_stays_start_at_the_interim_level() -> None:
    assessment = RecordAssessment(UNSTABLE_HOME, "clin-1", (LevelOfCare.RESIDENTIAL,))
    events = decide(None, OpenEpisode("ep-1", "client-1", None, assessment, "nv-reno"), POLICY, T0)

    started = next(e for e in events if isinstance(e, StayStarted))
    assert started.level is LevelOfCare.PARTIAL_HOSPITALIZATION


def test_an_override_into_a_full_level_waitlists_the_client_at_the_nearest_level_it_can() -> None:
    state = _opened(MILD)  # intensive outpatient
    full = (LevelOfCare.RESIDENTIAL,)
    command = OverridePlacement(LevelOfCare.RESIDENTIAL, OverrideReason.CLINICAL_JUDGMENT, "", "clin-1", None, full)

    events = decide(state, command, POLICY, T0 + timedelta(hours=1))

    waiting = next(e for e in events if isinstance(e, WaitlistEntered))
    moved = next(e for e in events if isinstance(e, LevelChanged))
    assert (waiting.wanted_level, waiting.interim_level) == (
        LevelOfCare.RESIDENTIAL,
        LevelOfCare.PARTIAL_HOSPITALIZATION,
    )
    assert moved.to_level is LevelOfCare.PARTIAL_HOSPITALIZATION and "waitlisted for residential" in moved.cause


def test_an_override_whose_nearest_level_is_the_current_one_waits_without_moving() -> None:
    state = _opened(MILD)  # intensive outpatient
    full = (LevelOfCare.RESIDENTIAL, LevelOfCare.PARTIAL_HOSPITALIZATION)
    command = OverridePlacement(
        LevelOfCare.PARTIAL_HOSPITALIZATION, OverrideReason.CLINICAL_JUDGMENT, "", "clin-1", None, full
    )

    events = decide(state, command, POLICY, T0 + timedelta(hours=1))

    assert [type(e) for e in events] == [WaitlistEntered]
    after = fold(events, state)
    assert after is not None and after.level is LevelOfCare.INTENSIVE_OUTPATIENT and after.placement_overrides == 0
