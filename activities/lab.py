"""Telling the collection site and lab of a test order: an HTTP POST to a configured URL.

Idempotent by test id (sent as `Idempotency-Key`), retried by Temporal on failure. With no URL configured
the order is only recorded. Only the pseudonymous episode id and the order's facts leave the program.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from temporalio import activity

from continuum.activities.outbound import post_json

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class LabOrder:
    test_id: str
    episode_id: str
    reason: str
    level: str
    ordered_at: datetime
    result_due_at: datetime


@dataclass(frozen=True)
class LabOrderSent:
    sent: bool
    status: int | None = None


class LabOrderActivities:
    def __init__(self, order_url: str | None) -> None:
        self._url = order_url

    @activity.defn(name="send_lab_order")
    def send_lab_order(self, order: LabOrder) -> LabOrderSent:
        """POST the order; a 4xx answer is final (the lab refuses it), anything else is retried."""
        bound = log.bind(episode_id=order.episode_id, test_id=order.test_id, attempt=activity.info().attempt)
        if self._url is None:
            bound.info("lab_order.recorded_only")
            return LabOrderSent(sent=False)
        body = {
            "test_id": order.test_id,
            "episode_id": order.episode_id,
            "reason": order.reason,
            "level": order.level,
            "ordered_at": order.ordered_at.isoformat(),
            "result_due_at": order.result_due_at.isoformat(),
        }
        status = post_json(self._url, body, order.test_id, "lab_order", bound)
        return LabOrderSent(sent=True, status=status)
