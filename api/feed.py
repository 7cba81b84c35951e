"""`GET /api/v1/feed`: the log's events after a position, so no caller polls the episodes.

Each event is a CloudEvents 1.0 event (structured JSON mode, written by the `cloudevents` SDK): `id` the event
id, `source` "continuum", `type` "org.continuum.<EventType>" (e.g. `org.continuum.TestOrdered`), `subject` the
episode id, `time` when it occurred, `data` the payload as the caller may see it, and the extension attribute
`position`, the event's place in the whole log. Answered as a long-poll JSON page (`wait` up to 25 s: at once
when events past `after` exist, else when one is recorded, else empty at the timeout; resume with its
`next_after`), or, with `Accept: text/event-stream`, as Server-Sent Events (`sse-starlette`) whose `id` is the
position, so a reconnecting client's `Last-Event-ID` resumes where it stopped.

What each role sees is `FEED_VIEWS` below with `domain.feed`: the log is read with the store's paged reader on
the thread pool (never a workflow round trip, never on the event loop); a read that showed events is recorded in
the access log as a view, folded like the other list reads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from continuum.access import ApiKey, Role
from continuum.api.auth import FEED, facility_scope
from continuum.api.params import services_of
from continuum.api.services import Services
from continuum.domain.codec import decode
from continuum.domain.disclosure import disclosed_values, still_disclosed_to
from continuum.domain.episode import Episode
from continuum.domain.events import ReferralIssued
from continuum.domain.feed import ReferralFacts, lab_view, partner_view, referral_of, test_of
from continuum.eventlog.projection import episode_as_of, episode_event
from continuum.eventlog.records import StoredEvent

router = APIRouter(prefix="/api/v1", tags=["feed"])

SOURCE = "continuum"
TYPE_PREFIX = "org.continuum."
WAIT_LIMIT = 25  # seconds a long poll may wait: an answer within a client's usual 30-second timeout
HEAD_POLL_SECONDS = 0.25  # how often a waiting poll or stream looks at the log's head (one indexed row)
SCAN_PAGE = 500  # events read at a time when a role sees only some of them
SCAN_LIMIT = 5000  # events looked at for one answer at most (a lab's page may skip many it does not see)
MAX_POSITION = 2**62
_FORMAT = JSONFormat()


@dataclass
class FeedPage:
    """The events shown (position, episode, CloudEvent as JSON) and the position to resume after."""

    events: list[tuple[int, str, bytes]] = field(default_factory=list)
    next_after: int = 0

    @property
    def episode_ids(self) -> list[str]:
        return list(dict.fromkeys(episode for _, episode, _ in self.events))


View = Callable[[StoredEvent], dict[str, Any] | None]


class FeedReader:
    """One answer's reads of the log for one caller (its lookups cached for that answer only)."""

    def __init__(self, services: Services, caller: ApiKey) -> None:
        self.services = services
        self.caller = caller
        self.now = datetime.now(UTC)
        self._labs: dict[tuple[str, str], str | None] = {}
        self._referrals: dict[tuple[str, str], ReferralFacts | None] = {}
        self._consents: dict[str, bool] = {}
        views: dict[Role, View] = {
            Role.DIRECTOR: self._whole,
            Role.AUDITOR: self._whole,
            Role.CLINICIAN: self._whole,  # every stream of the log is an episode's
            Role.LAB: self._as_lab,
            Role.PARTNER: self._as_partner,
        }
        self.view = views[caller.role]
        self.scope = facility_scope(caller)
        self._facilities: dict[str, str | None] = {}
        if self.scope is not None:  # a key of some facilities sees the events of their episodes alone
            role_view = self.view
            self.view = lambda event: role_view(event) if self._in_scope(event.stream_id) else None
        self.filtered = caller.role in (Role.LAB, Role.PARTNER) or self.scope is not None

    def _in_scope(self, episode_id: str) -> bool:
        if episode_id not in self._facilities:
            self._facilities[episode_id] = self.services.reads.facility(episode_id)
        facility = self._facilities[episode_id]
        return facility is not None and self.scope is not None and facility in self.scope

    def page(self, after: int, limit: int) -> FeedPage:
        """Up to `limit` events the caller sees after position `after`, in position order."""
        found = FeedPage(next_after=after)
        scanned = 0
        with self.services.store.engine.connect() as connection:
            while len(found.events) < limit and scanned < SCAN_LIMIT:
                asked = SCAN_PAGE if self.filtered else limit - len(found.events)
                rows = self.services.store.read_page(connection, after_position=found.next_after, limit=asked)
                for event in rows:
                    scanned += 1
                    found.next_after = event.position
                    data = self.view(event)
                    if data is not None:
                        found.events.append((event.position, event.stream_id, cloud_event(event, data)))
                        if len(found.events) == limit:
                            break
                if len(rows) < asked:
                    break  # the head of the log
        return found

    def _whole(self, event: StoredEvent) -> dict[str, Any]:
        return event.payload

    def _as_lab(self, event: StoredEvent) -> dict[str, Any] | None:
        test_id = test_of(event.event_type, event.payload)
        if test_id is None:
            return None
        if event.event_type == "TestOrdered":
            sent_to = event.payload.get("lab_id")
        else:
            key = (event.stream_id, test_id)
            if key not in self._labs:
                test = self.services.reads.element(event.stream_id, "tests", "test_id", test_id)
                self._labs[key] = test.get("lab_id") if test else None
            sent_to = self._labs[key]
        assert self.caller.subject is not None  # a lab key names its lab
        return lab_view(event.stream_id, event.event_type, event.payload, sent_to, self.caller.subject)

    def _as_partner(self, event: StoredEvent) -> dict[str, Any] | None:
        referral_id = referral_of(event.event_type, event.payload)
        if referral_id is None:
            return None
        assert self.caller.subject is not None  # a partner key names its partner
        key = (event.stream_id, referral_id)
        if key not in self._referrals:
            self._referrals[key] = self._referral_facts(event.stream_id, referral_id)
        facts = self._referrals[key]
        if facts is not None and event.event_type == "ReferralIssued" and facts.recipient == self.caller.subject:
            facts = ReferralFacts(facts.recipient, facts.disclosed, facts.still_disclosed, self._disclosed(event))
        return partner_view(event.stream_id, event.event_type, event.payload, facts, self.caller.subject)

    def _referral_facts(self, episode_id: str, referral_id: str) -> ReferralFacts | None:
        referral = self.services.reads.element(episode_id, "referrals", "referral_id", referral_id)
        if referral is None:
            return None
        recipient = referral.get("recipient")
        if recipient != self.caller.subject:
            return ReferralFacts(recipient, False, False, {})
        if episode_id not in self._consents:
            state = self.services.reads.get(episode_id)
            consents = decode(Episode, state).consents if state else ()
            self._consents[episode_id] = still_disclosed_to(consents, str(recipient), self.now)
        disclosed = referral.get("status") != "awaiting_consent"
        return ReferralFacts(recipient, disclosed, self._consents[episode_id], {})

    def _disclosed(self, event: StoredEvent) -> dict[str, Any]:
        """What the referral disclosed, as the workflow sent it: from the episode as it stood after the issue."""
        issued = episode_event(event)
        state = episode_as_of(self.services.store, event.stream_id, version=event.stream_version)
        if not isinstance(issued, ReferralIssued) or state is None:
            return {}
        return disclosed_values(state, issued)


def cloud_event(event: StoredEvent, data: dict[str, Any]) -> bytes:
    """The event in CloudEvents 1.0 structured JSON form."""
    attributes: dict[str, Any] = {
        "id": str(event.event_id),
        "source": SOURCE,
        "type": TYPE_PREFIX + event.event_type,
        "subject": event.stream_id,
        "time": event.occurred_at,
        "datacontenttype": "application/json",
        "position": event.position,
    }
    return _FORMAT.write(CloudEvent(attributes, data))


@router.get(
    "/feed",
    responses={
        200: {
            "description": "A page of CloudEvents (JSON), or a stream of them (text/event-stream)",
            "content": {"application/json": {}, "text/event-stream": {}},
        }
    },
)
async def feed(
    request: Request,
    after: Annotated[int, Query(ge=0, le=MAX_POSITION, description="the position to read after")] = 0,
    limit: Annotated[int, Query(ge=1, le=500, description="events per page (or per read of a stream)")] = 100,
    wait: Annotated[int, Query(ge=0, le=WAIT_LIMIT, description="seconds a page may wait for an event")] = 0,
    last_event_id: Annotated[
        int | None, Header(ge=0, le=MAX_POSITION, description="a stream's resume point (overrides after)")
    ] = None,
    caller: ApiKey = Depends(FEED),
) -> Response:
    """The events after `after` the caller may see, in position order, as CloudEvents 1.0; a lab sees only its
    own tests' orders, cancellations and collections, a partner only the referrals disclosed to it."""
    services = services_of(request)
    start = last_event_id if last_event_id is not None else after
    if "text/event-stream" in request.headers.get("accept", ""):
        return EventSourceResponse(_stream(services, caller, start, limit), ping=15)
    page = await _long_poll(services, caller, start, limit, wait)
    body = b'{"events":[' + b",".join(e for _, _, e in page.events) + b'],"next_after":%d}' % page.next_after
    return Response(body, media_type="application/json")


async def _long_poll(services: Services, caller: ApiKey, after: int, limit: int, wait: int) -> FeedPage:
    deadline = anyio.current_time() + wait
    while True:
        page = await run_in_threadpool(FeedReader(services, caller).page, after, limit)
        if page.events or anyio.current_time() >= deadline:
            await _recorded(services, caller, page)
            return page
        after = page.next_after
        while await run_in_threadpool(services.store.head_position) <= after:
            if anyio.current_time() >= deadline:
                return page
            await anyio.sleep(HEAD_POLL_SECONDS)


async def _stream(services: Services, caller: ApiKey, after: int, limit: int) -> AsyncIterator[ServerSentEvent]:
    while True:
        page = await run_in_threadpool(FeedReader(services, caller).page, after, limit)
        await _recorded(services, caller, page)
        for position, _, body in page.events:
            yield ServerSentEvent(data=body.decode(), id=str(position))
        after = page.next_after
        while await run_in_threadpool(services.store.head_position) <= after:
            await anyio.sleep(HEAD_POLL_SECONDS)


async def _recorded(services: Services, caller: ApiKey, page: FeedPage) -> None:
    """A read that showed events is a view of identifiable data (folded when repeated, as list reads are)."""
    if page.events:
        await run_in_threadpool(
            services.access.record_view,
            caller,
            "feed",
            "operations",
            episode_ids=page.episode_ids,
            rows=len(page.events),
        )
