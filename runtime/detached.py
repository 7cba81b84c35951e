"""A cached workflow keeps only what it uses of its first activation, not the activation.

Protocol buffers in this SDK are upb messages: a field read from a message is a view into the arena of the
message it came from, and keeps that whole arena alive. The SDK keeps three such views for as long as a
workflow is cached (the start's headers, its last completion result, its memo), so every cached episode
held its whole first activation: the start event's input (the carried state, kept results and ids, 26-39
KB encoded) and the rest, in Rust-allocated memory no Python profiler sees. Copying the three into messages
of their own lets the arena go once the input is decoded: 222 -> 117 KiB per cached episode, measured with
an in-process worker (bench/memory.py gives the figures the README quotes).

Nothing else changes: the copies are equal to what they replace, and the workflow code never sees them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from google.protobuf.message import Message
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    UnsandboxedWorkflowRunner,
    WorkflowInboundInterceptor,
    WorkflowInstance,
    WorkflowInstanceDetails,
    WorkflowInterceptorClassInput,
)

M = TypeVar("M", bound=Message)


def detached(message: M) -> M:
    """A copy of `message` in an arena of its own (holding it no longer holds the message it was read from)."""
    copy = type(message)()
    copy.CopyFrom(message)
    return copy


class DetachedRunner(UnsandboxedWorkflowRunner):
    """The SDK's unsandboxed runner, given the start's last completion result and memo as copies."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        info = dataclasses.replace(
            det.info, raw_memo={key: detached(value) for key, value in det.info.raw_memo.items()}
        )
        det = dataclasses.replace(det, info=info, last_completion_result=detached(det.last_completion_result))
        return super().create_instance(det)


class _DetachedHeaders(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        # The instance keeps this very object as its workflow input: replaced in place, the view goes with it.
        input.headers = {key: detached(value) for key, value in input.headers.items()}
        return await super().execute_workflow(input)


class DetachedHeaders(Interceptor):
    """Gives each workflow its start headers as copies (the first thing it runs, before its own code)."""

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        return _DetachedHeaders
