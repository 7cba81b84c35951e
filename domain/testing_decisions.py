"""Decisions about drug tests: orders, results and their interpretation, step-ups and their reversal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from continuum.domain.commands import (
    MAX_CANCELLATION_REASON,
    MAX_NOTE,
    CancelTest,
    ChangeMedications,
    Command,
    DecideStepUp,
    DrawTestSchedule,
    EscalateStepUpReview,
    FlagLabNotNotified,
    MarkResultOverdue,
    OrderScheduledTest,
    OrderTest,
    RecordSpecimenCollection,
    RecordTestResult,
    ReverseStepUp,
)
from continuum.domain.episode import Episode, EpisodeStatus, Numbered, StepUpCancellation, StepUpWait
from continuum.domain.errors import CommandInvalid, CommandRejected
from continuum.domain.events import (
    DomainEvent,
    FlagRaised,
    MedicationsChanged,
    SobrietyDateReset,
    SpecimenCollected,
    StepUpCancelled,
    StepUpPending,
    StepUpReversed,
    StepUpReviewDecided,
    TestCancelled,
    TestOrdered,
    TestResultCorrected,
    TestResultOverdue,
    TestResultRecorded,
    TestScheduleDrawn,
)
from continuum.domain.flags import Flag, FlagFamily, analyte_absent
from continuum.domain.ids import staff_id
from continuum.domain.medications import SUBSTANCE
from continuum.domain.policy import Policy, PositiveResultAction
from continuum.domain.retention import TEST_RECORD_OPEN_DAYS, is_closed_test
from continuum.domain.stays import move, step_up_target
from continuum.domain.testing import (
    NO_SPECIMEN,
    DrugTest,
    Interpretation,
    OrderReason,
    TestMethod,
    TestResult,
    interpret,
    normalise_substances,
)
from continuum.domain.values import instant_problem, text_problem

# A result that says something was found says what (otherwise a positive reads "prescribed only: expected").
NAMES_WHAT_IT_FOUND = frozenset({TestResult.POSITIVE, TestResult.ADULTERATED})
# A specimen may be taken a little before its order is entered (point-of-care collection at intake).
EARLY_COLLECTION = timedelta(days=1)


def admit_testing(state: Episode, command: Command, at: datetime) -> None:
    """The admission rules of a drug-testing command's values (see `domain.decisions.admit`)."""
    match command:
        case (
            RecordSpecimenCollection(test_id=test_id, collected_at=collected_at)
            | RecordTestResult(test_id=test_id, collected_at=collected_at)
        ) if collected_at is not None:
            _admit_collection_time(state, test_id, collected_at, at)
    match command:
        case RecordTestResult():
            if command.result not in NO_SPECIMEN and (command.method is None or command.collected_at is None):
                raise CommandRejected(
                    f"a {command.result.value} result names its method and when the specimen was collected"
                )
            if command.result in NAMES_WHAT_IT_FOUND and not normalise_substances(command.substances):
                raise CommandRejected(
                    f"a {command.result.value} result names at least one substance or adulterant it found"
                )
            for reference in (command.lab_reference, command.corrects_lab_reference):
                if reference is not None and text_problem(reference, multiline=False) is not None:
                    raise CommandRejected("a lab reference is one line of text without control characters")
        case CancelTest(reason=text) | ReverseStepUp(reason=text):
            if text_problem(text) is not None:
                raise CommandRejected("a reason must not contain control characters other than newline and tab")
        case DecideStepUp(note=text):
            if text_problem(text) is not None:
                raise CommandRejected("a note must not contain control characters other than newline and tab")


def _admit_collection_time(state: Episode, test_id: str, collected_at: datetime, at: datetime) -> None:
    if (problem := instant_problem(collected_at, at)) is not None:
        raise CommandRejected(f"the collection time {problem}")
    if collected_at < state.opened_at - EARLY_COLLECTION:
        raise CommandRejected(
            f"the collection time is before the episode opened ({_when(state.opened_at)}); check the specimen's date"
        )
    test = state.test(test_id)
    if test is not None and collected_at < test.ordered_at - EARLY_COLLECTION:
        raise CommandRejected(
            f"the collection time is more than a day before test {test_id} was ordered ({_when(test.ordered_at)});"
            " check the specimen's date"
        )


def _when(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def decide_testing(state: Episode, command: Command, policy: Policy, at: datetime, day: timedelta) -> list[DomainEvent]:
    """Events for a drug-testing command (the caller has checked the episode is open)."""
    match command:
        case ChangeMedications():
            medications = normalise_substances(command.medications)
            if any(not SUBSTANCE.fullmatch(m) for m in medications) or len(medications) > 50:
                raise CommandRejected("medications are up to 50 substance names (letters, digits, spaces)")
            catalogue = policy.medications
            unknown = catalogue.unknown(medications) if catalogue is not None else ()
            if catalogue is not None and unknown:
                raise CommandInvalid(
                    f"{', '.join(unknown)}: not in the program's medication catalogue ({', '.join(catalogue.names)});"
                    " a program adds a medication to the [medications] table of its policy"
                )
            return [MedicationsChanged(state.episode_id, at, medications, staff_id(command.changed_by))]
        case RecordTestResult():
            return _record_result(state, command, policy, at, day)
        case RecordSpecimenCollection():
            return _collected(state, command, at)
        case CancelTest():
            test = _known(state, command.test_id)
            if test.cancelled:
                raise CommandRejected(f"test {command.test_id} is already cancelled")
            if not test.awaiting_result:
                raise CommandRejected(f"test {command.test_id} already has a result; correct it instead")
            if not command.reason.strip() or len(command.reason) > MAX_CANCELLATION_REASON:
                raise CommandRejected(f"a cancellation needs a reason (at most {MAX_CANCELLATION_REASON} characters)")
            cancelled_by = staff_id(command.cancelled_by)
            return [TestCancelled(state.episode_id, at, command.test_id, command.reason, cancelled_by)]
    if state.status is not EpisodeStatus.ACTIVE:
        raise CommandRejected(
            f"the episode is {state.status.value.replace('_', ' ')}; no test can be ordered or decided now"
        )
    assert state.level is not None
    testing = policy.drug_testing
    match command:
        case DrawTestSchedule(draw=draw):
            if draw is None or draw.level is not state.level:
                raise CommandRejected("a schedule is drawn for the current level")
            if testing.per_week.get(state.level, 0) <= 0:
                raise CommandRejected(f"there is no random testing at {state.level.value}")
            current = state.schedule_level is state.level and state.schedule_window_end is not None
            if current and at < state.schedule_window_end:  # type: ignore[operator]
                raise CommandRejected("the current schedule window has not ended")
            return [
                TestScheduleDrawn(
                    state.episode_id,
                    at,
                    draw.level,
                    draw.window_start,
                    draw.window_days,
                    draw.eligible_days,
                    draw.weights,
                    draw.chosen_days,
                    day.total_seconds(),
                    policy.version,
                )
            ]
        case OrderScheduledTest():
            if not state.planned_tests or state.planned_tests[0] > at:
                raise CommandRejected("no scheduled test is due")
            due = at + day * testing.result_window_days
            return [_order(state, OrderReason.SCHEDULED, "clock", due, policy, at, lab_id=command.lab_id)]
        case OrderTest(ordered_by=who, lab_id=lab_id):
            due = at + day * testing.result_window_days
            return [_order(state, OrderReason.CLINICIAN, staff_id(who), due, policy, at, lab_id=lab_id)]
        case MarkResultOverdue(test_id=test_id):
            test = _known(state, test_id)
            if not test.awaiting_result or test.overdue or at < test.result_due_at:
                raise CommandRejected(f"test {test_id} is not overdue")
            return [TestResultOverdue(state.episode_id, at, test_id, test.result_due_at)]
        case EscalateStepUpReview(test_id=test_id):
            pending = state.pending_step_up
            if pending is None or pending.test_id != test_id or pending.due_at is None or at < pending.due_at:
                raise CommandRejected(f"no overdue step-up review for test {test_id}")
            if Flag(FlagFamily.STEP_UP_REVIEW_OVERDUE) in state.flags:
                raise CommandRejected("the step-up review was already escalated")
            return [
                FlagRaised(
                    state.episode_id,
                    at,
                    Flag(FlagFamily.STEP_UP_REVIEW_OVERDUE),
                    f"step-up review for test {test_id} is overdue",
                )
            ]
        case FlagLabNotNotified(test_id=test_id):
            _known(state, test_id)
            return [
                FlagRaised(
                    state.episode_id,
                    at,
                    Flag(FlagFamily.LAB_NOT_NOTIFIED, test_id),
                    f"the lab could not be told of test {test_id}",
                )
            ]
        case DecideStepUp():
            return _decide_step_up(state, command, policy, at)
        case ReverseStepUp():
            return _reverse(state, command, policy, at)
    raise CommandRejected(f"{type(command).__name__} is not a drug-testing command")


def _collected(state: Episode, command: RecordSpecimenCollection, at: datetime) -> list[DomainEvent]:
    test = _known(state, command.test_id)
    if test.cancelled:
        raise CommandRejected(f"test {command.test_id} was cancelled; no specimen is expected")
    if command.collected_at > at:
        raise CommandRejected("the collection time is in the future")
    if test.collected_at is not None:
        if (test.collected_at, test.observed, test.temperature_in_range) == (
            command.collected_at,
            command.observed,
            command.temperature_in_range,
        ):
            return []
        raise CommandRejected(f"the specimen for test {command.test_id} was already recorded as collected")
    events: list[DomainEvent] = [
        SpecimenCollected(
            state.episode_id,
            at,
            command.test_id,
            command.collected_at,
            command.observed,
            command.temperature_in_range,
            staff_id(command.site),
        )
    ]
    if not command.temperature_in_range:
        events.append(
            FlagRaised(
                state.episode_id,
                at,
                Flag(FlagFamily.SPECIMEN_TEMPERATURE),
                f"test {command.test_id}: temperature out of range",
            )
        )
    return events


def _known(state: Episode, test_id: str) -> DrugTest:
    test = state.test(test_id)
    if test is None:
        if is_closed_test(state, test_id):
            raise CommandRejected(
                f"test {test_id} was ordered more than {TEST_RECORD_OPEN_DAYS} days ago and is closed to new results"
                " and corrections"
            )
        raise CommandRejected(f"no test {test_id} was ordered for this episode")
    return test


def _order(
    state: Episode,
    reason: OrderReason,
    by: str,
    due: datetime,
    policy: Policy,
    at: datetime,
    *,
    retest_of: str | None = None,
    lab_id: str | None = None,
) -> TestOrdered:
    assert state.level is not None
    test_id = Numbered.TEST.id(state.episode_id, state.tests_ordered + 1)
    return TestOrdered(state.episode_id, at, test_id, reason, state.level, due, by, policy.version, retest_of, lab_id)


def _record_result(
    state: Episode, command: RecordTestResult, policy: Policy, at: datetime, day: timedelta
) -> list[DomainEvent]:
    test = _known(state, command.test_id)
    if test.cancelled:
        raise CommandRejected(f"test {command.test_id} was cancelled; no result is expected")
    if not command.lab_reference or len(command.lab_reference) > 64:
        raise CommandRejected("a lab reference is 1-64 characters")
    if command.collected_at is not None and command.collected_at > at:
        raise CommandRejected("the collection time is in the future")
    substances = normalise_substances(command.substances)
    if any(not SUBSTANCE.fullmatch(s) for s in substances):
        raise CommandRejected("substances are names of letters, digits and spaces")
    reading = interpret(
        command.result, substances, command.method, state.medications, policy.drug_testing, policy.medications
    )
    fields = (
        command.result,
        substances,
        command.method,
        command.collected_at,
        command.lab_reference,
        reading.counts_as_positive,
        reading.rule,
        policy.version,
    )
    slot = test.confirmed if command.method is TestMethod.CONFIRMED else test.presumptive
    if command.corrects_lab_reference is not None:
        original = next(
            (r for r in (test.presumptive, test.confirmed) if r and r.lab_reference == command.corrects_lab_reference),
            None,
        )
        if original is None:
            raise CommandRejected(f"test {command.test_id} has no result {command.corrects_lab_reference} to correct")
        if original.method is not command.method:
            raise CommandRejected("a correction keeps the method of the result it corrects")
        events: list[DomainEvent] = [
            TestResultCorrected(state.episode_id, at, command.test_id, *fields, command.corrects_lab_reference)
        ]
        if original.counts_as_positive and not reading.counts_as_positive:
            return events + _withdrawn(state, test, at)
        if reading.counts_as_positive and not original.counts_as_positive:
            return events + _consequences(state, test, command.method, reading, policy, at, day)
        return events
    if slot is not None:
        same = (slot.result, slot.substances, slot.collected_at, slot.lab_reference) == (
            command.result,
            substances,
            command.collected_at,
            command.lab_reference,
        )
        if same:
            return []  # the identical result again: nothing new
        raise CommandRejected(
            f"test {command.test_id} already has a {(command.method or TestMethod.PRESUMPTIVE).value} result"
            f" ({slot.result.value}, "
            f"{slot.lab_reference}); send a correction naming that lab reference"
        )
    if command.method is TestMethod.PRESUMPTIVE and test.confirmed is not None:
        raise CommandRejected(f"test {command.test_id} already has a confirmed result")
    recorded = TestResultRecorded(state.episode_id, at, command.test_id, *fields)
    return [recorded, *_consequences(state, test, command.method, reading, policy, at, day)]


def _withdrawn(state: Episode, test: DrugTest, at: datetime) -> list[DomainEvent]:
    """A counting result that no longer counts: a pending step-up is cancelled; a done one is flagged."""
    if state.pending_step_up and state.pending_step_up.test_id == test.test_id:
        return [StepUpCancelled(state.episode_id, at, test.test_id, StepUpCancellation.RESULT_CORRECTED)]
    if state.last_step_up and state.last_step_up.test_id == test.test_id:
        return [
            FlagRaised(
                state.episode_id, at, Flag(FlagFamily.STEP_UP_ON_CORRECTED_RESULT), f"test {test.test_id} was corrected"
            )
        ]
    return []


def _consequences(
    state: Episode,
    test: DrugTest,
    method: TestMethod | None,
    reading: Interpretation,
    policy: Policy,
    at: datetime,
    day: timedelta,
) -> list[DomainEvent]:
    events: list[DomainEvent] = []
    for analyte in reading.absent:
        message = f"test {test.test_id}: no {analyte} while prescribed"
        events.append(FlagRaised(state.episode_id, at, analyte_absent(analyte), message))
    if reading.needs_retest:
        due = at + day * policy.drug_testing.retest_within_days
        retest = _order(state, OrderReason.RETEST, "clock", due, policy, at, retest_of=test.test_id, lab_id=test.lab_id)
        events.append(retest)
    pending = state.pending_step_up if state.pending_step_up and state.pending_step_up.test_id == test.test_id else None
    if method is TestMethod.CONFIRMED and pending is not None and pending.waiting_for is StepUpWait.CONFIRMATION:
        if not reading.counts_as_positive:
            return events + [
                StepUpCancelled(state.episode_id, at, test.test_id, StepUpCancellation.CONFIRMATION_NEGATIVE)
            ]
        return events + _act_on_positive(state, test, reading, policy, at, day)
    if not reading.counts_as_positive:
        return events
    target = step_up_target(state, policy)
    if reading.awaits_confirmation:
        if target is not None and state.pending_step_up is None:
            events.append(
                StepUpPending(state.episode_id, at, test.test_id, StepUpWait.CONFIRMATION, target, None, policy.version)
            )
        return events
    return events + _act_on_positive(state, test, reading, policy, at, day)


def _act_on_positive(
    state: Episode, test: DrugTest, reading: Interpretation, policy: Policy, at: datetime, day: timedelta
) -> list[DomainEvent]:
    """A counting positive: the sobriety date resets, and the client steps up (or a clinician reviews it)."""
    events: list[DomainEvent] = [SobrietyDateReset(state.episode_id, at, test.test_id)]
    target = step_up_target(state, policy)
    if target is None or state.status is not EpisodeStatus.ACTIVE and state.status is not EpisodeStatus.ON_HOLD:
        return events
    if policy.drug_testing.positive_result_action is PositiveResultAction.REVIEW:
        if state.pending_step_up is None or state.pending_step_up.test_id == test.test_id:
            due = at + day * policy.drug_testing.step_up_review_due_days
            events.append(
                StepUpPending(state.episode_id, at, test.test_id, StepUpWait.REVIEW, target, due, policy.version)
            )
        return events
    assert state.level is not None
    cause = f"test {test.test_id}: {reading.rule}; rule step_up.{state.level.value} -> {target.value}"
    return events + [move(state, target, cause, policy, at, test_id=test.test_id)]


def _decide_step_up(state: Episode, command: DecideStepUp, policy: Policy, at: datetime) -> list[DomainEvent]:
    pending = state.pending_step_up
    if pending is None or pending.test_id != command.test_id or pending.waiting_for is not StepUpWait.REVIEW:
        raise CommandRejected(f"no step-up review is pending for test {command.test_id}")
    if len(command.note) > MAX_NOTE:
        raise CommandRejected(f"a note is at most {MAX_NOTE} characters")
    decided = StepUpReviewDecided(
        state.episode_id, at, command.test_id, command.confirm, staff_id(command.clinician), command.note
    )
    if not command.confirm:
        return [decided]
    cause = f"test {command.test_id}: step-up confirmed by {command.clinician} on review"
    return [decided, move(state, pending.target_level, cause, policy, at, test_id=command.test_id)]


def _reverse(state: Episode, command: ReverseStepUp, policy: Policy, at: datetime) -> list[DomainEvent]:
    last = state.last_step_up
    if last is None or last.test_id != command.test_id or state.level is not last.to_level:
        raise CommandRejected(f"no step-up caused by test {command.test_id} can be reversed now")
    if not command.reason.strip() or len(command.reason) > MAX_NOTE:
        raise CommandRejected(f"a reversal needs a reason (at most {MAX_NOTE} characters)")
    clinician = staff_id(command.clinician)
    cause = f"reversal of the step-up on test {command.test_id}: {command.reason}"
    return [
        StepUpReversed(state.episode_id, at, command.test_id, clinician, command.reason),
        move(state, last.from_level, cause, policy, at, test_id=command.test_id),
    ]
