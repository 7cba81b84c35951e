"""`GET /api/v1/feed`: the log's events after a position, so no caller polls the episodes.

Each event is a CloudEvents 1.0 event (structured JSON mode, written by the `cloudevents` SDK): `id` the event
id, `source` "continuum", `type` "org.continuum.<EventType>" (e.g. `org.continuum.TestOrdered`), `subject` the
episode id, `time` when it occurred, `data` the payload as the caller may see it, and the extension attribute
`position`, the event's place in the whole log. Answered as a long-poll JSON page (`wait` up to 25 s: at once
when events past `after` exist, else when one is recorded, else empty at the timeout; resume with its
`next_after`), or, with `Accept: text/event-stream`, as Server-Sent Events (`sse-starlette`) whose `id` is the
position, so a reconnecting client's `Last-Event-ID` resumes where it stopped.

What each role sees is `access.FEED_AUDIENCES` with `domain.feed`, read by `eventlog.feed.FeedReader` (the
webhook deliveries read through it too) with the store's paged reader on the thread pool (never a workflow round
trip, never on the event loop); a read that showed events is recorded in the access log as a view, folded like
the other list reads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from continuum.access import ApiKey, feed_viewer
from continuum.api.auth import FEED, facility_scope
from continuum.api.params import services_of
from continuum.api.service_models import FeedPageAnswer
from continuum.api.services import Services
from continuum.eventlog.feed import FeedPage, FeedReader

router = APIRouter(prefix="/api/v1", tags=["feed"])

WAIT_LIMIT = 25  # seconds a long poll may wait: an answer within a client's usual 30-second timeout
HEAD_POLL_SECONDS = 0.25  # how often a waiting poll or stream looks at the log's head (one indexed row)
MAX_POSITION = 2**62


def _reader(services: Services, caller: ApiKey) -> FeedReader:
    viewer = feed_viewer(caller.role, caller.subject)
    return FeedReader(services.store, services.reads, viewer, scope=facility_scope(caller))


@router.get(
    "/feed",
    response_class=Response,
    responses={
        200: {
            "model": FeedPageAnswer,
            "description": "A page of CloudEvents (JSON), or with `Accept: text/event-stream` a stream of them: each"
            " message's `data` one CloudEvent (JSON) and its `id` the event's position",
            "content": {"application/json": {}, "text/event-stream": {"schema": {"type": "string"}}},
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
        page = await run_in_threadpool(_reader(services, caller).page, after, limit)
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
        page = await run_in_threadpool(_reader(services, caller).page, after, limit)
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
