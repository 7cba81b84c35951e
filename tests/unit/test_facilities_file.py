"""Facilities as configuration: parsed and validated in the domain, errors naming the facility and the key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from continuum.domain.errors import FacilityError
from continuum.domain.facilities import DEFAULT_FACILITY, load_facilities, sample_facilities_text
from continuum.domain.levels import LevelOfCare

RENO = """
[facility.nv-reno]
name = "Reno"
levels = ["residential", "intensive_outpatient"]
capacity = { residential = 2 }
"""


def test_without_a_file_one_facility_offers_every_level_without_a_limit() -> None:
    facilities = load_facilities(None)
    main = facilities.get(DEFAULT_FACILITY)

    assert facilities.ids == (DEFAULT_FACILITY,) and facilities.default_id == DEFAULT_FACILITY
    assert main is not None and main.levels == frozenset(LevelOfCare) and not main.capacity
    assert main.unavailable({level: 10_000 for level in LevelOfCare}) == frozenset()


def test_the_sample_shipped_with_the_package_is_valid() -> None:
    facilities = load_facilities(sample_facilities_text())

    assert facilities.ids == ("nv-reno", "tx-austin", "ca-oakland") and facilities.default_id == "nv-reno"
    austin = facilities.get("tx-austin")
    assert austin is not None and austin.lab_id == "lab-austin" and not austin.offers(LevelOfCare.RESIDENTIAL)


def test_the_default_facility_is_the_first_unless_named() -> None:
    two = RENO + '[facility.tx-austin]\nname = "Austin"\nlevels = ["outpatient"]\n'

    assert load_facilities(two).default_id == "nv-reno"
    assert load_facilities('default = "tx-austin"\n' + two).default_id == "tx-austin"


def test_a_level_not_offered_or_full_is_unavailable() -> None:
    reno = load_facilities(RENO).get("nv-reno")
    assert reno is not None

    not_offered = frozenset(LevelOfCare) - {LevelOfCare.RESIDENTIAL, LevelOfCare.INTENSIVE_OUTPATIENT}
    assert reno.unavailable({LevelOfCare.RESIDENTIAL: 1}) == not_offered
    assert reno.unavailable({LevelOfCare.RESIDENTIAL: 2}) == not_offered | {LevelOfCare.RESIDENTIAL}
    assert LevelOfCare.INTENSIVE_OUTPATIENT not in reno.unavailable({LevelOfCare.INTENSIVE_OUTPATIENT: 500})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            RENO.replace("residential = 2", "residential = 0"),
            "facility nv-reno: capacity.residential must be a positive whole number",
        ),
        (
            RENO.replace("residential = 2", "residential = 2.5"),
            "facility nv-reno: capacity.residential must be a positive whole number",
        ),
        (
            RENO.replace("residential = 2", "residential = true"),
            "facility nv-reno: capacity.residential must be a positive whole number",
        ),
        (
            RENO.replace("residential = 2", "outpatient = 2"),
            "facility nv-reno: capacity.outpatient is for a level the facility does not offer",
        ),
        (
            RENO.replace("residential = 2", "detox = 2"),
            "facility nv-reno: capacity.detox 'detox' is not a level of care",
        ),
        (RENO.replace('"intensive_outpatient"', '"iop"'), "facility nv-reno: levels[1] 'iop' is not a level of care"),
        (
            RENO.replace('levels = ["residential", "intensive_outpatient"]', "levels = []"),
            "facility nv-reno: levels must be a non-empty list",
        ),
        (RENO.replace('name = "Reno"', 'name = ""'), "facility nv-reno: name must be a non-empty string"),
        (RENO.replace('name = "Reno"', 'name = "Reno"\nbeds = 3'), "facility nv-reno: beds is not a facility key"),
        (RENO.replace('name = "Reno"', 'name = "Reno"\nlab = "lab one"'), "facility nv-reno: lab 'lab one': an id is"),
        (
            RENO.replace('name = "Reno"', 'name = "Reno"\npolicy = 3'),
            "facility nv-reno: policy must be a non-empty string",
        ),
        (RENO.replace("nv-reno", '"nv reno"'), "facility 'nv reno': an id is"),
        ('default = "nowhere"\n' + RENO, "facilities key default: 'nowhere' is not a facility in the file"),
        ("fac = 1\n" + RENO, "facilities key fac is not known"),
        ("", "the facilities file needs at least one [facility.<id>] section"),
        ("[facility", "the facilities file is not valid TOML"),
    ],
)
def test_a_malformed_file_is_refused_naming_the_facility_and_the_key(text: str, message: str) -> None:
    with pytest.raises(FacilityError) as raised:
        load_facilities(text)

    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


@given(st.integers(), st.integers(min_value=0, max_value=100))
def test_a_capacity_is_accepted_exactly_when_it_is_a_positive_whole_number(beds: int, taken: int) -> None:
    text = RENO.replace("residential = 2", f"residential = {beds}")
    if beds < 1:
        with pytest.raises(FacilityError, match="capacity.residential must be a positive whole number"):
            load_facilities(text)
        return
    reno = load_facilities(text).get("nv-reno")
    assert reno is not None
    assert (LevelOfCare.RESIDENTIAL in reno.unavailable({LevelOfCare.RESIDENTIAL: taken})) is (taken >= beds)
