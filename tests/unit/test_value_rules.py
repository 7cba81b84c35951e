"""The value rules at the edge (domain.values, the request schemas, the domain's admission rules), the
canonical encoding of extreme instants, and which recording errors a retry cannot fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError

from continuum.activities.eventlog import UNRECORDABLE, _unrecordable, unrecordable_event
from continuum.api.schemas import CancelTestBody, CollectionBody, ConsentBody, DischargeBody
from continuum.api.schemas import TestResultBody as ResultBody
from continuum.domain.codec import decode, format_instant
from continuum.domain.commands import (
    Discharge,
    OpenEpisode,
    OrderTest,
    RecordAssessment,
    RecordConsent,
    RecordSpecimenCollection,
    RecordTestResult,
)
from continuum.domain.decisions import admit, decide
from continuum.domain.errors import CommandRejected
from continuum.domain.fold import fold
from continuum.domain.policy import load_policy
from continuum.domain.testing import TestMethod, TestResult
from continuum.domain.values import EARLIEST_INSTANT, instant_problem, text_problem
from continuum.eventlog.errors import StoreUnavailable
from continuum.eventlog.hashing import event_hash

NOW = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)
PLUS_14 = timezone(timedelta(hours=14))
MINUS_12 = timezone(timedelta(hours=-12))


# -- the canonical encoding ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instant", "spelled"),
    [
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00.000000Z"),
        (datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "0999-12-31T23:59:59.999999Z"),
        (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "9999-12-31T23:59:59.999999Z"),
        (datetime(1, 1, 1, 14, tzinfo=PLUS_14), "0001-01-01T00:00:00.000000Z"),
        (datetime(9999, 12, 31, 11, tzinfo=MINUS_12), "9999-12-31T23:00:00.000000Z"),
    ],
)
def test_every_instant_python_holds_is_spelled_with_four_digit_years_and_parses_back(
    instant: datetime, spelled: str
) -> None:
    text = format_instant(instant)
    assert text == spelled and len(text) == 27
    assert decode(datetime, text) == instant


@given(st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))
@settings(max_examples=300)
def test_years_1000_to_9999_keep_the_spelling_every_recorded_hash_was_computed_over(naive: datetime) -> None:
    instant = naive.replace(tzinfo=UTC)
    assert format_instant(instant) == instant.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_an_instant_outside_years_1_to_9999_in_utc_is_a_clear_value_error() -> None:
    for instant in (datetime(1, 1, 1, tzinfo=PLUS_14), datetime(9999, 12, 31, 23, tzinfo=MINUS_12)):
        with pytest.raises(ValueError, match="outside the years 1-9999"):
            format_instant(instant)
    with pytest.raises(ValueError, match="time zone"):
        format_instant(datetime(2026, 1, 1))


def test_the_hash_of_an_event_in_year_one_covers_a_four_digit_year() -> None:
    fields = dict(
        position=1,
        stream_id="s",
        stream_version=1,
        event_id="e",
        event_type="T",
        schema_version=1,
        recorded_at=NOW,
        payload_json="{}",
        metadata_json="{}",
    )
    year_one = event_hash(bytes(32), occurred_at=datetime(1, 1, 1, tzinfo=UTC), **fields)  # type: ignore[arg-type]
    assert year_one != event_hash(bytes(32), occurred_at=datetime(1000, 1, 1, tzinfo=UTC), **fields)  # type: ignore[arg-type]


# -- domain.values --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "instant",
    [
        datetime(1899, 12, 31, 23, 59, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=PLUS_14),
        NOW + timedelta(days=1, seconds=1),
        datetime(9999, 12, 31, tzinfo=MINUS_12),
        datetime(1900, 1, 1, 13, tzinfo=PLUS_14),
    ],
)
def test_instants_outside_1900_to_a_day_ahead_are_refused(instant: datetime) -> None:
    assert instant_problem(instant, NOW) == "must lie between 1900-01-01T00:00:00Z and one day from now"


def test_instants_inside_the_window_are_accepted_whatever_their_offset() -> None:
    for instant in (EARLIEST_INSTANT, NOW + timedelta(days=1), NOW.astimezone(PLUS_14), NOW.astimezone(MINUS_12)):
        assert instant_problem(instant, NOW) is None
    assert instant_problem(datetime(2026, 1, 1), NOW) == "must carry a time zone (Z or an offset such as +02:00)"


@pytest.mark.parametrize("text", ["a\x00b", "\x07", "\x1b[31m", "x\x7f", "\x85", "\r", "\ud800", "ok \udfff"])
def test_text_with_control_characters_or_unpaired_surrogates_is_refused(text: str) -> None:
    assert text_problem(text) is not None and text_problem(text, multiline=False) is not None


def test_newline_and_tab_are_text_but_not_one_line() -> None:
    assert text_problem("first line\n\tsecond, naïve 😀 \u2028") is None
    assert text_problem("a\nb", multiline=False) == "must be one line without control characters"


# -- the request schemas --------------------------------------------------------------------------------


def _refusal(model: type, **body: object) -> tuple[str, str]:
    with pytest.raises(ValidationError) as refused:
        model(**body)  # type: ignore[operator]
    error = refused.value.errors()[0]
    return ".".join(str(part) for part in error["loc"]), error["msg"]


RESULT = {"result": "negative", "method": "confirmed", "lab_reference": "L-1"}


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (ResultBody, {**RESULT, "collected_at": "0001-01-01T00:00:00Z"}, "collected_at"),
        (ResultBody, {**RESULT, "collected_at": "0001-01-01T00:00:00+14:00"}, "collected_at"),
        (ResultBody, {**RESULT, "collected_at": "2026-01-01T00:00:00"}, "collected_at"),
        (ResultBody, {**RESULT, "collected_at": "2026-01-01T00:00:00Z", "lab_reference": "L\x00"}, "lab_reference"),
        (ResultBody, {**RESULT, "collected_at": "2026-01-01T00:00:00Z", "lab_reference": "  "}, "lab_reference"),
        (
            ResultBody,
            {**RESULT, "collected_at": "2026-01-01T00:00:00Z", "corrects_lab_reference": "a\nb"},
            "corrects_lab_reference",
        ),
        (
            CollectionBody,
            {
                "collected_at": "9999-12-31T23:59:59-12:00",
                "observed": True,
                "temperature_in_range": True,
                "site": "s-1",
            },
            "collected_at",
        ),
        (DischargeBody, {"reason": "completed", "note": "moved\x00away"}, "note"),
        (DischargeBody, {"reason": "completed", "note": "x" * 2001}, "note"),
        (CancelTestBody, {"cancelled_by": "c-1", "reason": "dup\x1b"}, "reason"),
        (
            ConsentBody,
            {
                "consent_id": "c-1",
                "recipient": "p",
                "purpose": "x",
                "recorded_by": "c-1",
                "expires_at": "2099-01-01T00:00:00Z",
            },
            "expires_at",
        ),
    ],
)
def test_the_schemas_refuse_what_cannot_be_recorded_naming_the_field(
    model: type, body: dict[str, object], field: str
) -> None:
    assert _refusal(model, **body)[0] == field


def test_the_schemas_accept_ordinary_values() -> None:
    ResultBody(**RESULT, collected_at=datetime.now(UTC).astimezone(PLUS_14))  # type: ignore[arg-type]
    DischargeBody(reason="completed", note="line one\n\tline two")  # type: ignore[arg-type]
    ConsentBody(
        consent_id="c-1",
        recipient="p",
        purpose="x",
        recorded_by="c-1",
        expires_at=datetime.now(UTC) + timedelta(days=4 * 365),
    )


# -- the domain's admission rules -------------------------------------------------------------------------


def _episode_with_a_test() -> tuple[object, str]:
    policy = load_policy()
    opened = decide(
        None, OpenEpisode("ep-1", "client-1", assessment=RecordAssessment((1, 1, 1, 1, 1, 1), "c-1")), policy, NOW
    )
    state = fold(opened)
    ordered = decide(state, OrderTest("c-1"), policy, NOW)
    return fold(ordered, state), ordered[0].test_id  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("collected_at", "reason"),
    [
        (datetime(1, 1, 1, tzinfo=UTC), "must lie between 1900-01-01"),
        (datetime(1, 1, 1, tzinfo=PLUS_14), "must lie between 1900-01-01"),
        (NOW - timedelta(days=3), "before the episode opened"),
        (NOW + timedelta(days=2), "must lie between"),
    ],
)
def test_a_collection_time_long_before_the_order_or_implausible_is_refused_with_the_reason(
    collected_at: datetime, reason: str
) -> None:
    state, test_id = _episode_with_a_test()
    for command in (
        RecordSpecimenCollection(test_id, collected_at, True, True, "site-1"),
        RecordTestResult(test_id, TestResult.NEGATIVE, TestMethod.CONFIRMED, collected_at, "L-1"),
    ):
        with pytest.raises(CommandRejected, match=reason):
            admit(state, command, NOW)  # type: ignore[arg-type]


def test_a_collection_more_than_a_day_before_a_later_order_is_refused_naming_the_test() -> None:
    state, _ = _episode_with_a_test()
    later = NOW + timedelta(days=5)
    state = fold(decide(state, OrderTest("c-1"), load_policy(), later), state)  # type: ignore[arg-type]
    with pytest.raises(CommandRejected, match="more than a day before test ep-1.T2 was ordered"):
        admit(state, RecordSpecimenCollection("ep-1.T2", NOW, True, True, "site-1"), later)


def test_ordinary_commands_are_admitted_and_text_with_control_characters_is_not() -> None:
    state, test_id = _episode_with_a_test()
    admit(
        state,
        RecordTestResult(test_id, TestResult.NEGATIVE, TestMethod.CONFIRMED, NOW - timedelta(hours=2), "L-1"),
        NOW,
    )  # type: ignore[arg-type]
    admit(state, Discharge(reason="transferred", note="moved\naway"), NOW)  # type: ignore[arg-type]
    with pytest.raises(CommandRejected, match="a note must not contain control characters"):
        admit(state, Discharge(reason="transferred", note="moved\x00away"), NOW)  # type: ignore[arg-type]
    with pytest.raises(CommandRejected, match="a lab reference is one line"):
        admit(state, RecordTestResult(test_id, TestResult.NEGATIVE, TestMethod.CONFIRMED, NOW, "L\x00"), NOW)  # type: ignore[arg-type]
    with pytest.raises(CommandRejected, match="a consent's expiry must lie between"):
        admit(state, RecordConsent("c-1", "p", "x", datetime(1, 1, 1, tzinfo=PLUS_14), "c-1"), NOW)  # type: ignore[arg-type]


# -- which recording errors a retry cannot fix ---------------------------------------------------------------


def test_data_errors_are_unrecordable_and_transient_ones_are_not() -> None:
    untranslatable = psycopg.errors.UntranslatableCharacter("unsupported Unicode escape sequence")
    wrapped = DBAPIError.instance("SELECT", {}, untranslatable, psycopg.Error, hide_parameters=True)
    assert _unrecordable(wrapped) == ("UntranslatableCharacter", "22P05")
    assert _unrecordable(psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")) == (
        "DataError",
        None,
    )
    assert _unrecordable(ValueError("the instant lies outside the years 1-9999 in UTC")) == ("ValueError", None)
    assert _unrecordable(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")) == (
        "UnicodeEncodeError",
        None,
    )
    for transient in (
        psycopg.OperationalError("connection reset"),
        psycopg.errors.SerializationFailure("could not serialize access"),
        DBAPIError.instance("SELECT", {}, psycopg.OperationalError("server closed"), psycopg.Error),
        StoreUnavailable("PostgreSQL is unavailable"),
        RuntimeError("worker lost"),
    ):
        assert _unrecordable(transient) is None, transient
    assert isinstance(DBAPIError.instance("S", {}, psycopg.OperationalError("x"), psycopg.Error), OperationalError)


def test_the_unrecordable_answer_is_not_retryable_and_names_no_value() -> None:
    error = unrecordable_event("EP-1", "UntranslatableCharacter", "22P05")
    assert error.type == UNRECORDABLE == "UnrecordableEvent" and error.non_retryable
    assert error.message == (
        "the events for episode EP-1 cannot be recorded: a value in them cannot be stored"
        " (UntranslatableCharacter, SQLSTATE 22P05); nothing was recorded"
    )
    assert error.details == ({"error_type": "UntranslatableCharacter", "sqlstate": "22P05"},)


@pytest.mark.parametrize("result", ["positive", "adulterated"])
def test_a_result_that_found_something_names_it(result: str) -> None:
    """A positive with no substance was read as "positive only for prescribed substances: expected"."""
    body = {**RESULT, "result": result, "collected_at": datetime.now(UTC)}
    assert _refusal(ResultBody, **body) == (
        "substances",
        f"Value error, a {result} result names at least one substance or adulterant it found",
    )
    assert _refusal(ResultBody, **body, substances=[" "])[0].startswith("substances")
    ResultBody(**body, substances=["fentanyl"])  # type: ignore[arg-type]
    state, test_id = _episode_with_a_test()
    command = RecordTestResult(test_id, TestResult(result), TestMethod.CONFIRMED, NOW, "L-9")
    with pytest.raises(CommandRejected, match="names at least one substance or adulterant"):
        admit(state, command, NOW)  # type: ignore[arg-type]
