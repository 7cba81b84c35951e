"""runtime.detached: a field read from a message, copied into a message of its own."""

from __future__ import annotations

from temporalio.api.common.v1 import Payload, Payloads
from temporalio.bridge.proto.workflow_activation import InitializeWorkflow

from continuum.runtime.detached import detached


def test_a_detached_copy_equals_the_field_and_no_longer_follows_its_parent() -> None:
    start = InitializeWorkflow(
        arguments=[Payload(data=b"x" * 30_000)],
        last_completion_result=Payloads(payloads=[Payload(data=b"last")]),
        headers={"h": Payload(data=b"header")},
    )
    view, header_view = start.last_completion_result, start.headers["h"]
    copy, header_copy = detached(view), detached(header_view)

    assert copy == view and header_copy == header_view and copy is not view
    start.last_completion_result.payloads[0].data = b"changed"
    start.headers["h"].data = b"changed"
    assert view.payloads[0].data == b"changed" and header_view.data == b"changed"  # the views follow their parent
    assert copy.payloads[0].data == b"last" and header_copy.data == b"header"  # the copies are their own
