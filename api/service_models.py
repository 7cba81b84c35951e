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
EpisodeRef = Annotated[Id, Field(description="the episode's id")]
FacilityRef = Annotated[Id, Field(description="the facility's id")]
ClientRef = Annotated[str, Field(description="the pseudonymous client id")]
LevelNow = Annotated[LevelOfCare | None, Field(description="the episode's level now (none: not yet assessed)")]
Recorded = Annotated[float, Field(description="as recorded")]
Simulated = Annotated[float, Field(description="as the proposed policy would have had it")]


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- census ------------------------------------------------------------------------------------------------------


class CensusRow(Answer):
    level: LevelOfCare | Census = Field(description="the level, or `none` for an episode not yet assessed")
    status: EpisodeStatus = Field(description="intake, active or on hold")
    episodes: int = Field(ge=0, description="open episodes at this level and status")


class LevelOccupancy(Answer):
    level: LevelOfCare = Field(description="a level the facility offers or has episodes at")
    offered: bool = Field(description="whether the facility offers the level")
    occupancy: int = Field(ge=0, description="open episodes at the level")
    capacity: int | None = Field(description="beds or slots (none: no limit)")
    free: int | None = Field(description="capacity less occupancy, at least 0 (none: no limit)")
    waitlisted: int = Field(ge=0, description="of its episodes, those waiting there for another level")


class FacilityCensus(Answer):
    facility: FacilityRef
    name: str = Field(description="the facility's name (its id, for one no longer configured)")
    open: int = Field(ge=0, description="open episodes at the facility")
    unassessed: int = Field(ge=0, description="of them, those without a level yet")
    levels: list[LevelOccupancy] = Field(description="level by level, from the least intensive")


class WaitlistRow(Answer):
    episode_id: EpisodeRef
    facility: FacilityRef
    wanted_level: LevelOfCare | None = Field(description="the level the facility could not take the client at")
    interim_level: LevelOfCare | None = Field(description="the level the client is placed at meanwhile")
    since: InstantText | None = Field(description="when the client entered the waitlist")


class CensusAnswer(Answer):
    """Open episodes by level and status, by facility against capacity, and the waitlist."""

    by_level_and_status: list[CensusRow] = Field(description="summed over the facilities")
    total: int = Field(ge=0, description="open episodes")
    closed: int = Field(ge=0, description="episodes that have ended")
    by_facility: list[FacilityCensus] = Field(description="each facility in the caller's scope")
    waitlist: list[WaitlistRow] = Field(description="open episodes waiting for a level, by facility and since")


# -- alerts ------------------------------------------------------------------------------------------------------


class AlertedEpisode(Answer):
    episode_id: EpisodeRef
    client_id: ClientRef
    level: LevelNow
    facility: FacilityRef
    due_at: Instant | None = Field(description="the due date missed (an authorization's end, for its alerts)")


class FlaggedEpisode(AlertedEpisode):
    """An alert about the episode itself (a review, a plan, a level without authorization)."""

    flags: list[str] = Field(description="every open flag of the episode, `family` or `family:subject`")


class TestAlert(AlertedEpisode):
    __test__ = False  # not a pytest class
    test_id: Id = Field(description="the test whose result is missing")


class ReferralAlert(AlertedEpisode):
    referral_id: Id = Field(description="the referral the partner has not answered")


class AuthorizationAlert(AlertedEpisode):
    authorization_id: Id = Field(description="the payer authorization")


class RecordedAlert(Answer):
    episode_id: EpisodeRef
    client_id: ClientRef
    level: LevelNow
    facility: FacilityRef
    recorded_at: Instant = Field(description="when the event was recorded")


class PositiveAlert(RecordedAlert):
    test_id: Id = Field(description="the test")
    result: TestResult = Field(description="the result as reported (one the policy counts as positive)")
    substances: list[str] | None = Field(description="what the result names")
    interpretation: str | None = Field(description="how the policy read it, in words")


class StepUpAlert(RecordedAlert):
    from_level: LevelOfCare = Field(description="the level the client left")
    to_level: LevelOfCare = Field(description="the more intensive level the client moved to")
    cause: str = Field(description="what moved the client (a positive test, a review, a follow-up, ...)")


class AlertsAnswer(Answer):
    """What is overdue now, and the positives and step-ups since `since`, one row per flag or event."""

    since: InstantText = Field(description="positives and step-ups are those recorded from here")
    overdue_reviews: list[FlaggedEpisode] = Field(description="episodes whose completion review is overdue")
    missing_results: list[TestAlert] = Field(description="tests whose result is overdue")
    positives: list[PositiveAlert] = Field(description="positive results recorded since `since`")
    step_ups: list[StepUpAlert] = Field(description="step-ups recorded since `since`")
    unanswered_referrals: list[ReferralAlert] = Field(description="referrals a partner has not answered in time")
    overdue_plans: list[FlaggedEpisode] = Field(description="episodes whose treatment plan (or its review) is overdue")
    stays_beyond_authorization: list[AuthorizationAlert] = Field(description="stays past their authorization's end")
    unauthorized_levels: list[FlaggedEpisode] = Field(
        description="levels without a current authorization, or another level authorized"
    )
    overdue_concurrent_reviews: list[AuthorizationAlert] = Field(
        description="authorizations whose concurrent review is overdue"
    )


# -- audit -------------------------------------------------------------------------------------------------------


class BrokenLinkAnswer(Answer):
    position: int = Field(description="the log position where the record does not match its chain")
    stream_id: str = Field(description="the stream (episode) of the event there")
    problem: str = Field(description="what does not match, in words")
    expected_hash: str | None = Field(None, description="the hash the chain gives, where a hash differs")
    found_hash: str | None = Field(None, description="the hash recorded there")


class VerificationAnswer(Answer):
    scope: str = Field(description="what was checked: the whole log, or one episode's stream")
    ok: bool = Field(description="whether the chain (and each anchor) holds")
    events_checked: int = Field(ge=0, description="events whose hash was recomputed")
    anchors_checked: int = Field(ge=0, description="anchors given (0 or 1)")
    first_broken: BrokenLinkAnswer | None = Field(description="the first problem, if any")
    problems: list[BrokenLinkAnswer] = Field(description="every place the record does not match")


class AnchorAnswer(Answer):
    """The log's head: keep it outside this system, and pass it to `/audit/verify` later."""

    position: Position
    hash: Hash
    taken_at: InstantText | None = Field(description="when the head was read")


# -- keys --------------------------------------------------------------------------------------------------------


class KeyAnswer(Answer):
    key_id: str = Field(pattern="^k_[0-9a-f]{12}$", description="the key's id (its secret names it)")
    name: str = Field(description="the key holder's name (an id, never a person's name)")
    role: Role = Field(description="what the key may do (README: Access control)")
    subject: str | None = Field(description="the lab or partner a lab or partner key speaks for")
    created_at: Instant = Field(description="when the key was made")
    revoked_at: Instant | None = Field(description="when it was revoked (none: it is live)")
    facilities: list[str] | None = Field(description="the facilities the key is scoped to (none: the whole operator)")


class CreatedKeyAnswer(KeyAnswer):
    secret: str = Field(description="the key's secret: shown in this answer only")


class KeysAnswer(Answer):
    keys: list[KeyAnswer] = Field(description="every key, live or revoked (never a secret)")


# -- measures ----------------------------------------------------------------------------------------------------


class DayPeriod(Answer):
    model_config = ConfigDict(populate_by_name=True)

    start: InstantText = Field(alias="from", description="the period's first instant")
    end: InstantText = Field(alias="to", description="its end")


class MeasureDefinitionAnswer(Answer):
    title: str = Field(description="the measure in words")
    unit: Unit = Field(description="what `value` counts in")


class MeasureValue(Answer):
    numerator: float = Field(description="what is counted (for a mean: the days summed)")
    denominator: float = Field(description="out of what (for a mean: how many)")
    value: float | None = Field(description="none where the denominator is 0")


class MeasureGroupAnswer(Answer):
    key: dict[str, str] = Field(description="the group's value of each grouping (none for the whole)")
    label: str = Field(description="the group in words (`all` for the whole)")
    measures: dict[str, MeasureValue] = Field(description="by measure name (see `definitions`)")


class MeasuresAnswer(Answer):
    """Outcome measures over a period, with the log position and hash they were computed at."""

    period: DayPeriod = Field(description="the period the measures cover")
    by: list[Grouping] = Field(description="the groupings asked for")
    log_position: Position = Field(description="the last event included")
    log_head_hash: Hash = Field(description="the chain hash at `log_position`: `/measures/verify` checks it")
    policy_versions: list[str] = Field(description="the policies the episodes read were decided under")
    day_seconds: float = Field(gt=0, description="the care day the durations count in")
    observed_until: InstantText | None = Field(description="the last event's instant (none: no event)")
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
    ok: bool = Field(description="whether the chain verifies and holds the report's hash at its position")
    position: Position
    events_checked: int = Field(ge=0, description="events whose hash was recomputed")
    problems: list[BrokenLinkAnswer] = Field(description="every place the record does not match")


# -- policy ------------------------------------------------------------------------------------------------------


class PolicyAnswer(Answer):
    version: PolicyVersion = Field(description="the `policy_version` decision events name")
    current: bool = Field(description="whether new episodes open under it")
    registered_at: InstantText = Field(description="when the API first kept its text")
    rules: dict[str, Any] = Field(description="the policy's TOML as JSON (its sections as domain/policy.toml has them)")
    text: str = Field(description="the policy's TOML, as registered")


class CurrentPolicyAnswer(PolicyAnswer):
    versions: list[PolicyVersion] = Field(description="every registered version")


# -- simulations -------------------------------------------------------------------------------------------------


class SideBySide(Answer):
    recorded: Recorded
    simulated: Simulated


class MaybeSideBySide(Answer):
    recorded: Recorded | None
    simulated: Simulated | None


class CohortAnswer(Answer):
    episodes: int = Field(description="episodes re-decided")
    episodes_unchanged: int = Field(description="of them, those the proposed policy records exactly as recorded")
    placements_changed: int = Field(description="episodes placed at another level")
    placement_changes: dict[str, int] = Field(description='by change, "residential -> intensive_outpatient"')
    step_ups: SideBySide = Field(description="step-ups, as recorded and as simulated")
    step_ups_added: int = Field(description="step-ups only the simulation has")
    step_ups_removed: int = Field(description="step-ups only the record has")
    days_at_level: dict[str, SideBySide] = Field(description="care days by level")
    tests_ordered: SideBySide = Field(description="drug tests ordered")
    discharges: dict[str, SideBySide] = Field(description="by discharge reason")
    results_dropped: int = Field(description="recorded results with no simulated test to go to (counted)")
    tests_without_result: int = Field(description="simulated tests the record has no result for (counted)")
    inputs_refused: dict[str, int] = Field(description="outside inputs the proposed policy refused, by kind")
    draws_new: int = Field(description="random draws the record did not hold (drawn anew)")


class SimulatedMeasures(Answer):
    period: DayPeriod = Field(description="the span the record covers")
    groups: list[PairedGroup] = Field(description="by level")


class PairedGroup(Answer):
    group: str = Field(description="the group's label")
    measures: dict[str, MaybeSideBySide] = Field(description="by measure name")


class SimulatedStepUp(Answer):
    model_config = ConfigDict(populate_by_name=True)

    at: InstantText = Field(description="when")
    from_level: LevelOfCare = Field(alias="from", description="the level left")
    to_level: LevelOfCare = Field(alias="to", description="the level moved to")
    cause: str = Field(description="what moved the client")


class Placements(Answer):
    recorded: LevelOfCare | None = Field(description="the level recommended, as recorded")
    simulated: LevelOfCare | None = Field(description="as the proposed policy recommends it")


class DaysAtLevel(Answer):
    recorded: dict[str, float] = Field(description="care days by level, as recorded")
    simulated: dict[str, float] = Field(description="as simulated")


class TestsOrdered(Answer):
    __test__ = False  # not a pytest class
    recorded: int = Field(description="tests ordered, as recorded")
    simulated: int = Field(description="as simulated")


class Discharges(Answer):
    recorded: str | None = Field(description="the discharge reason, as recorded (none: still open)")
    simulated: str | None = Field(description="as simulated")


class SimulatedEpisode(Answer):
    episode_id: EpisodeRef
    placement: Placements
    step_ups_added: list[SimulatedStepUp] = Field(description="step-ups only the simulation has")
    step_ups_removed: list[SimulatedStepUp] = Field(description="step-ups only the record has")
    days_at_level: DaysAtLevel
    tests_ordered: TestsOrdered
    discharge: Discharges
    results_dropped: int = Field(description="recorded results with no simulated test to go to")
    tests_without_result: int = Field(description="simulated tests the record has no result for")
    inputs_refused: dict[str, int] = Field(description="outside inputs the proposed policy refused, by kind")


class SimulationAnswer(Answer):
    """The cohort as recorded beside as simulated; `episodes` only when asked."""

    log_position: Position = Field(description="the last event the cohort was read to")
    policy_version: PolicyVersion = Field(description="the proposed policy's version")
    day_seconds: float = Field(gt=0, description="the care day the days count in")
    cohort: CohortAnswer = Field(description="the cohort's totals")
    measures: SimulatedMeasures | None = Field(description="none for a cohort without events")
    episodes: list[SimulatedEpisode] | None = Field(None, description="each episode that differs (when asked)")


# -- feed --------------------------------------------------------------------------------------------------------


class CloudEventAnswer(Answer):
    """One event of the log in CloudEvents 1.0 structured JSON form."""

    id: str = Field(description="the event id")
    source: Literal["continuum"] = Field(description="this system")
    type: CloudEventType = Field(description="`org.continuum.` and the event type")
    specversion: Literal["1.0"] = Field(description="CloudEvents 1.0")
    subject: str = Field(description="the episode id")
    time: InstantText = Field(description="when it occurred")
    datacontenttype: Literal["application/json"] = Field(description="`data` is JSON")
    position: int = Field(ge=1, description="its place in the whole log")
    data: dict[str, Any] = Field(description="the event's payload as the caller may see it (by event type)")


class FeedPageAnswer(Answer):
    events: list[CloudEventAnswer] = Field(description="in position order")
    next_after: Position = Field(description="the `after` of the next page")


# -- webhooks ----------------------------------------------------------------------------------------------------


class SubscriptionAnswer(Answer):
    subscription_id: str = Field(description="the subscription's id")
    url: str = Field(description="where deliveries are POSTed")
    event_types: list[EventType] = Field(description="the event types delivered")
    role: Role = Field(description="whose feed view the deliveries carry")
    subject: str | None = Field(description="the lab or partner a lab or partner subscription is")
    after_position: Position = Field(description="deliveries are of events after this position")
    created_by: str = Field(description="the admin key that made it (role:name)")
    created_at: InstantText = Field(description="when it was made")
    disabled_at: InstantText | None = Field(description="when it was disabled (none: it delivers)")


class CreatedSubscriptionAnswer(SubscriptionAnswer):
    secret: str = Field(pattern="^whsec_", description="the signing secret: shown in this answer only")


class SubscriptionsAnswer(Answer):
    webhooks: list[SubscriptionAnswer] = Field(description="every subscription (never a secret)")


class DeliveryAnswer(Answer):
    delivery_id: str = Field(description="the delivery's id (the `webhook-id` it is sent with)")
    subscription_id: str = Field(description="its subscription")
    event_id: str = Field(description="the event delivered")
    position: Position = Field(description="the event's place in the log")
    event_type: EventType = Field(description="the event's type")
    status: DeliveryStatus = Field(description="pending, delivered, failed (replayable) or withheld")
    attempts: int = Field(ge=0, description="attempts so far")
    last_status: int | None = Field(description="the receiver's last HTTP status")
    last_error: str | None = Field(description="the last error's code (never a body)")
    created_at: InstantText = Field(description="when the event was queued for the subscription")
    attempted_at: InstantText | None = Field(description="the last attempt")
    delivered_at: InstantText | None = Field(description="when the receiver answered 2xx")
    replays: int = Field(ge=0, description="how often it was replayed")


class DeliveriesAnswer(Answer):
    subscription_id: str = Field(description="the subscription")
    deliveries: list[DeliveryAnswer] = Field(description="in event order")


# -- codec and health --------------------------------------------------------------------------------------------


class ExternalPayload(Answer):
    sizeBytes: str = Field("0", pattern="^[0-9]+$", description="an int64 as protobuf's JSON spells it")  # noqa: N815


class PayloadJson(Answer):
    """A Temporal payload in protobuf's JSON form (bytes base64-encoded; an empty field is left out)."""

    metadata: dict[str, str] = Field(default_factory=dict, description="each value base64")
    data: str = Field("", description="base64")
    externalPayloads: list[ExternalPayload] = Field(default_factory=list, description="stored outside the history")  # noqa: N815 (protobuf's JSON name)


class PayloadsJson(Answer):
    payloads: list[PayloadJson] = Field(default_factory=list, description="left out when there are none")


class Health(Answer):
    status: Literal["ok", "degraded"] = Field(description="`ok` when both answer")
    temporal: Literal["ok", "unavailable"] = Field(description="whether Temporal answers")
    postgres: Literal["ok", "unavailable"] = Field(description="whether PostgreSQL answers")


SimulatedMeasures.model_rebuild()
