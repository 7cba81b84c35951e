"""Aftercare follow-ups through the whole period: 30, 60 and 90 days in, then quarterly to its end, each
requested by the episode's clock when it falls due: pure domain over the default policy (no drug testing)."""

from __future__ import annotations

from datetime import datetime

import pytest

from continuum.domain.aftercare import FollowUpKind, FollowUpOutcome
from continuum.domain.commands import CompleteAftercare, RecordFollowUpOutcome, RequestFollowUp
from continuum.domain.episode import DischargeReason, EpisodeStatus
from continuum.domain.errors import CommandRejected
from continuum.domain.events import FollowUpRequested
from continuum.domain.levels import LevelOfCare
from continuum.domain.policy import Policy
from tests.unit.scenario import DAY, WITHOUT_TESTING, Scenario, policy_with

MILD = (1, 1, 1, 1, 1, 1)  # IOP, outpatient, then aftercare: no follow-ups after leaving residential


def through_aftercare(policy: Policy) -> tuple[Scenario, datetime, list[float]]:
    """Step the client down into aftercare, then run the clock to the end of aftercare, answering every
    follow-up it requests; returns the scenario, when aftercare began, and the days in it of each request."""
    t = Scenario.opened(MILD, policy=policy)
    t.to_aftercare()
    entered = t.at
    requested: list[float] = []
    while t.state.status is not EpisodeStatus.CLOSED:
        command = t.clock()
        [event] = t.do(command)
        if isinstance(command, RequestFollowUp):
            assert isinstance(event, FollowUpRequested) and event.kind is FollowUpKind.AFTERCARE
            requested.append((t.at - entered) / DAY)
            t.do(RecordFollowUpOutcome(command.follow_up_id, FollowUpOutcome.ABSTINENT, "outreach-1"))
        else:
            assert isinstance(command, CompleteAftercare), command
    return t, entered, requested


def test_after_the_first_three_months_aftercare_follow_ups_are_quarterly_to_the_end_of_aftercare() -> None:
    t, entered, requested = through_aftercare(WITHOUT_TESTING)

    assert requested == [30, 60, 90, 181, 272, 363]  # 90 + 91, + 91, + 91; the next (454) is past 365
    assert t.state.discharge_reason is DischargeReason.COMPLETED and (t.at - entered) / DAY == 365
    assert all(f.outcome is FollowUpOutcome.ABSTINENT for f in t.state.follow_ups)
    assert [f.requested_at for f in t.state.follow_ups] == [entered + DAY * d for d in requested]


def test_the_quarterly_interval_is_the_policys() -> None:
    policy = policy_with("then_every_days = 91", "then_every_days = 120", drug_testing=False)
    _, _, requested = through_aftercare(policy)
    assert requested == [30, 60, 90, 210, 330]


def test_a_quarterly_follow_up_is_not_requested_before_it_falls_due() -> None:
    t = Scenario.opened(MILD, policy=WITHOUT_TESTING)
    t.to_aftercare()
    assert t.state.level is LevelOfCare.AFTERCARE
    quarterly = [f for f in t.state.follow_ups if f.kind is FollowUpKind.AFTERCARE][3]
    t.advance(quarterly.due_at - DAY)  # the first three are requested and left open
    assert t.state.follow_up(quarterly.follow_up_id).requested_at is None  # type: ignore[union-attr]
    with pytest.raises(CommandRejected, match=f"follow-up {quarterly.follow_up_id} is not due"):
        t.do(RequestFollowUp(quarterly.follow_up_id))
    t.advance(quarterly.due_at)
    assert t.state.follow_up(quarterly.follow_up_id).requested_at == quarterly.due_at  # type: ignore[union-attr]
