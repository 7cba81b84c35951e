"""`/api/v1/webhooks`: an admin's webhook subscriptions, their deliveries, and the replay of a failed one.

A subscription names a URL, event types, and the role whose feed view its deliveries carry (a lab or a partner
subscription also the lab or partner it is): what `GET /api/v1/feed` shows that role. The signing secret
(`whsec_...`) is made here and answered once, in the creation's response. Delivery is the worker's
(workflows/webhooks.py); every route here is the admin's alone, and runs on the thread pool.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from continuum.access import ApiKey, Role, subscription_request
from continuum.api.auth import ADMIN
from continuum.api.params import IdPath, services_of
from continuum.api.problems import responses
from continuum.api.schemas import Body, Id
from continuum.api.service_models import (
    CreatedSubscriptionAnswer,
    DeliveriesAnswer,
    DeliveryAnswer,
    SubscriptionAnswer,
    SubscriptionsAnswer,
)
from continuum.domain.errors import WebhookRequestInvalid
from continuum.domain.events import EVENT_TYPES
from continuum.domain.webhooks import URL_LIMIT
from continuum.eventlog.webhooks import DeliveryStatus, Subscription, WebhookStore

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


class CreateWebhookBody(Body):
    url: str = Field(max_length=URL_LIMIT, examples=["https://ehr.example.org/continuum-events"])
    event_types: list[Annotated[str, Field(max_length=64)]] = Field(
        max_length=len(EVENT_TYPES), examples=[["TestOrdered", "SpecimenCollected"]]
    )
    role: Role = Field(description="whose feed view the deliveries carry (not admin)")
    subject: Id | None = Field(None, description="the lab or partner a lab or partner subscription is")


def _webhooks(request: Request) -> WebhookStore:
    return WebhookStore(services_of(request).store.engine)


def _subscription(request: Request, subscription_id: str) -> Subscription:
    found = _webhooks(request).get(subscription_id)
    if found is None:
        raise HTTPException(404, f"no webhook subscription {subscription_id}")
    return found


CREATED: dict[int | str, dict[str, Any]] = {
    201: {
        "model": CreatedSubscriptionAnswer,
        "description": "the subscription, with its signing secret (shown this once)",
        "headers": {"Location": {"description": "the subscription's URL", "schema": {"type": "string"}}},
    }
}


@router.post("", status_code=201, response_class=JSONResponse, responses=CREATED)
def create_webhook(body: CreateWebhookBody, request: Request, caller: ApiKey = Depends(ADMIN)) -> JSONResponse:
    """A new subscription, followed from the log's head now; its signing secret is in this response only."""
    try:
        asked = subscription_request(body.url, body.event_types, body.role, body.subject)
    except WebhookRequestInvalid as invalid:
        raise HTTPException(422, str(invalid)) from None
    created, secret = _webhooks(request).create(
        asked.url, asked.event_types, body.role.value, asked.subject, caller.actor
    )
    location = f"/api/v1/webhooks/{created.subscription_id}"
    return JSONResponse({**created.as_json(), "secret": secret}, status_code=201, headers={"Location": location})


@router.get("", response_model=SubscriptionsAnswer)
def list_webhooks(request: Request, caller: ApiKey = Depends(ADMIN)) -> dict[str, Any]:
    return {"webhooks": [s.as_json() for s in _webhooks(request).subscriptions()]}


@router.get("/{subscription_id}", response_model=SubscriptionAnswer)
def show_webhook(request: Request, subscription_id: str = IdPath(), caller: ApiKey = Depends(ADMIN)) -> dict[str, Any]:
    return _subscription(request, subscription_id).as_json()


@router.post("/{subscription_id}/disable", response_model=SubscriptionAnswer)
def disable_webhook(
    request: Request, subscription_id: str = IdPath(), caller: ApiKey = Depends(ADMIN)
) -> dict[str, Any]:
    """Stop delivering; the deliveries stay on record."""
    disabled = _webhooks(request).disable(subscription_id)
    if disabled is None:
        raise HTTPException(404, f"no webhook subscription {subscription_id}")
    return disabled.as_json()


@router.delete("/{subscription_id}", status_code=204)
def delete_webhook(request: Request, subscription_id: str = IdPath(), caller: ApiKey = Depends(ADMIN)) -> None:
    """Remove the subscription, its secret and its deliveries' records."""
    if not _webhooks(request).delete(subscription_id):
        raise HTTPException(404, f"no webhook subscription {subscription_id}")


@router.get("/{subscription_id}/deliveries", response_model=DeliveriesAnswer)
def webhook_deliveries(
    request: Request,
    subscription_id: str = IdPath(),
    status: Annotated[DeliveryStatus | None, Query(description="only the deliveries of this status")] = None,
    caller: ApiKey = Depends(ADMIN),
) -> dict[str, Any]:
    """The subscription's deliveries in event order: status, attempts, the last error code (never a body)."""
    _subscription(request, subscription_id)
    deliveries = _webhooks(request).deliveries(subscription_id, status)
    return {"subscription_id": subscription_id, "deliveries": [d.as_json() for d in deliveries]}


@router.post(
    "/{subscription_id}/deliveries/{delivery_id}/replay",
    status_code=202,
    response_model=DeliveryAnswer,
    responses={409: {**responses(409)[409], "description": "the subscription is disabled, or the delivery not failed"}},
)
def replay_delivery(
    request: Request,
    subscription_id: str = IdPath(),
    delivery_id: str = IdPath(),
    caller: ApiKey = Depends(ADMIN),
) -> dict[str, Any]:
    """Send a failed delivery again (the dispatcher takes it on its next round)."""
    webhooks = _webhooks(request)
    if not _subscription(request, subscription_id).active:
        raise HTTPException(409, f"webhook subscription {subscription_id} is disabled: nothing is delivered")
    replayed = webhooks.replay(subscription_id, delivery_id)
    if replayed is not None:
        return replayed.as_json()
    found = webhooks.delivery(delivery_id)
    if found is None or found.subscription_id != subscription_id:
        raise HTTPException(404, f"no delivery {delivery_id} of webhook subscription {subscription_id}")
    raise HTTPException(409, f"delivery {delivery_id} is {found.status.value}: only a failed delivery is replayed")
