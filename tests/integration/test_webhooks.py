"""Issue 20, item 2: webhooks, delivered by the Temporal dispatcher to a real local receiver, signed per the
Standard Webhooks spec, retried, recorded, replayable; managed by an admin alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from continuum.activities.webhooks import DeliveryToSend, WebhookActivities
from continuum.bootstrap import ACTIVITY_THREADS, build_worker, start_webhook_dispatcher
from continuum.domain.commands import OpenEpisode, RecordAssessment
from continuum.episodes import EpisodeCommands
from continuum.eventlog.store import PostgresEventStore
from continuum.eventlog.webhooks import DeliveryStatus, WebhookStore
from continuum.runtime.settings import Settings
from continuum.workflows.webhooks import WebhooksInput, WebhooksWorkflow, dispatcher_id
from tests.integration.episodes import awaitable, eventually, meta, replay_recorded
from tests.integration.stacks import Stack
from tests.integration.test_feed import referred_to_harbor_house
from tests.integration.webhook_receiver import Receiver, webhook_receiver

pytestmark = pytest.mark.integration

OPENED = "org.continuum.EpisodeOpened"
HISTORIES = Path(__file__).resolve().parents[1] / "histories" / "webhooks"  # apart: the episodes' replay reads *.json


async def _subscribe(stack: Stack, url: str, event_types: list[str], role: str = "director", **more: Any) -> Any:
    answer = await stack.post(
        "/api/v1/webhooks", {"url": url, "event_types": event_types, "role": role, **more}, "admin"
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


async def _deliveries(stack: Stack, subscription_id: str, **params: Any) -> list[dict[str, Any]]:
    answer = await stack.get(f"/api/v1/webhooks/{subscription_id}/deliveries", role="admin", **params)
    assert answer.status_code == 200, answer.text
    return answer.json()["deliveries"]  # type: ignore[no-any-return]


@pytest.fixture
async def dispatching(stack: Stack) -> AsyncIterator[Stack]:
    """The stack with its queue's webhook dispatcher running (ended with the test: the server outlives it)."""
    await start_webhook_dispatcher(stack.env.client, stack.episodes.task_queue)
    yield stack
    await _end_dispatcher(stack.env, stack.episodes.task_queue)


async def _end_dispatcher(env: WorkflowEnvironment, queue: str) -> None:
    await env.client.get_workflow_handle(dispatcher_id(queue)).terminate("the test is over")


async def _opened_on(receiver: Receiver, episode: str) -> list[dict[str, Any]]:
    return [r.event for r in receiver.accepted() if r.event["subject"] == episode]


async def test_a_delivery_arrives_signed_in_cloudevents_form_and_verifies(dispatching: Stack) -> None:
    stack = dispatching
    with webhook_receiver() as receiver:
        subscription = await _subscribe(stack, receiver.url, ["EpisodeOpened"])
        await stack.post("/api/v1/episodes", stack.episode())

        await eventually(lambda: _opened_on(receiver, stack.e1), bool, "the episode's opening delivered")

    request = receiver.accepted()[0]
    verified = Webhook(subscription["secret"]).verify(request.body, request.headers)
    stored = next(e for e in stack.store.read_stream(stack.e1) if e.event_type == "EpisodeOpened")
    assert subscription["secret"].startswith("whsec_")
    assert verified["id"] == request.headers["webhook-id"] == str(stored.event_id)
    assert verified["type"] == OPENED and verified["subject"] == stack.e1 and verified["specversion"] == "1.0"
    assert verified["data"] == stored.payload and verified["position"] == stored.position
    assert request.headers["content-type"].startswith("application/cloudevents+json")
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=").verify(request.body, request.headers)
    assert [r.headers["webhook-id"] for r in receiver.requests] == [str(stored.event_id)]
    [delivery] = await _deliveries(stack, subscription["subscription_id"], status="delivered")
    assert delivery["event_id"] == str(stored.event_id) and delivery["attempts"] == 1
    assert delivery["last_status"] == 204 and "body" not in delivery and "data" not in delivery


async def test_a_receiver_that_fails_and_recovers_gets_the_event_after_retries_recorded_delivered_once(
    dispatching: Stack,
) -> None:
    stack = dispatching
    with webhook_receiver(fail_first=2) as receiver:
        subscription = await _subscribe(stack, receiver.url, ["EpisodeOpened"])
        await stack.post("/api/v1/episodes", stack.episode())

        await eventually(lambda: _opened_on(receiver, stack.e1), bool, "delivered after two 500s", tries=600)

    ids = {r.headers["webhook-id"] for r in receiver.requests}
    [delivery] = await _deliveries(stack, subscription["subscription_id"])
    assert [r.answered for r in receiver.requests] == [500, 500, 204]
    assert len(ids) == 1 and receiver.accepted_ids() == [delivery["event_id"]]
    assert delivery["status"] == "delivered" and delivery["attempts"] == 3 and delivery["last_status"] == 204
    signatures = {r.headers["webhook-signature"] for r in receiver.requests}
    assert all(Webhook(subscription["secret"]).verify(r.body, r.headers) for r in receiver.requests)
    assert len(signatures) >= 1


async def test_a_receiver_that_stays_down_leaves_a_failed_delivery_that_a_replay_delivers(dispatching: Stack) -> None:
    stack = dispatching
    with webhook_receiver(down=True) as receiver:
        subscription = await _subscribe(stack, receiver.url, ["EpisodeOpened"])
        sid = subscription["subscription_id"]
        await stack.post("/api/v1/episodes", stack.episode())

        [failed] = await eventually(
            lambda: _deliveries(stack, sid, status="failed"), bool, "every attempt failed", tries=1200
        )
        tried = len(receiver.requests)
        receiver.down = False
        replayed = await stack.post(f"/api/v1/webhooks/{sid}/deliveries/{failed['delivery_id']}/replay", role="admin")
        again = await stack.post(f"/api/v1/webhooks/{sid}/deliveries/{failed['delivery_id']}/replay", role="admin")
        await eventually(lambda: _opened_on(receiver, stack.e1), bool, "the replay delivered")
        [delivered] = await _deliveries(stack, sid, status="delivered")

    assert failed["attempts"] == tried == 5 and failed["last_error"] == "http_503" and failed["last_status"] == 503
    assert replayed.status_code == 202 and replayed.json()["status"] == "pending"
    assert again.status_code in (202, 409)  # a second replay: still pending (202, taken once) or already sent
    assert receiver.accepted_ids() == [failed["event_id"]]
    assert delivered["delivery_id"] == failed["delivery_id"] and delivered["replays"] >= 1
    assert await _deliveries(stack, sid, status="failed") == []


async def test_a_lab_subscription_receives_only_its_own_tests_events_reduced(dispatching: Stack) -> None:
    stack = dispatching
    lab_events = ["TestOrdered", "TestCancelled", "SpecimenCollected"]
    with webhook_receiver() as receiver:
        subscription = await _subscribe(stack, receiver.url, lab_events, role="lab", subject="lab-1")
        await stack.post("/api/v1/episodes", stack.episode())
        stack.episodes.lab_id = "lab-2"  # the next episode's tests go to another lab
        await stack.post("/api/v1/episodes", stack.episode(stack.e2))
        own = await stack.post(f"/api/v1/episodes/{stack.e1}/tests", {"ordered_by": "clin-1"})
        other = await stack.post(f"/api/v1/episodes/{stack.e2}/tests", {"ordered_by": "clin-1"})
        own_id = next(e for e in own.json()["events"] if e["type"] == "TestOrdered")["data"]["test_id"]
        head = stack.store.head_position()

        async def followed() -> int:
            found = WebhookStore(stack.store.engine).get(subscription["subscription_id"])
            assert found is not None
            pending = WebhookStore(stack.store.engine).deliveries(found.subscription_id, None)
            return found.after_position if all(d.status.value == "delivered" for d in pending) else -1

        await eventually(followed, lambda position: position >= head, "the log followed past both orders")

    received = [r.event for r in receiver.accepted()]
    everything = json.dumps(received)
    assert own.status_code == 201 and other.status_code == 201
    assert any(e["type"] == "org.continuum.TestOrdered" and e["data"]["test_id"] == own_id for e in received)
    assert {e["subject"] for e in received} == {stack.e1}
    assert all(set(e["data"]) <= {"episode_id", "test_id", "result_due_at"} for e in received)
    for word in ("ratings", "client-1", "clin-1", "lab-2", "reason", "level"):
        assert word not in everything


async def test_a_partner_subscription_receives_only_the_referrals_disclosed_to_it_as_disclosed(
    dispatching: Stack,
) -> None:
    stack = dispatching
    referral_events = ["ReferralIssued", "ReferralStatusChanged"]
    with webhook_receiver() as harbor, webhook_receiver() as other:
        subscribed = await _subscribe(stack, harbor.url, referral_events, role="partner", subject="harbor-house")
        await _subscribe(stack, other.url, referral_events, role="partner", subject="partner-1")
        referrals, answered = await referred_to_harbor_house(stack)
        await eventually(lambda: awaitable(len(harbor.accepted())), lambda n: n == 2, "the issue and the answer")
        head = stack.store.head_position()
        await eventually(
            lambda: awaitable(WebhookStore(stack.store.engine).subscriptions()),
            lambda found: all(s.after_position >= head for s in found),
            "both subscriptions followed the log past the answer",
        )

    issued, changed = (r.event for r in harbor.accepted())
    assert answered.status_code == 200 and other.requests == []  # nothing was disclosed to partner-1
    assert (issued["type"], changed["type"]) == ("org.continuum.ReferralIssued", "org.continuum.ReferralStatusChanged")
    assert set(issued["data"]) == {"episode_id", "referral_id", "resource_id", "answer_due_at", "disclosed"}
    assert issued["data"]["resource_id"] == "harbor-house" and issued["data"]["disclosed"]
    assert changed["data"] == {"episode_id": stack.e1, "referral_id": referrals["harbor-house"], "status": "accepted"}
    assert "ratings" not in json.dumps([issued, changed]) and "community-counselling" not in json.dumps(issued)
    assert all(Webhook(subscribed["secret"]).verify(r.body, r.headers) for r in harbor.requests)


async def test_admin_alone_manages_subscriptions_and_bad_input_is_a_422_naming_the_field(stack: Stack) -> None:
    good = {"url": "https://ehr.example.org/hooks", "event_types": ["EpisodeOpened"], "role": "director"}
    refused = {
        role: await stack.post("/api/v1/webhooks", good, role) for role in ("director", "clinician", "lab", "auditor")
    }
    listed_by_director = await stack.get("/api/v1/webhooks", role="director")
    invalid = {
        "url": {**good, "url": "ftp://ehr.example.org/hooks"},
        "event_types": {**good, "event_types": ["EpisodeOpened", "Nonsense"]},
        "subject": {**good, "role": "lab"},
        "role": {**good, "role": "admin"},
    }
    answers = {field: await stack.post("/api/v1/webhooks", body, "admin") for field, body in invalid.items()}
    lab_asks_for_results = await stack.post(
        "/api/v1/webhooks", {**good, "role": "lab", "subject": "lab-1", "event_types": ["TestResultRecorded"]}, "admin"
    )
    unknown_field = await stack.post("/api/v1/webhooks", {**good, "secret": "mine"}, "admin")
    nothing = (await stack.get("/api/v1/webhooks", role="admin")).json()["webhooks"]

    created = await stack.post("/api/v1/webhooks", good, "admin")
    sid = created.json()["subscription_id"]
    listed = (await stack.get("/api/v1/webhooks", role="admin")).json()["webhooks"]
    shown = await stack.get(created.headers["location"], role="admin")
    disabled = await stack.post(f"/api/v1/webhooks/{sid}/disable", role="admin")
    replay_disabled = await stack.post(f"/api/v1/webhooks/{sid}/deliveries/dl_1/replay", role="admin")
    clinician_deletes = await stack.http.delete(f"/api/v1/webhooks/{sid}", headers=stack.auth("clinician"))
    deleted = await stack.http.delete(f"/api/v1/webhooks/{sid}", headers=stack.auth("admin"))
    gone = await stack.get(f"/api/v1/webhooks/{sid}", role="admin")
    no_deliveries = await stack.get(f"/api/v1/webhooks/{sid}/deliveries", role="admin")
    no_replay = await stack.post(f"/api/v1/webhooks/{sid}/deliveries/dl_1/replay", role="admin")

    assert {role: answer.status_code for role, answer in refused.items()} == dict.fromkeys(refused, 403)
    assert listed_by_director.status_code == 403 and clinician_deletes.status_code == 403
    for field, answer in answers.items():
        assert answer.status_code == 422, (field, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert field in answer.json()["detail"]
    assert lab_asks_for_results.status_code == 422 and "event_types" in lab_asks_for_results.json()["detail"]
    assert unknown_field.status_code == 422 and nothing == []
    assert created.status_code == 201 and created.headers["location"] == f"/api/v1/webhooks/{sid}"
    assert created.json()["secret"].startswith("whsec_") and created.json()["created_by"] == "admin:admin-1"
    assert [s["subscription_id"] for s in listed] == [sid] and "secret" not in listed[0]
    assert shown.status_code == 200 and "secret" not in shown.json()
    assert disabled.status_code == 200 and disabled.json()["disabled_at"] is not None
    assert replay_disabled.status_code == 409 and "disabled" in replay_disabled.json()["detail"]
    assert deleted.status_code == 204 and gone.status_code == 404
    assert no_deliveries.status_code == 404 and no_replay.status_code == 404


# -- a worker restart ----------------------------------------------------------------------------------------


@asynccontextmanager
async def _worker(env: WorkflowEnvironment, store: PostgresEventStore, queue: str) -> AsyncIterator[EpisodeCommands]:
    """A worker on `queue` as the service wires it, with a workflow cache of its own (a restart replays)."""
    with ThreadPoolExecutor(ACTIVITY_THREADS) as executor:
        async with build_worker(Settings(temporal_task_queue=queue), env.client, store, executor):
            yield EpisodeCommands(env.client, queue)


async def _open(episodes: EpisodeCommands, episode: str) -> None:
    await episodes.open(meta(), OpenEpisode(episode, "client-1", assessment=RecordAssessment((1,) * 6, "clin-1")))


async def test_a_worker_restart_in_the_middle_does_not_send_a_delivered_event_twice(
    skipping_env: WorkflowEnvironment, store: PostgresEventStore
) -> None:
    queue, run = f"webhooks-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:6]
    webhooks = WebhookStore(store.engine)
    with webhook_receiver() as receiver:
        subscription, secret = webhooks.create(receiver.url, ["EpisodeOpened"], "director", None, "admin:test")
        async with _worker(skipping_env, store, queue) as episodes:
            await start_webhook_dispatcher(skipping_env.client, queue)
            await _open(episodes, f"EP-A-{run}")
            await eventually(lambda: _opened_on(receiver, f"EP-A-{run}"), bool, "the first opening delivered")
        # The dispatcher's run goes on without a worker; another worker (a cold cache) replays and continues it.
        async with _worker(skipping_env, store, queue) as episodes:
            await start_webhook_dispatcher(skipping_env.client, queue)  # already running: the same one goes on
            await _open(episodes, f"EP-B-{run}")
            await eventually(lambda: _opened_on(receiver, f"EP-B-{run}"), bool, "the second opening delivered")
            [first, second] = await eventually(
                lambda: awaitable(webhooks.deliveries(subscription.subscription_id, DeliveryStatus.DELIVERED)),
                lambda delivered: len(delivered) == 2,
                "both recorded as delivered",
            )
            # The activity asked again for a delivery on record as delivered sends nothing.
            activities = WebhookActivities(store)
            again = ActivityEnvironment().run(
                activities.deliver, DeliveryToSend(first.delivery_id, subscription.subscription_id, 5)
            )

    if os.environ.get("CONTINUUM_RECORD_HISTORIES"):  # replayed by the test below
        history = await skipping_env.client.get_workflow_handle(dispatcher_id(queue)).fetch_history()
        HISTORIES.mkdir(exist_ok=True)
        (HISTORIES / "dispatcher_restart.json").write_text(history.to_json())
    await _end_dispatcher(skipping_env, queue)
    assert sorted(receiver.accepted_ids()) == sorted([str(first.event_id), str(second.event_id)])
    assert len(receiver.requests) == 2 and again.status == "delivered"
    assert [d.attempts for d in (first, second)] == [1, 1]
    assert all(Webhook(secret).verify(r.body, r.headers) for r in receiver.requests)


async def test_the_dispatcher_continues_as_new_and_goes_on_delivering(stack: Stack) -> None:
    from temporalio.api.enums.v1 import EventType

    queue = stack.episodes.task_queue
    handle = await stack.env.client.start_workflow(
        WebhooksWorkflow.run, WebhooksInput(rounds_per_run=2), id=dispatcher_id(queue), task_queue=queue
    )
    first_run = handle.first_execution_run_id
    assert first_run is not None

    async def first_run_ended() -> Any:
        history = await stack.env.client.get_workflow_handle(handle.id, run_id=first_run).fetch_history()
        return history.events[-1].event_type

    try:
        ended = await eventually(
            first_run_ended, lambda last: last == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW, "continued"
        )
        with webhook_receiver() as receiver:
            await _subscribe(stack, receiver.url, ["EpisodeOpened"])
            await stack.post("/api/v1/episodes", stack.episode())
            await eventually(lambda: _opened_on(receiver, stack.e1), bool, "delivered by a later run")
    finally:
        await _end_dispatcher(stack.env, queue)

    assert ended == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    assert len(receiver.accepted()) == 1


async def test_recorded_dispatcher_histories_replay_with_the_current_workflow_code() -> None:
    """A change to the dispatcher's command sequence that is not patched fails here (a dispatcher runs for ever,
    so every worker that takes it over replays its current run)."""
    assert await replay_recorded([WebhooksWorkflow], HISTORIES, "webhooks"), "no recorded dispatcher histories"


# -- the CLI -------------------------------------------------------------------------------------------------


def test_the_cli_creates_lists_shows_deliveries_replays_and_refuses_bad_input_in_one_line(
    database_url: str, tmp_path: Path
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "DATABASE_URL", "CONTINUUM_"))},
        "DATABASE_URL": database_url,
        "CONTINUUM_DATA_DIR": str(tmp_path),
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "continuum.cli", "webhooks", *args], env=env, capture_output=True, text=True
        )

    created = cli(
        "create",
        "--url",
        "https://ehr.example.org/hooks",
        "--event-type",
        "TestOrdered",
        "--event-type",
        "SpecimenCollected",
        "--role",
        "lab",
        "--subject",
        "lab-1",
        "--json",
    )
    made = json.loads(created.stdout)
    sid = made["subscription_id"]
    listed = cli("list", "--json")
    deliveries = cli("deliveries", sid, "--status", "failed", "--json")
    bad_url = cli("create", "--url", "mailto:x@example.org", "--event-type", "TestOrdered", "--role", "director")
    bad_type = cli("create", "--url", "https://h.example.org", "--event-type", "Nonsense", "--role", "director")
    no_subject = cli("create", "--url", "https://h.example.org", "--event-type", "TestOrdered", "--role", "lab")
    bad_status = cli("deliveries", sid, "--status", "lost")
    no_replay = cli("replay", sid, "dl_none")
    disabled = cli("disable", sid)
    deleted = cli("delete", sid)
    gone = cli("delete", sid)

    assert created.returncode == 0 and made["secret"].startswith("whsec_") and made["subject"] == "lab-1"
    assert [s["subscription_id"] for s in json.loads(listed.stdout)] == [sid] and "whsec_" not in listed.stdout
    assert deliveries.returncode == 0 and json.loads(deliveries.stdout) == []
    assert bad_url.returncode == 2 and bad_url.stderr.startswith("continuum: --url: ")
    assert bad_type.returncode == 2 and "--event-type: 'Nonsense' is not an event type" in bad_type.stderr
    assert no_subject.returncode == 2 and "--subject" in no_subject.stderr
    assert bad_status.returncode == 2 and "--status" in bad_status.stderr
    assert no_replay.returncode == 1 and "no failed delivery dl_none" in no_replay.stderr
    assert (disabled.returncode, deleted.returncode, gone.returncode) == (0, 0, 1)
    for result in (bad_url, bad_type, no_subject, bad_status, no_replay, gone):
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
