"""The payload key ring: parsing the key file and the environment, and the embedded default's own file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from temporalio.service import TLSConfig

from continuum.runtime.codec import KeyRing, PayloadKeyError, load_key_ring
from continuum.runtime.settings import Settings, SettingsError


def test_the_first_key_encrypts_comments_and_commas_are_read_as_people_write_them() -> None:
    a, b, c = KeyRing.new_line("a"), KeyRing.new_line("b"), KeyRing.new_line("c")
    ring = KeyRing.parse(f"# keys: newest first, the rest decrypt\n{a}  # current\n\n{b}, {c}\n", "file")
    assert ring.current == "a" and sorted(ring.keys) == ["a", "b", "c"]
    assert all(len(key) == 32 for key in ring.keys.values())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no key"),
        ("# only a comment, nothing else\n", "holds no key"),
        ("nokey\n", "line 1: expected <key id>:<base64 key>"),
        ("k1:not base64!\n", "key k1 is not base64"),
        ("k1:AAAA\n", "key k1 must be 32 bytes"),
        (f"{KeyRing.new_line('k1')}\n{KeyRing.new_line('k1')}\n", "line 2: key id k1 appears twice"),
    ],
)
def test_a_malformed_key_ring_is_named_by_line(text: str, message: str) -> None:
    with pytest.raises(PayloadKeyError, match=message):
        KeyRing.parse(text, "keys.txt")


def test_the_embedded_default_creates_its_own_key_file_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    first = load_key_ring(None, None, tmp_path)
    again = load_key_ring(None, None, tmp_path)
    assert first == again
    assert stat.S_IMODE((tmp_path / "payload-keys").stat().st_mode) == 0o600


def test_the_environment_wins_over_a_file_and_a_missing_file_is_named(tmp_path: Path) -> None:
    line = KeyRing.new_line("env-1")
    assert load_key_ring(line, tmp_path / "nope", tmp_path).current == "env-1"
    with pytest.raises(PayloadKeyError, match="cannot read the payload key file .*nope"):
        load_key_ring(None, tmp_path / "nope", tmp_path)


def test_processes_of_a_real_cluster_must_share_their_keys(tmp_path: Path) -> None:
    """With TEMPORAL_ADDRESS set, a key file of each process's own would leave workers unable to read each
    other's payloads: the keys must be given."""
    settings = Settings.from_env({"TEMPORAL_ADDRESS": "temporal:7233", "CONTINUUM_DATA_DIR": str(tmp_path)})
    with pytest.raises(SettingsError, match="CONTINUUM_PAYLOAD_KEYS or CONTINUUM_PAYLOAD_KEYS_FILE"):
        settings.key_ring()
    assert not (tmp_path / "payload-keys").exists()
    line = KeyRing.new_line("shared")
    given = Settings.from_env({"TEMPORAL_ADDRESS": "temporal:7233", "CONTINUUM_PAYLOAD_KEYS": line})
    assert given.key_ring().current == "shared"


def test_mtls_to_temporal_reads_its_files_and_names_what_is_missing(tmp_path: Path) -> None:
    assert Settings.from_env({}).temporal_tls() is False
    with pytest.raises(SettingsError, match="TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together"):
        Settings.from_env({"TEMPORAL_TLS_CERT": str(tmp_path / "client.pem")})
    (tmp_path / "client.pem").write_bytes(b"CERT")
    (tmp_path / "client.key").write_bytes(b"KEY")
    env = {
        "TEMPORAL_TLS_CERT": str(tmp_path / "client.pem"),
        "TEMPORAL_TLS_KEY": str(tmp_path / "client.key"),
        "TEMPORAL_TLS_SERVER_NAME": "temporal.internal",
    }
    tls = Settings.from_env(env).temporal_tls()
    assert isinstance(tls, TLSConfig)
    assert (tls.client_cert, tls.client_private_key, tls.server_root_ca_cert) == (b"CERT", b"KEY", None)
    assert tls.domain == "temporal.internal"
    missing = Settings.from_env({**env, "TEMPORAL_TLS_CA": str(tmp_path / "ca.pem")})
    with pytest.raises(SettingsError, match="TEMPORAL_TLS_CA .*ca.pem cannot be read"):
        missing.temporal_tls()
