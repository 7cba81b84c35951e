"""The record_events activity on the real Temporal dev server: a retry after a lost reply never duplicates."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import activity, workflow
from temporalio.client import WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from continuum.activities.eventlog import EventLogActivities, EventToRecord, RecordEventsInput, RecordEventsResult
from continuum.eventlog.store import PostgresEventStore

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def _worker(
    env: WorkflowEnvironment, queue: str, workflow_class: type, activities: EventLogActivities
) -> AsyncIterator[None]:
    with ThreadPoolExecutor(4) as executor:
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[workflow_class],
            activities=[activities.record_events],
            activity_executor=executor,
        ):
            yield


@workflow.defn(sandboxed=False)
class RecordTwiceWorkflow:
    """Mints event ids the way episode workflows do, then records them through the activity."""

    @workflow.run
    async def run(self, stream_id: str) -> list[RecordEventsResult]:
        at = workflow.now()
        request = RecordEventsInput(
            stream_id=stream_id,
            expected_version=0,
            events=[EventToRecord(str(workflow.uuid4()), "Noted", 1, {"n": n}, at) for n in range(3)],
            actor="workflow:test",
        )
        options = {"start_to_close_timeout": timedelta(seconds=30), "retry_policy": RetryPolicy(maximum_attempts=3)}
        first = await workflow.execute_activity("record_events", request, result_type=RecordEventsResult, **options)
        # The same request again, as a workflow replaying after a crash would issue it.
        again = await workflow.execute_activity("record_events", request, result_type=RecordEventsResult, **options)
        return [first, again]


class LosesFirstReply(EventLogActivities):
    """The real activity, but the first attempt 'crashes' after the commit, before replying."""

    attempts: list[int] = []

    @activity.defn(name="record_events")
    def record_events(self, request: RecordEventsInput) -> RecordEventsResult:
        result = super().record_events(request)
        LosesFirstReply.attempts.append(activity.info().attempt)
        if activity.info().attempt == 1:
            raise RuntimeError("worker lost before replying")
        return result


async def test_a_retried_record_after_a_lost_reply_stores_each_event_once(
    temporal_env: WorkflowEnvironment, store: PostgresEventStore
) -> None:
    stream = f"ep-{uuid.uuid4().hex[:8]}"
    async with _worker(temporal_env, stream, RecordTwiceWorkflow, LosesFirstReply(store)):
        first, again = await temporal_env.client.execute_workflow(
            RecordTwiceWorkflow.run, stream, id=stream, task_queue=stream
        )

    assert LosesFirstReply.attempts[:2] == [1, 2]
    assert first.duplicate and first.positions == [1, 2, 3]  # attempt 2 found attempt 1's commit
    assert again.duplicate and again.positions == [1, 2, 3]
    events = store.read_stream(stream)
    assert [e.stream_version for e in events] == [1, 2, 3]
    assert events[0].metadata.workflow_id == stream and events[0].metadata.actor == "workflow:test"


@workflow.defn(sandboxed=False)
class ConflictWorkflow:
    @workflow.run
    async def run(self, stream_id: str) -> None:
        request = RecordEventsInput(
            stream_id, 5, [EventToRecord(str(workflow.uuid4()), "Noted", 1, {}, datetime(2026, 1, 1, tzinfo=UTC))]
        )
        await workflow.execute_activity(
            "record_events", request, start_to_close_timeout=timedelta(seconds=30), result_type=RecordEventsResult
        )


async def test_a_version_conflict_fails_at_once_without_retrying(
    temporal_env: WorkflowEnvironment, store: PostgresEventStore
) -> None:
    stream = f"ep-{uuid.uuid4().hex[:8]}"
    async with _worker(temporal_env, stream, ConflictWorkflow, EventLogActivities(store)):
        with pytest.raises(WorkflowFailureError) as failure:
            await temporal_env.client.execute_workflow(ConflictWorkflow.run, stream, id=stream, task_queue=stream)

    cause = failure.value.cause.cause  # type: ignore[union-attr]
    assert "not the expected 5" in str(cause) and getattr(cause, "type", None) == "ConcurrencyError"
    assert store.read_stream(stream) == []
