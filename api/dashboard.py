"""The clinical directors' and auditors' dashboard: server-rendered pages over the same reads as the API.

Sign-in takes an API key (director or auditor) and keeps it in a Secure, HttpOnly, SameSite=Strict
cookie scoped to /dashboard; every request re-checks it, so a revoked key is out at once. Every asset is
in the package (no CDN). Pages refresh their live part by polling.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from continuum.access import ApiKey, Role
from continuum.api.attendance import attendance_strip, below_minimum_now
from continuum.api.params import ID_PATTERN, services_of
from continuum.domain.codec import EventEnvelope, encode, from_envelope, parse_instant
from continuum.domain.episode import EpisodeStatus
from continuum.domain.levels import LevelOfCare
from continuum.domain.stays import Stay, stays
from continuum.eventlog.projection import episode_as_of
from continuum.eventlog.records import StoredEvent
from continuum.eventlog.verify import Anchor, AnchorError, take_anchor, verify_log, verify_stream

HERE = Path(__file__).parent
COOKIE = "continuum_session"
SESSION_SECONDS = 8 * 3600
DASHBOARD_ROLES = (Role.DIRECTOR, Role.AUDITOR)
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix="/dashboard", include_in_schema=False)
static = StaticFiles(directory=HERE / "static")
LEVELS = list(reversed(LevelOfCare))  # most intensive first, as drawn


def _caller(request: Request) -> ApiKey | None:
    secret = request.cookies.get(COOKIE)
    if not secret:
        return None
    key = services_of(request).keys.authenticate(secret)
    return key if key is not None and key.role in DASHBOARD_ROLES else None


class SignInRequired(Exception):
    pass


def _signed_in(request: Request) -> ApiKey:
    key = _caller(request)
    if key is None:
        raise SignInRequired
    return key


def _page(request: Request, name: str, caller: ApiKey | None, status: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(
        request, name, {"caller": caller, "levels": LEVELS, "now": datetime.now(UTC), **context}, status_code=status
    )


@router.get("/sign-in")
def sign_in_form(request: Request) -> HTMLResponse:
    return _page(request, "sign_in.html", None)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    secret = (form.get("api_key") or [""])[0].strip()
    key = await run_in_threadpool(services_of(request).keys.authenticate, secret) if secret else None
    if key is None:
        return _page(request, "sign_in.html", None, 401, error="That key is not valid, or was revoked.")
    if key.role not in DASHBOARD_ROLES:
        return _page(request, "sign_in.html", None, 403, error=f"A {key.role.value} key cannot open the dashboard.")
    response = RedirectResponse("/dashboard", status_code=303)
    response.set_cookie(
        COOKIE, secret, max_age=SESSION_SECONDS, path="/dashboard", secure=True, httponly=True, samesite="strict"
    )
    return response


@router.post("/sign-out")
def sign_out() -> Response:
    response = RedirectResponse("/dashboard/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path="/dashboard", secure=True, httponly=True, samesite="strict")
    return response


@router.get("")
def overview(request: Request) -> HTMLResponse:
    caller = _signed_in(request)
    reads = services_of(request).reads
    census = reads.census()
    since = datetime.now(UTC) - timedelta(days=7)
    alerts = reads.alerts(since)
    by_level: dict[str, dict[str, int]] = {}
    for row in census:
        by_level.setdefault(row["level"], {})[row["status"]] = row["episodes"]
    widest = max((sum(v.values()) for v in by_level.values()), default=1)
    return _page(
        request,
        "overview.html",
        caller,
        census=census,
        by_level=by_level,
        widest=widest,
        alerts=alerts,
        statuses=[s.value for s in EpisodeStatus],
        total=sum(r["episodes"] for r in census),
        below_minimum=below_minimum_now(request),
    )


@router.get("/episodes")
def episodes(
    request: Request, level: str = "", status: str = "", flag: str = "", q: str = "", page: int = 1
) -> Response:
    caller = _signed_in(request)
    reads = services_of(request).reads
    q = q.strip()
    if q and reads.get(q) is not None:
        return RedirectResponse(f"/dashboard/episodes/{q}", status_code=303)
    level = level if level in {lv.value for lv in LevelOfCare} else ""
    status = status if status in {s.value for s in EpisodeStatus} else ""
    flag = flag if flag.replace("_", "").isalpha() and len(flag) <= 40 else ""
    page = max(1, min(page, 100_000))
    result = reads.list(
        level=level or None, status=status or None, flag=flag or None, page=page, page_size=50, id_prefix=q[:64] or None
    )
    filters = {"level": level, "status": status, "flag": flag, "q": q}
    more = urlencode({**filters, "page": page + 1}) if page * 50 < result.total else None
    return _page(
        request,
        "episodes.html",
        caller,
        result=result,
        filters=filters,
        more=more,
        statuses=[s.value for s in EpisodeStatus],
    )


@router.get("/episodes/{episode_id}")
def episode(request: Request, episode_id: str, as_of: str = "", verify: bool = False) -> HTMLResponse:
    caller = _signed_in(request)
    services = services_of(request)
    if not _valid_id(episode_id) or services.reads.get(episode_id) is None:
        raise HTTPException(404, f"no episode {episode_id}")
    at, as_of_error = _instant(as_of)
    services.access.record(
        caller, episode_id, "dashboard timeline" + (f" as_of {at.isoformat()}" if at else ""), "dashboard"
    )
    events = services.store.read_stream(episode_id, recorded_until=at)
    state = episode_as_of(services.store, episode_id, at=at) if at else None
    # A replay before the episode's first event shows that it did not exist yet, never today's state.
    current = encode(state) if state else {} if at else services.reads.get(episode_id) or {}
    until = at or datetime.now(UTC)
    stays = _stays(events, until)
    start = events[0].occurred_at if events else until
    span = max((until - start).total_seconds(), 1.0)
    return _page(
        request,
        "episode.html",
        caller,
        episode_id=episode_id,
        state=current,
        events=events,
        stays=stays,
        start=start,
        until=until,
        span=span,
        as_of=at,
        as_of_text=as_of,
        as_of_error=as_of_error,
        marks=_marks(events),
        verification=verify_stream(services.store.engine, episode_id) if verify else None,
        strip=attendance_strip(request, current, at) if current else None,
    )


@router.get("/verify")
def verify_everything(request: Request, anchor_position: str = "", anchor_hash: str = "") -> HTMLResponse:
    """The whole log's chain: a clear verdict, and the first broken link if there is one; with an anchor
    kept outside (position and hash), also whether the log up to it is the one that was anchored."""
    caller = _signed_in(request)
    engine = services_of(request).store.engine
    anchors, anchor_error = [], None
    if anchor_position or anchor_hash:
        position = int(anchor_position) if anchor_position.strip().isdigit() else anchor_position
        try:
            anchors = [Anchor.from_json({"position": position, "hash": anchor_hash.strip().lower()})]
        except AnchorError as error:  # Anchor names what is wrong, a non-number position included
            anchor_error = str(error)
    return _page(
        request,
        "verify.html",
        caller,
        verification=verify_log(engine, anchors=anchors),
        anchors=anchors,
        anchor_error=anchor_error,
        head=take_anchor(engine),
        anchor_position=anchor_position,
        anchor_hash=anchor_hash,
    )


def _valid_id(value: str) -> bool:
    return re.fullmatch(ID_PATTERN, value) is not None


def _instant(text: str) -> tuple[datetime | None, str | None]:
    if not text.strip():
        return None, None
    try:
        at = parse_instant(text.strip())
    except ValueError:
        return None, f"{text!r} is not a date and time"
    return (at if at.tzinfo else at.replace(tzinfo=UTC)), None


_STAY_EVENTS = frozenset({"StayStarted", "LevelChanged", "EpisodeClosed"})


def _stays(events: list[StoredEvent], until: datetime) -> list[Stay]:
    """The episode's stays (the domain's reading of its events); one still going on ends at `until` here."""
    found = stays(
        from_envelope(EventEnvelope(e.event_type, e.schema_version, e.payload))
        for e in events
        if e.event_type in _STAY_EVENTS
    )
    return [s if s.end is not None else Stay(s.level, s.start, until, s.cause) for s in found]


MARKS = {
    "TestResultRecorded": "test",
    "TestResultCorrected": "test",
    "ReviewCompleted": "review",
    "ReferralIssued": "referral",
    "FollowUpRecorded": "follow-up",
    "EpisodeClosed": "closed",
}


def _marks(events: list[Any]) -> list[dict[str, Any]]:
    marks = []
    for e in events:
        kind = MARKS.get(e.event_type)
        if kind is None:
            continue
        alarm = bool(e.payload.get("counts_as_positive")) or e.payload.get("outcome") == "using"
        marks.append(
            {"kind": kind, "at": e.occurred_at, "alarm": alarm, "label": f"{e.event_type} v{e.stream_version}"}
        )
    return marks


async def _to_sign_in(request: Request, exc: Exception) -> Response:
    return RedirectResponse("/dashboard/sign-in", status_code=303)


def install(app: FastAPI) -> None:
    """Mount the dashboard, its assets, and the redirect to sign-in for a missing or revoked session."""
    app.include_router(router)
    app.mount("/dashboard/static", static, name="dashboard-static")
    app.add_exception_handler(SignInRequired, _to_sign_in)
