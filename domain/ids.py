"""Pseudonymous identifiers: the engine never sees names, only ids an EHR can map back."""

from __future__ import annotations

import re
from typing import NewType

from continuum.domain.errors import CommandInvalid, InvalidIdentifier

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


def lab_or_facility_id(value: str) -> str:
    """A facility's id, or the id of the lab it sends tests to (same form)."""
    return _valid(value, "an id is")


def field_id(field: str, value: str) -> str:
    """A command's id-valued field (who signed, who decided, a payer): `staff_id`'s form, or CommandInvalid (a
    422) naming the field."""
    try:
        return staff_id(value)
    except InvalidIdentifier as error:
        raise CommandInvalid(f"{field}: {error}") from None


def consent_id(value: str) -> str:
    """The id a consent is recorded and revoked by (same form)."""
    return _valid(value, "a consent id is")


# What identifies a person, in the shapes it is written in: a client id is a pseudonym an EHR maps back, and one of
# these shapes means someone sent the person instead. Written forms (123-45-6789, 555-123-4567, (555) 123-4567)
# are looked for inside an id; bare digits only as the whole id, so a run of digits in a generated id is no person.
_SSN = re.compile(r"(?<![0-9])[0-9]{3}([- ])[0-9]{2}\1[0-9]{4}(?![0-9])")
_SSN_DIGITS = re.compile(r"[0-9]{9}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE = re.compile(r"(?<![0-9])(\([0-9]{3}\) ?|[0-9]{3}[-. ])[0-9]{3}[-. ][0-9]{4}(?![0-9])")
_PHONE_DIGITS = re.compile(r"\+?[0-9 ().-]+")  # the whole value: digits and what a phone number is written with
_PHONE_LENGTHS = range(10, 16)  # a national number with its area code, up to E.164's 15 digits


def identifying_shape(value: str) -> str | None:
    """What `value` looks like if it is shaped like a Social Security number, an e-mail address or a phone
    number (123-45-6789, 123456789, jane@example.org, +1 555 123 4567, (555) 123-4567); None otherwise."""
    if _SSN.search(value) or _SSN_DIGITS.fullmatch(value):
        return "a Social Security number"
    if _EMAIL.search(value):
        return "an e-mail address"
    digits = sum(c.isdigit() for c in value)
    if _PHONE.search(value) or (_PHONE_DIGITS.fullmatch(value) and digits in _PHONE_LENGTHS):
        return "a phone number"
    return None


def pseudonymous_client_id(value: str) -> ClientId:
    """A client id as it arrives: of the id form and not shaped like an SSN, e-mail address or phone number.

    Checked where a command arrives (the API's schemas, the application client), never where an episode is
    decided: a history recorded before this rule must replay to what it recorded."""
    if isinstance(value, str) and (shape := identifying_shape(value)) is not None:
        raise InvalidIdentifier(f"a client id is a pseudonym, and this looks like {shape}")
    return client_id(value)
