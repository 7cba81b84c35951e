"""The answers of the service routes (census, alerts, audit, keys, measures, policy, simulations, feed, webhooks,
codec, health) as pydantic models: the OpenAPI document's 200s, and the shape FastAPI checks each answer against.

Every model refuses a field it does not name (`extra="forbid"`): a route that starts answering a new field fails
its tests instead of having the field silently dropped from the answer. Instants keep the spelling the route
always answered (`isoformat()`, or the record's own text), so existing callers read the same values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from continuum.access import Role
from continuum.api.schemas import Id
from continuum.domain.episode import EpisodeStatus
from continuum.domain.events import EVENT_TYPES
from continuum.domain.levels import LevelOfCare
from continuum.domain.measures import Grouping, Unit
from continuum.domain.testing import TestResult
from continuum.eventlog.feed import TYPE_PREFIX
from continuum.eventlog.webhooks import DeliveryStatus

_INSTANT_SCHEMA = {"type": "string", "format": "date-time"}
# An instant the route holds as a datetime, answered as `isoformat()` spells it (as FastAPI's encoder always did).
Instant = Annotated[
    datetime, PlainSerializer(lambda at: at.isoformat(), return_type=str), WithJsonSchema(_INSTANT_SCHEMA)
]
# An instant the route reads as text from the record (the episode's state, a computed report): answered unchanged.
InstantText = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
Hash = Annotated[str, Field(pattern="^[0-9a-f]{64}$", description="a chain hash, hex")]
Position = Annotated[int, Field(ge=0, description="a place in the whole log (0: before the first event)")]
PolicyVersion = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{16}$", examples=["sha256:0123456789abcdef"])]
# One of the log's event types (`domain.events.EVENT_TYPES`): a closed set, listed in the document.
EventType = Annotated[str, Field(json_schema_extra={"enum": list(EVENT_TYPES)}, examples=["TestOrdered"])]
CloudEventType = Annotated[
    str,
    Field(
        json_schema_extra={"enum": [TYPE_PREFIX + name for name in EVENT_TYPES]},
        examples=["org.continuum.TestOrdered"],
    ),
]
Census = Literal["none"]  # the census's level of an episode not yet assessed


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- census ------------------------------------------------------------------------------------------------------


class CensusRow(Answer):
    level: LevelOfCare | Census = Field(description="the level, or `none` for an episode not yet assessed")
    status: EpisodeStatus
    episodes: int = Field(ge=0)


class LevelOccupancy(Answer):
    level: LevelOfCare
    offered: bool = Field(description="whether the facility offers the level")
    occupancy: int = Field(ge=0, description="open episodes at the level")
    capacity: int | None = Field(description="beds or slots (none: no limit)")
    free: int | None = Field(description="capacity less occupancy, at least 0 (none: no limit)")
    waitlisted: int = Field(ge=0, description="of its episodes, those waiting there for another level")


class FacilityCensus(Answer):
    facility: Id
    name: str = Field(description="the facility's name (its id, for one no longer configured)")
    open: int = Field(ge=0, description="open episodes at the facility")
    unassessed: int = Field(ge=0, description="of them, those without a level yet")
    levels: list[LevelOccupancy]


class WaitlistRow(Answer):
    episode_id: Id
    facility: Id
    wanted_level: LevelOfCare | None = Field(description="the level the facility could not take the client at")
    interim_level: LevelOfCare | None = Field(description="the level the client is placed at meanwhile")
    since: InstantText | None


class CensusAnswer(Answer):
    """Open episodes by level and status, by facility against capacity, and the waitlist."""

    by_level_and_status: list[CensusRow]
    total: int = Field(ge=0, description="open episodes")
    closed: int = Field(ge=0, description="episodes that have ended")
    by_facility: list[FacilityCensus]
    waitlist: list[WaitlistRow]


# -- alerts ------------------------------------------------------------------------------------------------------


class AlertedEpisode(Answer):
    episode_id: Id
    client_id: str = Field(description="the pseudonymous client id")
    level: LevelOfCare | None
    facility: Id
    due_at: Instant | None = Field(description="the due date missed (an authorization's end, for its alerts)")


class FlaggedEpisode(AlertedEpisode):
    """An alert about the episode itself (a review, a plan, a level without authorization)."""

    flags: list[str] = Field(description="every open flag of the episode, `family` or `family:subject`")


class TestAlert(AlertedEpisode):
    __test__ = False  # not a pytest class
    test_id: Id


class ReferralAlert(AlertedEpisode):
    referral_id: Id


class AuthorizationAlert(AlertedEpisode):
    authorization_id: Id


class RecordedAlert(Answer):
    episode_id: Id
    client_id: str
    level: LevelOfCare | None = Field(description="the episode's level now")
    facility: Id
    recorded_at: Instant


class PositiveAlert(RecordedAlert):
    test_id: Id
    result: TestResult
    substances: list[str] | None = Field(description="what the result names")
    interpretation: str | None = Field(description="how the policy read it, in words")


class StepUpAlert(RecordedAlert):
    from_level: LevelOfCare
    to_level: LevelOfCare
    cause: str = Field(description="what moved the client (a positive test, a review, a follow-up, ...)")


class AlertsAnswer(Answer):
    """What is overdue now, and the positives and step-ups since `since`, one row per flag or event."""

    since: InstantText = Field(description="positives and step-ups are those recorded from here")
    overdue_reviews: list[FlaggedEpisode]
    missing_results: list[TestAlert]
    positives: list[PositiveAlert]
    step_ups: list[StepUpAlert]
    unanswered_referrals: list[ReferralAlert]
    overdue_plans: list[FlaggedEpisode]
    stays_beyond_authorization: list[AuthorizationAlert]
    unauthorized_levels: list[FlaggedEpisode]
    overdue_concurrent_reviews: list[AuthorizationAlert]


# -- audit -------------------------------------------------------------------------------------------------------


class BrokenLinkAnswer(Answer):
    position: int
    stream_id: str
    problem: str = Field(description="what does not match, in words")
    expected_hash: str | None = None
    found_hash: str | None = None


class VerificationAnswer(Answer):
    scope: str = Field(description="what was checked: the whole log, or one episode's stream")
    ok: bool
    events_checked: int = Field(ge=0)
    anchors_checked: int = Field(ge=0)
    first_broken: BrokenLinkAnswer | None
    problems: list[BrokenLinkAnswer]


class AnchorAnswer(Answer):
    """The log's head: keep it outside this system, and pass it to `/audit/verify` later."""

    position: Position
    hash: Hash
    taken_at: InstantText | None


# -- keys --------------------------------------------------------------------------------------------------------


class KeyAnswer(Answer):
    key_id: str
    name: str
    role: Role
    subject: str | None = Field(description="the lab or partner a lab or partner key speaks for")
    created_at: Instant
    revoked_at: Instant | None
    facilities: list[str] | None = Field(description="the facilities the key is scoped to (none: the whole operator)")


class CreatedKeyAnswer(KeyAnswer):
    secret: str = Field(description="the key's secret: shown in this answer only")


class KeysAnswer(Answer):
    keys: list[KeyAnswer]


# -- measures ----------------------------------------------------------------------------------------------------


class DayPeriod(Answer):
    model_config = ConfigDict(populate_by_name=True)

    start: InstantText = Field(alias="from")
    end: InstantText = Field(alias="to")


class MeasureDefinitionAnswer(Answer):
    title: str
    unit: Unit


class MeasureValue(Answer):
    numerator: float
    denominator: float
    value: float | None = Field(description="none where the denominator is 0")


class MeasureGroupAnswer(Answer):
    key: dict[str, str] = Field(description="the group's value of each grouping (none for the whole)")
    label: str
    measures: dict[str, MeasureValue] = Field(description="by measure name (see `definitions`)")


class MeasuresAnswer(Answer):
    """Outcome measures over a period, with the log position and hash they were computed at."""

    period: DayPeriod
    by: list[Grouping]
    log_position: Position
    log_head_hash: Hash
    policy_versions: list[str]
    day_seconds: float = Field(gt=0, description="the care day the durations count in")
    observed_until: InstantText | None
    episodes: int = Field(ge=0, description="episodes read")
    step_up_causes: dict[str, int] = Field(description="the whole's step-ups by cause")
    definitions: dict[str, MeasureDefinitionAnswer] = Field(description="each measure's title and unit, by name")
    groups: list[MeasureGroupAnswer] = Field(description="the whole first, then each group")


class FhirMeasureReport(BaseModel):
    """A FHIR R4 MeasureReport (validated with `fhir.resources` in the tests); its elements are FHIR's."""

    model_config = ConfigDict(extra="allow")

    resourceType: Literal["MeasureReport"]  # noqa: N815 (FHIR's own name)
    id: str
    status: Literal["complete"]
    type: Literal["summary"]


class ReportVerificationAnswer(Answer):
    ok: bool
    position: Position
    events_checked: int = Field(ge=0)
    problems: list[BrokenLinkAnswer]


# -- policy ------------------------------------------------------------------------------------------------------


class PolicyAnswer(Answer):
    version: PolicyVersion
    current: bool = Field(description="whether new episodes open under it")
    registered_at: InstantText
    rules: dict[str, Any] = Field(description="the policy's TOML as JSON (its sections as domain/policy.toml has them)")
    text: str = Field(description="the policy's TOML, as registered")


class CurrentPolicyAnswer(PolicyAnswer):
    versions: list[PolicyVersion] = Field(description="every registered version")


# -- simulations -------------------------------------------------------------------------------------------------


class SideBySide(Answer):
    recorded: float
    simulated: float


class MaybeSideBySide(Answer):
    recorded: float | None
    simulated: float | None


class CohortAnswer(Answer):
    episodes: int
    episodes_unchanged: int
    placements_changed: int
    placement_changes: dict[str, int] = Field(description='by change, "residential -> intensive_outpatient"')
    step_ups: SideBySide
    step_ups_added: int
    step_ups_removed: int
    days_at_level: dict[str, SideBySide] = Field(description="care days by level")
    tests_ordered: SideBySide
    discharges: dict[str, SideBySide] = Field(description="by discharge reason")
    results_dropped: int
    tests_without_result: int
    inputs_refused: dict[str, int] = Field(description="outside inputs the proposed policy refused, by kind")
    draws_new: int


class SimulatedMeasures(Answer):
    period: DayPeriod
    groups: list[PairedGroup]


class PairedGroup(Answer):
    group: str
    measures: dict[str, MaybeSideBySide] = Field(description="by measure name")


class SimulatedStepUp(Answer):
    model_config = ConfigDict(populate_by_name=True)

    at: InstantText
    from_level: LevelOfCare = Field(alias="from")
    to_level: LevelOfCare = Field(alias="to")
    cause: str


class Placements(Answer):
    recorded: LevelOfCare | None
    simulated: LevelOfCare | None


class DaysAtLevel(Answer):
    recorded: dict[str, float]
    simulated: dict[str, float]


class TestsOrdered(Answer):
    __test__ = False  # not a pytest class
    recorded: int
    simulated: int


class Discharges(Answer):
    recorded: str | None
    simulated: str | None


class SimulatedEpisode(Answer):
    episode_id: Id
    placement: Placements
    step_ups_added: list[SimulatedStepUp]
    step_ups_removed: list[SimulatedStepUp]
    days_at_level: DaysAtLevel
    tests_ordered: TestsOrdered
    discharge: Discharges
    results_dropped: int
    tests_without_result: int
    inputs_refused: dict[str, int]


class SimulationAnswer(Answer):
    """The cohort as recorded beside as simulated; `episodes` only when asked."""

    log_position: Position
    policy_version: PolicyVersion
    day_seconds: float
    cohort: CohortAnswer
    measures: SimulatedMeasures | None = Field(description="none for a cohort without events")
    episodes: list[SimulatedEpisode] | None = Field(None, description="each episode that differs (when asked)")


# -- feed --------------------------------------------------------------------------------------------------------


class CloudEventAnswer(Answer):
    """One event of the log in CloudEvents 1.0 structured JSON form."""

    id: str = Field(description="the event id")
    source: Literal["continuum"]
    type: CloudEventType = Field(description="`org.continuum.` and the event type")
    specversion: Literal["1.0"]
    subject: str = Field(description="the episode id")
    time: InstantText = Field(description="when it occurred")
    datacontenttype: Literal["application/json"]
    position: int = Field(ge=1, description="its place in the whole log")
    data: dict[str, Any] = Field(description="the event's payload as the caller may see it (by event type)")


class FeedPageAnswer(Answer):
    events: list[CloudEventAnswer]
    next_after: Position = Field(description="the `after` of the next page")


# -- webhooks ----------------------------------------------------------------------------------------------------


class SubscriptionAnswer(Answer):
    subscription_id: str
    url: str
    event_types: list[EventType]
    role: Role = Field(description="whose feed view the deliveries carry")
    subject: str | None
    after_position: Position = Field(description="deliveries are of events after this position")
    created_by: str
    created_at: InstantText
    disabled_at: InstantText | None


class CreatedSubscriptionAnswer(SubscriptionAnswer):
    secret: str = Field(pattern="^whsec_", description="the signing secret: shown in this answer only")


class SubscriptionsAnswer(Answer):
    webhooks: list[SubscriptionAnswer]


class DeliveryAnswer(Answer):
    delivery_id: str
    subscription_id: str
    event_id: str
    position: Position
    event_type: EventType
    status: DeliveryStatus
    attempts: int = Field(ge=0)
    last_status: int | None = Field(description="the receiver's last HTTP status")
    last_error: str | None = Field(description="the last error's code (never a body)")
    created_at: InstantText
    attempted_at: InstantText | None
    delivered_at: InstantText | None
    replays: int = Field(ge=0)


class DeliveriesAnswer(Answer):
    subscription_id: str
    deliveries: list[DeliveryAnswer]


# -- codec and health --------------------------------------------------------------------------------------------


class ExternalPayload(Answer):
    sizeBytes: str = Field("0", pattern="^[0-9]+$", description="an int64 as protobuf's JSON spells it")  # noqa: N815


class PayloadJson(Answer):
    """A Temporal payload in protobuf's JSON form (bytes base64-encoded; an empty field is left out)."""

    metadata: dict[str, str] = Field(default_factory=dict, description="each value base64")
    data: str = Field("", description="base64")
    externalPayloads: list[ExternalPayload] = Field(default_factory=list)  # noqa: N815 (protobuf's JSON name)


class PayloadsJson(Answer):
    payloads: list[PayloadJson] = Field(default_factory=list, description="left out when there are none")


class Health(Answer):
    status: Literal["ok", "degraded"]
    temporal: Literal["ok", "unavailable"]
    postgres: Literal["ok", "unavailable"]


SimulatedMeasures.model_rebuild()
