"""Pseudonymous identifiers: the engine never sees names, only ids an EHR can map back."""

from __future__ import annotations

import re
from typing import NewType

from continuum.domain.errors import InvalidIdentifier

EpisodeId = NewType("EpisodeId", str)
ClientId = NewType("ClientId", str)

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


def episode_id(value: str) -> EpisodeId:
    """Validate an episode id: 1-64 characters of letters, digits and `._:-`, starting alphanumeric."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidIdentifier(
            "an episode id is 1-64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit"
        )
    return EpisodeId(value)


def client_id(value: str) -> ClientId:
    """Validate a pseudonymous client id (same form as an episode id; never a name or record number)."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidIdentifier(
            "a client id is a pseudonym of 1-64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit"
        )
    return ClientId(value)


def staff_id(value: str) -> str:
    """A clinician's, therapist's or service's pseudonymous id (same form; never a name)."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidIdentifier(
            "a staff id is 1-64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit"
        )
    return value
