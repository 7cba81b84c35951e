"""What the event feed shows a lab or a partner of one event (domain/feed.py)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from continuum.domain.feed import LAB_EVENTS, ReferralFacts, lab_view, partner_view

ORDERED = {
    "episode_id": "E1",
    "test_id": "E1.T1",
    "reason": "for_cause",
    "level": "outpatient",
    "result_due_at": "2026-01-02T00:00:00+00:00",
    "ordered_by": "clin-1",
    "policy_version": "p1",
    "lab_id": "lab-1",
}
COLLECTED = {
    "episode_id": "E1",
    "test_id": "E1.T1",
    "collected_at": "2026-01-01T09:00:00+00:00",
    "observed": True,
    "temperature_in_range": True,
    "site": "clinic-north",
}
ISSUED = {
    "episode_id": "E1",
    "referral_id": "E1.R1",
    "resource_id": "harbor-house",
    "resource_type": "residential",
    "recipient": "harbor-house",
    "disclosure": {"recipient": "harbor-house", "purpose": "aftercare_referral", "disclosed": ["episode_id"]},
    "answer_due_at": "2026-01-09T00:00:00+00:00",
    "directory_version": "d1",
}
DISCLOSED = ReferralFacts("harbor-house", disclosed=True, still_disclosed=True, values={"episode_id": "E1"})


def test_a_lab_sees_its_own_tests_order_as_ids_and_times_only() -> None:
    assert lab_view("E1", "TestOrdered", ORDERED, "lab-1", "lab-1") == {
        "episode_id": "E1",
        "test_id": "E1.T1",
        "result_due_at": "2026-01-02T00:00:00+00:00",
    }
    assert lab_view("E1", "SpecimenCollected", COLLECTED, "lab-1", "lab-1") == {
        "episode_id": "E1",
        "test_id": "E1.T1",
        "collected_at": "2026-01-01T09:00:00+00:00",
        "observed": True,
        "temperature_in_range": True,
    }
    assert lab_view(
        "E1", "TestCancelled", {"test_id": "E1.T1", "reason": "x", "cancelled_by": "c"}, "lab-1", "lab-1"
    ) == {
        "episode_id": "E1",
        "test_id": "E1.T1",
    }


def test_a_lab_sees_nothing_of_another_labs_tests_nor_of_an_unknown_one() -> None:
    assert lab_view("E1", "TestOrdered", ORDERED, "lab-1", "lab-2") is None
    assert lab_view("E1", "SpecimenCollected", COLLECTED, None, "lab-1") is None


CLINICAL = ["AssessmentRecorded", "PlacementDecided", "MedicationsChanged", "TestResultRecorded", "FlagRaised"]


@given(
    event_type=st.sampled_from([*CLINICAL, *LAB_EVENTS]),
    extra=st.dictionaries(st.sampled_from(["ratings", "medications", "note", "reason", "substances"]), st.text()),
)
def test_a_lab_never_receives_a_rating_a_medication_a_note_or_a_result(event_type: str, extra: dict[str, Any]) -> None:
    seen = lab_view("E1", event_type, {**ORDERED, **extra}, "lab-1", "lab-1")
    if event_type not in LAB_EVENTS:
        assert seen is None
    else:
        assert seen is not None and set(seen) <= {"episode_id", "test_id", *LAB_EVENTS[event_type]}


def test_a_partner_sees_a_referral_disclosed_to_it_with_what_was_disclosed() -> None:
    assert partner_view("E1", "ReferralIssued", ISSUED, DISCLOSED, "harbor-house") == {
        "episode_id": "E1",
        "referral_id": "E1.R1",
        "resource_id": "harbor-house",
        "answer_due_at": "2026-01-09T00:00:00+00:00",
        "disclosed": {"episode_id": "E1"},
    }
    changed = {"episode_id": "E1", "referral_id": "E1.R1", "status": "accepted", "changed_by": "partner:p-1"}
    assert partner_view("E1", "ReferralStatusChanged", changed, DISCLOSED, "harbor-house") == {
        "episode_id": "E1",
        "referral_id": "E1.R1",
        "status": "accepted",
    }


def test_a_partner_sees_nothing_of_others_referrals_of_one_awaiting_consent_or_after_a_revocation() -> None:
    assert partner_view("E1", "ReferralIssued", ISSUED, DISCLOSED, "other-house") is None
    waiting = ReferralFacts("harbor-house", disclosed=False, still_disclosed=True, values={})
    revoked = ReferralFacts("harbor-house", disclosed=True, still_disclosed=False, values={})
    assert partner_view("E1", "ReferralIssued", ISSUED, waiting, "harbor-house") is None
    assert partner_view("E1", "ReferralIssued", ISSUED, revoked, "harbor-house") is None
    assert partner_view("E1", "ReferralIssued", ISSUED, None, "harbor-house") is None
    assert partner_view("E1", "MedicationsChanged", {"medications": ["x"]}, DISCLOSED, "harbor-house") is None
