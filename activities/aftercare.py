"""Aftercare's outbound calls: a referral POSTed to its partner, a follow-up request to the outreach service.

Each is idempotent by the id the workflow minted (sent as `Idempotency-Key`), so a retry never makes a
second referral or call. A referral carries only what its disclosure record names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from temporalio import activity

from continuum.activities.outbound import post_json

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ReferralToSend:
    referral_id: str
    resource_id: str
    endpoint: str
    disclosed: dict[str, Any] = field(default_factory=dict)  # exactly the items of the disclosure record


@dataclass(frozen=True)
class FollowUpToRequest:
    follow_up_id: str
    episode_id: str
    kind: str
    due_at: datetime


@dataclass(frozen=True)
class Sent:
    sent: bool
    status: int | None = None


class AftercareActivities:
    def __init__(self, follow_up_url: str | None) -> None:
        self._follow_up_url = follow_up_url

    @activity.defn(name="send_referral")
    def send_referral(self, referral: ReferralToSend) -> Sent:
        bound = log.bind(referral_id=referral.referral_id, attempt=activity.info().attempt)
        body = {"referral_id": referral.referral_id, "resource_id": referral.resource_id, **referral.disclosed}
        return Sent(True, post_json(referral.endpoint, body, referral.referral_id, "referral", bound))

    @activity.defn(name="request_follow_up")
    def request_follow_up(self, follow_up: FollowUpToRequest) -> Sent:
        """Ask the outreach service to reach the client; with none configured the request is only recorded."""
        bound = log.bind(
            episode_id=follow_up.episode_id, follow_up_id=follow_up.follow_up_id, attempt=activity.info().attempt
        )
        if self._follow_up_url is None:
            bound.info("follow_up.recorded_only")
            return Sent(False)
        body = {
            "follow_up_id": follow_up.follow_up_id,
            "episode_id": follow_up.episode_id,
            "kind": follow_up.kind,
            "due_at": follow_up.due_at.isoformat(),
        }
        return Sent(True, post_json(self._follow_up_url, body, follow_up.follow_up_id, "follow_up", bound))
