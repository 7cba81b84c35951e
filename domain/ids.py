"""Pseudonymous identifiers: the engine never sees names, only ids an EHR can map back."""

from __future__ import annotations

import re
from typing import NewType

from continuum.domain.errors import InvalidIdentifier

EpisodeId = NewType("EpisodeId", str)
ClientId = NewType("ClientId", str)

# The one form of every id the engine is given (episodes, clients, staff, tests, consents, ...); the API's
# schemas and path parameters anchor this same pattern.
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}"
_ID = re.compile(ID_PATTERN)
_FORM = "1-64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit"


def _valid(value: object, what: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidIdentifier(f"{what} {_FORM}")
    return value


def episode_id(value: str) -> EpisodeId:
    """Validate an episode id: 1-64 characters of letters, digits and `._:-`, starting alphanumeric."""
    return EpisodeId(_valid(value, "an episode id is"))


def client_id(value: str) -> ClientId:
    """Validate a pseudonymous client id (same form as an episode id; never a name or record number)."""
    return ClientId(_valid(value, "a client id is a pseudonym of"))


def staff_id(value: str) -> str:
    """A clinician's, therapist's or service's pseudonymous id (same form; never a name)."""
    return _valid(value, "a staff id is")


def consent_id(value: str) -> str:
    """The id a consent is recorded and revoked by (same form)."""
    return _valid(value, "a consent id is")
