"""The webhook dispatcher: one long-running workflow per task queue that follows the log for every subscription.

Each round asks an activity to queue what each active subscription is newly shown (its position is kept in
PostgreSQL, moved in the same transaction that queues the deliveries) and to hand back the pending deliveries;
each is sent by `deliver_webhook` under a bounded retry policy with backoff, one subscription's in event order,
subscriptions side by side. A delivery whose every attempt failed is recorded as failed (replayable), and that
subscription's other deliveries wait for the next round. Nothing pending: the workflow sleeps a moment. It
continues as new every ROUNDS_PER_RUN rounds (or when Temporal suggests), so its history stays bounded; it carries
nothing, PostgreSQL holds the positions.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from continuum.activities.webhooks import (
        DeliveriesFound,
        DeliveryToSend,
        FindDeliveries,
        PendingDelivery,
        WebhookSent,
    )

ROUND_LIMIT = 100  # deliveries taken per round
ROUNDS_PER_RUN = 100
IDLE = timedelta(seconds=1)  # the pause when nothing is pending (a subscription is delivered within about this)
IDLE_WITHOUT_SUBSCRIPTIONS = timedelta(seconds=5)
FIND_TIMEOUT = timedelta(seconds=60)
FIND_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
DELIVERY_TIMEOUT = timedelta(seconds=30)  # one attempt (the POST times out at 10 s)
DELIVERY_ATTEMPTS = 5
DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=16),
    maximum_attempts=DELIVERY_ATTEMPTS,
)


def dispatcher_id(task_queue: str) -> str:
    return f"webhooks-{task_queue}"


@dataclass(frozen=True)
class WebhooksInput:
    rounds_per_run: int = ROUNDS_PER_RUN


@workflow.defn(name="WebhooksWorkflow")
class WebhooksWorkflow:
    @workflow.run
    async def run(self, given: WebhooksInput) -> None:
        for _ in range(given.rounds_per_run):
            found = await workflow.execute_activity(
                "find_webhook_deliveries",
                FindDeliveries(ROUND_LIMIT),
                result_type=DeliveriesFound,
                start_to_close_timeout=FIND_TIMEOUT,
                retry_policy=FIND_RETRY,
            )
            if found.deliveries:
                await asyncio.gather(*(self._deliver_in_order(d) for d in _by_subscription(found.deliveries)))
            else:
                await workflow.sleep(IDLE if found.subscriptions else IDLE_WITHOUT_SUBSCRIPTIONS)
            if workflow.info().is_continue_as_new_suggested():
                break
        workflow.continue_as_new(given)

    async def _deliver_in_order(self, deliveries: list[PendingDelivery]) -> None:
        for delivery in deliveries:
            try:
                await workflow.execute_activity(
                    "deliver_webhook",
                    DeliveryToSend(delivery.delivery_id, delivery.subscription_id, DELIVERY_ATTEMPTS),
                    result_type=WebhookSent,
                    start_to_close_timeout=DELIVERY_TIMEOUT,
                    retry_policy=DELIVERY_RETRY,
                )
            except ActivityError:
                # Recorded as failed (replayable). The subscription's next deliveries wait for the next round, so a
                # receiver that is down holds a round up by one delivery's retries, never by all of its backlog.
                workflow.logger.info("webhook delivery failed after every attempt (recorded, replayable)")
                return


def _by_subscription(deliveries: list[PendingDelivery]) -> list[list[PendingDelivery]]:
    grouped: dict[str, list[PendingDelivery]] = {}
    for delivery in deliveries:
        grouped.setdefault(delivery.subscription_id, []).append(delivery)
    return list(grouped.values())
