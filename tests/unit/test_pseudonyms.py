"""A client id is a pseudonym: one shaped like an SSN, an e-mail address or a phone number is refused."""

from __future__ import annotations

from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from continuum.domain.errors import InvalidIdentifier
from continuum.domain.ids import ID_PATTERN, identifying_shape, pseudonymous_client_id

SSNS = st.builds(
    lambda a, b, c, sep: f"{a:03d}{sep}{b:02d}{sep}{c:04d}",
    st.integers(0, 999),
    st.integers(0, 99),
    st.integers(0, 9999),
    st.sampled_from(["-", "", " "]),
)
PHONES = st.builds(
    lambda area, exchange, line, form: form.format(a=area, e=exchange, n=line),
    st.integers(200, 999),
    st.integers(200, 999),
    st.integers(0, 9999).map(lambda n: f"{n:04d}"),
    st.sampled_from(["+1 {a} {e} {n}", "({a}) {e}-{n}", "{a}-{e}-{n}", "{a}.{e}.{n}", "{a}{e}{n}", "+1{a}{e}{n}"]),
)


@pytest.mark.parametrize(
    ("value", "shape"),
    [
        ("123-45-6789", "a Social Security number"),
        ("123456789", "a Social Security number"),
        ("jane.doe@example.org", "an e-mail address"),
        ("+1 555 123 4567", "a phone number"),
        ("(555) 123-4567", "a phone number"),
        ("555-123-4567", "a phone number"),
        ("client-555-123-4567", "a phone number"),
    ],
)
def test_the_shapes_the_brief_names_are_refused_saying_what_they_look_like(value: str, shape: str) -> None:
    assert identifying_shape(value) == shape
    with pytest.raises(InvalidIdentifier, match=f"looks like {shape}"):
        pseudonymous_client_id(value)


@given(SSNS)
def test_every_ssn_shape_is_refused(value: str) -> None:
    assert identifying_shape(value) == "a Social Security number"


@given(PHONES)
def test_every_phone_number_shape_is_refused(value: str) -> None:
    assert identifying_shape(value) == "a phone number"


@given(st.emails())
def test_every_email_address_is_refused(value: str) -> None:
    assert identifying_shape(value) is not None  # an address of nine digits is refused as an SSN first


@given(st.from_regex(f"^{ID_PATTERN}$", fullmatch=True).filter(lambda v: sum(c.isdigit() for c in v) < 9))
def test_an_id_of_the_id_form_with_fewer_than_nine_digits_is_a_pseudonym(value: str) -> None:
    assert identifying_shape(value) is None
    assert pseudonymous_client_id(value) == value


@given(st.sampled_from(["client-", "c", "EP-", "bench-"]), st.uuids())
def test_a_generated_id_is_never_mistaken_for_a_person(prefix: str, generated: UUID) -> None:
    value = f"{prefix}{generated.hex}"  # a random run of digits inside an id is not a written SSN or phone
    assert pseudonymous_client_id(value) == value


@pytest.mark.parametrize("value", ["client-1", "client-12345678", "c-42", "EP-2026-01-01-1", "k_abc123"])
def test_the_ids_in_use_are_pseudonyms(value: str) -> None:
    assert pseudonymous_client_id(value) == value
