"""Temporal's failures in the domain's words: a timed-out or cancelled update is a server that did not answer."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.exceptions import ActivityError, ApplicationError, RetryState
from temporalio.service import RPCError, RPCStatusCode

from continuum.domain.errors import CommandRejected, CommandUnrecordable
from continuum.episodes import _rejections_as_domain_errors
from continuum.runtime.servers import ServerTimedOut, ServerUnavailable


async def _failing(error: BaseException) -> Any:
    raise error


async def test_an_update_that_timed_out_or_was_cancelled_is_a_server_that_did_not_answer() -> None:
    with pytest.raises(ServerTimedOut) as raised:
        await _rejections_as_domain_errors(_failing(WorkflowUpdateRPCTimeoutOrCancelledError()), "EP-1")

    assert isinstance(raised.value, ServerUnavailable) and str(raised.value) == "Temporal did not answer in time"


@pytest.mark.parametrize("status", [RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED])
async def test_a_deadline_exceeded_or_cancelled_rpc_is_a_server_that_did_not_answer(status: RPCStatusCode) -> None:
    with pytest.raises(ServerTimedOut):
        await _rejections_as_domain_errors(_failing(RPCError("deadline", status, b"")), "EP-1")


async def test_an_unrecordable_event_is_named_without_its_values() -> None:
    direct = WorkflowUpdateFailedError(ApplicationError("payload holds 'heroin' at $.note", type="UnrecordableEvent"))
    activity = ActivityError(
        "activity failed",
        scheduled_event_id=1,
        started_event_id=2,
        identity="w",
        activity_type="record_events",
        activity_id="1",
        retry_state=RetryState.NON_RETRYABLE_FAILURE,
    )
    activity.__cause__ = ApplicationError("payload holds 'heroin'", type="UnrecordableEvent")
    beneath = WorkflowUpdateFailedError(activity)

    for failure in (direct, beneath):
        with pytest.raises(CommandUnrecordable) as raised:
            await _rejections_as_domain_errors(_failing(failure), "EP-1")
        assert str(raised.value) == "the command's values cannot be recorded"


async def test_a_refusal_is_still_a_refusal() -> None:
    refused = WorkflowUpdateFailedError(ApplicationError("no review is pending", type="CommandRejected"))

    with pytest.raises(CommandRejected, match="no review is pending"):
        await _rejections_as_domain_errors(_failing(refused), "EP-1")
