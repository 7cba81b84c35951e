"""Exports of an episode's history: NDJSON that verifies offline, and a FHIR Bundle.

NDJSON: one stored event per line with its hashes, then a signed trailer (eventlog/checkpoints.py: how
many events, the first and last position, the last hash). `verify_ndjson` recomputes every hash from the
line alone, checks the stream has no gap and that the trailer names what was exported, so an export can
be checked far from the database, and one cut short fails.

FHIR: a `collection` Bundle holding the `EpisodeOfCare` (its status history, the levels it held), the client's
`Patient` (the pseudonymous id alone), an `Encounter` per stay (the level of care coded, its period, holds and
why it began), an `Encounter` per session attended (what a billing service takes, part of its stay), and one
`Provenance` per event (what, when it was recorded, on whose word, and the event's chain hash). Every fullUrl
is a `urn:uuid:` named from our ids, and every reference is one of them, so references resolve inside the
Bundle and the same log exports the same Bundle. Built for FHIR R4; validated with `fhir.resources` R4B, R4's
technical correction, whose resources here are R4's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from continuum.domain.codec import EventEnvelope, format_instant, from_envelope, parse_instant
from continuum.domain.episode import Episode, EpisodeStatus, HoldSpell, OverrideReason, ReviewOutcome
from continuum.domain.events import (
    DomainEvent,
    EpisodeClosed,
    LevelChanged,
    LevelChangeDecided,
    PlacementDecided,
    PlacementOverridden,
    ReviewCompleted,
    StayStarted,
    StepUpReversed,
    StepUpReviewDecided,
)
from continuum.domain.fold import evolve, fold
from continuum.domain.levels import ASAM_CODES, LevelOfCare
from continuum.domain.services import Modality, SessionStatus
from continuum.domain.stays import Stay, stays
from continuum.eventlog.checkpoints import export_trailer, trailer_problems
from continuum.eventlog.hashing import canonical_json, event_hash
from continuum.eventlog.records import StoredEvent
from continuum.eventlog.upcasting import product_upcasters
from continuum.eventlog.verify import BrokenLink, VerificationReport

_UPCASTERS = product_upcasters()
_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"  # Encounter.class: AMB ambulatory, VR virtual
_MODALITY = {False: "ambulatory", True: "virtual"}
_UCUM = "http://unitsofmeasure.org"
FHIR_BASE = "urn:continuum"  # the identifier systems: urn:continuum:episode, :client, :stay, :session, ...
HASH_EXTENSION = "https://continuum.example/fhir/StructureDefinition/event-hash"
# The code systems of our own (README: "The FHIR export").
LEVEL_OF_CARE_CODES = "https://continuum.example/fhir/CodeSystem/level-of-care"
ASAM_LEVEL_CODES = "https://continuum.example/fhir/CodeSystem/asam-level"  # version: the ASAM Criteria edition
STAY_CAUSE_CODES = "https://continuum.example/fhir/CodeSystem/stay-cause"
OVERRIDE_REASON_CODES = "https://continuum.example/fhir/CodeSystem/override-reason"
DISCHARGE_REASON_CODES = "https://continuum.example/fhir/CodeSystem/discharge-reason"
TEDS_DISCHARGE_CODES = "https://continuum.example/fhir/CodeSystem/teds-discharge"  # the federal data set's
_NAMESPACE = uuid5(NAMESPACE_URL, "https://continuum.example/fhir")  # of the resources' name-based ids
_FREE_TEXT = {("StepUpReversed", "reason"), ("TestCancelled", "reason")}  # a clinician's words: never exported
_AROUND_THE_CLOCK = {LevelOfCare.RESIDENTIAL, LevelOfCare.WITHDRAWAL_MANAGEMENT}  # Encounter.class IMP
# EpisodeOfCare.status (R4 value set episode-of-care-status)
_FHIR_STATUS = {
    EpisodeStatus.INTAKE: "planned",
    EpisodeStatus.ACTIVE: "active",
    EpisodeStatus.ON_HOLD: "onhold",
    EpisodeStatus.CLOSED: "finished",
}


class StayCause(StrEnum):
    """Why a stay began, as the FHIR export codes it (`STAY_CAUSE_CODES`), read from the event that decided it."""

    PLACEMENT = "placement"  # the first stay, at the level the assessment recommended
    PLACEMENT_OVERRIDE = "placement-override"  # a clinician placed the client elsewhere
    REVIEW_GOALS_MET = "review-goals-met"  # a completion review found the goals met: step down
    REVIEW_STEP_UP = "review-step-up"  # a completion review found deterioration: step up
    POSITIVE_TEST = "positive-test"  # a counting drug test result: step up
    STEP_UP_ON_REVIEW = "step-up-on-review"  # a clinician confirmed the step-up a test asked for
    STEP_UP_REVERSAL = "step-up-reversal"  # a clinician reversed a step-up
    CLINICIAN_MOVE_UP = "clinician-move-up"  # a clinician moved the client up outside a review
    DIRECTOR_STEP_DOWN = "director-step-down"  # the clinical director stepped the client down
    FOLLOW_UP_RELAPSE = "follow-up-relapse"  # an aftercare follow-up reported use: re-entry
    OTHER = "other"


def ndjson_line(e: StoredEvent) -> str:
    return json.dumps(
        {
            "position": e.position,
            "stream_id": e.stream_id,
            "stream_version": e.stream_version,
            "event_id": str(e.event_id),
            "event_type": e.event_type,
            "schema_version": e.schema_version,
            "payload": e.payload,
            "metadata": e.metadata.as_dict(),
            "occurred_at": format_instant(e.occurred_at),
            "recorded_at": format_instant(e.recorded_at),
            "prev_hash": e.prev_hash.hex(),
            "hash": e.hash.hex(),
        },
        sort_keys=True,
    )


def signed_trailer(events: Sequence[StoredEvent], key: Ed25519PrivateKey, exported_at: datetime) -> str:
    """The export's last line: count, first and last position and the head hash of the exported events,
    signed with the checkpoint key, so a line cut off (or added) fails `verify_ndjson`."""
    return export_trailer([json.loads(ndjson_line(e)) for e in events], key, exported_at)


def verify_ndjson(
    lines: Iterable[str], *, public_key: Ed25519PublicKey | None = None, require_trailer: bool = False
) -> VerificationReport:
    """Check an NDJSON export offline: each hash recomputes from its line, the versions have no gap, and
    where two exported events are neighbours in the log, the second links to the first. A signed trailer,
    if there is one (it must be, with `require_trailer`), must name the events exported; its signature is
    checked with `public_key`."""
    problems: list[BrokenLink] = []
    previous: dict[str, Any] | None = None
    checked, stream = 0, "?"
    rows: list[dict[str, Any]] = []
    trailer: dict[str, Any] | None = None
    for number, line in enumerate(line for line in lines if line.strip()):
        if trailer is not None:
            problems.append(BrokenLink(-1, stream, f"line {number + 1} follows the trailer (added)"))
            break
        try:
            row = json.loads(line)
            if isinstance(row, dict) and "trailer" in row:
                trailer = row
                continue
            stream = row["stream_id"]
            recomputed = event_hash(
                bytes.fromhex(row["prev_hash"]),
                position=row["position"],
                stream_id=row["stream_id"],
                stream_version=row["stream_version"],
                event_id=row["event_id"],
                event_type=row["event_type"],
                schema_version=row["schema_version"],
                occurred_at=parse_instant(row["occurred_at"]),
                recorded_at=parse_instant(row["recorded_at"]),
                payload_json=canonical_json(row["payload"]),
                metadata_json=canonical_json(row["metadata"]),
            )
        except (ValueError, KeyError, TypeError) as error:
            problems.append(
                BrokenLink(-1, stream, f"line {number + 1} is not an exported event ({type(error).__name__})")
            )
            continue
        checked += 1
        rows.append(row)
        if recomputed.hex() != row["hash"]:
            problems.append(
                BrokenLink(
                    row["position"],
                    stream,
                    f"event {row['event_id']} ({row['event_type']}, version {row['stream_version']}) was altered",
                    recomputed.hex(),
                    row["hash"],
                )
            )
        expected_version = previous["stream_version"] + 1 if previous else 1
        if row["stream_version"] != expected_version:
            problems.append(BrokenLink(row["position"], stream, f"stream version {expected_version} missing"))
        if previous and previous["position"] == row["position"] - 1 and previous["hash"] != row["prev_hash"]:
            problems.append(
                BrokenLink(
                    row["position"], stream, "link to the previous event broken", previous["hash"], row["prev_hash"]
                )
            )
        previous = row
    if trailer is not None or require_trailer:
        problems.extend(trailer_problems(rows, trailer, public_key))
    return VerificationReport(f"export of stream {stream}", checked, tuple(problems))


def _domain_event(stored: StoredEvent) -> DomainEvent:
    """The event a stored one holds, upcast to its current schema version (an export's events are as recorded)."""
    version, payload = _UPCASTERS.upcast(stored.event_type, stored.schema_version, stored.payload)
    return from_envelope(EventEnvelope(stored.event_type, version, payload))


def fhir_bundle(episode_id: str, events: list[StoredEvent]) -> dict[str, Any]:
    """The episode as a FHIR R4 `collection` Bundle (the events as recorded or already upcast: either reads the
    same): its EpisodeOfCare, the client's Patient, an Encounter per stay and per session attended, and a
    Provenance per event. Every entry's fullUrl is a `urn:uuid:` derived from the episode, client, stay, session
    or event id, and every reference between them is that fullUrl, so the same log exports the same Bundle."""
    domain_events = [_domain_event(e) for e in events]
    state = fold(domain_events)
    assert state is not None, "an export holds at least the episode's opening"
    patient = _patient(state)
    episode = _episode_of_care(episode_id, state, domain_events, patient)
    stays_ = _stays(episode_id, state, domain_events, episode, patient)
    sessions = _sessions(state, stays_, episode, patient)
    parts = [episode, patient, *(stay.encounter for stay in stays_), *sessions.values()]
    started_by = {stay.started_by: stay.encounter for stay in stays_}
    provenances = [_provenance(stored, index, episode, started_by, sessions) for index, stored in enumerate(events)]
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": format_instant(events[-1].recorded_at),
        "entry": [{"fullUrl": _full_url(resource), "resource": resource} for resource in parts + provenances],
    }


def _uuid(*names: str) -> str:
    """A resource id that the same names always give (a name-based UUID under the export's namespace)."""
    return str(uuid5(_NAMESPACE, "/".join(names)))


def _full_url(resource: dict[str, Any]) -> str:
    return f"urn:uuid:{resource['id']}"


def _reference(resource: dict[str, Any]) -> dict[str, str]:
    return {"reference": _full_url(resource)}


def _patient(state: Episode) -> dict[str, Any]:
    """The client, by the pseudonymous id alone (names and contact details stay in the EHR)."""
    return {
        "resourceType": "Patient",
        "id": _uuid("Patient", state.client_id),
        "identifier": [{"system": f"{FHIR_BASE}:client", "value": state.client_id}],
    }


def level_of_care(level: LevelOfCare) -> dict[str, Any]:
    """A level of care as a CodeableConcept: our level's name, and its ASAM level in each edition that has one."""
    codings = [{"system": LEVEL_OF_CARE_CODES, "code": level.value, "display": _words(level.value)}]
    codings += [
        {"system": ASAM_LEVEL_CODES, "version": edition.value, "code": code, "display": f"ASAM level {code}"}
        for edition, codes in ASAM_CODES.items()
        if (code := codes[level]) is not None
    ]
    return {"coding": codings, "text": _words(level.value)}


def _episode_of_care(
    episode_id: str, state: Episode, domain_events: list[DomainEvent], patient: dict[str, Any]
) -> dict[str, Any]:
    """The EpisodeOfCare: its status now and every status it had (`statusHistory`, with periods), the levels of
    care it held (`type`, in the order first held), the client, and when it was open."""
    held = dict.fromkeys(stay.level for stay in stays(domain_events))
    return {
        "resourceType": "EpisodeOfCare",
        "id": _uuid("EpisodeOfCare", episode_id),
        "identifier": [{"system": f"{FHIR_BASE}:episode", "value": episode_id}],
        "status": _FHIR_STATUS[state.status],
        "statusHistory": [
            {"status": status, "period": _period(start, end)} for status, start, end in _status_periods(domain_events)
        ],
        "type": [level_of_care(level) for level in held],
        "patient": _reference(patient),
        "period": _period(state.opened_at, state.closed_at),
    }


def _status_periods(domain_events: list[DomainEvent]) -> list[tuple[str, datetime, datetime | None]]:
    """The FHIR statuses the episode passed through, each from when it began until the next (the last open); a
    status held for no time at all (opened and placed in one instant) is left out."""
    periods: list[tuple[str, datetime, datetime | None]] = []
    state: Episode | None = None
    for event in domain_events:
        state = evolve(state, event)
        status, at = _FHIR_STATUS[state.status], event.occurred_at
        if periods and periods[-1][1] == at:  # the previous status lasted no time: this one replaces it
            periods.pop()
            if periods and periods[-1][0] == status:
                periods[-1] = (status, periods[-1][1], None)
        if not periods or periods[-1][0] != status:
            if periods:
                periods[-1] = (periods[-1][0], periods[-1][1], at)
            periods.append((status, at, None))
    return periods


@dataclass(frozen=True)
class _StayEntry:
    """One stay's Encounter, with the index of the event that began it (for its Provenance)."""

    stay: Stay
    started_by: int
    encounter: dict[str, Any]


def _stays(
    episode_id: str,
    state: Episode,
    domain_events: list[DomainEvent],
    episode: dict[str, Any],
    patient: dict[str, Any],
) -> list[_StayEntry]:
    """An Encounter per stay: the level of care as `type` (coded), in a 24-hour setting (`IMP`) or not (`AMB`),
    its period, its holds as `onleave` in `statusHistory`, and why it began as `reasonCode` (coded)."""
    starts = [i for i, e in enumerate(domain_events) if isinstance(e, StayStarted | LevelChanged)]
    closed = next((e for e in reversed(domain_events) if isinstance(e, EpisodeClosed)), None)
    found = []
    for number, (stay, index) in enumerate(zip(stays(domain_events), starts, strict=True), start=1):
        before = domain_events[index - 1] if index else None
        history = _stay_statuses(stay, state.hold_spells)
        code, display = ("IMP", "inpatient encounter") if stay.level in _AROUND_THE_CLOCK else ("AMB", "ambulatory")
        encounter: dict[str, Any] = {
            "resourceType": "Encounter",
            "id": _uuid("Encounter", episode_id, "stay", str(number)),
            "identifier": [{"system": f"{FHIR_BASE}:stay", "value": f"{episode_id}/stay/{number}"}],
            "status": "finished" if stay.end is not None else history[-1][0],
            "class": {"system": _ACT_CODE, "code": code, "display": display},
            "type": [level_of_care(stay.level)],
            "subject": _reference(patient),
            "episodeOfCare": [_reference(episode)],
            "period": _period(stay.start, stay.end),
            "reasonCode": _stay_reasons(domain_events[index], before),
        }
        if history:  # none for a stay that lasted no time (a placement overridden at once)
            encounter["statusHistory"] = [{"status": st, "period": _period(start, end)} for st, start, end in history]
        if closed is not None and number == len(starts):  # the discharge ended the last stay
            encounter["hospitalization"] = {"dischargeDisposition": _discharge(closed)}
        found.append(_StayEntry(stay, index, encounter))
    return found


def _stay_statuses(stay: Stay, holds: Iterable[HoldSpell]) -> list[tuple[str, datetime, datetime | None]]:
    """The stay `in-progress`, and `onleave` while the episode was on hold within it."""
    periods: list[tuple[str, datetime, datetime | None]] = []
    at: datetime | None = stay.start
    for hold in holds:
        start, end = max(hold.start, stay.start), _earlier(hold.end, stay.end)
        if at is None or (stay.end is not None and start >= stay.end) or (end is not None and end <= start):
            continue  # outside the stay (or after a hold that outlasts it)
        if start > at:
            periods.append(("in-progress", at, start))
        if periods and periods[-1][0] == "onleave" and periods[-1][2] == start:  # resumed and held in one instant
            start = periods.pop()[1]
        periods.append(("onleave", start, end))
        at = end
    if at is not None and (stay.end is None or at < stay.end):
        periods.append(("in-progress", at, stay.end))
    return periods


def _earlier(one: datetime | None, other: datetime | None) -> datetime | None:
    """The earlier of two instants, None being the open future."""
    return other if one is None else one if other is None else min(one, other)


def _stay_reasons(started: DomainEvent, before: DomainEvent | None) -> list[dict[str, Any]]:
    """Why a stay began, coded (`STAY_CAUSE_CODES`), with the cause as recorded; a clinician's or a director's
    coded reason (`OVERRIDE_REASON_CODES`) beside it where there is one. Free-text notes stay out."""
    reason: OverrideReason | None = None
    text = started.cause if isinstance(started, LevelChanged) else "placement"
    match started, before:
        case StayStarted(), PlacementDecided(decided_by=decided_by, rules_fired=rules):
            cause = StayCause.PLACEMENT
            text = f"placement: {decided_by or ', '.join(rules) or 'baseline'}"
        case StayStarted(), _:
            cause = StayCause.PLACEMENT
        case LevelChanged(), PlacementOverridden(reason=reason):
            cause = StayCause.PLACEMENT_OVERRIDE
        case LevelChanged(), ReviewCompleted(outcome=ReviewOutcome.GOALS_MET):
            cause = StayCause.REVIEW_GOALS_MET
        case LevelChanged(), ReviewCompleted():
            cause = StayCause.REVIEW_STEP_UP
        case LevelChanged(), LevelChangeDecided(director=None, reason=reason):
            cause = StayCause.CLINICIAN_MOVE_UP
        case LevelChanged(), LevelChangeDecided(reason=reason):
            cause = StayCause.DIRECTOR_STEP_DOWN
        case LevelChanged(cause_test_id=test_id), StepUpReversed():
            cause, text = StayCause.STEP_UP_REVERSAL, f"reversal of the step-up on test {test_id}"
        case LevelChanged(), StepUpReviewDecided():
            cause = StayCause.STEP_UP_ON_REVIEW
        case LevelChanged(cause_follow_up_id=str()), _:
            cause = StayCause.FOLLOW_UP_RELAPSE
        case LevelChanged(cause_test_id=str()), _:
            cause = StayCause.POSITIVE_TEST
        case _:
            cause = StayCause.OTHER
    reasons = [
        {
            "coding": [{"system": STAY_CAUSE_CODES, "code": cause.value, "display": _words(cause.value)}],
            "text": text[:200],
        }
    ]
    if reason is not None:
        reasons.append(
            {"coding": [{"system": OVERRIDE_REASON_CODES, "code": reason.value, "display": _words(reason.value)}]}
        )
    return reasons


def _discharge(closed: EpisodeClosed) -> dict[str, Any]:
    """The discharge reason, coded, and its category in the Treatment Episode Data Set (TEDS); the note stays out."""
    return {
        "coding": [
            {"system": DISCHARGE_REASON_CODES, "code": closed.reason.value, "display": _words(closed.reason.value)},
            {"system": TEDS_DISCHARGE_CODES, "code": closed.teds.value, "display": _words(closed.teds.value)},
        ],
        "text": _words(closed.reason.value),
    }


def _sessions(
    state: Episode, found: list[_StayEntry], episode: dict[str, Any], patient: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """An `Encounter` per session the client attended (what a payer pays by), by session id: its kind, the level it
    was scheduled at, in person (ambulatory) or by telehealth (virtual), the minutes attended, and the stay it
    was part of."""
    encounters = {}
    for session in state.sessions:
        if session.status is not SessionStatus.ATTENDED:
            continue
        virtual = session.modality is Modality.TELEHEALTH
        ends = session.starts_at + timedelta(minutes=session.attended_minutes)
        encounter: dict[str, Any] = {
            "resourceType": "Encounter",
            "id": _uuid("Encounter", state.episode_id, "session", session.session_id),
            "identifier": [{"system": f"{FHIR_BASE}:session", "value": session.session_id}],
            "status": "finished",
            "class": {"system": _ACT_CODE, "code": "VR" if virtual else "AMB", "display": _MODALITY[virtual]},
            "type": [{"coding": [{"system": f"{FHIR_BASE}:session-kind", "code": session.kind}]}],
            "subject": _reference(patient),
            "episodeOfCare": [_reference(episode)],
            "period": _period(session.starts_at, ends),
            "length": {"value": session.attended_minutes, "unit": "min", "system": _UCUM, "code": "min"},
        }
        if session.level is not None:
            encounter["serviceType"] = level_of_care(session.level)
        part_of = [e for e in found if _within(session.starts_at, e.stay)]
        if part_of:
            encounter["partOf"] = _reference(part_of[-1].encounter)
        encounters[session.session_id] = encounter
    return encounters


def _provenance(
    stored: StoredEvent,
    index: int,
    episode: dict[str, Any],
    started_by: dict[int, dict[str, Any]],
    sessions: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The event's Provenance, its id the event id: what it was, when it happened and was recorded, on whose word,
    its chain hash, and what it concerns (the episode, and the stay it began or the session it records)."""
    concerns = [episode]
    if index in started_by:
        concerns.append(started_by[index])
    if (session := sessions.get(str(stored.payload.get("session_id")))) is not None:
        concerns.append(session)
    return {
        "resourceType": "Provenance",
        "id": str(stored.event_id),
        "target": [_reference(resource) for resource in concerns],
        "occurredDateTime": format_instant(stored.occurred_at),
        "recorded": format_instant(stored.recorded_at),
        "activity": {
            "coding": [{"system": f"{FHIR_BASE}:event-type", "code": stored.event_type}],
            "text": _describe(stored, started_by.get(index)),
        },
        "agent": [
            {"who": {"identifier": {"system": f"{FHIR_BASE}:actor", "value": stored.metadata.actor or "unknown"}}}
        ],
        "extension": [{"url": HASH_EXTENSION, "valueString": stored.hash.hex()}],
    }


def _within(at: datetime, stay: Stay) -> bool:
    return stay.start <= at and (stay.end is None or at < stay.end)


def _period(start: datetime, end: datetime | None) -> dict[str, str]:
    return {"start": format_instant(start), **({"end": format_instant(end)} if end is not None else {})}


def _words(code: str) -> str:
    """A code as people read it: `intensive_outpatient` as "intensive outpatient"."""
    return code.replace("_", " ").replace("-", " ")


def _describe(stored: StoredEvent, stay: dict[str, Any] | None) -> str:
    """A line for people: the event and its cause, where it has one (for a move, the stay's; no free-text
    notes)."""
    if stay is not None:
        return f"{stored.event_type}: {stay['reasonCode'][0]['text']}"[:200]
    payload = stored.payload
    for key in ("result", "outcome", "status", "reason"):
        if isinstance(payload.get(key), str) and (stored.event_type, key) not in _FREE_TEXT:
            return f"{stored.event_type}: {payload[key]}"[:200]
    return stored.event_type


def ndjson_lines(events: Iterable[StoredEvent]) -> Iterator[str]:
    return (ndjson_line(e) for e in events)
