"""Settings, hashing and upcasting: the platform's pure parts."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from continuum.eventlog.hashing import GENESIS_HASH, canonical_json, event_hash
from continuum.eventlog.upcasting import Upcasters
from continuum.eventlog.verify import Anchor, AnchorError
from continuum.runtime.settings import LogFormat, Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]


def test_settings_default_to_the_embedded_servers() -> None:
    settings = Settings.from_env({})
    assert settings.embedded_temporal and settings.embedded_postgres
    assert settings.temporal_namespace == "default" and settings.temporal_task_queue == "continuum"
    assert settings.database_role == "continuum_app" and settings.log_format is LogFormat.AUTO


def test_settings_read_every_documented_variable() -> None:
    settings = Settings.from_env(
        {
            "TEMPORAL_ADDRESS": "temporal:7233",
            "TEMPORAL_NAMESPACE": "clinic",
            "TEMPORAL_TASK_QUEUE": "episodes",
            "DATABASE_URL": "postgresql+psycopg://u@db/continuum",
            "CONTINUUM_DATABASE_ROLE": "",
            "CONTINUUM_DATA_DIR": "/var/lib/continuum",
            "CONTINUUM_LOG_FORMAT": "json",
            "CONTINUUM_LOG_LEVEL": "debug",
            "CONTINUUM_TEMPORAL_PORT": "7300",
            "CONTINUUM_TEMPORAL_UI_PORT": "8300",
            "CONTINUUM_POLICY_FILE": "/etc/continuum/policy.toml",
            "CONTINUUM_DAY_SECONDS": "1.5",
        }
    )
    assert settings.policy_file == Path("/etc/continuum/policy.toml") and settings.day_seconds == 1.5
    assert not settings.embedded_temporal and not settings.embedded_postgres
    assert (settings.temporal_namespace, settings.temporal_task_queue) == ("clinic", "episodes")
    assert settings.database_role is None and settings.data_dir == Path("/var/lib/continuum")
    assert settings.log_format is LogFormat.JSON and settings.log_level == "DEBUG"
    assert (settings.embedded_temporal_port, settings.embedded_temporal_ui_port) == (7300, 8300)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CONTINUUM_LOG_LEVEL", "loud", "CONTINUUM_LOG_LEVEL must be"),
        ("CONTINUUM_TEMPORAL_PORT", "70000", "CONTINUUM_TEMPORAL_PORT must be a TCP port"),
        ("CONTINUUM_LOG_FORMAT", "xml", "CONTINUUM_LOG_FORMAT must be one of"),
        ("CONTINUUM_DAY_SECONDS", "soon", "CONTINUUM_DAY_SECONDS must be a number of seconds"),
        ("CONTINUUM_DAY_SECONDS", "0", "CONTINUUM_DAY_SECONDS must be a number of seconds"),
    ],
)
def test_a_bad_setting_names_its_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({name: value})


def _hash(prev: bytes = GENESIS_HASH, **changes: object) -> bytes:
    fields: dict[str, object] = dict(
        position=1,
        stream_id="ep-1",
        stream_version=1,
        event_id="5f0c7c8e-0000-4000-8000-000000000001",
        event_type="EpisodeOpened",
        schema_version=1,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        recorded_at=datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC),
        payload_json='{"a":1}',
        metadata_json="{}",
    )
    fields.update(changes)
    return event_hash(prev, **fields)  # type: ignore[arg-type]


def test_the_hash_covers_every_field_and_the_previous_link() -> None:
    base = _hash()
    assert len(base) == 32 and base == _hash()
    variants = [
        _hash(prev=b"\x01" * 32),
        _hash(position=2),
        _hash(stream_id="ep-2"),
        _hash(stream_version=2),
        _hash(event_id="5f0c7c8e-0000-4000-8000-000000000002"),
        _hash(event_type="EpisodeClosed"),
        _hash(schema_version=2),
        _hash(occurred_at=datetime(2026, 1, 2, tzinfo=UTC)),
        _hash(recorded_at=datetime(2026, 1, 1, 0, 0, 2, tzinfo=UTC)),
        _hash(payload_json='{"a":2}'),
        _hash(metadata_json='{"actor":"x"}'),
    ]
    assert base not in variants and len(set(variants)) == len(variants)


def test_the_same_instant_in_another_zone_hashes_the_same() -> None:
    elsewhere = datetime(2025, 12, 31, 19, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert _hash(occurred_at=elsewhere) == _hash()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values))
def test_canonical_json_is_independent_of_key_order(payload: dict[str, object]) -> None:
    reordered = dict(reversed(list(payload.items())))
    assert canonical_json(payload) == canonical_json(reordered)


def test_upcasters_chain_steps_and_refuse_a_duplicate_step() -> None:
    upcasters = Upcasters()
    upcasters.register("E", 1, lambda p: {**p, "b": 2})
    upcasters.register("E", 2, lambda p: {**p, "c": p["a"] + p["b"]})
    assert upcasters.upcast("E", 1, {"a": 1}) == (3, {"a": 1, "b": 2, "c": 3})
    assert upcasters.upcast("E", 3, {"x": 0}) == (3, {"x": 0})
    assert upcasters.upcast("Other", 1, {"a": 1}) == (1, {"a": 1})
    with pytest.raises(ValueError, match="already registered"):
        upcasters.register("E", 1, lambda p: p)


def test_the_layers_point_inward() -> None:
    """import-linter: domain/ imports no infrastructure, and nothing imports outward."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_anchor_reads_back_what_it_wrote_and_names_what_is_wrong() -> None:
    anchor = Anchor(42, "ab" * 32, datetime(2026, 11, 23, 21, 0, tzinfo=UTC))
    assert Anchor.from_json(anchor.as_json()) == anchor
    assert Anchor.from_json({"position": 0, "hash": "00" * 32}) == Anchor(0, "00" * 32)
    for data, named in [
        ([], "a JSON object"),
        ({"position": -1, "hash": "00" * 32}, "anchor position"),
        ({"position": True, "hash": "00" * 32}, "anchor position"),
        ({"position": 1, "hash": "AB" * 32}, "anchor hash"),
        ({"position": 1, "hash": "00" * 31}, "anchor hash"),
        ({"position": 1, "hash": "00" * 32, "taken_at": "yesterday"}, "anchor taken_at"),
        ({"position": 1, "hash": "00" * 32, "taken_at": "2026-11-23T21:00:00"}, "time zone"),
    ]:
        with pytest.raises(AnchorError, match=named):
            Anchor.from_json(data)
