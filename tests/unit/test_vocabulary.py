"""The typed vocabulary: flags as family and subject, waits and cancellations as enums, one move, stays,
and TestCancelled's first upcaster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from continuum.domain.codec import EventEnvelope, decode, encode, from_envelope, to_envelope
from continuum.domain.commands import CancelTest
from continuum.domain.episode import Episode, EpisodeStatus, StepUpWait
from continuum.domain.events import EpisodeClosed, FlagRaised, LevelChanged, StayStarted, TestCancelled
from continuum.domain.flags import ALERT_OF, Alert, Flag, FlagFamily
from continuum.domain.ids import ClientId, EpisodeId
from continuum.domain.levels import Direction, LevelOfCare
from continuum.domain.policy import load_policy
from continuum.domain.stays import PLACEMENT, Stay, move, stays
from continuum.domain.testing import DrugTest, OrderReason, TestResult
from continuum.domain.testing_decisions import decide_testing
from continuum.eventlog.upcasting import product_upcasters

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
EP = EpisodeId("ep-1")


def _active(**changes: object) -> Episode:
    base = Episode(EP, ClientId("client-1"), EpisodeStatus.ACTIVE, T0, T0, version=3, level=LevelOfCare.RESIDENTIAL)
    return decode(Episode, {**encode(base), **encode(changes)})


def test_a_flag_is_its_stored_spelling_with_a_family_and_a_subject() -> None:
    missing = Flag(FlagFamily.RESULT_MISSING, "ep-1.T3")
    overdue = Flag(FlagFamily.REVIEW_OVERDUE)

    assert missing == "result_missing:ep-1.T3" and overdue == "review_overdue"
    assert Flag.parse("result_missing:ep-1.T3").family is FlagFamily.RESULT_MISSING
    assert Flag.parse("result_missing:ep-1.T3").subject == "ep-1.T3" and Flag.parse("review_overdue").subject is None
    assert [f.family for f in sorted({overdue, missing})] == [FlagFamily.RESULT_MISSING, FlagFamily.REVIEW_OVERDUE]
    assert ALERT_OF[FlagFamily.REFERRAL_UNANSWERED] is Alert.UNANSWERED_REFERRALS
    with pytest.raises(ValueError):
        Flag.parse("no_such_family:x")


def test_flags_cross_the_codec_as_text_and_come_back_typed() -> None:
    raised = FlagRaised(EP, T0, Flag(FlagFamily.REFERRAL_UNANSWERED, "ep-1.R1"), "no answer")
    envelope = to_envelope(raised)
    back = from_envelope(envelope)

    assert envelope.data["flag"] == "referral_unanswered:ep-1.R1" and type(envelope.data["flag"]) is str
    assert isinstance(back, FlagRaised) and isinstance(back.flag, Flag) and back == raised
    assert back.flag.family is FlagFamily.REFERRAL_UNANSWERED and back.flag.subject == "ep-1.R1"


def test_a_wait_is_an_enum_and_counting_results_a_frozenset_of_results() -> None:
    policy = load_policy()
    assert StepUpWait("confirmation") is StepUpWait.CONFIRMATION and StepUpWait.REVIEW == "review"
    assert isinstance(policy.drug_testing.counting_results, frozenset)
    assert TestResult.POSITIVE in policy.drug_testing.counting_results
    assert all(isinstance(r, TestResult) for r in policy.drug_testing.counting_results)


def test_every_level_change_is_one_move() -> None:
    policy = load_policy()
    state = _active()
    up = move(state, LevelOfCare.WITHDRAWAL_MANAGEMENT, "test ep-1.T1: positive", policy, T0, test_id="ep-1.T1")
    down = move(state, LevelOfCare.INTENSIVE_OUTPATIENT, "review r-1: goals_met", policy, T0)

    assert isinstance(up, LevelChanged) and up.direction is Direction.UP and up.cause_test_id == "ep-1.T1"
    assert down.direction is Direction.DOWN and down.cause_test_id is None and down.cause_follow_up_id is None
    assert down.review_after_days == policy.stay_minimum_days[LevelOfCare.INTENSIVE_OUTPATIENT]
    assert down.policy_version == policy.version and down.from_level is LevelOfCare.RESIDENTIAL


def test_stays_begin_at_placement_or_a_move_and_end_at_the_next_or_the_close() -> None:
    policy = load_policy()
    started = StayStarted(EP, T0, LevelOfCare.RESIDENTIAL, 14.0, policy.version)
    moved = move(_active(), LevelOfCare.OUTPATIENT, "review r-1: goals_met", policy, T0 + timedelta(days=20))
    closed = EpisodeClosed(EP, T0 + timedelta(days=50), *_completed(policy.version))

    assert stays([started]) == [Stay(LevelOfCare.RESIDENTIAL, T0, None, PLACEMENT)]
    assert stays([started, moved, closed]) == [
        Stay(LevelOfCare.RESIDENTIAL, T0, moved.occurred_at, PLACEMENT),
        Stay(LevelOfCare.OUTPATIENT, moved.occurred_at, closed.occurred_at, "review r-1: goals_met"),
    ]


def _completed(version: str) -> tuple[object, ...]:
    from continuum.domain.episode import DischargeReason

    return (DischargeReason.COMPLETED, DischargeReason.COMPLETED.teds, version)


def test_a_cancelled_test_records_who_cancelled_it() -> None:
    test = DrugTest("ep-1.T1", OrderReason.CLINICIAN, LevelOfCare.RESIDENTIAL, T0, T0 + timedelta(days=3))
    state = _active(tests=(test,))
    [cancelled] = decide_testing(
        state, CancelTest("ep-1.T1", "dr-lee", "ordered twice"), load_policy(), T0, timedelta(days=1)
    )

    assert isinstance(cancelled, TestCancelled) and cancelled.cancelled_by == "dr-lee"
    assert to_envelope(cancelled).schema_version == 2 and to_envelope(cancelled).data["cancelled_by"] == "dr-lee"


def test_a_version_one_test_cancelled_is_read_through_its_upcaster() -> None:
    v1 = {"episode_id": "ep-1", "occurred_at": "2026-03-02T09:00:00.000000Z", "test_id": "ep-1.T1", "reason": "x"}
    version, payload = product_upcasters().upcast("TestCancelled", 1, v1)
    event = from_envelope(EventEnvelope("TestCancelled", version, payload))

    assert version == TestCancelled.SCHEMA_VERSION == 2 and "cancelled_by" not in v1  # the original is untouched
    assert isinstance(event, TestCancelled) and event.cancelled_by is None and event.reason == "x"
    assert product_upcasters().upcast("TestCancelled", 2, payload) == (2, payload)  # the current version stays
