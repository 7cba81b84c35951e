"""The response models derived from the domain say what `encode` answers: every field, required where it has no
default, and an encoded value validates against its model."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter

from continuum.api.app import create_app
from continuum.api.episode_models import EpisodeState, RecordedEvent, domain_model, field_notes
from continuum.domain.codec import encode, to_envelope
from continuum.domain.episode import Episode, EpisodeStatus, PendingReview
from continuum.domain.events import EVENT_TYPES, ReviewRequested
from continuum.domain.flags import Flag, FlagFamily
from continuum.domain.levels import LevelOfCare

AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def test_every_event_types_data_model_has_exactly_its_fields_required_where_they_have_no_default() -> None:
    for name, cls in EVENT_TYPES.items():
        schema = domain_model(cls, f"{name}Data").model_json_schema()
        fields = dataclasses.fields(cls)
        no_default = {
            f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        assert set(schema["properties"]) == {f.name for f in fields}, name
        assert set(schema.get("required", [])) == no_default, name
        assert schema["additionalProperties"] is False, name


def test_an_encoded_state_and_event_validate_against_their_models_and_a_changed_one_does_not() -> None:
    review = PendingReview("EP-1.R1", LevelOfCare.RESIDENTIAL, AT, AT)
    state = Episode(
        "EP-1",
        "client-1",
        EpisodeStatus.ACTIVE,
        AT,
        AT,
        level=LevelOfCare.RESIDENTIAL,
        pending_review=review,
        flags=(Flag(FlagFamily.RESULT_MISSING, "EP-1.T1"),),
    )
    envelope = to_envelope(ReviewRequested("EP-1", AT, "EP-1.R1", LevelOfCare.RESIDENTIAL, AT, "sha256:1"))
    events: TypeAdapter[object] = TypeAdapter(RecordedEvent)

    EpisodeState.model_validate(encode(state))
    events.validate_python({"type": envelope.type, "data": envelope.data})
    for wrong in ({"level": "spa"}, {"flags": ["no_such_family"]}, {"unknown": 1}):
        try:
            EpisodeState.model_validate({**encode(state), **wrong})
        except ValueError:
            continue
        raise AssertionError(f"{wrong} validated")


def test_a_fields_comment_in_the_domain_is_its_description() -> None:
    assert field_notes(Episode)["review_after_days"] == "stay-clock days at which the next review is requested"


EPISODE_ROUTES = ("/api/v1/episodes", "/api/v1/partner", "/api/v1/attendance", "/api/v1/utilization")


def _loose(schema: object, components: dict[str, Any], seen: set[str]) -> list[str]:
    """Where a schema leaves its shape open: an object of any properties, or no schema at all."""
    if isinstance(schema, list):
        return [found for item in schema for found in _loose(item, components, seen)]
    if not isinstance(schema, dict):
        return []
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        if name in seen:
            return []
        seen.add(name)
        return _loose(components[name], components, seen)
    loose = [str(schema)[:80]] if schema.get("additionalProperties") is True or schema == {} else []
    inner = [v for k, v in schema.items() if k != "properties"] + list(schema.get("properties", {}).values())
    return loose + [found for value in inner for found in _loose(value, components, seen)]


def test_every_answer_of_the_episode_routes_has_a_closed_shape_in_the_document() -> None:
    document = create_app(object()).openapi()  # type: ignore[arg-type]
    components = document["components"]["schemas"]
    checked = 0
    for path, operations in document["paths"].items():
        if not path.startswith(EPISODE_ROUTES):
            continue
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if not status.startswith("2"):
                    continue  # the errors are the `Problem` (api/problems.py), open to a problem's own members
                for media, content in answer.get("content", {}).items():
                    assert content.get("schema"), (method, path, status, media)
                    if media.endswith("json") and media != "application/fhir+json":
                        assert _loose(content["schema"], components, set()) == [], (method, path, status)
                        checked += 1
    assert checked > 45
