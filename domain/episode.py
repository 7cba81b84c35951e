"""An episode of care: its status, discharge reasons (with TEDS codes) and its folded state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from domain.ids import ClientId, EpisodeId
from domain.levels import LevelOfCare


class EpisodeStatus(StrEnum):
    INTAKE = "intake"
    ACTIVE = "active"
    ON_HOLD = "on_hold"
    CLOSED = "closed"


class TedsDischarge(StrEnum):
    """Reason-for-discharge categories of the federal Treatment Episode Data Set."""

    COMPLETED = "completed"
    TRANSFERRED = "transferred"
    DROPPED_OUT = "dropped_out"
    TERMINATED = "terminated"
    OTHER = "other"


class DischargeReason(StrEnum):
    COMPLETED = "completed"
    AGAINST_MEDICAL_ADVICE = "against_medical_advice"
    ADMINISTRATIVE = "administrative"
    TRANSFERRED = "transferred"
    DECEASED = "deceased"
    LOST_TO_FOLLOW_UP = "lost_to_follow_up"

    @property
    def teds(self) -> TedsDischarge:
        return _TEDS[self]


_TEDS = {
    DischargeReason.COMPLETED: TedsDischarge.COMPLETED,
    DischargeReason.AGAINST_MEDICAL_ADVICE: TedsDischarge.DROPPED_OUT,
    DischargeReason.ADMINISTRATIVE: TedsDischarge.TERMINATED,
    DischargeReason.TRANSFERRED: TedsDischarge.TRANSFERRED,
    DischargeReason.DECEASED: TedsDischarge.OTHER,
    DischargeReason.LOST_TO_FOLLOW_UP: TedsDischarge.DROPPED_OUT,
}


class HoldReason(StrEnum):
    HOSPITALISED = "hospitalised"
    INCARCERATED = "incarcerated"
    LEAVE = "leave"


@dataclass(frozen=True)
class Episode:
    """The state of one episode, derived only by folding its events in order (see `domain.fold`)."""

    episode_id: EpisodeId
    client_id: ClientId
    status: EpisodeStatus
    opened_at: datetime
    status_since: datetime
    version: int = 0
    level: LevelOfCare | None = None
    level_since: datetime | None = None
    hold_reason: HoldReason | None = None
    flags: tuple[str, ...] = field(default=())
    discharge_reason: DischargeReason | None = None
    closed_at: datetime | None = None
