"""What a closing leaves on an episode, and what a closed episode still accepts: pure domain."""

from __future__ import annotations

from continuum.domain.commands import Discharge, EscalateReview, RecordConsent, RequestReview, RevokeConsent
from continuum.domain.episode import DischargeReason, EpisodeStatus
from continuum.domain.events import ConsentRevoked
from continuum.domain.fold import fold
from tests.unit.scenario import DAY, POLICY, T0, WITHOUT_TESTING, Scenario

MILD = (1, 1, 1, 1, 1, 1)


def escalated_review() -> Scenario:
    """An IOP episode whose completion review went unanswered and was escalated to the director."""
    t = Scenario.opened(MILD, policy=WITHOUT_TESTING)
    t.wait(POLICY.stay_minimum_days[t.state.level])  # type: ignore[index]
    t.do(RequestReview("r-1"))
    t.wait(POLICY.review_due_days + POLICY.review_escalate_after_days)
    t.do(EscalateReview("r-1"))
    assert "review_overdue" in t.flags()
    return t


def test_closing_an_episode_ends_its_pending_review() -> None:
    t = escalated_review()
    t.do(Discharge(DischargeReason.AGAINST_MEDICAL_ADVICE))
    assert t.state.status is EpisodeStatus.CLOSED and t.state.pending_review is None
    assert fold(t.recorded) == t.state


def test_closing_an_episode_with_an_escalated_review_leaves_no_review_overdue_flag() -> None:
    t = escalated_review()
    t.do(Discharge(DischargeReason.AGAINST_MEDICAL_ADVICE))
    assert "review_overdue" not in t.flags()


def test_a_consent_can_be_revoked_after_the_episode_closed() -> None:
    t = Scenario.opened(MILD, policy=WITHOUT_TESTING)
    t.do(RecordConsent("c-1", "harbor-house", "aftercare_referral", T0 + DAY * 400, "clin-1"))
    t.do(Discharge(DischargeReason.COMPLETED), after_days=5)
    [revoked] = t.do(RevokeConsent("c-1", "clin-1"), after_days=5)
    assert isinstance(revoked, ConsentRevoked)
    consent = t.state.consent("c-1")
    assert consent is not None and consent.revoked_at == t.at and not consent.valid_at(t.at)
