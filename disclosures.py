"""Exporting an episode's history, one path for the API and the CLI: the domain decides the basis, the
accounting records the disclosure, then the history is written (NDJSON with its signed trailer, or FHIR)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from continuum.access import AccessLog, ApiKey
from continuum.domain.codec import decode
from continuum.domain.disclosure import ExportAsked, export_basis
from continuum.domain.episode import Episode
from continuum.eventlog.export import fhir_bundle, ndjson_lines, signed_trailer
from continuum.eventlog.reads import EpisodeReads
from continuum.eventlog.store import PostgresEventStore

__all__ = ["export_history"]


def export_history(
    store: PostgresEventStore,
    reader: ApiKey,
    episode_id: str,
    format: str,  # ndjson or fhir, as the API and the CLI name it
    asked: ExportAsked,
    key: Ed25519PrivateKey | None,
    at: datetime,
) -> str | dict[str, Any] | None:
    """The export (NDJSON text, ending with a trailer signed by `key` if given, or a FHIR Bundle), recorded as a
    disclosure on the basis the domain accepts; None for no such episode. A basis the domain refuses raises
    `DisclosureRefused` and records nothing."""
    events = store.read_stream(episode_id, as_recorded=True)  # the payloads the hashes cover
    recorded = EpisodeReads(store.engine).get(episode_id)
    if not events or recorded is None:
        return None
    justified = export_basis(decode(Episode, recorded), asked, at)
    AccessLog(store.engine).record_export(
        reader, episode_id, format=format, recipient=asked.recipient, purpose=asked.purpose, basis=justified
    )
    if format == "fhir":
        return fhir_bundle(episode_id, events)
    lines = list(ndjson_lines(events))
    if key is not None:  # a cut or an added line then fails `verify-export`
        lines.append(signed_trailer(events, key, at))
    return "".join(line + "\n" for line in lines)
