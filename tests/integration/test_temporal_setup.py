"""Search attributes on a Temporal that lacks them (an external cluster), against the real dev server."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.testing import WorkflowEnvironment

from continuum.runtime.temporal import connect_temporal, ensure_search_attributes
from continuum.workflows.search_attributes import SEARCH_ATTRIBUTES

pytestmark = pytest.mark.integration


async def test_missing_search_attributes_are_registered_once(temporal_env: WorkflowEnvironment) -> None:
    namespace = f"clinic-{uuid.uuid4().hex[:8]}"
    await temporal_env.client.workflow_service.register_namespace(
        RegisterNamespaceRequest(namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400))
    )
    address = temporal_env.client.service_client.config.target_host
    for _ in range(50):  # a new namespace takes a moment to reach the frontend's cache
        try:
            client = await connect_temporal(address, namespace)
            added = await ensure_search_attributes(client, SEARCH_ATTRIBUTES)
            break
        except Exception:
            await asyncio.sleep(0.2)
    else:
        pytest.fail("namespace never became usable")

    assert added == sorted(SEARCH_ATTRIBUTES)
    assert await ensure_search_attributes(client, SEARCH_ATTRIBUTES) == []
