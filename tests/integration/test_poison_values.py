"""No input can freeze an episode: whatever the API accepts survives every layer, and what cannot be stored
fails its command at once instead of being retried for ever.

Against the real servers: arbitrary bodies through the live API (each is refused with a 4xx, or recorded
and the episode takes its next command), extreme instants through the SQL and Python hash encodings, and
the record_events activity with values PostgreSQL refuses.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from temporalio import activity, workflow
from temporalio.client import WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from continuum.access import Role
from continuum.activities.eventlog import EventLogActivities, EventToRecord, RecordEventsInput, RecordEventsResult
from continuum.api.app import create_app
from continuum.api.services import Services
from continuum.domain.codec import to_envelope
from continuum.domain.events import EpisodeOpened
from continuum.domain.ids import ClientId, EpisodeId
from continuum.eventlog.records import EventMetadata, NewEvent
from continuum.eventlog.store import PostgresEventStore
from continuum.eventlog.verify import _fast_pass, verify_log, verify_stream
from tests.integration.episodes import episode_worker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]  # a frozen episode fails, never hangs the run
MILD = {"ratings": [1, 1, 1, 1, 1, 1], "assessed_by": "clin-1"}
EXAMPLES = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- what a caller might send ---------------------------------------------------------------------------

OFFSETS = st.sampled_from(
    [
        UTC,
        timezone(timedelta(hours=14)),
        timezone(timedelta(hours=-12)),
        timezone(timedelta(hours=5, minutes=45)),
        timezone(timedelta(hours=23, minutes=59)),
        timezone(timedelta(hours=-23, minutes=-59)),
        None,
    ]
)
EXTREME_INSTANTS = st.builds(
    lambda naive, tz: naive.replace(tzinfo=tz),
    st.one_of(
        st.sampled_from(
            [
                datetime.min,
                datetime.max,
                datetime(1, 1, 1, 0, 0),
                datetime(1899, 12, 31, 23, 59, 59),
                datetime(1900, 1, 1),
                datetime(9999, 12, 31, 23, 59, 59, 999999),
            ]
        ),
        st.datetimes(),
    ),
    OFFSETS,
)
RECENT = st.builds(lambda s: datetime.now(UTC) + timedelta(seconds=s), st.integers(-3 * 86400, 2 * 86400))
RECENT_TEXT = st.builds(lambda at, tz: at.astimezone(tz).isoformat(), RECENT, OFFSETS.filter(bool))
INSTANT_TEXT = st.one_of(
    st.builds(datetime.isoformat, st.one_of(EXTREME_INSTANTS, RECENT)),
    st.sampled_from(
        [
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-12:00",
            "",
            "now",
            "2026-02-30T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "+002026-01-01T00:00:00Z",
        ]
    ),
    st.integers(-(2**63), 2**63),
    st.floats(allow_nan=False),
)
AWKWARD_CHARACTERS = st.sampled_from(
    [
        "\x00",
        "\t",
        "\n",
        "\r",
        "\x1b",
        "\x7f",
        "\x85",
        "\ud800",
        "\udfff",
        "\u2028",
        "\ufeff",
        "\uffff",
        "😀",
        "é",
        "\\",
        '"',
    ]
)
TEXT = st.one_of(
    st.text(
        st.one_of(st.characters(), st.characters(codec=None, categories=["Cs", "Cc"]), AWKWARD_CHARACTERS), max_size=40
    ),
    st.builds(
        lambda c, n: c * n,
        st.one_of(st.characters(), AWKWARD_CHARACTERS),
        st.sampled_from([64, 65, 500, 501, 2000, 2001, 9000]),
    ),
)


def as_json(body: Any) -> bytes:
    """JSON as any client may send it: ASCII escapes, so unpaired surrogates travel as `\\udXXX`."""
    return json.dumps(body, ensure_ascii=True).encode()


class Episodes:
    """One episode per route, shared by the examples (an episode per example would take minutes)."""

    def __init__(self) -> None:
        self.by_route: dict[str, tuple[str, str]] = {}

    async def current(self, api: Api, route: str) -> tuple[str, str]:
        if route not in self.by_route:
            episode = await api.open(route)
            self.by_route[route] = (episode, await api.order(episode))
        return self.by_route[route]

    async def next_test(self, api: Api, route: str) -> None:
        episode, _ = self.by_route[route]
        self.by_route[route] = (episode, await api.order(episode))


@dataclass
class Api:
    http: httpx.AsyncClient
    secret: str
    store: PostgresEventStore
    run: str
    shared: Episodes = field(default_factory=lambda: Episodes())

    async def send(self, method: str, path: str, body: Any = None, **headers: str) -> httpx.Response:
        content = as_json(body) if body is not None else None
        headers = {"Authorization": f"Bearer {self.secret}", "Content-Type": "application/json", **headers}
        return await self.http.request(method, f"/api/v1{path}", content=content, headers=headers)

    async def open(self, tag: str) -> str:
        episode = f"EP-{tag}-{self.run}-{uuid.uuid4().hex[:6]}"
        opened = await self.send(
            "POST", "/episodes", {"episode_id": episode, "client_id": "client-1", "assessment": MILD}
        )
        assert opened.status_code == 201, opened.text
        return episode

    async def order(self, episode: str) -> str:
        ordered = await self.send("POST", f"/episodes/{episode}/tests", {"ordered_by": "clin-1"})
        assert ordered.status_code == 201, ordered.text  # the episode still takes commands
        return str(ordered.json()["events"][0]["data"]["test_id"])


@pytest.fixture
async def api(skipping_env: WorkflowEnvironment, store: PostgresEventStore) -> AsyncIterator[Api]:
    async with episode_worker(skipping_env, store) as episodes:
        services = Services.build(episodes, store)
        secret = services.keys.create("clinician-1", Role.CLINICIAN)[1]
        transport = httpx.ASGITransport(app=create_app(services))
        async with httpx.AsyncClient(transport=transport, base_url="http://continuum.test") as http:
            yield Api(http, secret, store, uuid.uuid4().hex[:6])


def refused_or_recorded(response: httpx.Response) -> bool:
    """A 4xx problem (True: refused), or a 2xx (False: recorded); never a 5xx or a hang."""
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json" and response.json()["detail"]
        return True
    return False


# -- through the live API ---------------------------------------------------------------------------------


def draw_body(data: st.DataObject, valid: dict[str, Any], wild: dict[str, Any]) -> dict[str, Any]:
    """A body whose fields are valid but for a few, drawn from what a caller might get wrong (an OMIT
    leaves the field out)."""
    poisoned = data.draw(st.sets(st.sampled_from(sorted(wild)), max_size=2), label="poisoned fields")
    body = {
        name: data.draw(wild[name] if name in poisoned else strategy, label=name) for name, strategy in valid.items()
    }
    return {name: value for name, value in body.items() if value is not OMIT}


OMIT = object()
JUST_BEFORE = st.builds(
    lambda s, tz: (datetime.now(UTC) - timedelta(seconds=s)).astimezone(tz).isoformat(),
    st.integers(1, 3600),
    OFFSETS.filter(bool),
)
LINE = st.text(st.characters(exclude_categories=["Cc", "Cs"]), min_size=1, max_size=64).filter(str.strip)
PROSE = st.text(st.one_of(st.characters(exclude_categories=["Cc", "Cs"]), st.sampled_from("\n\t")), max_size=300)
SUBSTANCES = st.lists(st.sampled_from(["fentanyl", "Cocaine", "THC (delta-9)", "buprenorphine"]), max_size=4)


@given(data=st.data())
@settings(parent=EXAMPLES, max_examples=50)
async def test_any_test_result_is_refused_or_recorded_and_the_episode_takes_the_next_command(
    api: Api, data: st.DataObject
) -> None:
    episode, test_id = await api.shared.current(api, "result")
    valid = {
        "result": st.sampled_from(["negative", "positive", "dilute", "refused"]),
        "method": st.sampled_from(["presumptive", "confirmed"]),
        "collected_at": JUST_BEFORE,
        "lab_reference": LINE,
        "substances": SUBSTANCES,
        "corrects_lab_reference": st.just(OMIT),
    }
    wild = {
        "result": st.text(max_size=10),
        "collected_at": INSTANT_TEXT,
        "lab_reference": TEXT,
        "substances": st.lists(TEXT, max_size=22),
        "corrects_lab_reference": TEXT,
    }
    body = draw_body(data, valid, wild)
    response = await api.send("POST", f"/episodes/{episode}/tests/{test_id}/results", body)

    if not refused_or_recorded(response):
        recorded = [e for e in api.store.read_stream(episode) if e.event_type == "TestResultRecorded"][-1]
        assert recorded.payload["lab_reference"] == body["lab_reference"]  # the text survived every layer
    await api.shared.next_test(api, "result")  # the next command on the episode is answered


@given(data=st.data())
@EXAMPLES
async def test_any_collection_is_refused_or_recorded_and_the_episode_takes_the_next_command(
    api: Api, data: st.DataObject
) -> None:
    episode, test_id = await api.shared.current(api, "collection")
    valid = {
        "collected_at": JUST_BEFORE,
        "observed": st.booleans(),
        "temperature_in_range": st.booleans(),
        "site": st.just("site-1"),
    }
    body = draw_body(data, valid, {"collected_at": INSTANT_TEXT, "site": TEXT, "observed": TEXT})
    refused_or_recorded(await api.send("POST", f"/episodes/{episode}/tests/{test_id}/collection", body))
    cancel = draw_body(data, {"cancelled_by": st.just("clin-1"), "reason": PROSE.filter(str.strip)}, {"reason": TEXT})
    if not refused_or_recorded(await api.send("POST", f"/episodes/{episode}/tests/{test_id}/cancel", cancel)):
        recorded = [e for e in api.store.read_stream(episode) if e.event_type == "TestCancelled"][-1]
        assert recorded.payload["reason"] == cancel["reason"]
    await api.shared.next_test(api, "collection")


@given(data=st.data())
@EXAMPLES
async def test_any_consent_or_note_is_refused_or_recorded_and_the_episode_takes_the_next_command(
    api: Api, data: st.DataObject
) -> None:
    episode, _ = await api.shared.current(api, "consent")
    in_five_years = st.builds(lambda d: (datetime.now(UTC) + timedelta(days=d)).isoformat(), st.integers(1, 5 * 365))
    consent = draw_body(
        data,
        {
            "consent_id": st.builds(lambda: f"c-{uuid.uuid4().hex[:8]}"),
            "recipient": st.just("harbor-house"),
            "purpose": st.just("aftercare_referral"),
            "expires_at": in_five_years,
            "recorded_by": st.just("clin-1"),
        },
        {
            "expires_at": st.one_of(
                INSTANT_TEXT,
                st.builds(lambda d: (datetime.now(UTC) + timedelta(days=d)).isoformat(), st.integers(-2, 5 * 366 + 3)),
            )
        },
    )
    refused_or_recorded(await api.send("POST", f"/episodes/{episode}/consents", consent))
    medications = draw_body(
        data, {"medications": SUBSTANCES, "changed_by": st.just("clin-1")}, {"medications": st.lists(TEXT, max_size=52)}
    )
    refused_or_recorded(await api.send("PUT", f"/episodes/{episode}/medications", medications))
    override = draw_body(
        data,
        {
            "level": st.sampled_from(["residential", "intensive_outpatient", "outpatient"]),
            "reason": st.just("clinical_judgment"),
            "note": PROSE,
            "clinician": st.just("clin-1"),
        },
        {"note": TEXT, "clinician": TEXT},
    )
    if not refused_or_recorded(await api.send("POST", f"/episodes/{episode}/placement-override", override)):
        recorded = [e for e in api.store.read_stream(episode) if e.event_type == "PlacementOverridden"][-1]
        assert recorded.payload["note"] == override["note"]
    await api.shared.next_test(api, "consent")


@given(note=st.one_of(TEXT, PROSE), reason=st.sampled_from(["completed", "transferred", "administrative", "nonsense"]))
@settings(parent=EXAMPLES, max_examples=15)
async def test_a_discharge_with_any_note_answers_its_retries_the_same_and_is_readable(
    api: Api, note: str, reason: str
) -> None:
    episode = await api.open("discharge")
    key = {"Idempotency-Key": f"discharge-{episode}"}
    first = await api.send("POST", f"/episodes/{episode}/discharge", {"reason": reason, "note": note}, **key)
    again = await api.send("POST", f"/episodes/{episode}/discharge", {"reason": reason, "note": note}, **key)
    read = await api.send("GET", f"/episodes/{episode}")

    refused = refused_or_recorded(first)
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert read.status_code == 200 and read.json()["state"]["status"] == ("active" if refused else "closed")
    if refused:  # the episode still takes a discharge
        assert (await api.send("POST", f"/episodes/{episode}/discharge", {"reason": "completed"})).status_code == 200


async def test_the_poison_values_of_issue_13_are_refused_naming_the_field(api: Api) -> None:
    episode = await api.open("issue-13")
    test_id = await api.order(episode)
    result = {"result": "negative", "method": "confirmed", "lab_reference": "L-1"}
    cases = [
        ({**result, "collected_at": "0001-01-01T00:00:00Z"}, "collected_at"),
        ({**result, "collected_at": "0001-01-01T00:00:00+14:00"}, "collected_at"),
        ({**result, "collected_at": datetime.now(UTC).isoformat(), "lab_reference": "L\u0000-1"}, "lab_reference"),
    ]
    for body, named in cases:
        refused = await api.send("POST", f"/episodes/{episode}/tests/{test_id}/results", body)
        assert refused.status_code == 422 and refused.json()["detail"].startswith(f"{named}: "), refused.json()
        assert "0001" not in refused.text and "\\u0000" not in refused.text  # the problem does not echo the value
    key = {"Idempotency-Key": f"nul-note-{episode}"}
    nul_note = await api.send(
        "POST", f"/episodes/{episode}/discharge", {"reason": "completed", "note": "a\u0000b"}, **key
    )
    retried = await api.send(
        "POST", f"/episodes/{episode}/discharge", {"reason": "completed", "note": "a\u0000b"}, **key
    )
    assert nul_note.status_code == retried.status_code == 422 and nul_note.json()["detail"].startswith("note: ")
    discharged = await api.send(
        "POST", f"/episodes/{episode}/discharge", {"reason": "completed", "note": "done\n\tfine"}
    )
    assert discharged.status_code == 200
    assert verify_stream(api.store.engine, episode).ok


# -- the hash encodings, SQL and Python, agree on extreme instants ------------------------------------------


def test_extreme_instants_are_stored_hashed_the_same_in_sql_and_python_and_read_back(app_engine: Engine) -> None:
    store = PostgresEventStore(app_engine)
    instants = [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1, 1, 1, 14, tzinfo=timezone(timedelta(hours=14))),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1000, 1, 1, tzinfo=UTC),
    ]
    for instant in instants:
        event = EpisodeOpened(EpisodeId("ep-old"), instant, ClientId("c-1"))
        envelope = to_envelope(event)
        store.append(
            "ep-old",
            [NewEvent(uuid.uuid4(), "Noted", 1, envelope.data, instant, EventMetadata())],
            expected_version=None,
        )

    stored = store.read_stream("ep-old")
    assert [e.occurred_at for e in stored] == instants
    assert stored[0].payload["occurred_at"] == "0001-01-01T00:00:00.000000Z"
    assert verify_stream(app_engine, "ep-old").ok  # Python's encoding
    assert verify_log(app_engine).ok and _fast_pass(app_engine) == store.head_position()  # PostgreSQL's, which agrees


# -- the activity: what no retry can store fails at once --------------------------------------------------


class CountsAttempts(EventLogActivities):
    """The real activity, counting its attempts per stream."""

    attempts: dict[str, list[int]] = {}

    @activity.defn(name="record_events")
    def record_events(self, request: RecordEventsInput) -> RecordEventsResult:
        CountsAttempts.attempts.setdefault(request.stream_id, []).append(activity.info().attempt)
        return super().record_events(request)


@workflow.defn(sandboxed=False)
class RecordOpeningWorkflow:
    """Records one EpisodeOpened envelope with the given data, retrying as the episode workflow does."""

    @workflow.run
    async def run(self, stream_id: str, data: dict[str, Any]) -> RecordEventsResult:
        request = RecordEventsInput(
            stream_id,
            0,
            [EventToRecord(str(workflow.uuid4()), "EpisodeOpened", 1, data, workflow.now())],
            actor="clock",
        )
        policy = RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=5)
        return await workflow.execute_activity(
            "record_events",
            request,
            result_type=RecordEventsResult,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=policy,
        )


@contextlib.asynccontextmanager
async def _worker(env: WorkflowEnvironment, queue: str, store: PostgresEventStore) -> AsyncIterator[None]:
    with ThreadPoolExecutor(2) as executor:
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[RecordOpeningWorkflow],
            activities=[CountsAttempts(store).record_events],
            activity_executor=executor,
        ):
            yield


@pytest.mark.parametrize(
    ("poison", "kind"),
    [
        ({"client_id": "client\u0000-1"}, "DataError"),  # PostgreSQL text cannot hold a NUL
        ({"previous_episode_id": "ep\u0000-0"}, "UntranslatableCharacter"),  # nor can jsonb (the folded state)
        ({"occurred_at": "1-01-01T00:00:00.000000Z"}, "ValueError"),  # the spelling that did not parse back
    ],
)
async def test_a_value_postgresql_refuses_fails_the_activity_at_once_without_naming_it(
    temporal_env: WorkflowEnvironment, store: PostgresEventStore, poison: dict[str, str], kind: str
) -> None:
    stream = f"ep-{uuid.uuid4().hex[:8]}"
    good = to_envelope(EpisodeOpened(EpisodeId(stream), datetime.now(UTC), ClientId("client-1"))).data
    async with _worker(temporal_env, stream, store):
        with pytest.raises(WorkflowFailureError) as failure:
            await temporal_env.client.execute_workflow(
                RecordOpeningWorkflow.run, args=[stream, {**good, **poison}], id=f"{stream}-poison", task_queue=stream
            )
        after = await temporal_env.client.execute_workflow(
            RecordOpeningWorkflow.run, args=[stream, good], id=f"{stream}-good", task_queue=stream
        )

    cause = failure.value.cause.cause  # type: ignore[union-attr]
    assert isinstance(cause, ApplicationError) and cause.type == "UnrecordableEvent" and cause.non_retryable
    assert kind in cause.message and f"episode {stream}" in cause.message
    assert all(value not in cause.message for value in poison.values()) and "\\u0000" not in cause.message
    assert CountsAttempts.attempts[stream] == [1, 1]  # the poisoned append once, never retried; then the good one
    assert after.stream_version == 1 and [e.event_type for e in store.read_stream(stream)] == ["EpisodeOpened"]
