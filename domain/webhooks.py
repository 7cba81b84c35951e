"""What a webhook subscription may ask for: an http(s) URL and event types its audience can be shown.

A subscription's deliveries carry the feed's view of one role (`domain.feed`), so a lab subscription naming an
event a lab is never shown is refused rather than left silent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from continuum.domain.errors import WebhookRequestInvalid
from continuum.domain.events import EVENT_TYPES
from continuum.domain.feed import Audience, visible_event_types

URL_LIMIT = 2000


def subscription_url(url: str) -> str:
    """The URL deliveries are POSTed to: absolute http or https with a host."""
    try:
        parts = urlsplit(url)
        well_formed = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a bracketed host that is no IPv6 address, a port out of range
        well_formed = False
    if len(url) > URL_LIMIT or not well_formed or any(c.isspace() or not c.isprintable() for c in url):
        raise WebhookRequestInvalid("url", f"{url[:80]!r} is not an http(s) URL with a host")
    return url


def subscribed_event_types(event_types: Sequence[str], audience: Audience) -> tuple[str, ...]:
    """The event types asked for, each known and visible to the audience, without repeats (at least one)."""
    if not event_types:
        raise WebhookRequestInvalid("event_types", "name at least one event type")
    visible = visible_event_types(audience, tuple(EVENT_TYPES))
    for name in event_types:
        if name not in EVENT_TYPES:
            raise WebhookRequestInvalid("event_types", f"{name[:80]!r} is not an event type")
        if name not in visible:
            raise WebhookRequestInvalid("event_types", f"a {audience.value} subscription is never shown {name}")
    return tuple(dict.fromkeys(event_types))


@dataclass(frozen=True)
class SubscriptionRequest:
    """A subscription as asked for, checked: where to, which event types, whose view (and, for a lab or a partner
    audience, which one it is)."""

    url: str
    event_types: tuple[str, ...]
    audience: Audience
    subject: str | None

    @classmethod
    def checked(
        cls, url: str, event_types: Sequence[str], audience: Audience, subject: str | None
    ) -> SubscriptionRequest:
        if audience is not Audience.WHOLE and not subject:
            raise WebhookRequestInvalid("subject", f"a {audience.value} subscription names the {audience.value} it is")
        return cls(
            subscription_url(url),
            subscribed_event_types(event_types, audience),
            audience,
            subject if audience is not Audience.WHOLE else None,
        )
