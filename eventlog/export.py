"""Exports of an episode's history: NDJSON that verifies offline, and a FHIR Bundle.

NDJSON: one stored event per line with its hashes, then a signed trailer (eventlog/checkpoints.py: how
many events, the first and last position, the last hash). `verify_ndjson` recomputes every hash from the
line alone, checks the stream has no gap and that the trailer names what was exported, so an export can
be checked far from the database, and one cut short fails.

FHIR: a `collection` Bundle holding the `EpisodeOfCare` (status history, the stays as its type history),
an `Encounter` per session attended (what a billing service takes), and one `Provenance` per event (what,
when it was recorded, on whose word, and the event's chain hash). Built for FHIR R4; validated with
`fhir.resources` R4B, R4's technical correction, whose `EpisodeOfCare`, `Encounter` and `Provenance` are R4's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from continuum.domain.codec import EventEnvelope, format_instant, from_envelope, parse_instant
from continuum.domain.episode import Episode, EpisodeStatus
from continuum.domain.events import DomainEvent
from continuum.domain.fold import evolve
from continuum.domain.services import Modality, SessionStatus
from continuum.domain.stays import stays
from continuum.eventlog.checkpoints import export_trailer, trailer_problems
from continuum.eventlog.hashing import canonical_json, event_hash
from continuum.eventlog.records import StoredEvent
from continuum.eventlog.upcasting import product_upcasters
from continuum.eventlog.verify import BrokenLink, VerificationReport

_UPCASTERS = product_upcasters()
_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"  # Encounter.class: AMB ambulatory, VR virtual
_MODALITY = {False: "ambulatory", True: "virtual"}
_UCUM = "http://unitsofmeasure.org"
FHIR_BASE = "urn:continuum"
HASH_EXTENSION = "https://continuum.example/fhir/StructureDefinition/event-hash"
# EpisodeOfCare.status (R4 value set episode-of-care-status)
_FHIR_STATUS = {
    EpisodeStatus.INTAKE: "planned",
    EpisodeStatus.ACTIVE: "active",
    EpisodeStatus.ON_HOLD: "onhold",
    EpisodeStatus.CLOSED: "finished",
}


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
    """The episode as a FHIR R4 `collection` Bundle: its EpisodeOfCare and a Provenance per event (the events
    as recorded or already upcast: either reads the same)."""
    state: Episode | None = None
    status_history: list[dict[str, Any]] = []
    domain_events = [_domain_event(e) for e in events]
    for stored, event in zip(events, domain_events, strict=True):
        state = evolve(state, event)
        at = format_instant(stored.occurred_at)
        status = _FHIR_STATUS[state.status]
        if status_history and status_history[-1]["period"]["start"] == at:  # passed through in one instant
            status_history.pop()
            if status_history and status_history[-1]["status"] == status:
                status_history[-1]["period"].pop("end", None)
        if not status_history or status_history[-1]["status"] != status:
            if status_history:
                status_history[-1]["period"]["end"] = at
            status_history.append({"status": status, "period": {"start": at}})
    assert state is not None
    level_history = [(stay.level.value, format_instant(stay.start)) for stay in stays(domain_events)]
    episode_ref = f"EpisodeOfCare/{episode_id}"
    episode: dict[str, Any] = {
        "resourceType": "EpisodeOfCare",
        "id": episode_id,
        "identifier": [{"system": f"{FHIR_BASE}:episode", "value": episode_id}],
        "status": _FHIR_STATUS[state.status],
        "statusHistory": status_history,
        "type": [{"text": f"level of care: {level} (from {since})"} for level, since in level_history],
        "patient": {"identifier": {"system": f"{FHIR_BASE}:client", "value": state.client_id}},
        "period": {
            "start": format_instant(state.opened_at),
            **({"end": format_instant(state.closed_at)} if state.closed_at else {}),
        },
    }
    entries = [{"fullUrl": f"{FHIR_BASE}:{episode_ref}", "resource": episode}]
    entries += [
        {"fullUrl": f"{FHIR_BASE}:Encounter/{encounter['id']}", "resource": encounter}
        for encounter in encounters(state, episode_ref)
    ]
    for stored in events:
        provenance = {
            "resourceType": "Provenance",
            "id": f"{episode_id}-v{stored.stream_version}"[:64],
            "target": [{"reference": episode_ref}],
            "occurredDateTime": format_instant(stored.occurred_at),
            "recorded": format_instant(stored.recorded_at),
            "activity": {
                "coding": [{"system": f"{FHIR_BASE}:event-type", "code": stored.event_type}],
                "text": _describe(stored),
            },
            "agent": [
                {"who": {"identifier": {"system": f"{FHIR_BASE}:actor", "value": stored.metadata.actor or "unknown"}}}
            ],
            "extension": [{"url": HASH_EXTENSION, "valueString": stored.hash.hex()}],
        }
        entries.append({"fullUrl": f"{FHIR_BASE}:Provenance/{provenance['id']}", "resource": provenance})
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": format_instant(events[-1].recorded_at),
        "entry": entries,
    }


def encounters(state: Episode, episode_ref: str) -> list[dict[str, Any]]:
    """An `Encounter` per session the client attended (what a payer pays by): its kind, the level it was
    scheduled at, in person (ambulatory) or by telehealth (virtual), and the minutes attended."""
    found = []
    for number, session in enumerate(state.sessions, start=1):
        if session.status is not SessionStatus.ATTENDED:
            continue
        virtual = session.modality is Modality.TELEHEALTH
        ends = session.starts_at + timedelta(minutes=session.attended_minutes)
        encounter: dict[str, Any] = {
            "resourceType": "Encounter",
            "id": _fhir_id(f"{state.episode_id}-s{number}"),
            "identifier": [{"system": f"{FHIR_BASE}:session", "value": session.session_id}],
            "status": "finished",
            "class": {"system": _ACT_CODE, "code": "VR" if virtual else "AMB", "display": _MODALITY[virtual]},
            "type": [{"coding": [{"system": f"{FHIR_BASE}:session-kind", "code": session.kind}]}],
            "subject": {"identifier": {"system": f"{FHIR_BASE}:client", "value": state.client_id}},
            "episodeOfCare": [{"reference": episode_ref}],
            "period": {"start": format_instant(session.starts_at), "end": format_instant(ends)},
            "length": {"value": session.attended_minutes, "unit": "min", "system": _UCUM, "code": "min"},
        }
        if session.level is not None:
            encounter["serviceType"] = {"coding": [{"system": f"{FHIR_BASE}:level-of-care", "code": session.level}]}
        found.append(encounter)
    return found


def _fhir_id(value: str) -> str:
    """A FHIR resource id (letters, digits, '-' and '.', at most 64) from one of ours."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", value)[:64]


def _describe(stored: StoredEvent) -> str:
    """A line for people: the event and its cause, where it has one (no free-text notes)."""
    payload = stored.payload
    for key in ("cause", "result", "outcome", "status", "reason"):
        if isinstance(payload.get(key), str):
            return f"{stored.event_type}: {payload[key]}"[:200]
    return stored.event_type


def ndjson_lines(events: Iterable[StoredEvent]) -> Iterator[str]:
    return (ndjson_line(e) for e in events)
