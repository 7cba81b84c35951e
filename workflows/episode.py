"""EpisodeWorkflow: one client's episode of care, from intake to closure.

Commands arrive as Temporal updates with validators, each named by its wire name in the catalogue
(`domain.commands.COMMANDS`) and all taking one path: a command the domain refuses is rejected before it
reaches history, and nothing is recorded. An accepted command is decided by the domain, its events are
appended to the event store by an idempotent activity (event ids minted here, deterministically), and only
then folded into the workflow's state. The care clock (reviews, escalations, the end of aftercare) is the
domain's `next_due`; the workflow just waits for it. A run returns once the episode closes; what a closed
episode still accepts (a consent's revocation) reaches it through a new run that folds its state from the log
(`EpisodeInput.take_up_closed`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from continuum.activities.aftercare import FollowUpToRequest, ReferralToSend, Sent
    from continuum.activities.eventlog import (
        UNRECORDABLE,
        EventToRecord,
        RecalledEvent,
        RecordEventsInput,
        RecordEventsResult,
    )
    from continuum.activities.lab import LabOrder, LabOrderSent
    from continuum.domain.clock import Due, next_due
    from continuum.domain.codec import EventEnvelope, decode, encode, from_envelope, to_envelope
    from continuum.domain.commands import (
        AUTHORIZATION_COMMANDS,
        COMMANDS,
        Command,
        DrawTestSchedule,
        FlagLabNotNotified,
        FlagReferralNotSent,
        OpenEpisode,
        OrderScheduledTest,
        OrderTest,
        OverridePlacement,
        RecordAssessment,
        TransferEpisode,
    )
    from continuum.domain.decisions import admit, decide
    from continuum.domain.disclosure import disclosed_values
    from continuum.domain.episode import Episode, EpisodeStatus
    from continuum.domain.errors import CommandInvalid, CommandRejected, DomainError
    from continuum.domain.events import DomainEvent, FollowUpRequested, ReferralIssued, TestOrdered
    from continuum.domain.fold import fold
    from continuum.domain.ids import staff_id
    from continuum.domain.policy import Policy, load_policy
    from continuum.domain.retention import retire
    from continuum.domain.testing import draw_schedule
    from continuum.workflows.search_attributes import EPISODE_LEVEL, EPISODE_STATUS

RECORD_TIMEOUT = timedelta(seconds=30)  # each attempt to append to the event store
SEND_TIMEOUT = timedelta(seconds=30)  # each attempt to tell the lab, a partner or the outreach service
FINAL_RECORD_ERRORS = ("ConcurrencyError", "EventIdConflict", "CommandRejected")
RECORD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=list(FINAL_RECORD_ERRORS),
)
# Since PATCH_LOCAL_RECORDING, recording is a local activity: no round trip through the server's task queue and
# less history (README, benchmark 10). The workflow task waits on it, so its attempts are short and few (about
# 16 s of backoff in all; counted: a schedule-to-close of 20 s let attempts go on for minutes, with the SDK
# heartbeating the task); an append still failing then (PostgreSQL away for longer) is handed to the regular
# activity, retried for as long as it takes with the same request, so the command is never lost.
LOCAL_RECORD_ATTEMPT = timedelta(seconds=10)
LOCAL_RECORD_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=8,
    non_retryable_error_types=list(FINAL_RECORD_ERRORS),
)
LAB_ORDER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=8
)
PATCH_DRUG_TESTING = "drug-testing"  # episodes started before random testing existed replay without it
PATCH_AFTERCARE = "aftercare-referrals"  # episodes started before referrals and follow-ups replay without them
PATCH_PLANS = "treatment-plans"  # episodes started before treatment-plan deadlines replay without their clock
PATCH_AUTHORIZATIONS = "authorizations"  # likewise before payer authorizations and their concurrent reviews
# Episodes started before bounded replay: no working-state retirement, no history bound, no clock catch-up,
# holds that stop the stay clock alone.
PATCH_BOUNDED = "bounded-replay"
# Episodes started before facilities replay without them: no facility on the open, no waitlist, no transfer.
PATCH_FACILITIES = "facilities"
# Episodes started before local recording record through the regular activity, with event ids from the workflow's
# random stream; since, a local activity records events whose ids derive from the command (EVENT_IDS), and the
# log answers a repeat with what it holds (see `_record`).
PATCH_LOCAL_RECORDING = "local-recording"
# Episodes that continue as new from here on continue as CareEpisode (below), where every change above is in.
PATCH_CARE_EPISODE = "care-episode-type"
EVENT_IDS = uuid.UUID("5f0c2a6e-3d1b-4c8e-9a27-6b1f0d4e8c35")  # the uuid5 namespace of event ids: never change it
OUTBOUND_RETRY = LAB_ORDER_RETRY
# A repeated command id is answered with the first outcome: the newest KEPT_RESULTS with their events, the
# KEPT_IDS before them with none. Callers' retries beyond that are the API's Idempotency-Key table's job
# (kept in PostgreSQL), so the workflow's memory of ids stays bounded however long the episode runs.
KEPT_RESULTS = 32
KEPT_IDS = 128
# A run continues as new once its history reaches this many events (or when Temporal suggests it, at
# tens of thousands): a worker that lost its cache replays at most this much per episode, which keeps the
# replay after a restart well under a second per episode (see README, "bench replay").
HISTORY_EVENTS_BOUND = 200
FIRST_HISTORY_EVENTS_BOUND = 200  # for runs whose input names no bound: never change it
CLOCK_ACTOR = "clock"
CLOCK_RETRY = timedelta(seconds=1)
CLOCK_PAD = timedelta(milliseconds=50)
CATCH_UP_LIMIT = 16  # clock commands recorded before one command at most (more wait for the run loop)
OUTBOUND = (TestOrdered, ReferralIssued, FollowUpRequested)  # once on record, the outside world is told


def workflow_id(episode_id: str) -> str:
    return f"episode-{episode_id}"


@dataclass
class CommandMeta:
    """Who sends a command, and the id that makes a repeat of it return the first outcome."""

    command_id: str
    actor: str
    correlation_id: str | None = None


@dataclass
class RecordedEvent:
    type: str
    data: dict[str, Any]


@dataclass
class CommandResult:
    """What a command recorded. `state` is empty (it once held the whole state, which made every update's
    result grow with the episode): the state is a query, and the projection for the API."""

    command_id: str
    events: list[RecordedEvent]
    state: dict[str, Any] = field(default_factory=dict)
    duplicate: bool = False


class KeptResults:
    """The newest command results, kept to answer a repeated command id with its first outcome: each as
    compact JSON, oldest first. A repeat is rare, and a cached episode's memory is not: as objects, the
    results were the largest part of what a workflow held (40-60 KiB of its 70-150, `bench memory`)."""

    def __init__(self, results: Mapping[str, CommandResult]) -> None:
        self._packed = {command_id: _packed(result) for command_id, result in results.items()}

    def __contains__(self, command_id: str) -> bool:
        return command_id in self._packed

    def __len__(self) -> int:
        return len(self._packed)

    def __iter__(self) -> Iterator[str]:
        return iter(self._packed)

    def get(self, command_id: str) -> CommandResult | None:
        packed = self._packed.get(command_id)
        return None if packed is None else _unpacked(command_id, packed)

    def add(self, result: CommandResult) -> None:
        self._packed[result.command_id] = _packed(result)

    def pop_oldest(self) -> str:
        oldest = next(iter(self._packed))
        del self._packed[oldest]
        return oldest

    def as_dict(self) -> dict[str, CommandResult]:
        return {command_id: _unpacked(command_id, packed) for command_id, packed in self._packed.items()}


def _packed(result: CommandResult) -> bytes:
    events = [[event.type, event.data] for event in result.events]
    return json.dumps([events, result.duplicate], separators=(",", ":")).encode()


def _unpacked(command_id: str, packed: bytes) -> CommandResult:
    events, duplicate = json.loads(packed)
    return CommandResult(command_id, [RecordedEvent(kind, data) for kind, data in events], duplicate=duplicate)


# One copy of each policy and directory text however many episodes carry it (each input decodes its own).
_TEXTS: dict[str, str] = {}


def _shared(text: str) -> str:
    return _TEXTS.setdefault(text, text)


@dataclass
class EpisodeInput:
    episode_id: str
    policy_text: str
    day_seconds: float = 86400.0  # the length of a care-clock day; demos compress it
    continue_as_new_after: int | None = None  # commands per run before continuing as new (None: when suggested)
    lab_id: str | None = None  # the lab this program's test orders go to
    directory_text: str | None = None  # the program's resource directory (None: the default one)
    state: dict[str, Any] | None = None  # carried across continue-as-new
    # The episode's HISTORY_EVENTS_BOUND, set when it opens and carried across continue-as-new, so that a new
    # constant never changes the command sequence of an episode under way (None: FIRST_HISTORY_EVENTS_BOUND).
    history_events_bound: int | None = None
    results: dict[str, CommandResult] = field(default_factory=dict)
    earlier_command_ids: list[str] = field(default_factory=list)
    # A run that takes up a closed episode (whose last run completed) for what a closed episode still accepts
    # (`domain.commands.AFTER_CLOSING`): its state is folded from the log first, then it completes again.
    take_up_closed: bool = False


def _without_state(result: CommandResult) -> CommandResult:
    return result if not result.state else dataclasses.replace(result, state={})


def _result(command_id: str, events: list[DomainEvent]) -> CommandResult:
    return CommandResult(command_id, [RecordedEvent(e.type, e.data) for e in map(to_envelope, events)])


def _by_command(recalled: list[RecalledEvent]) -> Iterator[tuple[str | None, list[DomainEvent]]]:
    """Recalled events as the runs of one command each, in the log's order."""
    run: list[DomainEvent] = []
    causation: str | None = None
    for event in recalled:
        if run and event.command_id != causation:
            yield causation, run
            run = []
        causation = event.command_id
        run.append(from_envelope(EventEnvelope(event.type, event.schema_version, event.data)))
    if run:
        yield causation, run


def _failure(error: ActivityError | ApplicationError) -> ApplicationError | None:
    """The activity's own failure: the cause of an ActivityError, or the error itself (a local activity's
    failure, once its attempts ran out, arrives unwrapped)."""
    cause = error.cause if isinstance(error, ActivityError) else error
    return cause if isinstance(cause, ApplicationError) else None


def _final(error: ActivityError | ApplicationError) -> bool:
    """What no retry fixes: a conflict, a refusal, an unrecordable value (by type: attempts that ran out on a
    transient error are final too, in their own way)."""
    failure = _failure(error)
    return failure is not None and (failure.type in FINAL_RECORD_ERRORS or failure.type == UNRECORDABLE)


def _unrecordable(error: ActivityError | ApplicationError) -> bool:
    failure = _failure(error)
    return failure is not None and failure.type == UNRECORDABLE


def _rejected(error: DomainError) -> ApplicationError:
    kind = "CommandInvalid" if isinstance(error, CommandInvalid) else "CommandRejected"  # a 422, not a 409
    return ApplicationError(str(error), type=kind, non_retryable=True)


def _arrived(name: str, args: Sequence[RawValue]) -> tuple[CommandMeta, Command]:
    """The meta and command an update carries, decoded as the type its name has in the catalogue."""
    command_type = COMMANDS.get(name)
    if command_type is None or len(args) != 2:
        raise ApplicationError(f"no command is sent to an episode as {name!r}", type="CommandRejected")
    converter = workflow.payload_converter()
    return converter.from_payload(args[0].payload, CommandMeta), converter.from_payload(args[1].payload, command_type)


# Not sandboxed: the sandbox's per-activation import and builtins guards cost 2.5x on replay (0.65 against
# 0.26 ms per history event, measured on tests/histories/episode_long.json), which is what a restarted
# worker pays for every episode. Determinism is held by review, by the domain being pure (it never reads a
# clock or a random source: both come in as arguments), and by the recorded-history replay tests.
@workflow.defn(sandboxed=False)
class EpisodeWorkflow:
    @workflow.init
    def __init__(self, input: EpisodeInput) -> None:
        self._input = input
        self._policy: Policy = load_policy(input.policy_text, input.directory_text)
        self._policy_before_aftercare = dataclasses.replace(self._policy, referrals=None, follow_up=None)
        self._policies: dict[tuple[bool, bool], Policy] = {}  # by (aftercare, bounded replay): see _known_policy
        self._aftercare: bool | None = None  # whether this history has the aftercare patch; known once checked
        self._day = timedelta(seconds=input.day_seconds)
        self._state: Episode | None = decode(Episode, input.state) if input.state else None
        # Both in insertion order, oldest first, so the oldest leave first (see KEPT_RESULTS, KEPT_IDS).
        self._results = KeptResults({k: _without_state(r) for k, r in input.results.items()})
        self._earlier_ids: dict[str, None] = dict.fromkeys(input.earlier_command_ids)
        # The SDK keeps the input as long as the workflow is cached: it keeps it without what was decoded
        # above (`_carry` rebuilds those), and with one copy of the texts every episode carries.
        input.state, input.results, input.earlier_command_ids = None, {}, []
        input.policy_text = _shared(input.policy_text)
        input.directory_text = None if input.directory_text is None else _shared(input.directory_text)
        self._bounded: bool | None = None  # whether this history has PATCH_BOUNDED; known once checked
        self._drug_testing: bool | None = None  # likewise PATCH_DRUG_TESTING
        self._plans: bool | None = None  # likewise PATCH_PLANS
        self._authorizations: bool | None = None  # likewise PATCH_AUTHORIZATIONS
        self._local: bool | None = None  # likewise PATCH_LOCAL_RECORDING
        self._running = 0  # commands between acceptance and their answer (a validator counts itself in Temporal's)
        self._commands_this_run = 0
        self._changes = 0
        self._lock = asyncio.Lock()
        self._test_random = workflow.new_random("drug-tests")  # its own stream: other draws never shift it
        self._loading = input.take_up_closed  # commands wait until the closed episode is folded from the log

    @workflow.run
    async def run(self, input: EpisodeInput) -> dict[str, Any]:
        if input.take_up_closed:
            await self._load_closed()
        await workflow.wait_condition(lambda: self._state is not None)
        alarm: asyncio.Task[None] | None = None  # the care clock's timer, kept while its instant stays the same
        alarm_at: datetime | None = None
        while True:
            state = self._state
            assert state is not None
            if state.status is EpisodeStatus.CLOSED:
                break
            if self._should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self._patched(PATCH_CARE_EPISODE):
                    workflow.continue_as_new(self._carry(), workflow=CareEpisodeWorkflow.run)
                workflow.continue_as_new(self._carry())
            seen = self._changes
            due = self._next_due(state)
            if due is None or due.at <= workflow.now() or alarm_at != due.at:
                if alarm is not None and not alarm.done():
                    alarm.cancel()
                alarm = alarm_at = None
            if due is None:
                await workflow.wait_condition(self._changed_since(seen))
                continue
            delay = due.at - workflow.now()
            if delay > timedelta(0) and self._is_bounded():
                if alarm is None:
                    # Timers may fire a hair before the microsecond-precise instant; the pad keeps the
                    # rules from saying "not yet" to their own clock.
                    alarm, alarm_at = asyncio.create_task(workflow.sleep(delay + CLOCK_PAD)), due.at
                fired = alarm
                await workflow.wait_condition(self._changed_since(seen, fired))
                if fired.done():
                    alarm = alarm_at = None
                continue  # decide again from the state as it is now (at the instant, it is due)
            try:
                if delay > timedelta(0):
                    await workflow.wait_condition(self._changed_since(seen), timeout=delay + CLOCK_PAD)
                    continue  # something happened first: decide again from the new state
            except TimeoutError:
                pass
            meta, command = self._clock_command(state, due)
            try:
                await self._execute(meta, command)
            except ApplicationError as error:  # a command raced the clock (a result just in, a level just changed)
                workflow.logger.info(f"clock command {type(command).__name__} refused: {error.message}")
                await workflow.sleep(CLOCK_RETRY)
        if alarm is not None and not alarm.done():
            alarm.cancel()
        await workflow.wait_condition(workflow.all_handlers_finished)
        final: dict[str, Any] = encode(self._state)
        return final

    async def _load_closed(self) -> None:
        """Fold the closed episode's stream (the log is the record; the run that closed it kept no state)."""
        encoded = await workflow.execute_activity(
            "load_episode",
            self._input.episode_id,
            result_type=dict,
            start_to_close_timeout=RECORD_TIMEOUT,
            retry_policy=RECORD_RETRY,
        )
        if encoded is None:
            raise ApplicationError(f"no episode {self._input.episode_id} is on record", type="CommandRejected")
        state = decode(Episode, encoded)
        self._state = state
        self._loading = False
        workflow.upsert_search_attributes(
            [
                EPISODE_LEVEL.value_set(state.level.value if state.level else "none"),
                EPISODE_STATUS.value_set(state.status.value),
            ]
        )

    def _changed_since(self, seen: int, alarm: asyncio.Task[None] | None = None) -> Callable[[], bool]:
        """What the run loop waits for: a change of state since `seen`, or the care clock's alarm going off."""
        return lambda: self._changes != seen or (alarm is not None and alarm.done())

    def _next_due(self, state: Episode) -> Due | None:
        self._drug_testing = self._patched(PATCH_DRUG_TESTING)
        policy = self._current_policy()
        if self._plans is None and state.plan_due_at is not None:
            # Asked only once a plan is due (never in a history from before `[plans]`), so the marker lands where
            # the plan's clock first matters.
            self._plans = self._patched(PATCH_PLANS)
        plans = self._plans is True
        if state.authorizations:
            self._check_authorizations_patch()
        return next_due(
            state,
            policy,
            workflow.now(),
            self._day,
            drug_testing=self._drug_testing,
            plans=plans,
            authorizations=self._authorizations is True,
        )

    def _check_authorizations_patch(self) -> None:
        """Asked once an authorization matters (its first command, or one on record): the marker lands there, and
        never in a history from before authorizations."""
        if self._authorizations is None:
            self._authorizations = self._patched(PATCH_AUTHORIZATIONS)

    def _clock_command(self, state: Episode, due: Due) -> tuple[CommandMeta, Command]:
        """The command the clock issues for `due`, with its id (one per state version, so never twice)."""
        meta = CommandMeta(f"clock:{type(due.command).__name__}:v{state.version}", CLOCK_ACTOR)
        command: Command = due.command
        if isinstance(command, DrawTestSchedule) and command.draw is None and state.level is not None:
            draw = draw_schedule(self._test_random, state.level, workflow.now(), self._policy.drug_testing)
            command = DrawTestSchedule(draw)
        elif isinstance(command, OrderScheduledTest) and command.lab_id is None:
            command = dataclasses.replace(command, lab_id=self._input.lab_id)
        return meta, command

    # -- commands from other services: one path for all ---------------------------------------------

    @workflow.update(dynamic=True)
    async def command(self, name: str, args: Sequence[RawValue]) -> CommandResult:
        """Every command another service sends arrives here, as the update its catalogue name names
        (`domain.commands.COMMANDS`), with its meta and the command as the update's two arguments."""
        meta, command = _arrived(name, args)
        if self._loading:
            await workflow.wait_condition(lambda: not self._loading)
        return await self._execute(meta, command)

    @command.validator
    def _validate_command(self, name: str, args: Sequence[RawValue]) -> None:
        meta, command = _arrived(name, args)
        if isinstance(command, OpenEpisode) and command.episode_id != self._input.episode_id:
            raise ApplicationError(
                f"this workflow holds episode {self._input.episode_id}, not {command.episode_id}",
                type="CommandRejected",
            )
        self._validate(meta, command)

    @workflow.query(name="state")
    def state(self) -> dict[str, Any] | None:
        return encode(self._state) if self._state else None

    # -- the one path every command takes ---------------------------------------------------------

    def _validate(self, meta: CommandMeta, command: Command) -> None:
        """Refuse, before anything reaches history, a command the episode's state does not allow.

        Only a settled state can refuse: while another command is being recorded (its events may already be
        in the log and the projection) or while the clock has something due, the command is accepted here
        and decided by its handler once that is folded in, so a refusal never contradicts the record."""
        if self._seen(meta.command_id):
            return  # a repeat: answered with the first outcome
        try:
            staff_id(meta.actor)
            if not meta.command_id or len(meta.command_id) > 128:
                raise CommandRejected("a command id is 1-128 characters")
            admit(self._state, command, workflow.now())
            if self._unsettled():
                return
            decide(self._state, command, self._known_policy(), workflow.now(), self._day)
        except DomainError as error:
            raise _rejected(error) from None

    def _unsettled(self) -> bool:
        if self._loading:  # the closed episode's state is still being folded: its handler decides
            return True
        if self._bounded is False:  # the old rule, for histories that predate it (validators are not replayed)
            return False
        if self._lock.locked() or self._running:
            return True
        state = self._state
        if state is None or state.status is EpisodeStatus.CLOSED:
            return False
        testing = self._drug_testing is not False
        plans = self._plans is True
        authorizations = self._authorizations is True
        due = next_due(
            state,
            self._known_policy(),
            workflow.now(),
            self._day,
            drug_testing=testing,
            plans=plans,
            authorizations=authorizations,
        )
        return due is not None and due.at <= workflow.now()

    def _current_policy(self) -> Policy:
        """The policy as this history knows it: without referrals and follow-ups if it began before them, and
        with holds that stop only the stay clock if it began before bounded replay."""
        if self._aftercare is None:
            self._aftercare = self._patched(PATCH_AFTERCARE)
        self._is_bounded()
        return self._known_policy()

    def _known_policy(self) -> Policy:
        """Without checking the patches (a validator may not): a history not yet known to predate one is new."""
        key = (self._aftercare is not False, self._bounded is not False)
        policy = self._policies.get(key)
        if policy is None:
            policy = self._policy if key[0] else self._policy_before_aftercare
            policy = self._policies[key] = policy if key[1] else dataclasses.replace(policy, hold_pauses_clocks=False)
        return policy

    def _is_bounded(self) -> bool:
        if self._bounded is None:
            self._bounded = self._patched(PATCH_BOUNDED)
        return self._bounded

    def _patched(self, patch_id: str) -> bool:
        """Whether this history has the change `patch_id` (a new one does: the SDK records a marker)."""
        return workflow.patched(patch_id)

    def _seen(self, command_id: str) -> bool:
        return command_id in self._results or command_id in self._earlier_ids

    async def _execute(self, meta: CommandMeta, command: Command) -> CommandResult:
        if isinstance(command, (OrderTest, OrderScheduledTest)) and command.lab_id is None:
            command = dataclasses.replace(command, lab_id=self._input.lab_id)
        if isinstance(command, (OpenEpisode, RecordAssessment, OverridePlacement, TransferEpisode)):
            command = self._at_facility(command)
        self._running += 1
        try:
            result, recorded = await self._decide_and_record(meta, command)
            if isinstance(command, TransferEpisode) and any(e.type == "EpisodeTransferred" for e in result.events):
                self._take_up_program(command)
            for event in recorded:  # once on record: tell the lab, the partner, the outreach service
                if isinstance(event, TestOrdered):
                    await self._send_lab_order(event)
                elif isinstance(event, ReferralIssued):
                    await self._send_referral(event)
                elif isinstance(event, FollowUpRequested):
                    await self._request_follow_up(event)
            return result
        finally:
            self._running -= 1

    def _at_facility(self, command: OpenEpisode | RecordAssessment | OverridePlacement | TransferEpisode) -> Command:
        """The command as this history knows facilities: one from before them has no facility on its open and
        no levels a facility lacks (the patch marks where an episode first met them)."""
        if self._patched(PATCH_FACILITIES):
            return command
        if isinstance(command, OpenEpisode):
            assessment = dataclasses.replace(command.assessment, unavailable=()) if command.assessment else None
            return dataclasses.replace(command, facility_id=None, assessment=assessment)
        if isinstance(command, (RecordAssessment, OverridePlacement)):
            return dataclasses.replace(command, unavailable=())
        raise ApplicationError("this episode predates facilities; it cannot be transferred", type="CommandRejected")

    def _take_up_program(self, transfer: TransferEpisode) -> None:
        """From a recorded transfer on, the new facility's policy, resource directory and lab decide (and are
        carried across continue-as-new)."""
        changes: dict[str, Any] = {}
        if transfer.policy_text is not None:
            directory = None if transfer.directory_text is None else _shared(transfer.directory_text)
            changes.update(policy_text=_shared(transfer.policy_text), directory_text=directory)
        if transfer.lab_id is not None:
            changes.update(lab_id=transfer.lab_id)
        if not changes:
            return
        self._input = dataclasses.replace(self._input, **changes)
        self._policy = load_policy(self._input.policy_text, self._input.directory_text)
        self._policy_before_aftercare = dataclasses.replace(self._policy, referrals=None, follow_up=None)
        self._policies = {}

    async def _send_referral(self, issued: ReferralIssued) -> None:
        """POST a disclosed referral to its partner's endpoint, with exactly what the disclosure names."""
        referrals = self._policy.referrals
        resource = referrals.directory.get(issued.resource_id) if referrals else None
        if issued.disclosure is None or resource is None or resource.endpoint is None or self._state is None:
            return
        disclosed = disclosed_values(self._state, issued)
        try:
            await workflow.execute_activity(
                "send_referral",
                ReferralToSend(issued.referral_id, issued.resource_id, resource.endpoint, disclosed),
                result_type=Sent,
                start_to_close_timeout=SEND_TIMEOUT,
                retry_policy=OUTBOUND_RETRY,
            )
        except ActivityError:
            meta = CommandMeta(f"clock:referral-not-sent:{issued.referral_id}", CLOCK_ACTOR)
            await self._decide_and_record(meta, FlagReferralNotSent(issued.referral_id))

    async def _request_follow_up(self, requested: FollowUpRequested) -> None:
        follow_up = self._state.follow_up(requested.follow_up_id) if self._state else None
        if follow_up is None:
            return
        request = FollowUpToRequest(
            follow_up.follow_up_id, self._input.episode_id, follow_up.kind.value, follow_up.due_at
        )
        try:
            await workflow.execute_activity(
                "request_follow_up",
                request,
                result_type=Sent,
                start_to_close_timeout=SEND_TIMEOUT,
                retry_policy=OUTBOUND_RETRY,
            )
        except ActivityError:  # the request is on record and shows on the dashboard; the outcome is still awaited
            workflow.logger.warning("follow-up request not delivered", extra={"episode_id": self._input.episode_id})

    async def _send_lab_order(self, order: TestOrdered) -> None:
        lab_order = LabOrder(
            order.test_id,
            self._input.episode_id,
            order.reason.value,
            order.level.value,
            order.occurred_at,
            order.result_due_at,
        )
        try:
            await workflow.execute_activity(
                "send_lab_order",
                lab_order,
                result_type=LabOrderSent,
                start_to_close_timeout=SEND_TIMEOUT,
                retry_policy=LAB_ORDER_RETRY,
            )
        except ActivityError:
            meta = CommandMeta(f"clock:lab-not-notified:{order.test_id}", CLOCK_ACTOR)
            await self._decide_and_record(meta, FlagLabNotNotified(order.test_id))

    async def _decide_and_record(self, meta: CommandMeta, command: Command) -> tuple[CommandResult, list[DomainEvent]]:
        async with self._lock:  # one command at a time: each is decided on the state the last one left
            if self._seen(meta.command_id):
                kept = self._results.get(meta.command_id)
                return kept or CommandResult(meta.command_id, [], duplicate=True), []
            outbound: list[DomainEvent] = []
            if isinstance(command, AUTHORIZATION_COMMANDS):
                self._check_authorizations_patch()
            if meta.actor != CLOCK_ACTOR and self._is_bounded():
                outbound += await self._catch_up()
            recorded: list[DomainEvent] | None = None
            while recorded is None:  # each round that meets other commands' events in the log folds them first
                recorded = await self._decide_and_append(meta, command, outbound)
            events = recorded
            result = _result(meta.command_id, events)
            self._remember(result)
            self._commands_this_run += 1
            return result, outbound + [e for e in events if isinstance(e, OUTBOUND)]

    async def _decide_and_append(
        self, meta: CommandMeta, command: Command, outbound: list[DomainEvent]
    ) -> list[DomainEvent] | None:
        """The command decided on the state as it is and recorded: its events as the log holds them, or None when
        the log held other commands' events past the state (folded now, their outbound events added to
        `outbound`), so the command is decided again."""
        try:
            if meta.actor != CLOCK_ACTOR and self._is_bounded():
                admit(self._state, command, workflow.now())  # again: the state may have moved on
            events = decide(self._state, command, self._current_policy(), workflow.now(), self._day)
        except DomainError as error:  # the state moved on between validation and now
            raise _rejected(error) from None
        if not events:
            return events
        try:
            return await self._record(meta, events, outbound)
        except (ActivityError, ApplicationError) as error:
            if not _unrecordable(error):
                raise
            # A value no retry can store: nothing was recorded, the episode goes on, the caller is told.
            workflow.logger.warning("command unrecordable", extra={"episode_id": self._input.episode_id})
            raise ApplicationError(
                "the command's values cannot be recorded; nothing was recorded",
                type=UNRECORDABLE,
                non_retryable=True,
            ) from None

    async def _catch_up(self) -> list[DomainEvent]:
        """Record what the clock has due by now before another command is decided, so that command is judged
        on the state its sender sees (a review just requested, a follow-up just due). The lock is held."""
        outbound: list[DomainEvent] = []
        for _ in range(CATCH_UP_LIMIT):
            state = self._state
            if state is None or state.status is EpisodeStatus.CLOSED:
                break
            due = self._next_due(state)
            if due is None or due.at > workflow.now():
                break
            meta, command = self._clock_command(state, due)
            try:
                events = decide(state, command, self._current_policy(), workflow.now(), self._day)
            except DomainError:
                break  # the run loop retries it on its own
            if events:
                recorded = await self._record(meta, events, outbound)
                if recorded is None:
                    continue  # the log held other commands' events: what is due is judged again on them
                events = recorded
            self._remember(_result(meta.command_id, events))
            self._commands_this_run += 1
            outbound += [e for e in events if isinstance(e, OUTBOUND)]
        return outbound

    async def _record(
        self, meta: CommandMeta, events: list[DomainEvent], outbound: list[DomainEvent]
    ) -> list[DomainEvent] | None:
        """Append to the event store (idempotent by event id), then fold: the log leads, the state follows.

        Since PATCH_LOCAL_RECORDING a local activity appends, before its workflow task completes: a task the
        server then refuses (an update racing a continue-as-new) leaves its events in the log but not in the
        history, and the command comes again, in a later task or a new run, decided afresh (another instant,
        perhaps other events). Its event ids derive from the command id and the version it was decided at, so
        the log recognises the repeat and answers with what it holds past the state, as first recorded: that is
        folded, not the new decision. Returns the command's events as folded, or None when the log held other
        commands' events only (lost in the same way; folded, remembered, their outbound events added to
        `outbound`): the caller decides again on the state they made."""
        local = self._local_recording()
        version = self._state.version if self._state else 0
        request = RecordEventsInput(
            stream_id=self._input.episode_id,
            expected_version=version,
            events=[
                EventToRecord(
                    self._event_id(meta, version, index) if local else str(workflow.uuid4()),
                    env.type,
                    env.schema_version,
                    env.data,
                    event.occurred_at,
                )
                for index, (event, env) in enumerate((e, to_envelope(e)) for e in events)
            ],
            actor=meta.actor,
            causation_id=meta.command_id,
            correlation_id=meta.correlation_id,
            recall=local,
        )
        if not local:  # a regular activity: the history has the append's outcome before anything else happens
            await workflow.execute_activity(
                "record_events",
                request,
                result_type=RecordEventsResult,
                start_to_close_timeout=RECORD_TIMEOUT,
                retry_policy=RECORD_RETRY,
            )
            self._fold(events)
            return events
        result = await self._append_locally(request)
        if not result.recalled:
            self._fold(events)
            return events
        return self._fold_recalled(meta.command_id, result.recalled, outbound)

    def _local_recording(self) -> bool:
        if self._local is None:
            self._local = self._patched(PATCH_LOCAL_RECORDING)
        return self._local

    def _event_id(self, meta: CommandMeta, version: int, index: int) -> str:
        """The same for the same command decided at the same version, in any task or run of the episode."""
        return str(uuid.uuid5(EVENT_IDS, f"{self._input.episode_id}/{meta.command_id}/{version}/{index}"))

    async def _append_locally(self, request: RecordEventsInput) -> RecordEventsResult:
        """The local activity; past its attempts (the store still unavailable) the regular activity, which retries
        the same request until it is recorded: the workflow task is not held open for as long as that takes."""
        try:
            result: RecordEventsResult = await workflow.execute_local_activity(
                "record_events",
                request,
                result_type=RecordEventsResult,
                start_to_close_timeout=LOCAL_RECORD_ATTEMPT,
                retry_policy=LOCAL_RECORD_RETRY,
            )
            return result
        except (ActivityError, ApplicationError) as error:  # a local activity's failure may come unwrapped
            if _final(error):
                raise
            workflow.logger.warning("recording handed to the regular activity", extra={"episode_id": request.stream_id})
            result = await workflow.execute_activity(
                "record_events",
                request,
                result_type=RecordEventsResult,
                start_to_close_timeout=RECORD_TIMEOUT,
                retry_policy=RECORD_RETRY,
            )
            return result

    def _fold_recalled(
        self, command_id: str, recalled: list[RecalledEvent], outbound: list[DomainEvent]
    ) -> list[DomainEvent] | None:
        """Fold what the log held past the state, command by command, in the log's order; each other command is
        remembered with its events (a repeat of it is answered with them) and counted in the run."""
        mine: list[DomainEvent] | None = None
        for causation, events in _by_command(recalled):
            self._fold(events)
            if causation == command_id:
                mine = events
                continue
            if causation is not None and not self._seen(causation):
                self._remember(_result(causation, events))
            self._commands_this_run += 1
            outbound += [e for e in events if isinstance(e, OUTBOUND)]
        workflow.logger.info(
            "episode events recalled from the log",
            extra={"episode_id": self._input.episode_id, "count": len(recalled), "own": mine is not None},
        )
        return mine

    def _fold(self, events: list[DomainEvent]) -> None:
        """Events the log holds, into the state (and the search attributes a list of episodes filters on)."""
        before = self._state
        state = fold(events, self._state)
        assert state is not None
        if self._is_bounded():
            state = retire(state, workflow.now(), self._day)
        self._state = state
        self._changes += 1
        if before is None or (before.level, before.status) != (state.level, state.status):
            workflow.upsert_search_attributes(
                [
                    EPISODE_LEVEL.value_set(state.level.value if state.level else "none"),
                    EPISODE_STATUS.value_set(state.status.value),
                ]
            )
        workflow.logger.debug(
            "episode events recorded",
            extra={"episode_id": self._input.episode_id, "count": len(events), "version": state.version},
        )

    def _remember(self, result: CommandResult) -> None:
        self._results.add(result)
        while len(self._results) > KEPT_RESULTS:  # the oldest result keeps only its id
            self._earlier_ids[self._results.pop_oldest()] = None
        while len(self._earlier_ids) > KEPT_IDS:
            del self._earlier_ids[next(iter(self._earlier_ids))]

    def _should_continue_as_new(self) -> bool:
        limit = self._input.continue_as_new_after
        if limit is not None and self._commands_this_run >= limit:
            return True
        info = workflow.info()
        if info.is_continue_as_new_suggested():
            return True
        bound = self._input.history_events_bound or FIRST_HISTORY_EVENTS_BOUND
        return self._is_bounded() and info.get_current_history_length() >= bound

    def _carry(self) -> EpisodeInput:
        return EpisodeInput(
            episode_id=self._input.episode_id,
            policy_text=self._input.policy_text,
            day_seconds=self._input.day_seconds,
            continue_as_new_after=self._input.continue_as_new_after,
            lab_id=self._input.lab_id,
            directory_text=self._input.directory_text,
            state=encode(self._state),
            results=self._results.as_dict(),
            earlier_command_ids=list(self._earlier_ids),
            history_events_bound=self._input.history_events_bound,
        )


@workflow.defn(name="CareEpisode", sandboxed=False)
class CareEpisodeWorkflow(EpisodeWorkflow):
    """The episode workflow as new episodes run it: every change EpisodeWorkflow guards with a patch is in from
    the first event, so a run records no patch markers (the SDK records two history events per `patched` call
    in a new run, fourteen for the seven, and keeps a state machine for each while the episode is cached).

    Versioning by workflow type: episodes started as EpisodeWorkflow replay with its patches, and move to this
    type when they next continue as new (PATCH_CARE_EPISODE). A change made after this type is patched as
    before (`self._patched` with a new id): this type asks Temporal for every id not in IN_FROM_THE_START."""

    @workflow.run
    async def run(self, input: EpisodeInput) -> dict[str, Any]:
        return await super().run(input)

    def _patched(self, patch_id: str) -> bool:
        return patch_id in IN_FROM_THE_START or workflow.patched(patch_id)


# The changes every CareEpisode history has from its first event: never add to this set (a run recorded before
# a new change would replay the change's branch); a new change gets its own patch.
IN_FROM_THE_START = frozenset(
    {
        PATCH_DRUG_TESTING,
        PATCH_AFTERCARE,
        PATCH_PLANS,
        PATCH_AUTHORIZATIONS,
        PATCH_BOUNDED,
        PATCH_FACILITIES,
        PATCH_LOCAL_RECORDING,
        PATCH_CARE_EPISODE,
    }
)


EPISODE_WORKFLOWS: tuple[type, ...] = (EpisodeWorkflow, CareEpisodeWorkflow)  # what a worker or a replayer runs
EPISODE_WORKFLOW_TYPES = ("EpisodeWorkflow", "CareEpisode")  # their type names, as Temporal's visibility knows them
