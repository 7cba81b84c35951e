"""The response models derived from the domain say what `encode` answers: every field, required where it has no
default, and an encoded value validates against its model."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from pydantic import TypeAdapter

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
