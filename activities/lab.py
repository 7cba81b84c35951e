"""Telling the collection site and lab of a test order: an HTTP POST to a configured URL.

Idempotent by test id (sent as `Idempotency-Key`), retried by Temporal on failure. With no URL configured
the order is only recorded. Only the pseudonymous episode id and the order's facts leave the program.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

log = structlog.get_logger(__name__)
TIMEOUT_SECONDS = 10


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
        body = json.dumps(
            {
                "test_id": order.test_id,
                "episode_id": order.episode_id,
                "reason": order.reason,
                "level": order.level,
                "ordered_at": order.ordered_at.isoformat(),
                "result_due_at": order.result_due_at.isoformat(),
            }
        ).encode()
        request = urllib.request.Request(
            self._url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Idempotency-Key": order.test_id},
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            if 400 <= error.code < 500 and error.code not in (408, 429):
                bound.warning("lab_order.refused", status=error.code)
                raise ApplicationError(f"the lab refused order {order.test_id} ({error.code})", non_retryable=True) from None
            bound.warning("lab_order.failed", status=error.code)
            raise RuntimeError(f"the lab answered {error.code}") from None
        except (urllib.error.URLError, OSError) as error:
            bound.warning("lab_order.unreachable", error_type=type(error).__name__)
            raise RuntimeError("the lab could not be reached") from None
        bound.info("lab_order.sent", status=status)
        return LabOrderSent(sent=True, status=status)
