"""Read routes: from the projection and the event log, never a workflow round trip."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from continuum.access import ApiKey, Role
from continuum.api.attendance import attendance_body
from continuum.api.auth import (
    ADMIN,
    ATTENDANCE,
    AUDIT,
    CENSUS,
    PARTNERS,
    READ_EPISODES,
    READ_RECORD,
    TREATMENT_PLANS,
    authenticated,
    facility_scope,
)
from continuum.api.episode_models import (
    EXPORT_RESPONSES,
    LAB_TEST_ITEMS,
    AccessLogView,
    ConsentView,
    DisclosuresView,
    EpisodeList,
    EpisodeView,
    EventsPage,
    FollowUpView,
    PartnerReferrals,
    ReferralView,
    ReviewView,
    SessionView,
    StepUpView,
    TestView,
    TreatmentPlanView,
    answer,
)
from continuum.api.facilities import census_by_facility, known_facility
from continuum.api.params import ID_PATTERN, IdPath, services_of, viewed_state
from continuum.api.schemas import CreateKeyBody
from continuum.api.service_models import (
    AlertsAnswer,
    AnchorAnswer,
    CensusAnswer,
    CreatedKeyAnswer,
    KeysAnswer,
    VerificationAnswer,
)
from continuum.api.utilization_reads import levels_body
from continuum.disclosures import export_history
from continuum.domain.aftercare import Consent, Referral
from continuum.domain.answering import disclosed_to, lab_was_sent, open_tests
from continuum.domain.codec import decode, encode
from continuum.domain.disclosure import TEXT_LIMIT, DisclosureBasis, ExportAsked, still_disclosed_to
from continuum.domain.episode import Episode, EpisodeStatus
from continuum.domain.errors import DisclosureRefused
from continuum.domain.levels import LevelOfCare
from continuum.domain.plan_decisions import plan_status
from continuum.domain.testing import DrugTest
from continuum.eventlog.projection import episode_as_of
from continuum.eventlog.reads import census_totals
from continuum.eventlog.verify import Anchor, take_anchor, verify_log, verify_stream

router = APIRouter(prefix="/api/v1", tags=["reads"])


def query_shape(**filters: object) -> str:
    """A query as the access log records it: which filters were given, and the closed-set values (levels,
    statuses, flag families, pages); a free-text value (a search) only as `given`, never itself."""
    shown = []
    for name, value in filters.items():
        if value is None or value == "":
            continue
        closed = isinstance(value, int | LevelOfCare | EpisodeStatus) or name == "flag"
        text = value.value if isinstance(value, LevelOfCare | EpisodeStatus) else str(value)
        shown.append(f"{name}={text.split(':')[0] if name == 'flag' else text}" if closed else f"{name}=given")
    return " ".join(shown) or "all"


def listed_ids(items: list[dict[str, Any]]) -> list[str]:
    return [str(item["episode_id"]) for item in items]


def alerted_ids(found: dict[str, Any]) -> list[str]:
    """The episodes the alerts show (each once, in the order first shown)."""
    ids: dict[str, None] = {}
    for rows in found.values():
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict) and "episode_id" in row:
                ids.setdefault(str(row["episode_id"]), None)
    return list(ids)


FacilityQuery = Annotated[str | None, Query(pattern=ID_PATTERN, description="only this facility's episodes")]
Purpose = Annotated[str, Query(pattern=r"^[a-z_]{1,40}$", description="why the record is read (logged)")]


@router.get("/episodes", response_model=EpisodeList)
def list_episodes(
    request: Request,
    level: LevelOfCare | None = None,
    status: EpisodeStatus | None = None,
    flag: Annotated[str | None, Query(pattern=r"^[a-z_]{1,40}(:[A-Za-z0-9._:-]{1,64})?$")] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=200)] = 50,
    facility: FacilityQuery = None,
    caller: ApiKey = Depends(READ_EPISODES),
) -> JSONResponse:
    services = services_of(request)
    result = services.reads.list(
        level=level.value if level else None,
        status=status.value if status else None,
        flag=flag,
        page=page,
        page_size=page_size,
        facility=facility,
        facilities=facility_scope(caller),
    )
    shape = query_shape(level=level, status=status, flag=flag, page=page, page_size=page_size, facility=facility)
    services.access.record_view(
        caller, f"episodes {shape}", "operations", episode_ids=listed_ids(result.items), rows=len(result.items)
    )
    return answer({"items": result.items, "total": result.total, "page": result.page, "page_size": result.page_size})


@router.get("/episodes/{episode_id}", response_model=EpisodeView)
def get_episode(request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(READ_EPISODES)) -> JSONResponse:
    state = viewed_state(request, caller, episode_id, "episode state")
    return answer(episode_body(request, episode_id, state))


def episode_body(request: Request, episode_id: str, state: dict[str, Any]) -> dict[str, Any]:
    """GET /episodes/{id}: the state, with what it waits for and how its plan, attendance and levels stand."""
    return {
        "episode_id": episode_id,
        "state": state,
        "pending_review": state.get("pending_review"),
        "open_tests": [encode(test) for test in open_tests(decode(Episode, state))],
        "pending_step_up": state.get("pending_step_up"),
        "flags": state.get("flags", []),
        "attendance": attendance_body(request, state),
        "treatment_plan": treatment_plan_body(state),
        "levels": levels_body(state, datetime.now(UTC)),
    }


def treatment_plan_body(state: dict[str, Any]) -> dict[str, Any]:
    """The plan's status as reads show it: due or current or overdue, the last review, the next."""
    body: dict[str, Any] = encode(plan_status(decode(Episode, state), datetime.now(UTC)))
    return body


@router.get("/episodes/{episode_id}/treatment-plan", response_model=TreatmentPlanView)
def episode_treatment_plan(
    request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(TREATMENT_PLANS)
) -> JSONResponse:
    """The treatment plan (problems and goals by ASAM dimension, who signed it) and its deadlines."""
    state = viewed_state(request, caller, episode_id, "treatment plan")
    return answer({"episode_id": episode_id, "treatment_plan": treatment_plan_body(state)})


@router.get("/episodes/{episode_id}/events", response_model=EventsPage)
def episode_events(
    request: Request,
    episode_id: str = IdPath(),
    from_version: Annotated[int, Query(ge=1)] = 1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    as_of: datetime | None = None,
    purpose: Purpose = "operations",
    caller: ApiKey = Depends(READ_RECORD),
) -> JSONResponse:
    """The episode's events (paged by stream version); with `as_of`, the state as the record stood then."""
    services = services_of(request)
    if as_of is not None and as_of.tzinfo is None:
        raise HTTPException(422, "as_of must carry a time zone (e.g. 2026-11-23T10:00:00Z)")
    if services.reads.get(episode_id) is None:
        raise HTTPException(404, f"no episode {episode_id}")
    services.access.record(caller, episode_id, "events" + (f" as_of {as_of.isoformat()}" if as_of else ""), purpose)
    events = services.store.read_stream(
        episode_id, from_version=from_version, to_version=from_version + limit - 1, recorded_until=as_of
    )
    body: dict[str, Any] = {
        "episode_id": episode_id,
        "events": [
            {
                "position": e.position,
                "stream_version": e.stream_version,
                "event_id": str(e.event_id),
                "type": e.event_type,
                "schema_version": e.schema_version,
                "data": e.payload,
                "metadata": asdict(e.metadata),
                "occurred_at": e.occurred_at.isoformat(),
                "recorded_at": e.recorded_at.isoformat(),
                "hash": e.hash.hex(),
            }
            for e in events
        ],
        "next_version": events[-1].stream_version + 1 if len(events) == limit else None,
    }
    if as_of is not None:
        state = episode_as_of(services.store, episode_id, at=as_of)
        body["state_as_of"] = encode(state) if state else None
    return answer(body)


@router.get("/episodes/{episode_id}/access-log", response_model=AccessLogView)
def access_log(request: Request, episode_id: str = IdPath(), caller: ApiKey = Depends(AUDIT)) -> JSONResponse:
    """Who read this episode's record, when, and why."""
    entries = services_of(request).access.for_episode(episode_id)
    return answer({"episode_id": episode_id, "reads": [asdict(e) for e in entries]})


@router.get("/episodes/{episode_id}/disclosures", response_model=DisclosuresView)
def disclosures(
    request: Request,
    episode_id: str = IdPath(),
    since: datetime | None = None,
    until: datetime | None = None,
    purpose: Purpose = "accounting_of_disclosures",
    caller: ApiKey = Depends(READ_RECORD),
) -> JSONResponse:
    """The accounting of disclosures for the episode over a period: recipient, date, purpose, what, consent."""
    services = services_of(request)
    if any(t is not None and t.tzinfo is None for t in (since, until)):
        raise HTTPException(422, "since and until must carry a time zone (e.g. 2026-11-23T10:00:00Z)")
    if services.reads.get(episode_id) is None:
        raise HTTPException(404, f"no episode {episode_id}")
    services.access.record(caller, episode_id, "disclosures", purpose)
    return answer({"episode_id": episode_id, "disclosures": services.reads.disclosures(episode_id, since, until)})


@router.get("/episodes/{episode_id}/export", response_class=Response, responses=EXPORT_RESPONSES)
def export_episode(
    request: Request,
    episode_id: str = IdPath(),
    format: Annotated[str, Query(pattern="^(ndjson|fhir)$")] = "ndjson",
    recipient: Annotated[
        str, Query(pattern=r"^[a-z0-9][a-z0-9._:-]{0,63}$", description="who receives it")
    ] = "internal_audit",
    purpose: Purpose = "audit",
    basis: Annotated[
        DisclosureBasis | None, Query(description="the lawful basis (default: a consent on file, or program_staff)")
    ] = None,
    consent_id: Annotated[str | None, Query(pattern=ID_PATTERN, description="the consent it is made under")] = None,
    court_order: Annotated[str | None, Query(max_length=TEXT_LIMIT, description="the order, for court_order")] = None,
    emergency_clinician: Annotated[str | None, Query(max_length=TEXT_LIMIT, description="who receives it")] = None,
    emergency_facility: Annotated[str | None, Query(max_length=TEXT_LIMIT, description="their facility")] = None,
    emergency_nature: Annotated[str | None, Query(max_length=TEXT_LIMIT, description="the emergency")] = None,
    caller: ApiKey = Depends(READ_RECORD),
) -> Response:
    """The episode's history as NDJSON (verifiable offline: `continuum audit verify-export`) or as a FHIR R4
    Bundle. An export is a disclosure: outside the program it needs a consent valid now for the recipient and
    purpose, or a basis (`domain.disclosure.export_basis`); it is recorded, with its basis and who asserted it,
    in the accounting."""
    services = services_of(request)
    asked = ExportAsked.of(
        recipient, purpose, basis, consent_id, court_order, emergency_clinician, emergency_facility, emergency_nature
    )
    try:
        at = datetime.now(UTC)
        exported = export_history(services.store, caller, episode_id, format, asked, services.export_key, at)
    except DisclosureRefused as refused:
        raise HTTPException(422, str(refused)) from None
    if exported is None:
        raise HTTPException(404, f"no episode {episode_id}")
    if isinstance(exported, dict):
        return JSONResponse(exported, media_type="application/fhir+json")
    return Response(
        exported,
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="{episode_id}.ndjson"'},
    )


@router.get("/partner/referrals", response_model=PartnerReferrals)
def partner_referrals(request: Request, caller: ApiKey = Depends(PARTNERS)) -> JSONResponse:
    """A partner's own referrals (those disclosed to it, while the client's consent to it holds), to accept,
    decline or complete."""
    assert caller.subject is not None
    referrals = services_of(request).reads.referrals_for(caller.subject, datetime.now(UTC))
    return answer({"partner": caller.subject, "referrals": referrals})


# -- the resources a command created (a `Location`, a `created` item's `href`): one item of the state -------------


def _item(request: Request, caller: ApiKey, episode_id: str, collection: str, key: str, item_id: str) -> dict[str, Any]:
    """One element of a list in the episode's state, its reading recorded as a view; 404 if there is none."""
    state = viewed_state(request, caller, episode_id, collection.rstrip("s").replace("_", "-"))
    found = next((item for item in state.get(collection, []) if item[key] == item_id), None)
    if found is None:
        raise HTTPException(404, f"no {collection.rstrip('s').replace('_', ' ')} {item_id} on episode {episode_id}")
    return dict(found)


@router.get("/episodes/{episode_id}/tests/{test_id}", response_model=TestView)
def episode_test(
    request: Request, episode_id: str = IdPath(), test_id: str = IdPath(), caller: ApiKey = Depends(authenticated)
) -> JSONResponse:
    """One drug test. Whoever reads the episode's state reads it whole; a lab reads a test it was sent (the rule it
    reports under), as the event feed shows a lab: the order, a cancellation, the collection."""
    if caller.role is not Role.LAB:
        READ_EPISODES.refuse_unless(caller)
        return answer(
            {"episode_id": episode_id, "test": _item(request, caller, episode_id, "tests", "test_id", test_id)}
        )
    services = services_of(request)
    test = services.reads.element(episode_id, "tests", "test_id", test_id)  # the one test, not the whole state
    if test is None or not lab_was_sent(decode(DrugTest, test), caller.subject):
        raise HTTPException(403, f"this lab was not sent test {test_id}")
    services.access.record_view(caller, "test", "operations", episode_id=episode_id)
    return answer({"episode_id": episode_id, "test": {item: test.get(item) for item in LAB_TEST_ITEMS}})


@router.get("/episodes/{episode_id}/reviews/{review_id}", response_model=ReviewView)
def episode_review(
    request: Request, episode_id: str = IdPath(), review_id: str = IdPath(), caller: ApiKey = Depends(READ_EPISODES)
) -> JSONResponse:
    """The completion review requested, while it is open (the outcome route closes it)."""
    state = viewed_state(request, caller, episode_id, "review")
    review = state.get("pending_review")
    if not review or review["review_id"] != review_id:
        raise HTTPException(404, f"no open review {review_id} on episode {episode_id}")
    return answer({"episode_id": episode_id, "review": review})


@router.get("/episodes/{episode_id}/step-ups/{test_id}", response_model=StepUpView)
def episode_step_up(
    request: Request, episode_id: str = IdPath(), test_id: str = IdPath(), caller: ApiKey = Depends(READ_EPISODES)
) -> JSONResponse:
    """The step-up a test brought: waiting for a result or a review, or (once taken) the last step-up."""
    state = viewed_state(request, caller, episode_id, "step-up")
    found = next(
        (s for s in (state.get("pending_step_up"), state.get("last_step_up")) if s and s["test_id"] == test_id), None
    )
    if found is None:
        raise HTTPException(404, f"no step-up on test {test_id} of episode {episode_id}")
    return answer({"episode_id": episode_id, "step_up": found})


@router.get("/episodes/{episode_id}/follow-ups/{follow_up_id}", response_model=FollowUpView)
def episode_follow_up(
    request: Request, episode_id: str = IdPath(), follow_up_id: str = IdPath(), caller: ApiKey = Depends(READ_EPISODES)
) -> JSONResponse:
    found = _item(request, caller, episode_id, "follow_ups", "follow_up_id", follow_up_id)
    return answer({"episode_id": episode_id, "follow_up": found})


@router.get("/episodes/{episode_id}/referrals/{referral_id}", response_model=ReferralView)
def episode_referral(
    request: Request, episode_id: str = IdPath(), referral_id: str = IdPath(), caller: ApiKey = Depends(authenticated)
) -> JSONResponse:
    """One referral. Whoever reads the episode's state reads it whole; a partner reads one disclosed to it while
    the client's consent to it holds (as `GET /partner/referrals` lists it), in the same form."""
    if caller.role is not Role.PARTNER:
        READ_EPISODES.refuse_unless(caller)
        found = _item(request, caller, episode_id, "referrals", "referral_id", referral_id)
        return answer({"episode_id": episode_id, "referral": found})
    state = viewed_state(request, caller, episode_id, "referral")
    referral = next((r for r in state.get("referrals", []) if r["referral_id"] == referral_id), None)
    consents = [decode(Consent, c) for c in state.get("consents", [])]
    shown = disclosed_to(decode(Referral, referral) if referral else None, caller.subject)
    if not shown or referral is None or not still_disclosed_to(consents, str(caller.subject), datetime.now(UTC)):
        raise HTTPException(403, f"referral {referral_id} was not sent to this partner")
    partner_form = {"episode_id": episode_id, **{k: referral.get(k) for k in PARTNER_REFERRAL_ITEMS}}
    return answer({"episode_id": episode_id, "referral": partner_form})


PARTNER_REFERRAL_ITEMS = ("referral_id", "resource_id", "resource_type", "status", "issued_at", "answer_due_at")


@router.get("/episodes/{episode_id}/sessions/{session_id}", response_model=SessionView)
def episode_session(
    request: Request, episode_id: str = IdPath(), session_id: str = IdPath(), caller: ApiKey = Depends(ATTENDANCE)
) -> JSONResponse:
    """One session, as the episode's attendance lists it (and to the same roles)."""
    found = _item(request, caller, episode_id, "sessions", "session_id", session_id)
    return answer({"episode_id": episode_id, "session": found})


@router.get("/episodes/{episode_id}/consents/{consent_id}", response_model=ConsentView)
def episode_consent(
    request: Request, episode_id: str = IdPath(), consent_id: str = IdPath(), caller: ApiKey = Depends(READ_EPISODES)
) -> JSONResponse:
    found = _item(request, caller, episode_id, "consents", "consent_id", consent_id)
    return answer({"episode_id": episode_id, "consent": found})


@router.get("/census", response_model=CensusAnswer)
def census(request: Request, facility: FacilityQuery = None, caller: ApiKey = Depends(CENSUS)) -> dict[str, Any]:
    """Open episodes by level and status (`total` counts them), and by facility: each level's occupancy against
    its capacity, with the clients waitlisted there; `closed` counts the episodes that have ended. At the caller's
    facilities (and only `facility`, if given)."""
    services = services_of(request)
    scope = facility_scope(caller)
    if facility is not None:
        known_facility(request, caller, facility)
    rows = services.reads.census(scope, facility)
    services.access.record_view(
        caller, "census" + (f" facility={facility}" if facility else ""), "operations", rows=len(rows)
    )
    by_level_and_status = census_totals(rows)
    return {
        "by_level_and_status": by_level_and_status,
        "total": sum(r["episodes"] for r in by_level_and_status),
        "closed": services.reads.closed_count(scope, facility),
        "by_facility": census_by_facility(request, caller, rows, facility),
        "waitlist": services.reads.waitlist(scope, facility),
    }


@router.get("/alerts", response_model=AlertsAnswer)
def alerts(
    request: Request,
    days: Annotated[int, Query(ge=1, le=365)] = 7,
    facility: FacilityQuery = None,
    caller: ApiKey = Depends(CENSUS),
) -> dict[str, Any]:
    """Overdue reviews, plans and missing results open now; positives and step-ups in the last `days` days; each
    naming its facility, at the caller's facilities (and only `facility`, if given)."""
    services = services_of(request)
    since = datetime.now(UTC) - timedelta(days=days)
    if facility is not None:
        known_facility(request, caller, facility)
    found = services.reads.alerts(since, facility_scope(caller), facility)
    ids = alerted_ids(found)
    rows = sum(len(v) for v in found.values())
    services.access.record_view(caller, f"alerts days={days}", "operations", episode_ids=ids, rows=rows)
    return {"since": since.isoformat(), **found}


@router.get("/audit/verify", response_model=VerificationAnswer)
def verify(
    request: Request,
    episode: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    anchor_position: Annotated[
        int | None, Query(ge=0, le=2**62, description="An anchor from /audit/anchor: its position")
    ] = None,
    anchor_hash: Annotated[str | None, Query(pattern="^[0-9a-f]{64}$", description="and its hash")] = None,
    caller: ApiKey = Depends(AUDIT),
) -> dict[str, Any]:
    """Recompute the hash chain; with an anchor, also check the log still holds the anchored hash."""
    if (anchor_position is None) != (anchor_hash is None):
        raise HTTPException(422, "anchor_position and anchor_hash: give both, or neither")
    if anchor_position is not None and episode:
        raise HTTPException(422, "episode: an anchor checks the whole log; leave out episode")
    engine = services_of(request).store.engine
    anchors = [] if anchor_position is None else [Anchor(anchor_position, str(anchor_hash))]
    report = verify_stream(engine, episode) if episode else verify_log(engine, anchors=anchors)
    return {
        "scope": report.scope,
        "ok": report.ok,
        "events_checked": report.events_checked,
        "anchors_checked": len(anchors),
        "first_broken": asdict(report.first_broken) if report.first_broken else None,
        "problems": [asdict(p) for p in report.problems],
    }


@router.get("/audit/anchor", response_model=AnchorAnswer)
def anchor(request: Request, caller: ApiKey = Depends(AUDIT)) -> dict[str, Any]:
    """The log's head now (position, hash, time): keep it outside this system and pass it to /audit/verify
    later, to prove the log up to there was not rewritten."""
    return take_anchor(services_of(request).store.engine).as_json()


@router.post("/keys", status_code=201, response_model=CreatedKeyAnswer)
def create_key(body: CreateKeyBody, request: Request, caller: ApiKey = Depends(ADMIN)) -> dict[str, Any]:
    """A new API key; its secret is shown once, in this response, and only its hash is kept."""
    if body.role in (Role.LAB, Role.PARTNER) and not body.subject:
        raise HTTPException(422, f"subject: a {body.role.value} key names the {body.role.value} it speaks for")
    for facility in body.facilities or []:
        if services_of(request).episodes.facilities.get(facility) is None:
            raise HTTPException(422, f"facilities: no facility {facility}")
    key, secret = services_of(request).keys.create(body.name, body.role, body.subject, body.facilities)
    return {**_key_body(key), "secret": secret}


def _key_body(key: ApiKey) -> dict[str, Any]:
    scope = sorted(key.facilities) if key.facilities is not None else None
    return {**asdict(key), "role": key.role.value, "facilities": scope}


@router.get("/keys", response_model=KeysAnswer)
def list_keys(request: Request, caller: ApiKey = Depends(ADMIN)) -> dict[str, Any]:
    return {"keys": [_key_body(k) for k in services_of(request).keys.list()]}


@router.delete("/keys/{key_id}", status_code=204)
def revoke_key(request: Request, key_id: str = IdPath(), caller: ApiKey = Depends(ADMIN)) -> None:
    if not services_of(request).keys.revoke(key_id):
        raise HTTPException(404, f"no active key {key_id}")
