"""Connecting to Temporal, with one readable line when it cannot be reached, and search attributes."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.service import RPCError, TLSConfig

from continuum.runtime.servers import ServerUnavailable

_TYPES = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Text": IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
    "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
}


# A dev server just started opens its port before its frontend answers; that one refusal is waited out.
_STARTING = "Frontend is not healthy yet"


async def connect_temporal(
    address: str,
    namespace: str,
    timeout: float = 20.0,
    data_converter: DataConverter | None = None,
    tls: TLSConfig | bool = False,
) -> Client:
    """A client of the namespace, or ServerUnavailable in one line naming the address (within `timeout`); with
    `data_converter` (runtime/codec.py's `encrypted_converter`) every payload is encrypted."""
    converter = data_converter or DataConverter.default
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            connecting = Client.connect(address, namespace=namespace, data_converter=converter, tls=tls)
            return await asyncio.wait_for(connecting, deadline - loop.time())
        except (RuntimeError, RPCError, OSError, TimeoutError) as error:
            if _STARTING in str(error) and loop.time() + 0.2 < deadline:
                await asyncio.sleep(0.2)
                continue
            reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            raise ServerUnavailable(f"cannot reach Temporal at {address} (namespace {namespace}): {reason}") from None


async def ensure_search_attributes(client: Client, attributes: Mapping[str, str]) -> list[str]:
    """Register the attributes the namespace lacks; return the names added.

    An unregistered attribute would make every workflow task that sets it fail forever, so when the
    server refuses (no operator permission) we stop and say exactly which command an operator must run.
    """
    namespace = client.namespace
    listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    missing = {n: t for n, t in attributes.items() if n not in listed.custom_attributes}
    if not missing:
        return []
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=namespace, search_attributes={n: _TYPES[t] for n, t in missing.items()}
            )
        )
    except RPCError as error:
        commands = "; ".join(
            f"temporal operator search-attribute create --namespace {namespace} --name {n} --type {t}"
            for n, t in missing.items()
        )
        raise ServerUnavailable(f"cannot register search attributes ({error.message}); run: {commands}") from None
    return sorted(missing)
