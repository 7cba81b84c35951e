"""The hash chain: each event's hash covers its predecessor's hash and its own canonical encoding.

canonical(event) is the JSON array
    [position, stream_id, stream_version, event_id, event_type, schema_version,
     occurred_at, recorded_at, payload, metadata]
with strings JSON-quoted, instants as UTC `YYYY-MM-DDTHH:MM:SS.ffffffZ` (a four-digit year, as SQL's `to_char`),
and payload and metadata as the
exact JSON text stored (written canonically: sorted keys, no spaces, UTF-8). Then
    hash = SHA-256(prev_hash || UTF-8(canonical)),   prev_hash of the first event = 32 zero bytes.
Every field is covered, so an edit, insertion, deletion or reordering breaks a link.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from continuum.domain.codec import format_instant

GENESIS_HASH = bytes(32)


# One encoder for every call: json.dumps builds a new one for each call that passes options.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(value: Mapping[str, Any]) -> str:
    return _CANONICAL.encode(value)


def event_hash(
    prev_hash: bytes,
    *,
    position: int,
    stream_id: str,
    stream_version: int,
    event_id: str,
    event_type: str,
    schema_version: int,
    occurred_at: datetime,
    recorded_at: datetime,
    payload_json: str,
    metadata_json: str,
) -> bytes:
    quote = json.dumps
    canonical = (
        f"[{position},{quote(stream_id, ensure_ascii=False)},{stream_version},{quote(event_id)},"
        f"{quote(event_type, ensure_ascii=False)},{schema_version},{quote(format_instant(occurred_at))},"
        f"{quote(format_instant(recorded_at))},{payload_json},{metadata_json}]"
    )
    return hashlib.sha256(prev_hash + canonical.encode("utf-8")).digest()
