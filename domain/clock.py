"""The episode's clock: what falls due next and when (a review, an escalation, the end of aftercare).

Pure, so the workflow only waits for the instant it returns and then issues the command.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.commands import CompleteAftercare, EscalateReview, RequestReview
from domain.episode import Episode, EpisodeStatus
from domain.fold import stay_elapsed
from domain.levels import LevelOfCare
from domain.policy import Policy


@dataclass(frozen=True)
class Due:
    command: RequestReview | EscalateReview | CompleteAftercare
    at: datetime


def next_due(state: Episode, policy: Policy, now: datetime, day: timedelta) -> Due | None:
    """The next command the clock issues, or None while nothing is scheduled (intake, on hold, closed,
    or an escalated review that only the therapist can close)."""
    if state.status is not EpisodeStatus.ACTIVE or state.level is None:
        return None
    pending = state.pending_review
    if pending is not None:
        if pending.escalated:
            return None
        return Due(EscalateReview(pending.review_id), pending.due_at + day * policy.review_escalate_after_days)
    remaining = day * (state.review_after_days or 0) - stay_elapsed(state, now)
    at = now + max(remaining, timedelta(0))
    if state.level is LevelOfCare.AFTERCARE:
        return Due(CompleteAftercare(), at)
    return Due(RequestReview(f"review-{state.version + 1}"), at)
