"""Levels of care on the continuum, least to most intensive, with their ASAM codes by edition."""

from __future__ import annotations

from enum import StrEnum


class LevelOfCare(StrEnum):
    AFTERCARE = "aftercare"
    OUTPATIENT = "outpatient"
    INTENSIVE_OUTPATIENT = "intensive_outpatient"
    PARTIAL_HOSPITALIZATION = "partial_hospitalization"
    RESIDENTIAL = "residential"
    WITHDRAWAL_MANAGEMENT = "withdrawal_management"

    @property
    def intensity(self) -> int:
        """0 for aftercare up to 5 for withdrawal management."""
        return _ORDER.index(self)


_ORDER = list(LevelOfCare)


class AsamEdition(StrEnum):
    THIRD = "3"
    FOURTH = "4"


# The 4th edition (2023) renumbers residential and withdrawal management; aftercare has no ASAM level.
ASAM_CODES: dict[AsamEdition, dict[LevelOfCare, str | None]] = {
    AsamEdition.THIRD: {
        LevelOfCare.AFTERCARE: None,
        LevelOfCare.OUTPATIENT: "1",
        LevelOfCare.INTENSIVE_OUTPATIENT: "2.1",
        LevelOfCare.PARTIAL_HOSPITALIZATION: "2.5",
        LevelOfCare.RESIDENTIAL: "3.5",
        LevelOfCare.WITHDRAWAL_MANAGEMENT: "3.7-WM",
    },
    AsamEdition.FOURTH: {
        LevelOfCare.AFTERCARE: None,
        LevelOfCare.OUTPATIENT: "1.0",
        LevelOfCare.INTENSIVE_OUTPATIENT: "2.1",
        LevelOfCare.PARTIAL_HOSPITALIZATION: "2.5",
        LevelOfCare.RESIDENTIAL: "3.5",
        LevelOfCare.WITHDRAWAL_MANAGEMENT: "3.7",
    },
}


class Direction(StrEnum):
    UP = "up"
    DOWN = "down"
    LATERAL = "lateral"


def direction(from_level: LevelOfCare, to_level: LevelOfCare) -> Direction:
    if to_level.intensity > from_level.intensity:
        return Direction.UP
    if to_level.intensity < from_level.intensity:
        return Direction.DOWN
    return Direction.LATERAL
