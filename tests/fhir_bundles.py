"""What every FHIR Bundle the export writes holds, for the unit and the integration tests alike: each resource
valid R4 (`fhir.resources` R4B, R4's technical correction), each fullUrl a `urn:uuid:` naming its own resource's
id and no other entry's, and every reference naming an entry of the Bundle."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.resource import Resource


def linked_resources(bundle: dict[str, Any]) -> dict[str, Resource]:
    """The Bundle's resources by fullUrl, each validated as its own type; fails on a reference that does not
    resolve inside the Bundle, a fullUrl that is not its resource's `urn:uuid:`, or one used twice."""
    Bundle.model_validate(bundle)
    resources: dict[str, Resource] = {}
    for entry in bundle["entry"]:
        url, resource = entry["fullUrl"], entry["resource"]
        assert url == f"urn:uuid:{UUID(resource['id'])}", url
        assert url not in resources, f"{url} names two entries"
        model = get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        assert isinstance(model, Resource)
        resources[url] = model
    found = list(references(bundle))
    unresolved = [reference for reference in found if reference not in resources]
    assert found and not unresolved, f"references outside the Bundle: {unresolved}"
    return resources


def references(value: Any) -> Iterator[str]:
    """Every `reference` anywhere in a FHIR JSON value."""
    if isinstance(value, dict):
        if isinstance(value.get("reference"), str):
            yield value["reference"]
        for inner in value.values():
            yield from references(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from references(inner)


def of_type(bundle: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    """The Bundle's resources of one type, as JSON, in the Bundle's order."""
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type]
