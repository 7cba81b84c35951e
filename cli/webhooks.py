"""`webhooks create|list|disable|delete|deliveries|replay`: an admin's webhook subscriptions, from the database
alone (the worker's dispatcher delivers them); a signing secret is shown once."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from continuum.cli.context import store
from continuum.cli.errors import NotFound, Usage
from continuum.cli.render import Json, emit, table

if TYPE_CHECKING:
    from continuum.eventlog.webhooks import WebhookStore

webhooks = typer.Typer(no_args_is_help=True, help="Webhook subscriptions and their deliveries (an admin's).")

_OPTIONS = {"url": "--url", "event_types": "--event-type", "role": "--role", "subject": "--subject"}
_DELIVERY_COLUMNS = ["delivery_id", "event_type", "position", "status", "attempts", "last_error", "replays"]


@webhooks.command("create")
def webhooks_create(
    url: Annotated[str, typer.Option(help="Where deliveries are POSTed (http or https).")],
    event_type: Annotated[list[str], typer.Option(help="An event type to deliver (repeat for more).")],
    role: Annotated[str, typer.Option(help="Whose feed view deliveries carry: director, clinician, lab, ...")],
    subject: Annotated[str | None, typer.Option(help="The lab or partner a lab or partner subscription is.")] = None,
    by: Annotated[str, typer.Option(help="Who creates it (recorded; an id, not a name).")] = "admin:cli",
    as_json: Json = False,
) -> None:
    """Create a subscription, followed from the log's head now, and print its signing secret (shown this once)."""
    from continuum.access import Role, subscription_request
    from continuum.domain.errors import WebhookRequestInvalid
    from continuum.eventlog.webhooks import WebhookStore

    try:
        chosen = Role(role)
        asked = subscription_request(url, event_type, chosen, subject)
    except ValueError:
        raise Usage(f"--role: {role!r} is not one of {', '.join(r.value for r in Role)}") from None
    except WebhookRequestInvalid as invalid:
        reason = str(invalid).removeprefix(f"{invalid.parameter}: ")
        raise Usage(f"{_OPTIONS.get(invalid.parameter, invalid.parameter)}: {reason}") from None
    with store() as opened:
        created, secret = WebhookStore(opened.engine).create(
            asked.url, asked.event_types, chosen.value, asked.subject, by
        )
    emit(
        {**created.as_json(), "secret": secret},
        as_json,
        f"webhook {created.subscription_id} ({chosen.value}) -> {created.url}\n"
        f"secret {secret}\nStore it now; it is not shown again.",
    )


@webhooks.command("list")
def webhooks_list(as_json: Json = False) -> None:
    """Every subscription (never the secrets)."""
    from continuum.eventlog.webhooks import WebhookStore

    with store() as opened:
        rows = [s.as_json() for s in WebhookStore(opened.engine).subscriptions()]
    columns = ["subscription_id", "url", "role", "subject", "event_types", "after_position", "disabled_at"]
    emit(rows, as_json, table(rows, columns))


@webhooks.command("disable")
def webhooks_disable(subscription_id: str) -> None:
    """Stop delivering (the deliveries stay on record)."""
    _change(subscription_id, "disabled", lambda webhooks: webhooks.disable(subscription_id) is not None)


@webhooks.command("delete")
def webhooks_delete(subscription_id: str) -> None:
    """Remove a subscription, its secret and its deliveries' records."""
    _change(subscription_id, "deleted", lambda webhooks: webhooks.delete(subscription_id))


def _change(subscription_id: str, done: str, change: Callable[[WebhookStore], bool]) -> None:
    from continuum.eventlog.webhooks import WebhookStore

    with store() as opened:
        if not change(WebhookStore(opened.engine)):
            raise NotFound(f"no webhook subscription {subscription_id}")
    typer.echo(f"{done} {subscription_id}")


@webhooks.command("deliveries")
def webhooks_deliveries(
    subscription_id: str,
    status: Annotated[str | None, typer.Option(help="pending, delivered, failed or withheld.")] = None,
    as_json: Json = False,
) -> None:
    """A subscription's deliveries in event order: status, attempts, the last error code."""
    from continuum.eventlog.webhooks import DeliveryStatus, WebhookStore

    try:
        wanted = DeliveryStatus(status) if status is not None else None
    except ValueError:
        raise Usage(f"--status: {status!r} is not one of {', '.join(s.value for s in DeliveryStatus)}") from None
    with store() as opened:
        found = WebhookStore(opened.engine)
        if found.get(subscription_id) is None:
            raise NotFound(f"no webhook subscription {subscription_id}")
        rows = [d.as_json() for d in found.deliveries(subscription_id, wanted)]
    emit(rows, as_json, table(rows, _DELIVERY_COLUMNS))


@webhooks.command("replay")
def webhooks_replay(subscription_id: str, delivery_id: str) -> None:
    """Send a failed delivery again (the worker's dispatcher takes it on its next round)."""
    from continuum.eventlog.webhooks import WebhookStore

    with store() as opened:
        if WebhookStore(opened.engine).replay(subscription_id, delivery_id) is None:
            raise NotFound(f"no failed delivery {delivery_id} of webhook subscription {subscription_id}")
    typer.echo(f"replaying {delivery_id}")
