"""Webhook deliveries: find what each subscription's role is shown of the log, and POST it, signed.

`find_webhook_deliveries` reads the log past each active subscription's position through the feed's own reader
(`eventlog.feed.FeedReader`, the role's view), queues a delivery per event of a subscribed type and moves the
position, in one transaction. `deliver_webhook` POSTs one delivery's event in CloudEvents JSON, signed per the
Standard Webhooks spec (`webhook-id` = the event id, `webhook-timestamp`, `webhook-signature`, by the
`standardwebhooks` package); a delivery recorded as delivered is never sent again. Only status codes and ids are
logged, never a body.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import structlog
from standardwebhooks import Webhook
from structlog.typing import FilteringBoundLogger
from temporalio import activity

from continuum.access import Role, feed_viewer
from continuum.eventlog.feed import FeedReader
from continuum.eventlog.reads import EpisodeReads
from continuum.eventlog.store import PostgresEventStore
from continuum.eventlog.webhooks import Delivery, DeliveryStatus, Found, Subscription, WebhookStore

log = structlog.get_logger(__name__)

TIMEOUT_SECONDS = 10
FIND_PAGE = 200  # events a subscription's position moves by at most per round
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"


@dataclass(frozen=True)
class FindDeliveries:
    limit: int  # deliveries handed back at most


@dataclass(frozen=True)
class PendingDelivery:
    delivery_id: str
    subscription_id: str


@dataclass(frozen=True)
class DeliveriesFound:
    subscriptions: int  # active subscriptions
    deliveries: list[PendingDelivery]  # oldest event first within each subscription


@dataclass(frozen=True)
class DeliveryToSend:
    delivery_id: str
    subscription_id: str
    max_attempts: int  # the attempt that fails at this number records the delivery as failed (replayable)


@dataclass(frozen=True)
class WebhookSent:
    status: str  # the delivery's status after this attempt (delivered, withheld, or already so)
    http_status: int | None = None


def signed_headers(secret: str, event_id: str, body: bytes, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of one delivery (and its content type)."""
    signature = Webhook(secret).sign(event_id, at, body.decode())
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": CONTENT_TYPE,
    }


class WebhookActivities:
    def __init__(self, store: PostgresEventStore) -> None:
        self._store = store
        self._reads = EpisodeReads(store.engine)
        self._webhooks = WebhookStore(store.engine)
        self._http = httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False)

    def _reader(self, subscription: Subscription) -> FeedReader:
        return FeedReader(self._store, self._reads, feed_viewer(Role(subscription.role), subscription.subject))

    @activity.defn(name="find_webhook_deliveries")
    def find_deliveries(self, asked: FindDeliveries) -> DeliveriesFound:
        """Queue what each active subscription is newly shown; hand back pending deliveries (replays too)."""
        active = [s for s in self._webhooks.subscriptions() if s.active]
        for subscription in active:
            page = self._reader(subscription).page(subscription.after_position, FIND_PAGE)
            found = [
                Found(e.event_id, e.position, e.event_type)
                for e in page.shown
                if e.event_type in subscription.event_types
            ]
            if page.next_after != subscription.after_position:
                self._webhooks.record_found(subscription, found, page.next_after)
        pending = self._webhooks.pending(asked.limit)
        return DeliveriesFound(len(active), [PendingDelivery(d.delivery_id, d.subscription_id) for d in pending])

    @activity.defn(name="deliver_webhook")
    def deliver(self, sending: DeliveryToSend) -> WebhookSent:
        """POST the delivery's event; raise (to be retried) unless the receiver answered 2xx."""
        attempt = activity.info().attempt
        bound = log.bind(delivery_id=sending.delivery_id, subscription_id=sending.subscription_id, attempt=attempt)
        delivery = self._webhooks.delivery(sending.delivery_id)
        subscription = self._webhooks.get(sending.subscription_id)
        secret = self._webhooks.secret(sending.subscription_id)
        if delivery is None or subscription is None or secret is None or not subscription.active:
            bound.info("webhook.dropped")  # the subscription was disabled or deleted meanwhile
            return WebhookSent("dropped")
        if delivery.status is not DeliveryStatus.PENDING:
            bound.info("webhook.already", status=delivery.status.value)  # delivered before a restart: not again
            return WebhookSent(delivery.status.value)
        body = self._reader(subscription).shown_at(delivery.position)
        if body is None:
            self._webhooks.withhold(delivery.delivery_id)
            bound.info("webhook.withheld")
            return WebhookSent(DeliveryStatus.WITHHELD.value)
        return self._post(subscription, delivery, secret, body, attempt >= sending.max_attempts, bound)

    def _post(
        self,
        subscription: Subscription,
        delivery: Delivery,
        secret: str,
        body: bytes,
        last: bool,
        bound: FilteringBoundLogger,
    ) -> WebhookSent:
        headers = signed_headers(secret, str(delivery.event_id), body, datetime.now(UTC))
        status: int | None = None
        try:
            status = self._http.post(subscription.url, content=body, headers=headers).status_code
            error = None if 200 <= status < 300 else f"http_{status}"
        except httpx.TimeoutException:
            error = "timeout"
        except httpx.HTTPError:
            error = "unreachable"
        if error is None:
            self._webhooks.record_attempt(delivery.delivery_id, DeliveryStatus.DELIVERED, status, None)
            bound.info("webhook.delivered", status=status)
            return WebhookSent(DeliveryStatus.DELIVERED.value, status)
        outcome = DeliveryStatus.FAILED if last else DeliveryStatus.PENDING
        self._webhooks.record_attempt(delivery.delivery_id, outcome, status, error)
        bound.warning("webhook.failed", error=error, final=last)
        raise RuntimeError(f"webhook delivery {delivery.delivery_id} failed: {error}")
