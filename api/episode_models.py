"""The response models of the episode routes: the state, its reads, the command answers, the created resources.

Most are derived from the domain's dataclasses, so the OpenAPI document says what `encode` answers. A state, an
event's data or a read built from the domain is `encode(dataclass)`: every field, by name, enums as their values,
instants as ISO-8601 text, flags as their spelling. `domain_model` makes the pydantic model of that shape from the
dataclass itself (required where the field has no default: a state projected before a field existed lacks it),
with the class's docstring as its description and each field's comment in the source as the field's; nothing
derived can drift from the domain by being copied. The envelopes the routes put around them are written out
below. The routes answer their bodies as before (`answer`): a model documents, it does not filter.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import re
import tokenize
import types
import typing
from datetime import datetime
from enum import Enum, StrEnum
from functools import cache
from typing import Annotated, Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model

from continuum.access import RecordAccess, Role
from continuum.api.schemas import FlagText
from continuum.domain.aftercare import Consent, FollowUp, Referral, ReferralStatus, ResourceType
from continuum.domain.attendance import Attendance
from continuum.domain.attendance_report import AttendanceRow
from continuum.domain.authorizations import Authorization
from continuum.domain.disclosure import DisclosureBasis
from continuum.domain.episode import Episode, EpisodeStatus, PendingReview, PendingStepUp, StepUpRecord
from continuum.domain.events import EVENT_TYPES
from continuum.domain.flags import Flag
from continuum.domain.levels import LevelOfCare
from continuum.domain.plan_decisions import PlanStatus
from continuum.domain.services import Session
from continuum.domain.testing import DrugTest
from continuum.domain.utilization import Levels, MismatchGroup
from continuum.eventlog.records import EventMetadata

# What a field means wherever it appears (and its own comment in the domain does not say): the description the
# schema gives a property that has none of its own.
FIELD_NOTES = {
    "episode_id": "the episode's id",
    "client_id": "the pseudonymous client id",
    "occurred_at": "when it happened, in the clinic's time (ISO-8601)",
    "recorded_at": "when it was recorded (ISO-8601)",
    "policy_version": "the hash of the policy it was decided under",
    "directory_version": "the hash of the resource directory it was decided under",
    "reason": "why, as a coded reason",
    "level": "the level of care",
    "status": "where it stands",
    "due_at": "when it is due (ISO-8601)",
    "test_id": "the drug test's id",
    "review_id": "the review's id",
    "referral_id": "the referral's id",
    "follow_up_id": "the follow-up's id",
    "session_id": "the session's id",
    "consent_id": "the consent's id",
    "authorization_id": "the payer authorization's id",
    "clinician": "the clinician's pseudonymous id",
    "therapist": "the therapist's pseudonymous id",
    "director": "the clinical director's pseudonymous id",
    "note": "free text, as the clinician wrote it",
    "kind": "which kind",
    "purpose": "why it is disclosed or read",
    "recipient": "who receives it",
    "recorded_by": "who recorded it (pseudonymous id)",
    "ordered_by": "who ordered it (pseudonymous id)",
    "scheduled_by": "who scheduled it (pseudonymous id)",
    "cancelled_by": "who cancelled it (pseudonymous id)",
    "requested_by": "who requested it (pseudonymous id)",
    "decided_by": "who decided it (pseudonymous id)",
    "reviewed_by": "who reviewed it (pseudonymous id)",
    "revoked_by": "who revoked it (pseudonymous id)",
    "changed_by": "who changed it (pseudonymous id)",
    "assessed_by": "who assessed the client (pseudonymous id)",
    "signed_by": "the clinician who signed it (pseudonymous id)",
    "extended_by": "who extended it (pseudonymous id)",
    "outcome": "how it came out",
    "result": "the drug test's result",
    "substances": "the substances or adulterants it names",
    "lab_reference": "the lab's own reference for the report",
    "corrects_lab_reference": "the lab reference of the report it corrects",
    "collected_at": "when the specimen was collected (ISO-8601)",
    "observed": "whether the collection was observed",
    "temperature_in_range": "whether the specimen's temperature was in range",
    "site": "where the specimen was collected",
    "ordered_at": "when it was ordered (ISO-8601)",
    "result_due_at": "when its result is due (ISO-8601)",
    "presumptive": "the presumptive (screening) report, if any",
    "confirmed": "the laboratory-confirmed report, if any",
    "cancelled": "whether it was cancelled",
    "overdue": "whether its result is overdue",
    "retest_of": "the test it retests",
    "lab_id": "the lab it was sent to",
    "method": "presumptive or confirmed",
    "interpretation": "how the report reads",
    "counts_as_positive": "whether it counts as a positive",
    "ratings": "the six ASAM dimension ratings, 0-4, in dimension order",
    "dimension": "the ASAM dimension (1-6)",
    "description": "what it says",
    "problems": "the plan's problems, by ASAM dimension",
    "goals": "the plan's goals, by ASAM dimension",
    "goal_id": "the goal's id, unique in the plan",
    "client_signed": "whether the client signed",
    "reviews": "how many reviews it had",
    "last_review_id": "the last review's id",
    "reviewed_at": "when it was last reviewed (ISO-8601)",
    "next_review_due_at": "when the next review is due (ISO-8601)",
    "recommended_level": "the level the assessment recommended",
    "after_withdrawal_level": "the level after withdrawal management",
    "recommended": "the level the assessment recommended",
    "clinical": "the level the client is at",
    "authorized": "the level a payer authorized",
    "standing": "how the clinical level stands against the authorized one",
    "authorized_until": "when the authorization in force ends (ISO-8601)",
    "from_level": "the level left",
    "to_level": "the level entered",
    "target_level": "the level the step-up moves to",
    "wanted_level": "the level the client waits for",
    "interim_level": "the level the client is at meanwhile",
    "waiting_for": "what the step-up waits for",
    "escalated": "whether the clinical director was alerted",
    "requested_at": "when it was requested (ISO-8601)",
    "since": "since when (ISO-8601)",
    "start": "when it starts (ISO-8601)",
    "end": "when it ends (ISO-8601)",
    "starts_at": "when it starts (ISO-8601)",
    "ends_at": "when it ends (ISO-8601)",
    "expires_at": "when it expires (ISO-8601)",
    "granted_at": "when it was granted (ISO-8601)",
    "revoked_at": "when it was revoked (ISO-8601)",
    "decided_at": "when it was decided (ISO-8601)",
    "issued_at": "when it was issued (ISO-8601)",
    "created_at": "when it was created (ISO-8601)",
    "answer_due_at": "when the partner's answer is due (ISO-8601)",
    "opened_at": "when the episode opened (ISO-8601)",
    "closed_at": "when it closed (ISO-8601)",
    "status_since": "since when it has had its status (ISO-8601)",
    "level_since": "since when the client has been at the level (ISO-8601)",
    "resource_id": "the directory's resource",
    "resource_type": "the kind of resource",
    "alternative_of": "the declined referral it replaces",
    "payer": "the payer's id",
    "authorization_number": "the payer's authorization number",
    "unit": "what the units count",
    "units": "days or units",
    "requested_units": "the days or units requested",
    "approved_units": "the days or units approved",
    "added_units": "the days or units added",
    "previous_end": "the end before the extension (ISO-8601)",
    "denial_reason": "the payer's coded reason for a denial",
    "decision": "the payer's decision",
    "extensions": "the payer's extensions",
    "minutes": "minutes",
    "attended_minutes": "the minutes attended",
    "modality": "in person or telehealth",
    "excused": "whether the miss was excused",
    "medications": "the active medication list",
    "facility": "the facility's id",
    "flags": "what the clinical director should see",
    "version": "the episode's stream version: how many events it has",
    "events": "the events, in order",
    "items": "the rows of this page",
    "page": "the page, from 1",
    "page_size": "the rows a page holds",
    "count": "how many rows",
    "key_id": "the API key's id",
    "what": "what was read",
    "format": "the export's format",
    "nature": "the nature of the emergency",
    "teds": "the TEDS discharge code",
    "held": "whether the client was on hold in the week",
    "week": "the care week, from 1",
    "care_week": "the care week, from 1",
    "week_starts_at": "when the care week starts (ISO-8601)",
    "week_ends_at": "when the care week ends (ISO-8601)",
    "in_person_minutes": "minutes delivered in person",
    "telehealth_minutes": "minutes delivered by telehealth",
    "telehealth_hours": "hours delivered by telehealth",
    "minimum_hours": "the level's weekly minimum (null: none)",
    "short_by_hours": "how far short of the minimum",
    "missed_excused": "sessions missed, excused",
    "missed_unexcused": "sessions missed, unexcused",
    "in_progress": "whether the week is still under way",
    "expected_hours": "the hours expected",
    "sessions_scheduled": "sessions scheduled",
    "sessions_attended": "sessions attended",
    "sessions_missed": "sessions missed",
    "unexcused_misses_in_a_row": "unexcused misses in a row, up to now",
    "last_attended_at": "when the client last attended (ISO-8601)",
    "direction": "up or down the continuum",
    "cause": "what caused it",
    "group": "the group the row belongs to (a facility)",
    "comparison": "how the levels differ",
    "workflow_id": "the Temporal workflow",
    "run_id": "the Temporal run",
    "moved": "whether the client moved",
    "held_seconds": "the time on hold, in seconds",
    "schema_version": "the version of its type's schema",
    "metadata": "who and what caused it: ids only, never clinical content",
    "levels": "the recommended, clinical and authorized levels",
    "previous_episode_id": "the episode this one readmits the client after",
    "court_order": "the court order it was made under",
    "referrals": "the aftercare referrals",
    "follow_ups": "the follow-ups planned or requested",
    "review_after_days": "stay-clock days at which the next review is requested",
    "weeks": "the care weeks, from the first",
    "expectations": "the policy's expectations and whether each was met",
    "rows": "the report's rows: one per client and care week",
    "authorization": "the authorization",
    "authorizations": "the payer authorizations, oldest first",
    "state": "the episode's state after the command",
    "consent": "the consent",
    "disclosures": "every disclosure in the period, oldest first",
    "sessions": "the sessions scheduled, attended, missed or cancelled",
    "attendance": "the weekly dose (null under a policy without `[services]`)",
    "placement_rules": "the placement rules that fired",
    "override_reason": "why the placement was overridden",
    "moves": "moves along the continuum since the placement",
    "placement_overrides": "placement overrides since the placement",
    "pending_review": "the completion review requested, if one is open",
    "reviews_completed": "completion reviews recorded",
    "hold_reason": "why the episode is on hold",
    "discharge_reason": "why the episode was discharged",
    "sobriety_since": "the sobriety date (ISO-8601)",
    "tests": "the drug tests in the working state",
    "tests_ordered": "drug tests ordered so far (they are numbered by it)",
    "schedule_level": "the level the random test schedule was drawn for",
    "schedule_window_end": "when the drawn test schedule ends (ISO-8601)",
    "pending_step_up": "a step-up waiting for a result or a review",
    "last_step_up": "the last step-up taken",
    "not_reached_in_a_row": "follow-ups not reached in a row",
    "level_spells": "the levels the client was at, and since when",
    "hold_spells": "the holds, each with its start and end",
    "re_engagement_escalated": "whether an overdue re-engagement review was escalated",
    "plan_due_at": "when the treatment plan (or its review) is due (ISO-8601)",
    "waitlist": "the level the client waits for, if any",
    "to_facility_id": "the facility it moved to",
    "at_least": "at least this many",
    "every_days": "within this many days",
    "attended": "how many were attended",
    "met": "whether the expectation was met",
    "disclosed": "the items disclosed",
    "asserted_by": "who asserted the lawful basis",
    "follow_up": "the follow-up",
    "episodes": "the episodes, by id",
    "rules_fired": "the placement rules that fired",
    "actual_level": "the level the client was placed at",
    "due_stage": "what is due next: the initial plan or a review",
    "last_reviewed_at": "when the plan was last reviewed (ISO-8601)",
    "next_review_at": "when the next review is due (ISO-8601)",
    "goals_met": "the plan's goals found met",
    "disclosure": "what was disclosed, to whom, under which consent (null: nothing)",
    "next_review_after_days": "stay-clock days at which the next review is requested",
    "session": "the session",
    "window_start": "when the drawn window starts (ISO-8601)",
    "window_days": "the window's length in days",
    "eligible_days": "the days a test may fall on",
    "weights": "each eligible day's weight",
    "chosen_days": "the days drawn",
    "stage": "the plan's stage that fell due",
    "treatment_plan": "the treatment plan's status",
    "days": "the window asked for, in days",
    "mismatches": "the level mismatches by facility, reason and level",
    "facility_id": "the facility's id",
}


def _described(schema: dict[str, Any]) -> None:
    """Gives each property without a description the one `FIELD_NOTES` has for its name."""
    for name, shown in schema.get("properties", {}).items():
        if "description" not in shown and name in FIELD_NOTES:
            shown["description"] = FIELD_NOTES[name]


class Derived(BaseModel):
    """Base of the derived models: what the domain encodes, no field more."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_described)


def domain_model(cls: type, name: str | None = None) -> type[BaseModel]:
    """The model of `encode(value)` for a value of dataclass `cls` (named `name`, default the class's)."""
    return _model(cls, name or cls.__name__)


@cache
def _model(cls: type, name: str) -> type[BaseModel]:
    hints = typing.get_type_hints(cls)
    notes = field_notes(cls)
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        described = Field(description=notes[field.name]) if field.name in notes else Field()
        shown: Any = Annotated[_shape(hints[field.name]), described]
        fields[field.name] = (shown, ...) if _required(field) else (shown, _default(field))
    doc = inspect.getdoc(cls) if cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}(") else None
    model: type[BaseModel] = create_model(name, __base__=Derived, __doc__=doc, **fields)
    return model


def _required(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _default(field: dataclasses.Field[Any]) -> Any:
    """The default as encoded (the schema's `default`): a tuple as a list, an enum as its value."""
    factory: Any = field.default_factory
    value = field.default if field.default is not dataclasses.MISSING else factory()
    if isinstance(value, tuple):
        return list(value)
    return value.value if isinstance(value, Enum) else value


def _shape(hint: Any) -> Any:
    """The type of a field as encoded."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = tuple(_shape(arg) for arg in typing.get_args(hint))
        return typing.Union[members]  # noqa: UP007 (built from a tuple)
    if hasattr(hint, "__supertype__"):  # NewType
        return _shape(hint.__supertype__)
    if origin in (tuple, list):
        return list[_shape(typing.get_args(hint)[0])]  # type: ignore[misc]
    if origin is dict:
        return dict[str, _shape(typing.get_args(hint)[1])]  # type: ignore[misc]
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return domain_model(hint)
    if hint is datetime:
        return datetime  # ISO-8601 text, `format: date-time`
    if hint is Flag:
        return FlagText
    return hint


_FIELD = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*:")


@cache
def field_notes(cls: type) -> dict[str, str]:
    """Each field's comment in the dataclass's source (the one on its line, else the lines just above it), for
    its description; none when the source cannot be read."""
    notes: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            notes.update(_notes_in(klass))
    return notes


def _notes_in(cls: type) -> dict[str, str]:
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    lines = source.splitlines()
    notes: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        found = _FIELD.match(line)
        if not found or line.lstrip().startswith(("def ", "#")):
            continue
        above: list[str] = []
        while number - 1 - len(above) in comments and lines[number - 2 - len(above)].lstrip().startswith("#"):
            above.insert(0, comments[number - 1 - len(above)])
        note = comments.get(number) if number in comments and not line.lstrip().startswith("#") else None
        text = note or " ".join(above)
        if text and "noqa" not in text and "type: ignore" not in text:
            notes[found.group(1)] = text
    return notes


def answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    """A read's body serialized as FastAPI serializes an untyped answer (instants read from the database as
    ISO-8601 text), so declaring a model changes no answer."""
    return JSONResponse(_ANY.dump_python(body, mode="json"), status_code=status, headers=headers)


_ANY: TypeAdapter[Any] = TypeAdapter(Any)


class Out(BaseModel):
    """Base of the hand-written envelopes: the keys the route answers, no more."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_described)


EpisodeIdField = Annotated[str, Field(description="the episode's id", examples=["EP-1001"])]
Instant = Annotated[datetime, Field(description="an instant, ISO-8601 with its zone")]


# -- the episode's state, as GET /episodes/{id} and the command answers show it ----------------------------------

EpisodeState = domain_model(Episode, "EpisodeState")
PendingReviewOut = domain_model(PendingReview)
PendingStepUpOut = domain_model(PendingStepUp)
DrugTestOut = domain_model(DrugTest)
LevelsOut = domain_model(Levels)
PlanStatusOut = domain_model(PlanStatus)
AuthorizationOut = domain_model(Authorization)
SessionOut = domain_model(Session)
ConsentOut = domain_model(Consent)
ReferralOut = domain_model(Referral)
FollowUpOut = domain_model(FollowUp)
StepUpRecordOut = domain_model(StepUpRecord)


class AttendanceOut(domain_model(Attendance)):  # type: ignore[misc]
    """The episode's weekly dose, judged by the policy it was decided under; null under a policy without
    `[services]`."""

    policy_version: str = Field(description="the policy the weeks are judged by")
    policy_on_record: bool = Field(description="false: that version's text is not on record, the configured stands in")


class EpisodeView(Out):
    """An episode's current state, with what it waits for and how its plan, attendance and levels stand."""

    episode_id: EpisodeIdField
    state: EpisodeState = Field(description="the projected state: every field the episode's fold keeps")  # type: ignore[valid-type]
    pending_review: PendingReviewOut | None = Field(description="the completion review requested, if one is open")  # type: ignore[valid-type]
    open_tests: list[DrugTestOut] = Field(description="the tests still awaiting a result")  # type: ignore[valid-type]
    pending_step_up: PendingStepUpOut | None = Field(description="a step-up waiting for a result or a review")  # type: ignore[valid-type]
    flags: list[FlagText] = Field(description="what the clinical director should see")
    attendance: AttendanceOut | None = Field(description="null under a policy without `[services]`")
    treatment_plan: PlanStatusOut = Field(description="the plan's status: due, current or overdue")  # type: ignore[valid-type]
    levels: LevelsOut = Field(description="the recommended, clinical and authorized levels")  # type: ignore[valid-type]


class EpisodeSummary(Out):
    """One row of the episode list (the projection's columns)."""

    episode_id: EpisodeIdField
    client_id: str = Field(description="the pseudonymous client id")
    status: EpisodeStatus
    status_since: Instant
    level: LevelOfCare | None = Field(description="the current level (null before the placement)")
    level_since: Instant | None
    flags: list[FlagText]
    opened_at: Instant
    closed_at: Instant | None
    version: int = Field(description="the episode's stream version: how many events it has")
    facility: str = Field(description="the facility the episode is at")


class EpisodeList(Out):
    items: list[EpisodeSummary]
    total: int = Field(description="the episodes matching, over every page")
    page: int
    page_size: int


class TreatmentPlanView(Out):
    episode_id: EpisodeIdField
    treatment_plan: PlanStatusOut  # type: ignore[valid-type]


# -- events: one model per event type, its data derived from the event's dataclass ---------------------------------


def _event_models(base: type[BaseModel], suffix: str) -> Any:
    """A union, by `type`, of one model per event type on `base`, each with the data of its own type."""
    models = [
        create_model(
            f"{name}{suffix}",
            __base__=base,
            __doc__=f"A {name} event.",
            type=(_literal(name), Field(description="the event's type")),
            data=(domain_model(cls, f"{name}Data"), Field(description="the event's data, as recorded")),
        )
        for name, cls in sorted(EVENT_TYPES.items())
    ]
    return Annotated[typing.Union[tuple(models)], Field(discriminator="type")]  # noqa: UP007 (built from a tuple)


def _literal(value: str) -> Any:
    return Literal[value]


class AnsweredEvent(Out):
    """An event a command recorded."""


class StoredEventOut(Out):
    """An event as the log holds it: its place in the log and in the episode's stream, and its hash."""

    position: int = Field(description="its place in the whole log")
    stream_version: int = Field(description="its place in the episode's stream, from 1")
    event_id: str = Field(description="a UUID")
    schema_version: int
    metadata: domain_model(EventMetadata)  # type: ignore[valid-type]
    occurred_at: str = Field(description="when it happened in the clinic's time (ISO-8601)")
    recorded_at: str = Field(description="when the log recorded it (ISO-8601)")
    hash: str = Field(pattern="^[0-9a-f]{64}$", description="its link in the hash chain (SHA-256, hex)")


RecordedEvent = _event_models(AnsweredEvent, "Recorded")
LoggedEvent = _event_models(StoredEventOut, "Logged")


class EventsPage(Out):
    episode_id: EpisodeIdField
    events: list[LoggedEvent]  # type: ignore[valid-type]
    next_version: int | None = Field(description="the next page's `from_version`; null on the last page")
    state_as_of: EpisodeState | None = Field(  # type: ignore[valid-type]
        None, description="with `as_of` only: the state as the record stood then (null: the episode did not exist)"
    )


class AccessEntry(domain_model(RecordAccess)):  # type: ignore[misc]
    role: Role = Field(description="the reader's role")
    accessed_at: Instant


class AccessLogView(Out):
    episode_id: EpisodeIdField
    reads: list[AccessEntry] = Field(description="every read of the record, oldest first")


class EmergencyOut(Out):
    clinician: str | None
    facility: str | None
    nature: str | None


class ReferralDisclosure(Out):
    """A referral disclosed to a partner under the client's consent."""

    kind: Literal["referral"]
    disclosed_at: Instant
    recipient: str
    purpose: str
    disclosed: list[str] = Field(description="the items shared, e.g. `episode_id`, `referral_type`")
    consent_id: str
    referral_id: str
    basis: None = Field(description="always null: a referral is made under a consent")


class ExportDisclosure(Out):
    """An export of the record to a recipient, with its basis and who asserted it."""

    kind: Literal["export"]
    disclosed_at: Instant
    recipient: str
    purpose: str
    disclosed: list[str]
    consent_id: str | None
    referral_id: None
    basis: DisclosureBasis | None = Field(description="the lawful basis (null: recorded before bases were)")
    exported_by: str = Field(description="the key that exported it")
    asserted_by: str | None
    court_order: str | None
    emergency: EmergencyOut | None = Field(description="42 CFR 2.51: who received it, where, and why")


class DisclosuresView(Out):
    episode_id: EpisodeIdField
    disclosures: list[Annotated[ReferralDisclosure | ExportDisclosure, Field(discriminator="kind")]]


class PartnerReferral(Out):
    """A referral as its partner reads it: ids, what was referred, its status and dates, nothing clinical."""

    episode_id: EpisodeIdField
    referral_id: str
    resource_id: str = Field(description="the directory's resource referred to")
    resource_type: ResourceType
    status: ReferralStatus
    issued_at: str | None = Field(description="when it was disclosed (ISO-8601)")
    answer_due_at: str | None = Field(description="when the partner's answer is due (ISO-8601)")


class PartnerReferrals(Out):
    partner: str = Field(description="the partner the key speaks for")
    referrals: list[PartnerReferral]


FHIR_BUNDLE = {"type": "object", "required": ["resourceType"], "properties": {"resourceType": {"const": "Bundle"}}}
EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the history as NDJSON (one event a line, then the signed trailer), or a FHIR R4 Bundle",
        "content": {
            "application/x-ndjson": {"schema": {"type": "string"}},
            "application/fhir+json": {"schema": FHIR_BUNDLE},
        },
    }
}


# -- attendance and utilization review ----------------------------------------------------------------------------


class EpisodeAttendanceView(Out):
    episode_id: EpisodeIdField
    sessions: list[SessionOut]  # type: ignore[valid-type]
    attendance: AttendanceOut | None


AttendanceRowOut = domain_model(AttendanceRow)


class AttendanceReport(Out):
    """A page of the attendance report (JSON); CSV is the whole report, a header of the same columns."""

    from_: str = Field(alias="from", description="the period's start (ISO-8601)")
    to: str = Field(description="the period's end, excluded (ISO-8601)")
    rows: list[AttendanceRowOut]  # type: ignore[valid-type]
    count: int
    next_after: str | None = Field(description="the `after` of the next page; null on the last")


ATTENDANCE_REPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string", "description": "RFC 4180, a header line"}}}}
}


class AuthorizationsView(Out):
    """What a utilization reviewer reads of an episode: its status, levels, authorizations and their flags; no
    clinical content."""

    episode_id: EpisodeIdField
    status: EpisodeStatus
    levels: LevelsOut  # type: ignore[valid-type]
    authorizations: list[AuthorizationOut]  # type: ignore[valid-type]
    flags: list[FlagText] = Field(description="the utilization review flags only")


class AuthorizationView(Out):
    episode_id: EpisodeIdField
    levels: LevelsOut  # type: ignore[valid-type]
    authorization: AuthorizationOut  # type: ignore[valid-type]


class UtilizationRowOut(domain_model(Levels, "UtilizationLevels")):  # type: ignore[misc]
    """An open episode's levels, at its facility."""

    episode_id: EpisodeIdField
    facility: str
    status: EpisodeStatus


class UtilizationReport(Out):
    at: str = Field(description="the instant the report was read at (ISO-8601)")
    days: int
    expiring: list[UtilizationRowOut] = Field(description="authorizations ending within `days` days")
    beyond_authorization: list[UtilizationRowOut] = Field(description="stays beyond their authorization")
    mismatches: list[domain_model(MismatchGroup)]  # type: ignore[valid-type]


# -- command answers and the resources they create ----------------------------------------------------------------


class CreatedKind(StrEnum):
    EPISODE = "episode"
    TEST = "test"
    REVIEW = "review"
    STEP_UP = "step_up"
    FOLLOW_UP = "follow_up"
    REFERRAL = "referral"
    SESSION = "session"
    CONSENT = "consent"
    AUTHORIZATION = "authorization"
    TREATMENT_PLAN = "treatment_plan"


class Created(Out):
    """A resource the command created, or the workflow created in consequence; `href` reads it."""

    kind: CreatedKind
    id: str = Field(description="its id (a treatment plan's is its episode's: one plan per episode)")
    href: str = Field(description="the path that reads it", examples=["/api/v1/episodes/EP-1001/tests/EP-1001-T1"])


class NoState(Out):
    """What a lab or a partner learns of the episode: nothing (its command was accepted)."""


class CommandAnswer(Out):
    """A command's outcome: the events it recorded, the episode's state after them (a utilization reviewer's
    reduced form; empty for a lab or a partner), and what it created (the first is the `Location`)."""

    episode_id: EpisodeIdField
    command_id: str = Field(description="the command's id (the same on a retry under the same Idempotency-Key)")
    events: list[RecordedEvent] = Field(description="the events recorded (none for a lab or a partner)")  # type: ignore[valid-type]
    state: EpisodeState | AuthorizationsView | NoState  # type: ignore[valid-type]
    created: list[Created] = Field(
        [],
        description="the resources created (a primary one first, also `Location` with 201); none for a lab or partner",
    )
    authorization_id: str | None = Field(None, description="a request to a payer only: the authorization's id")


# -- the created resources' own reads: one item of the episode's state ---------------------------------------------


class LabTest(Out):
    """A test as the lab it was sent to reads it: the order, its cancellation and the collection, as the event
    feed shows a lab (`domain.feed.LAB_EVENTS`); never a result, a reason or a level."""

    test_id: str
    ordered_at: str = Field(description="when it was ordered (ISO-8601)")
    result_due_at: str = Field(description="when the result is due (ISO-8601)")
    cancelled: bool
    collected_at: str | None = Field(None, description="when the specimen was collected (ISO-8601)")
    observed: bool | None = None
    temperature_in_range: bool | None = None


LAB_TEST_ITEMS = tuple(LabTest.model_fields)  # what a lab's read of a test keeps, and nothing else


class TestView(Out):
    __test__ = False
    episode_id: EpisodeIdField
    test: DrugTestOut | LabTest = Field(description="the whole test; a lab's key reads the lab's reduced form")  # type: ignore[valid-type]


class ReviewView(Out):
    episode_id: EpisodeIdField
    review: PendingReviewOut = Field(description="the completion review, while it is open")  # type: ignore[valid-type]


class StepUpView(Out):
    episode_id: EpisodeIdField
    step_up: PendingStepUpOut | StepUpRecordOut = Field(  # type: ignore[valid-type]
        description="the step-up waiting for a result or a review, or the last one taken"
    )


class FollowUpView(Out):
    episode_id: EpisodeIdField
    follow_up: FollowUpOut  # type: ignore[valid-type]


class ReferralView(Out):
    episode_id: EpisodeIdField
    referral: ReferralOut | PartnerReferral = Field(  # type: ignore[valid-type]
        description="the whole referral; a partner's key reads the partner's form"
    )


class SessionView(Out):
    episode_id: EpisodeIdField
    session: SessionOut  # type: ignore[valid-type]


class ConsentView(Out):
    episode_id: EpisodeIdField
    consent: ConsentOut  # type: ignore[valid-type]
