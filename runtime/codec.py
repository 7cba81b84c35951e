"""Temporal payloads encrypted at rest and on the wire: AES-256-GCM, one key to encrypt, several to decrypt.

Every payload a workflow, activity or update carries (commands, events, the episode's carried state, and
failure messages) is encrypted before it leaves the process, so a Temporal history read without a key
shows no client id, rating or medication. The key id travels in the payload's metadata, so keys rotate:
add a new key at the top of the key file, keep the old ones below it until no history needs them.

The key file has one key per line, `<key id>:<base64 of 32 bytes>` (CONTINUUM_PAYLOAD_KEYS takes the same,
separated by commas); the first key encrypts, every key decrypts; `#` starts a comment.
A new line to add: `python -c "from continuum.runtime.codec import KeyRing; print(KeyRing.new_line())"`.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import secrets
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
    PayloadCodec,
)

from continuum.domain.codec import decode
from continuum.domain.flags import Flag

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12
_KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class PayloadKeyError(ValueError):
    """The payload keys are missing, malformed, or do not include the key a payload was encrypted with."""


@dataclass(frozen=True)
class KeyRing:
    """The key that encrypts (the first) and every key that may decrypt, by id."""

    current: str
    keys: dict[str, bytes]

    @classmethod
    def parse(cls, text: str, source: str) -> KeyRing:
        keys: dict[str, bytes] = {}
        order: list[str] = []
        entries = [
            (number, entry.strip())
            for number, raw in enumerate(text.splitlines(), start=1)
            for entry in raw.split("#", 1)[0].split(",")  # one line may hold several, comma-separated
            if entry.strip()
        ]
        for number, line in entries:
            key_id, sep, encoded = line.partition(":")
            key_id = key_id.strip()
            if not sep or not _KEY_ID_PATTERN.fullmatch(key_id):
                raise PayloadKeyError(f"{source} line {number}: expected <key id>:<base64 key>")
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except ValueError:
                raise PayloadKeyError(f"{source} line {number}: key {key_id} is not base64") from None
            if len(key) != 32:
                raise PayloadKeyError(f"{source} line {number}: key {key_id} must be 32 bytes (AES-256)")
            if key_id in keys:
                raise PayloadKeyError(f"{source} line {number}: key id {key_id} appears twice")
            keys[key_id] = key
            order.append(key_id)
        if not order:
            raise PayloadKeyError(f"{source} holds no key")
        return cls(current=order[0], keys=keys)

    @staticmethod
    def new_line(key_id: str | None = None) -> str:
        """A new key file line: `<id>:<base64 key>`."""
        key_id = key_id or f"k{secrets.token_hex(4)}"
        return f"{key_id}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


def load_key_ring(keys: str | None, keys_file: Path | None, data_dir: Path) -> KeyRing:
    """The keys from CONTINUUM_PAYLOAD_KEYS, else the file CONTINUUM_PAYLOAD_KEYS_FILE names, else the
    embedded default's own file under the data directory (created with one new key, mode 0600)."""
    if keys:
        return KeyRing.parse(keys, "CONTINUUM_PAYLOAD_KEYS")
    if keys_file is not None:
        try:
            return KeyRing.parse(keys_file.read_text(encoding="utf-8"), str(keys_file))
        except OSError as error:
            raise PayloadKeyError(f"cannot read the payload key file {keys_file}: {error.strerror}") from None
    path = data_dir / "payload-keys"
    if not path.exists():  # written whole, then linked into place: a process starting beside us reads it whole
        data_dir.mkdir(parents=True, exist_ok=True)
        draft = data_dir / f".payload-keys.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write("# Continuum's payload keys: the first encrypts, all decrypt. Never commit this file.\n")
            out.write(KeyRing.new_line() + "\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process made it first: its key is the one
        finally:
            draft.unlink()
    return KeyRing.parse(path.read_text(encoding="utf-8"), str(path))


class EncryptionCodec(PayloadCodec):
    """AES-GCM over each serialized payload; payloads that were never encrypted pass through unchanged
    (histories recorded before encryption keep replaying)."""

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring
        self._ciphers = {key_id: AESGCM(key) for key_id, key in ring.keys.items()}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self._ring.current
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(), key_id.encode())
        return Payload(metadata={"encoding": ENCODING, KEY_ID: key_id.encode()}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadKeyError(f"a payload is encrypted with key {key_id!r}, which this process does not hold")
        try:
            plain = cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], key_id.encode())
        except InvalidTag:
            raise PayloadKeyError(f"a payload encrypted with key {key_id!r} fails authentication") from None
        return Payload.FromString(plain)


_LEAVES: frozenset[Any] = frozenset({str, int, float, bool, type(None), Any, datetime, Flag})


@cache
def _compiled(hint: Any) -> bool:
    """Whether the domain's compiled decoder gives exactly what the SDK's `value_to_type` would for `hint`:
    dataclasses (all fields set by __init__) of leaves, enums, NewTypes, Optional, list[X], tuple[X, ...] and
    dict[str, X]. Anything else (a real union, a fixed-length tuple, a UUID, ...) stays with the SDK."""
    return _decodable(hint, frozenset())


def _decodable(hint: Any, visiting: frozenset[Any]) -> bool:
    if hint in _LEAVES or (isinstance(hint, type) and issubclass(hint, Enum)):
        return True
    if hasattr(hint, "__supertype__"):  # NewType
        return _decodable(hint.__supertype__, visiting)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        others = [arg for arg in args if arg is not type(None)]
        return len(others) == 1 and len(args) == 2 and _decodable(others[0], visiting)
    if origin is list and len(args) == 1:
        return _decodable(args[0], visiting)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _decodable(args[0], visiting)
    if origin is dict and len(args) == 2 and args[0] is str:
        return _decodable(args[1], visiting)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if hint in visiting:
            return True  # a type that refers to itself: decided by its other fields
        fields = dataclasses.fields(hint)
        if any(not f.init for f in fields):
            return False
        hints = typing.get_type_hints(hint)
        return all(_decodable(hints[f.name], visiting | {hint}) for f in fields)
    return False


class CompiledJSONPayloadConverter(JSONPlainPayloadConverter):
    """The SDK's JSON converter, but payloads of the project's own dataclasses are decoded by the domain's
    decoder, which resolves each type's hints once: the SDK evaluates `typing.get_type_hints` for every
    dataclass in every payload (8.6 % of the worker's CPU per command, issue 21). Encoding is unchanged."""

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        if type_hint is not None and _compiled(type_hint):
            try:
                data = json.loads(payload.data)
            except json.JSONDecodeError as error:
                raise RuntimeError("Failed parsing") from error
            return decode(type_hint, data)
        return super().from_payload(payload, type_hint)


class ContinuumPayloadConverter(CompositePayloadConverter):
    """The SDK's default converters, in its order, with JSON decoded by CompiledJSONPayloadConverter."""

    def __init__(self) -> None:
        converters = [
            CompiledJSONPayloadConverter() if isinstance(c, JSONPlainPayloadConverter) else c
            for c in DefaultPayloadConverter.default_encoding_payload_converters
        ]
        super().__init__(*converters)


def encrypted_converter(ring: KeyRing) -> DataConverter:
    """Payloads encrypted, JSON decoded with types resolved once, failure messages and stack traces included."""
    return DataConverter(
        payload_converter_class=ContinuumPayloadConverter,
        payload_codec=EncryptionCodec(ring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
