"""What the event feed shows a lab or a partner of one event (pure: the API finds the facts and asks here).

A lab sees only the orders, cancellations and collections of the tests sent to it, as ids and times: never a
result, a rating, a medication, a reason or a note. A partner sees only the referrals disclosed to it (never
one still awaiting the client's consent, and nothing once no consent to it is valid), with what the referral
disclosed (`domain.disclosure.disclosed_values`) and the status changes of those referrals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# The events about a test a lab may see, and the payload items of each it receives (besides the test's id).
LAB_EVENTS: Mapping[str, tuple[str, ...]] = {
    "TestOrdered": ("result_due_at",),
    "TestCancelled": (),
    "SpecimenCollected": ("collected_at", "observed", "temperature_in_range"),
}
PARTNER_EVENTS = ("ReferralIssued", "ReferralStatusChanged")


class Audience(StrEnum):
    """How much of the log a reader of the feed (a caller, a webhook subscription) sees."""

    WHOLE = "whole"  # every event, whole
    LAB = "lab"  # its own tests' orders, cancellations and collections, reduced (`lab_view`)
    PARTNER = "partner"  # the referrals disclosed to it, as disclosed (`partner_view`)


@dataclass(frozen=True)
class FeedViewer:
    """Who reads the feed: an audience and, for a lab or a partner, which one it is."""

    audience: Audience
    subject: str | None = None


def visible_event_types(audience: Audience, known: tuple[str, ...]) -> tuple[str, ...]:
    """The event types (of `known`) an audience can ever be shown."""
    shown = {Audience.LAB: tuple(LAB_EVENTS), Audience.PARTNER: PARTNER_EVENTS}.get(audience, known)
    return tuple(t for t in known if t in shown)


def test_of(event_type: str, payload: Mapping[str, Any]) -> str | None:
    """The test an event a lab may see is about (None: not such an event)."""
    return str(payload["test_id"]) if event_type in LAB_EVENTS and "test_id" in payload else None


def lab_view(
    episode_id: str, event_type: str, payload: Mapping[str, Any], sent_to: str | None, lab: str
) -> dict[str, Any] | None:
    """The event as `lab` sees it, or None. `sent_to`: the lab the event's test was ordered from."""
    test_id = test_of(event_type, payload)
    if test_id is None or sent_to is None or sent_to != lab:
        return None
    return {
        "episode_id": episode_id,
        "test_id": test_id,
        **{item: payload[item] for item in LAB_EVENTS[event_type] if item in payload},
    }


def referral_of(event_type: str, payload: Mapping[str, Any]) -> str | None:
    """The referral an event a partner may see is about (None: not such an event)."""
    return str(payload["referral_id"]) if event_type in PARTNER_EVENTS and "referral_id" in payload else None


@dataclass(frozen=True)
class ReferralFacts:
    """What the API found about a referral: to whom it went, whether it was disclosed (not awaiting the
    client's consent), whether what it disclosed may still be read now, and the disclosed values as sent."""

    recipient: str | None
    disclosed: bool
    still_disclosed: bool
    values: Mapping[str, Any]


def partner_view(
    episode_id: str, event_type: str, payload: Mapping[str, Any], facts: ReferralFacts | None, partner: str
) -> dict[str, Any] | None:
    """The event as `partner` sees it, or None."""
    referral_id = referral_of(event_type, payload)
    if referral_id is None or facts is None:
        return None
    if facts.recipient != partner or not facts.disclosed or not facts.still_disclosed:
        return None
    seen: dict[str, Any] = {"episode_id": episode_id, "referral_id": referral_id}
    if event_type == "ReferralIssued":
        seen |= {
            "resource_id": payload.get("resource_id"),
            "answer_due_at": payload.get("answer_due_at"),
            "disclosed": dict(facts.values),
        }
    else:
        seen["status"] = payload.get("status")
    return seen
