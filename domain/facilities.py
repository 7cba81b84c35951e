"""Facilities: the centers an operator runs, each offering some levels of care with limited beds or slots.

Configuration, parsed and validated here (no I/O: the file's text comes in); errors name the facility and
the key. With no file, one facility (`main`) offers every level without a limit, so a program that never
configured facilities runs as before.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from continuum.domain.errors import FacilityError, InvalidIdentifier
from continuum.domain.ids import lab_or_facility_id
from continuum.domain.levels import LevelOfCare

DEFAULT_FACILITY = "main"
_LEVELS = tuple(level.value for level in LevelOfCare)
_KEYS = frozenset({"name", "levels", "capacity", "policy", "directory", "lab"})


@dataclass(frozen=True)
class Facility:
    """One center: the levels it offers, the beds or slots of each (a level without one has no limit), and its
    own policy, resource directory and lab (file paths as written, relative to the facilities file; None: the
    program's)."""

    facility_id: str
    name: str
    levels: frozenset[LevelOfCare]
    capacity: Mapping[LevelOfCare, int] = field(default_factory=dict)
    policy_file: str | None = None
    directory_file: str | None = None
    lab_id: str | None = None

    def offers(self, level: LevelOfCare) -> bool:
        return level in self.levels

    def unavailable(self, occupancy: Mapping[LevelOfCare, int]) -> frozenset[LevelOfCare]:
        """The levels a client cannot be placed at here now: not offered, or every bed or slot taken."""
        full = {level for level, beds in self.capacity.items() if occupancy.get(level, 0) >= beds}
        return frozenset(set(LevelOfCare) - self.levels) | full


@dataclass(frozen=True)
class Facilities:
    """Every facility by id, in the file's order; `default_id` is where an episode opens unless told."""

    by_id: Mapping[str, Facility]
    default_id: str

    def get(self, facility_id: str) -> Facility | None:
        return self.by_id.get(facility_id)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self.by_id)


@dataclass(frozen=True)
class FacilityProgram:
    """What episodes at a facility run under: its policy's and resource directory's texts, and its lab."""

    facility: Facility
    policy_text: str
    directory_text: str | None
    lab_id: str | None


ONE_FACILITY = Facilities(
    {DEFAULT_FACILITY: Facility(DEFAULT_FACILITY, "Main", frozenset(LevelOfCare))}, DEFAULT_FACILITY
)


def sample_facilities_file() -> Path:
    """The sample facilities file shipped with the package (three centers; `continuum demo` runs them)."""
    return Path(str(resources.files("continuum.domain").joinpath("facilities.toml")))


def sample_facilities_text() -> str:
    """The sample shipped next to the default policy (three centers), to copy and edit."""
    return resources.files("continuum.domain").joinpath("facilities.toml").read_text(encoding="utf-8")


def load_facilities(text: str | None) -> Facilities:
    """Parse and validate a facilities file's text (None: the one `main` facility offering every level)."""
    if text is None:
        return ONE_FACILITY
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise FacilityError(f"the facilities file is not valid TOML: {error}") from None
    unknown = sorted(set(raw) - {"default", "facility"})
    if unknown:
        raise FacilityError(f"facilities key {unknown[0]} is not known (expected default and [facility.<id>])")
    sections = raw.get("facility")
    if not isinstance(sections, dict) or not sections:
        raise FacilityError("the facilities file needs at least one [facility.<id>] section")
    by_id = {facility_id: _facility(facility_id, section) for facility_id, section in sections.items()}
    default = raw.get("default", next(iter(by_id)))
    if default not in by_id:
        raise FacilityError(f"facilities key default: {default!r} is not a facility in the file")
    return Facilities(by_id, default)


def _facility(facility_id: str, section: Any) -> Facility:
    def fail(key: str, problem: str) -> FacilityError:
        return FacilityError(f"facility {facility_id}: {key} {problem}")

    try:
        lab_or_facility_id(facility_id)
    except InvalidIdentifier as error:
        raise FacilityError(f"facility {facility_id!r}: {error}") from None
    if not isinstance(section, dict):
        raise fail("section", "must be a table")
    unknown = sorted(set(section) - _KEYS)
    if unknown:
        raise fail(unknown[0], f"is not a facility key (known: {', '.join(sorted(_KEYS))})")
    name = section.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail("name", "must be a non-empty string")
    levels = section.get("levels")
    if not isinstance(levels, list) or not levels:
        raise fail("levels", "must be a non-empty list of levels of care")
    offered = frozenset(_level(fail, f"levels[{n}]", value) for n, value in enumerate(levels))
    capacity_table = section.get("capacity", {})
    if not isinstance(capacity_table, dict):
        raise fail("capacity", "must be a table of level = beds or slots")
    capacity: dict[LevelOfCare, int] = {}
    for key, beds in capacity_table.items():
        level = _level(fail, f"capacity.{key}", key)
        if isinstance(beds, bool) or not isinstance(beds, int) or beds < 1:
            raise fail(f"capacity.{key}", "must be a positive whole number")
        if level not in offered:
            raise fail(f"capacity.{key}", "is for a level the facility does not offer (see levels)")
        capacity[level] = beds
    texts = {key: section.get(key) for key in ("policy", "directory", "lab")}
    for key, value in texts.items():
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise fail(key, "must be a non-empty string")
    lab = texts["lab"]
    try:
        if lab is not None:
            lab_or_facility_id(lab)
    except InvalidIdentifier as error:
        raise fail("lab", f"{lab!r}: {error}") from None
    return Facility(facility_id, name.strip(), offered, capacity, texts["policy"], texts["directory"], lab)


def _level(fail: Callable[[str, str], FacilityError], key: str, value: object) -> LevelOfCare:
    if isinstance(value, str) and value in _LEVELS:
        return LevelOfCare(value)
    raise fail(key, f"{value!r} is not a level of care (one of {', '.join(_LEVELS)})")
