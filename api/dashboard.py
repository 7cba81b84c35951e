"""The clinical directors' and auditors' dashboard: server-rendered pages over the same reads as the API.

Sessions, CSRF and headers are plumbing every page gets from this module, so a new page needs nothing of its own:
- Sign-in takes an API key (director or auditor) and opens a server-side session (access/sessions.py): the
  cookie (Secure, HttpOnly, SameSite=Strict, scoped to /dashboard) holds a random token whose SHA-256 digest
  alone is stored; it expires, and ends on sign-out and when its key is revoked. A page calls
  `_signed_in(request)` for the caller's key (a missing or ended session goes to sign-in).
- Every POST to the router (the `_guard` dependency) carries the session's CSRF token, as the form field
  `csrf_token` (every page's context has `csrf_token`) or the header X-CSRF-Token; sign-in carries the
  sign-in form's own. A query value with a NUL or another control character answers 400.
- Every answer under /dashboard carries `DashboardHeaders` (CSP without inline script, frame-ancestors
  'none', no referrer, no caching).
- What a role sees is the API's own rule (api/auth.py): a page asks the same `Allowed` the API's route
  depends on, and each read of identifiable data is recorded once per view (`AccessLog.record_view`).
Every asset is in the package (no CDN). Pages refresh their live part by polling.
"""

from __future__ import annotations

import hmac
import re
import secrets
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from continuum.access import ApiKey, Role
from continuum.access.sessions import SESSION_LIFETIME, DashboardSession, csrf_token
from continuum.api import triage
from continuum.api.attendance import attendance_strip, below_minimum_now
from continuum.api.auth import CENSUS, MEASURES, READ_EPISODES, READ_RECORD, UTILIZATION, facility_scope, sees_episode
from continuum.api.episode_page import CareClock, care_day_of, placements, results
from continuum.api.facilities import census_by_facility
from continuum.api.params import ID_PATTERN, services_of
from continuum.api.reads import alerted_ids, listed_ids, query_shape
from continuum.api.utilization_reads import levels_body, utilization_report
from continuum.domain.codec import EventEnvelope, decode, encode, from_envelope, parse_instant
from continuum.domain.episode import Episode, EpisodeStatus
from continuum.domain.levels import LevelOfCare
from continuum.domain.plan_decisions import plan_status
from continuum.domain.stays import Stay, stays
from continuum.eventlog.projection import episode_as_of
from continuum.eventlog.reads import census_totals
from continuum.eventlog.records import StoredEvent
from continuum.eventlog.verify import Anchor, AnchorError, take_anchor, verify_log, verify_stream

HERE = Path(__file__).parent
COOKIE = "continuum_session"
SIGN_IN_COOKIE = "continuum_sign_in"  # the sign-in form's nonce: its CSRF token is derived from it
SESSION_SECONDS = int(SESSION_LIFETIME.total_seconds())
DASHBOARD_ROLES = (Role.DIRECTOR, Role.AUDITOR, Role.UTILIZATION_REVIEWER)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_COOKIE_FLAGS: dict[str, Any] = {"path": "/dashboard", "secure": True, "httponly": True, "samesite": "strict"}
templates = Jinja2Templates(directory=HERE / "templates")
triage.install(templates.env)
static = StaticFiles(directory=HERE / "static")
LEVELS = list(reversed(LevelOfCare))  # most intensive first, as drawn
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


_UNSET = object()


class SignInRequired(Exception):
    pass


def _session(request: Request) -> DashboardSession | None:
    """The request's live dashboard session (looked up once per request), if its key may open the dashboard."""
    if getattr(request.state, "dashboard_session", _UNSET) is _UNSET:
        token = request.cookies.get(COOKIE, "")
        found = services_of(request).sessions.find(token) if token else None
        request.state.dashboard_session = found if found is not None and found.key.role in DASHBOARD_ROLES else None
    session: DashboardSession | None = request.state.dashboard_session
    return session


def _signed_in(request: Request) -> ApiKey:
    """The signed-in caller's key; without a live session, off to sign-in."""
    session = _session(request)
    if session is None:
        raise SignInRequired
    return session.key


def _refuse_control_characters(request: Request) -> None:
    """A NUL or another control character (or an undecodable byte) in a query value answers 400: no read is
    tried with it, so PostgreSQL never sees it."""
    for name, value in request.query_params.multi_items():
        if any(unicodedata.category(c) in ("Cc", "Cs") or c == "\ufffd" for c in value):
            raise HTTPException(400, f"{name}: contains a character that is not allowed (a control character)")


async def _guard(request: Request) -> None:
    """Every dashboard request: query values checked; every unsafe one carries its CSRF token."""
    _refuse_control_characters(request)
    if request.method not in _UNSAFE:
        return
    form = parse_qs((await request.body()).decode("utf-8", "replace"))  # cached: the route reads it again
    given = (form.get(CSRF_FIELD) or [request.headers.get(CSRF_HEADER, "")])[0]
    if request.url.path == "/dashboard/sign-in":
        expected = csrf_token(request.cookies.get(SIGN_IN_COOKIE, "")) if request.cookies.get(SIGN_IN_COOKIE) else ""
    else:
        session = await run_in_threadpool(_session, request)
        if session is None:
            raise SignInRequired
        expected = session.csrf
    if not expected or not hmac.compare_digest(given, expected):
        raise HTTPException(403, "the form's CSRF token is missing or does not match: reload the page and try again")


router = APIRouter(prefix="/dashboard", include_in_schema=False, dependencies=[Depends(_guard)])


def _page(request: Request, name: str, caller: ApiKey | None, status: int = 200, **context: Any) -> HTMLResponse:
    session = _session(request) if caller is not None else None
    may = {
        "census": caller is not None and CENSUS.permits(caller),
        "episodes": caller is not None and READ_EPISODES.permits(caller),
        "measures": caller is not None and MEASURES.permits(caller),
        "utilization": caller is not None and UTILIZATION.permits(caller),
    }
    return templates.TemplateResponse(
        request,
        name,
        {
            "caller": caller,
            "levels": LEVELS,
            "now": datetime.now(UTC),
            "csrf_token": session.csrf if session else "",
            "may": may,
            **context,
        },
        status_code=status,
    )


@router.get("/sign-in")
def sign_in_form(request: Request) -> HTMLResponse:
    return _sign_in_page(request)


def _sign_in_page(request: Request, status: int = 200, error: str | None = None) -> HTMLResponse:
    """The sign-in form with a fresh nonce in its own cookie and the CSRF token derived from it in the form."""
    nonce = secrets.token_urlsafe(32)
    response = _page(request, "sign_in.html", None, status, error=error, sign_in_csrf=csrf_token(nonce))
    response.set_cookie(SIGN_IN_COOKIE, nonce, max_age=3600, **_COOKIE_FLAGS)
    return response


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    secret = (form.get("api_key") or [""])[0].strip()
    services = services_of(request)
    key = await run_in_threadpool(services.keys.authenticate, secret) if secret else None
    if key is None:
        return _sign_in_page(request, 401, "That key is not valid, or was revoked.")
    if key.role not in DASHBOARD_ROLES:
        return _sign_in_page(request, 403, f"A {key.role.value} key cannot open the dashboard.")
    token = await run_in_threadpool(services.sessions.open, key)
    response = RedirectResponse(_landing(key), status_code=303)
    response.set_cookie(COOKIE, token, max_age=SESSION_SECONDS, **_COOKIE_FLAGS)
    response.delete_cookie(SIGN_IN_COOKIE, **_COOKIE_FLAGS)
    return response


def _landing(key: ApiKey) -> str:
    """The first page a role signs in to: the census, the utilization review, or the log's verification."""
    if CENSUS.permits(key):
        return "/dashboard"
    return "/dashboard/utilization-review" if key.role is Role.UTILIZATION_REVIEWER else "/dashboard/verify"


@router.post("/sign-out")
def sign_out(request: Request) -> Response:
    """End the session: its token opens nothing any more, whoever kept a copy of the cookie."""
    services_of(request).sessions.close(request.cookies.get(COOKIE, ""))
    response = RedirectResponse("/dashboard/sign-in", status_code=303)
    response.delete_cookie(COOKIE, **_COOKIE_FLAGS)
    return response


@router.get("")
def overview(request: Request) -> HTMLResponse:
    caller = CENSUS.refuse_unless(_signed_in(request))  # the census and the alerts: as the API's
    services = services_of(request)
    reads = services.reads
    scope = facility_scope(caller)  # a session sees what its key sees
    by_facility = reads.census(scope)
    census = census_totals(by_facility)
    since = datetime.now(UTC) - timedelta(days=7)
    alerts = reads.alerts(since, scope)
    shown = alerted_ids(alerts)
    services.access.record_view(
        caller, "dashboard overview", "dashboard", episode_ids=shown, rows=len(census) + len(shown)
    )
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
        alert_groups=triage.all_alert_groups(alerts, datetime.now(UTC), services.episodes.day),
        statuses=[s.value for s in EpisodeStatus],
        total=sum(r["episodes"] for r in census),
        below_minimum=below_minimum_now(request, scope),
        facilities=census_by_facility(request, caller, by_facility),
    )


@router.get("/alerts/{kind}")
def alert_list(request: Request, kind: str) -> HTMLResponse:
    """One alert list whole (the overview shows its first groups): every client, the most urgent first."""
    caller = CENSUS.refuse_unless(_signed_in(request))
    alert = triage.ALERT_LIST_OF.get(kind)
    if alert is None:
        return _not_found(request, caller, f"There is no alert list called {kind!r}.")
    services = services_of(request)
    found = services.reads.alerts(datetime.now(UTC) - timedelta(days=7), facility_scope(caller))
    rows = found.get(alert.key, [])
    shown = alerted_ids({alert.key: rows})
    services.access.record_view(caller, f"dashboard alerts {alert.key}", "dashboard", episode_ids=shown, rows=len(rows))
    groups = triage.alert_groups(alert, rows, datetime.now(UTC), services.episodes.day)
    return _page(request, "alerts.html", caller, alert=alert, groups=groups, rows=len(rows))


def _on_record(request: Request, caller: ApiKey, episode_id: str) -> bool:
    """Whether the episode is on record for this session: an episode outside its key's facilities is as unknown as
    one that does not exist (the API's rule, `api/auth.py`)."""
    valid = _valid_id(episode_id) and services_of(request).reads.get(episode_id) is not None
    return valid and sees_episode(caller, request, episode_id)


def _not_found(request: Request, caller: ApiKey, message: str) -> HTMLResponse:
    """A page that is not there, as a page (404): what was asked for, and the way back."""
    return _page(request, "not_found.html", caller, 404, message=message)


@router.get("/episodes")
def episodes(
    request: Request, level: str = "", status: str = "", flag: str = "", q: str = "", page: int = 1
) -> Response:
    caller = _signed_in(request)
    services = services_of(request)
    reads = services.reads
    q = q.strip()
    if q and _valid_id(q) and reads.get(q) is not None and sees_episode(caller, request, q):  # its page's own rule
        return RedirectResponse(f"/dashboard/episodes/{q}", status_code=303)
    READ_EPISODES.refuse_unless(caller)  # a list of episodes: as the API's
    level = level if level in {lv.value for lv in LevelOfCare} else ""
    status = status if status in {s.value for s in EpisodeStatus} else ""
    flag = flag if flag.replace("_", "").isalpha() and len(flag) <= 40 else ""
    page = max(1, min(page, 100_000))
    result = reads.list(
        level=level or None,
        status=status or None,
        flag=flag or None,
        page=page,
        page_size=50,
        id_prefix=q[:64] or None,
        facilities=facility_scope(caller),
    )
    filters = {"level": level, "status": status, "flag": flag, "q": q}
    shape = query_shape(level=level, status=status, flag=flag.split(":")[0], q=q, page=page)
    services.access.record_view(
        caller, f"dashboard episodes {shape}", "dashboard", episode_ids=listed_ids(result.items), rows=len(result.items)
    )
    more = urlencode({**filters, "page": page + 1}) if page * 50 < result.total else None
    return _page(
        request,
        "episodes.html",
        caller,
        result=result,
        filters=filters,
        more=more,
        statuses=[s.value for s in EpisodeStatus],
        flag_families=[(family.value, name) for family, name in triage.FLAG_NAMES.items()],
    )


@router.get("/episodes/{episode_id}")
def episode(request: Request, episode_id: str, as_of: str = "", verify: bool = False) -> HTMLResponse:
    caller = READ_RECORD.refuse_unless(_signed_in(request))  # the timeline is the record: as the API's events
    services = services_of(request)
    if not _on_record(request, caller, episode_id):
        return _not_found(request, caller, f"There is no episode {episode_id} on record.")
    at, as_of_error = _instant(as_of)
    # The current state is the API's GET /episodes/{id}: a role refused it there sees the record only.
    state_hidden = at is None and not READ_EPISODES.permits(caller)
    what = "dashboard timeline" + (f" as_of {at.isoformat()}" if at else "" if state_hidden else " and state")
    services.access.record_view(caller, what, "dashboard", episode_id=episode_id)
    context = _episode_record(request, episode_id, at, state_hidden)
    current = context["state"]
    return _page(
        request,
        "episode.html",
        caller,
        **context,
        state_hidden=state_hidden,
        as_of=at,
        as_of_text=as_of,
        as_of_error=as_of_error,
        plan=_plan(current, context["clock"].until),
        care_levels=levels_body(current, context["clock"].until) if current else None,
        verification=verify_stream(services.store.engine, episode_id) if verify else None,
        strip=attendance_strip(request, current, at) if current else None,
    )


@router.get("/utilization-review")
def utilization_review(request: Request, days: int = 7) -> HTMLResponse:
    """Authorizations ending soon, stays beyond their authorization, and the level mismatches by reason and level:
    the API's GET /api/v1/utilization-review, for the same roles."""
    caller = UTILIZATION.refuse_unless(_signed_in(request))
    services = services_of(request)
    days = max(1, min(days, 365))
    report = utilization_report(services.reads, datetime.now(UTC), days, facility_scope(caller))
    shown = alerted_ids({"rows": report["expiring"] + report["beyond_authorization"]})
    services.access.record_view(
        caller, f"dashboard utilization review days={days}", "dashboard", episode_ids=shown, rows=len(shown)
    )
    return _page(request, "utilization_review.html", caller, report=report, may_record=READ_RECORD.permits(caller))


@router.get("/episodes/{episode_id}/print")
def episode_summary(request: Request, episode_id: str) -> HTMLResponse:
    """The episode's summary for a case conference, laid out for paper: placement, stays, tests, reviews."""
    caller = READ_EPISODES.refuse_unless(READ_RECORD.refuse_unless(_signed_in(request)))
    services = services_of(request)
    if not _on_record(request, caller, episode_id):
        return _not_found(request, caller, f"There is no episode {episode_id} on record.")
    services.access.record_view(caller, "dashboard summary for print", "dashboard", episode_id=episode_id)
    context = _episode_record(request, episode_id, None, False)
    return _page(request, "episode_print.html", caller, **context)


def _episode_record(request: Request, episode_id: str, at: datetime | None, state_hidden: bool) -> dict[str, Any]:
    """What the episode page and its print view read: the events (up to `at`), the state then, the stays and
    marks on the care-day clock, the placements."""
    services = services_of(request)
    events = services.store.read_stream(episode_id, recorded_until=at)
    state = episode_as_of(services.store, episode_id, at=at) if at else None
    # A replay before the episode's first event shows that it did not exist yet, never today's state.
    current = encode(state) if state else {} if at or state_hidden else services.reads.get(episode_id) or {}
    # The clock runs to now (or the replay's instant), and never stops short of an event on record.
    until = at or max([datetime.now(UTC), *(e.occurred_at for e in events[-1:])])
    start = events[0].occurred_at if events else until
    return {
        "episode_id": episode_id,
        "state": current,
        "events": events,
        "stays": _stays(events, until),
        "clock": CareClock(start, until, care_day_of(events, services.episodes.day)),
        "marks": _marks(events),
        "placements": placements(events),
        "results": results(events),
    }


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


def _plan(state: dict[str, Any], at: datetime) -> dict[str, Any] | None:
    """The treatment plan's status as the episode page shows it (None before the episode existed)."""
    if not state:
        return None
    shown: dict[str, Any] = encode(plan_status(decode(Episode, state), at))
    return shown


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


# No inline script or style (every script and sheet is in api/static), no frames, nothing sent elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self';"
    " form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
DASHBOARD_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


class DashboardHeaders:
    """Every answer under /dashboard (pages, redirects, refusals, assets) carries DASHBOARD_HEADERS: pages
    with health data are never framed, cached or named in a Referer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path != "/dashboard" and not path.startswith("/dashboard/"):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in DASHBOARD_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)


def install(app: FastAPI) -> None:
    """Mount the dashboard, its assets, its headers, and the redirect to sign-in for a missing or ended session."""
    app.include_router(router)
    app.mount("/dashboard/static", static, name="dashboard-static")
    app.add_exception_handler(SignInRequired, _to_sign_in)
    app.add_middleware(DashboardHeaders)
